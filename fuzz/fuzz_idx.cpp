// libFuzzer target: IDX images and labels (data/idx.h) read from a file holding the input, raw or gzip
// (inputs that start with 1f 8b go through the streaming gzip reader: bombs, truncation, trailing garbage).
#include "data/idx.h"
#include "engine/error.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = nabla::fuzz::write_input(data, size);
  try {
    nabla::Tensor t = nabla::data::read_idx_images(path);
    if (t.dim() != 3) __builtin_trap();
  } catch (const nabla::Error&) {
  }
  try {
    nabla::Tensor t = nabla::data::read_idx_labels(path);
    if (t.dim() != 1) __builtin_trap();
  } catch (const nabla::Error&) {
  }
  return 0;
}

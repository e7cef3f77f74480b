// libFuzzer target: CIFAR-10 and CIFAR-100 binary batches (data/cifar.h) from a file holding the input.
#include "data/cifar.h"
#include "engine/error.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = nabla::fuzz::write_input(data, size);
  try {
    nabla::data::LabeledImages d = nabla::data::read_cifar10_file(path);
    if (d.size() * 3073 != static_cast<int64_t>(size)) __builtin_trap();
  } catch (const nabla::Error&) {
  }
  try {
    nabla::data::LabeledImages d = nabla::data::read_cifar100_file(path);
    if (d.size() * 3074 != static_cast<int64_t>(size)) __builtin_trap();
  } catch (const nabla::Error&) {
  }
  return 0;
}

// libFuzzer target: the IDX parser behind the gzip reader. The input is gzip-compressed first, so every
// mutation reaches the header checks and the declared-size bound after decompression (fuzz_idx mutates the
// compressed bytes themselves).
#include <zlib.h>

#include <vector>

#include "data/idx.h"
#include "engine/error.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> gz(compressBound(size) + 64);
  z_stream z{};
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
  z.next_in = const_cast<uint8_t*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = gz.data();
  z.avail_out = static_cast<uInt>(gz.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) __builtin_trap();
  gz.resize(z.total_out);
  deflateEnd(&z);
  const std::string& path = nabla::fuzz::write_input(gz.data(), gz.size());
  try {
    nabla::Tensor t = nabla::data::read_idx_images(path);
    if (t.numel() + 16 != static_cast<int64_t>(size)) __builtin_trap();  // exactly the declared pixels
  } catch (const nabla::Error&) {
  }
  try {
    nabla::data::read_idx_labels(path);
  } catch (const nabla::Error&) {
  }
  return 0;
}

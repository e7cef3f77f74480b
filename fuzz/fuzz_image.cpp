// libFuzzer target: JPEG (libjpeg-turbo) and PNG (libpng) decoding (data/image.h), in every ImageMode.
// The pixel limit is lowered to 2^20 (1024 x 1024) so that legal-but-large images stay fast and under
// libFuzzer's memory limit; the limit check itself is the same code at any value.
#include "data/image.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = [] {
    nabla::data::set_max_image_pixels(int64_t{1} << 20);
    return true;
  }();
  (void)once;
  for (auto mode :
       {nabla::data::ImageMode::keep, nabla::data::ImageMode::gray, nabla::data::ImageMode::rgb}) {
    try {
      nabla::Tensor t = nabla::data::decode_image(data, size, "fuzz", mode);
      if (t.dim() != 3 || t.size(0) * t.size(1) > (int64_t{1} << 20)) __builtin_trap();
    } catch (const nabla::Error&) {
      break;  // the same bytes fail the same way in every mode
    }
  }
  return 0;
}

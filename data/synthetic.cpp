// synthetic_batch (synthetic.h).
#include "data/synthetic.h"

#include "engine/error.h"
#include "engine/random.h"
#include "ops/factory.h"

namespace nabla::data {

Batch synthetic_batch(int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t classes,
                      Device device, uint64_t seed) {
  NABLA_CHECK(batch_size > 0 && channels > 0 && height > 0 && width > 0 && classes > 0,
              "synthetic data: expected positive batch size, channels, height, width and classes, got ",
              batch_size, ", ", channels, ", ", height, ", ", width, ", ", classes);
  Generator images{seed, 0}, labels{seed, 1ull << 40};  // disjoint counter ranges of one key
  Batch b;
  b.inputs = randn({batch_size, channels, height, width}, {.device = device}, &images);
  b.labels = randint(0, classes, {batch_size}, {.dtype = DType::i64, .device = device}, &labels);
  b.indices.resize(static_cast<size_t>(batch_size));
  for (int64_t i = 0; i < batch_size; ++i) b.indices[i] = i;
  return b;
}

}  // namespace nabla::data

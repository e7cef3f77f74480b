// Synthetic data for throughput benchmarks: one batch of random images and labels generated directly on the
// device, so that a timed step measures the model and the optimizer alone (no decoding, no host-to-device
// copy), as PyTorch benchmarks do with torch.randn(..., device="cuda").
//
//   inputs  f32 [B, C, H, W], x ~ N(0, 1)     (about what normalised images look like)
//   labels  i64 [B], uniform in [0, classes)
//
// Both come from Philox keyed by `seed` (engine/random.h), so the same seed gives the same batch on the CPU
// and on CUDA. Random labels carry nothing to learn: the loss of a model trained on one fixed batch falls
// only by memorising it.
#pragma once
#include <cstdint>

#include "data/loader.h"
#include "engine/device.h"

namespace nabla::data {

Batch synthetic_batch(int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t classes,
                      Device device, uint64_t seed);

}  // namespace nabla::data

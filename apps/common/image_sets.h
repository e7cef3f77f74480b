// Small image classification sets held in memory as normalised f32 [N, C, S, S] tensors, for the NAS
// binaries (search_darts, train_darts): Fashion-MNIST (padded to 32 x 32 and/or resized, the CPU proxy for
// CIFAR-10), CIFAR-10 from its binary files, and a planted synthetic set with a known answer. Also the
// per-batch augmentation of DARTS (pad-4 random crop, horizontal flip, cutout), drawn from a data::Rng
// keyed by (seed, epoch, step), so a run's batches depend on nothing but those numbers.
#pragma once
#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace nabla::apps {

struct ImageSet {
  Tensor images;  // f32 [N, C, S, S], normalised
  Tensor labels;  // i64 [N]
  int64_t classes = 10;
  int64_t channels() const { return images.size(1); }
  int64_t size() const { return images.size(0); }
  int64_t image_size() const { return images.size(2); }
};

struct ImageSetOptions {
  std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | synthetic
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t limit = 0;       // the first N examples (0: all; synthetic: N examples, default 2,000)
  int64_t pad = 32;        // fashion-mnist: pad 28 -> pad (0: leave)
  int64_t image_size = 0;  // resize to S x S after padding (0: leave)
  uint64_t seed = 0;       // synthetic
};

// train: the training split (else the test split).
ImageSet load_image_set(const ImageSetOptions& o, bool train);

// The examples `indices` of `set` as one batch; with augment: random crop (pad 4) and horizontal flip per
// example; cutout > 0 zeroes a cutout x cutout square (centre uniform, clipped at the border: DARTS's
// Cutout). Randomness from data::Rng(example_seed(seed, epoch, step)) per batch.
std::pair<Tensor, Tensor> gather_batch(const ImageSet& set, const std::vector<int64_t>& indices, bool augment,
                                       int64_t cutout, uint64_t seed, int64_t epoch, int64_t step);

// A permutation of [0, n) from (seed, epoch).
std::vector<int64_t> shuffled(int64_t n, uint64_t seed, int64_t epoch);
// k distinct indices of [0, n) from (seed, epoch, step) (a random batch "with replacement" across steps).
std::vector<int64_t> random_subset(int64_t n, int64_t k, uint64_t seed, int64_t epoch, int64_t step);

}  // namespace nabla::apps

// The PSTRN synthetic experiment (Hypothesis 1; brief section 2.7, data in shared/data/pstrn-synthetic).
//
// Ground truth: W [144, 144], a 0/1 block matrix (groundtruth/fc_144x144.txt). Validation: x, y [1000, 144]
// from dataset_valid/var0.05/ (y = x0 W with the clean x0; x = x0 + noise). The training set (4000 rows
// upstream) was too large to copy, so it is regenerated the way the README describes the generator:
//   x0 ~ N(0, 0.5) (variance), y = x0 W, x = x0 + e with e ~ N(0, 0.15) (the noise of var = 0.01 .. 0.05
//   added cumulatively), drawn from Philox under `seed`.
// Model: TRLinear 144 = [12, 12] -> 144 = [12, 12], 4 ranks, no bias; MSE; Adam lr 1e-2, weight decay 5e-4
// (L2, as torch.optim.Adam); lr x 0.1 at epochs 30, 60, 90; 100 epochs; batch 128 (all as the brief).
// Fitness: error = the lowest validation MSE (mean over all elements) over the epochs; compression =
// 144^2 / TR parameters.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/pstrn/pstrn.h"
#include "engine/tensor.h"

namespace nabla::pstrn {

// Reads the data set's text matrix format ("# float32 matrix, R rows x C cols, ..." then R lines of C
// numbers). Throws naming the file and line on a malformed or short file, or a shape other than expected.
Tensor read_text_matrix(const std::string& path, int64_t rows, int64_t cols);

struct SyntheticData {
  Tensor w;                 // [144, 144]
  Tensor x_train, y_train;  // [n_train, 144]
  Tensor x_val, y_val;      // [1000, 144]
};

// `dir`: the pstrn-synthetic folder. n_train rows are generated (4000 upstream).
SyntheticData load_synthetic(const std::string& dir, int64_t n_train = 4000, uint64_t seed = 0);

struct SyntheticTrainOptions {
  int64_t epochs = 100;
  int64_t batch_size = 128;
  double lr = 1e-2, weight_decay = 5e-4, gamma = 0.1;
  std::vector<int64_t> milestones = {30, 60, 90};
  uint64_t seed = 0;  // initial cores and batch order (the same for every rank vector)
};

// Trains the TR-FC with `ranks` (4 values) from scratch on the CPU; returns (best validation MSE,
// compression ratio). Thread-safe: it touches no global generator.
FitnessResult train_synthetic(const SyntheticData& data, const Ranks& ranks, const SyntheticTrainOptions& o);

// A Fitness that trains each rank vector of a batch, `threads` of them at a time (OpenMP; the ops inside
// run on one thread each).
Fitness synthetic_fitness(const SyntheticData& data, const SyntheticTrainOptions& o, int64_t threads);

// The smallest validation MSE any linear map reaches on the validation set itself (least squares,
// in-sample): a floor for every TR model's validation error.
double synthetic_linear_floor(const SyntheticData& data);

}  // namespace nabla::pstrn

// PSTRN's TR-LSTM task, made small enough for this machine: synthetic sequence classification with a planted
// signal (the paper's UCF11 / HMDB51 video features are not available here).
//
// Data (all drawn from Philox under `seed`): M motifs, each an 8 x 8 matrix (the I = 64 features as [8, 8])
// of matrix rank `motif_rank` (sum of rank-1 outer products of N(0,1) vectors), scaled to Frobenius norm
// `amplitude`. A class is an ORDERED pair (a, b) of distinct motifs, so M (M - 1) classes (6 for M = 3).
// A sequence of T steps is N(0, 1) noise in every feature; motif a is added at a uniform step in
// [0, T/2), motif b at a uniform step in [T/2, T). To tell (a, b) from (b, a) the net has to remember what
// it saw first; to see a motif at all through the noise (projection SNR = amplitude) the input projection
// has to line up with the motifs, and a motif of matrix rank k needs TR ranks that can hold it: with
// in_shape [16, 16], any one output's weights over (i_1, i_2) have matrix rank <= R_1 R_0 R_2, so the ring
// ranks matter where the dense layer would not care.
//
// Training of one rank vector (as the image tasks: from scratch, Adam, lr x gamma at the milestones):
// cross-entropy, batch `batch_size`, fitness error = 100 - best validation top-1 (%) over the epochs;
// compression = the TR layer's ratio (min-layer, the one TR layer) or the whole classifier's (network).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/pstrn/pstrn.h"
#include "engine/tensor.h"
#include "models/tr_lstm.h"

namespace nabla::pstrn {

struct SequenceTaskOptions {
  int64_t n_train = 1500, n_val = 500, n_test = 1000;
  int64_t length = 6;            // T
  int64_t rows = 16, cols = 16;  // features I = rows x cols
  int64_t motifs = 3;            // M: M (M - 1) classes
  int64_t motif_rank = 3;        // matrix rank of each [rows, cols] motif
  double amplitude = 5.0;        // Frobenius norm of a motif (the noise has std 1 per feature)
  uint64_t seed = 0;
};

struct SequenceTask {
  Tensor x_train, y_train, x_val, y_val, x_test, y_test;  // x [N, T, I] f32, y [N] i64
  Tensor motifs;                                          // [M, I]
  int64_t classes = 0;
};

SequenceTask make_sequence_task(const SequenceTaskOptions& o);

struct SequenceTrainOptions {
  models::TRLSTMOptions model;  // shapes, dropout, order (the generator is set per net)
  int64_t epochs = 10, batch_size = 50;
  double lr = 1e-2, gamma = 0.1;
  std::vector<int64_t> milestones = {7};
  bool network_compression = false;  // the fitness's compression: the classifier's instead of the layer's
  std::string device = "cpu";
  uint64_t seed = 0;  // initial weights and batch order (the same for every rank vector)
};

struct SequenceResult {
  double best_val_error = 100, test_error = NAN;  // %
  double compression = 1, network_compression = 1;
  int64_t params = 0;
};

// Trains a TRLSTMClassifier with `ranks` from scratch; with `test`, also its error on the test split after
// the last epoch. Thread-safe on the CPU (no global generator).
SequenceResult train_sequence(const SequenceTask& data, const Ranks& ranks, const SequenceTrainOptions& o,
                              bool test = false);

// A Fitness training `threads` nets at once (OpenMP, CPU; one at a time on a GPU).
Fitness sequence_fitness(const SequenceTask& data, const SequenceTrainOptions& o, int64_t threads);

}  // namespace nabla::pstrn

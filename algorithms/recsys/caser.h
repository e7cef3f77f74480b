// Caser (Tang & Wang, WSDM 2018, "Personalized Top-N Sequential Recommendation via Convolutional Sequence
// Embedding"): convolutions over the embeddings of a user's last L items, with a user embedding.
//
//   E        [L, d]  the embeddings Q[s_{t-L+1}], ..., Q[s_t] of the last L items (0 = padding, a row of its
//   own) horizontal for h = 1..L: nh filters F [h, d]; c_h[k, i] = relu(<F_k, E[i:i+h]> + b_k), i = 1..L-h+1;
//            o_h[k] = max_i c_h[k, i]  (max-pool over time)         -> o [nh L]
//   vertical nv filters w [L]; o~[j] = sum_l w_j[l] E[l] + b_j (no activation, as the authors' code)
//                                                                     -> o~ [nv d]
//   z        relu(W1 dropout([o; o~]) + b1)                          [d]
//   score    y(u, i) = W2[i] . [z; P_u] + b2[i]                       (W2 [I + 1, 2d], P [U + 1, d])
// Horizontal and vertical filters are conv2d's kernels [h, d] and [L, 1] over the [1, L, d] "image", computed
// as GEMMs over gathered windows (tested equal to conv2d).
//
// Training (the authors' defaults, caser_pytorch): each user's training items, oldest first, cut into sliding
// windows of L + T (shorter sequences left-padded with 0): the first L are the input, the last T the targets.
// Each epoch, per target, `negatives` items drawn uniformly from those the user never interacted with;
// loss = mean BCE(y(targets), 1) + mean BCE(y(negatives), 0); Adam with L2 weight decay. Init: P, Q ~
// N(0, 1/d), W2 ~ N(0, 1/(2d)), b2 = 0; conv and W1 PyTorch's default uniform. Defaults: L 5, T 3, d 50,
// nh 16, nv 4, dropout 0.5, 3 negatives per target, batch 512, lr 1e-3, weight decay 1e-6, 50 epochs.
// Windows' order, negatives and dropout are philox draws keyed by the seed, so a seed fixes the run (on one
// device).
//
// Scoring a user: the window of the last L training items (left-padded), dropout off.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"

namespace nabla::recsys {

struct CaserOptions {
  int64_t L = 5, T = 3;
  int64_t dim = 50, nh = 16, nv = 4;
  double dropout = 0.5;
  int64_t negatives = 3;  // per target
  int64_t epochs = 50;
  int64_t batch_size = 512;
  double lr = 1e-3;
  double weight_decay = 1e-6;
  uint64_t seed = 0;
  Device device = Device::cpu();
};

// The parameters, as tensors (any float dtype: the gradient check runs them in f64).
struct CaserWeights {
  Tensor item_emb, user_emb;        // Q [I + 1, d], P [U + 1, d]
  std::vector<Tensor> conv_h_w;     // L of them: [nh, 1, h, d], h = 1..L
  std::vector<Tensor> conv_h_b;     // [nh]
  Tensor conv_v_w, conv_v_b;        // [nv, 1, L, 1], [nv]
  Tensor fc_w, fc_b;                // W1 [d, nh L + nv d], b1 [d]
  Tensor out_w, out_b;              // W2 [I + 1, 2d], b2 [I + 1]
  std::vector<Tensor> all() const;  // every tensor above
};

// [z; P_u] for a batch: seq [B, L] item ids (i64), users [B] (i64) -> [B, 2d]. `gen` draws the dropout
// mask when training.
Tensor caser_represent(const CaserWeights& w, const Tensor& seq, const Tensor& users, double dropout,
                       bool training, Generator* gen = nullptr);
// y = W2[items] . rep + b2[items]: rep [B, 2d], items [B, K] (i64) -> [B, K].
Tensor caser_item_scores(const CaserWeights& w, const Tensor& rep, const Tensor& items);

class Caser {
 public:
  // Users 1..num_users, items 1..num_items (id 0: padding).
  Caser(int32_t num_users, int32_t num_items, CaserOptions options);
  // sequences[u]: user u's training items, oldest first (index 0 and any user may be empty). Returns each
  // epoch's mean loss.
  std::vector<double> fit(const std::vector<std::vector<int32_t>>& sequences);
  // Scores of `items` for `user` after `history` (oldest first; its last L items are used).
  std::vector<double> scores(int32_t user, std::span<const int32_t> history, std::span<const int32_t> items);
  // The (input window, targets) pairs fit() trains on, for one sequence (left-padded with 0): for tests.
  static std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> windows(
      std::span<const int32_t> seq, int64_t L, int64_t T);

  CaserWeights weights;
  const CaserOptions& options() const { return o_; }

 private:
  int32_t num_users_, num_items_;
  CaserOptions o_;
};

}  // namespace nabla::recsys

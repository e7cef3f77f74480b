// Recommendation baselines scored under the protocols of ranking.h (docs/hkf.md):
//
//   popularity   score(item) = its number of training interactions (the same for every user).
//   BPR-MF       Rendle et al. 2009: s(u, i) = <p_u, q_i> + b_i, trained on (user, positive item) pairs
//                with one negative per pair drawn uniformly from the items the user has not interacted
//                with;  loss = mean softplus(-(s(u, i+) - s(u, i-))) = BCE-with-logits(s+ - s-, 1),
//                Adam with an L2 penalty (weight_decay) on the factors, through the engine's autograd.
//                Init: p, q ~ N(0, init_std), b = 0. Batches and negatives are philox draws keyed by
//                (seed, epoch), so a seed fixes the run.
//
// The genre task ranks genres instead of items; a baseline scores a genre as the mean of its item scores
// over the catalogue's items of that genre (genre_scores_from_items).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/tensor.h"

namespace nabla::recsys {

struct Interaction {
  int32_t user = 0, item = 0;
};

struct MfOptions {
  int64_t dim = 32;
  int64_t epochs = 20;
  int64_t batch_size = 1024;
  double lr = 5e-3;
  double weight_decay = 1e-5;
  double init_std = 0.1;
  uint64_t seed = 0;
};

class BprMf {
 public:
  // Users 1..num_users, items 1..num_items (row 0 unused).
  BprMf(int32_t num_users, int32_t num_items, MfOptions options);
  // Trains on the pairs; returns the mean loss of each epoch.
  std::vector<double> fit(std::span<const Interaction> train);
  // s(user, item) for each item.
  std::vector<double> scores(int32_t user, std::span<const int32_t> items) const;

  Tensor user_factors, item_factors, item_bias;  // [U+1, d], [I+1, d], [I+1]

 private:
  int32_t num_users_, num_items_;
  MfOptions o_;
};

// Popularity: count[item] for each item (count indexed by item id).
std::vector<double> popularity_scores(std::span<const int64_t> counts, std::span<const int32_t> items);

// item_genres[i] = genre indices of item i (index 0 unused); item_scores[i] for every item 1..I.
// Returns num_genres scores: the mean item score per genre (the lowest double for a genre with no item).
std::vector<double> genre_scores_from_items(std::span<const double> item_scores,
                                            const std::vector<std::vector<int>>& item_genres, int num_genres);

}  // namespace nabla::recsys

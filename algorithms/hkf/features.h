// HKF stage 3 (b): the LM's predicted preferences as extra dense features of a CTR model (DLRM).
//
// Rows are (user, item, label). Training rows: every training interaction (label 1) and `negatives` items
// per interaction the user never rated in training (label 0), philox draws keyed by (seed, user). Test rows:
// the ranking protocol's candidates (the held-out item, label 1, and its sampled negatives, label 0), so the
// CTR model's AUC and HR/NDCG come from the same scores.
//
// Base features (no LM), from training data only:
//   dense  age / 100, gender (1 = F), release year (year - 1900) / 100 (0 unknown), log1p(item's training
//          count) / log1p(max count), history genre match = sum_g frac_u(g) [item has g] where frac_u is the
//          user's share of training events in genre g, log1p(user's training events) / log1p(300)
//   sparse user id, item id, occupation, the item's first genre
// LM features (per user, width W, e.g. W = 19 genre probabilities from the tuned LM's next-genre answer):
//   join_user_features appends them to every row of the user; genre_match appends sum_g pref_u(g) [item has
//   g].
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "data/movielens.h"

namespace nabla::hkf {

struct CtrRow {
  int32_t user = 0, item = 0;
  float label = 0;
};

struct CtrTable {
  int64_t rows = 0, num_dense = 0, num_sparse = 0;
  std::vector<float> dense;     // [rows, num_dense]
  std::vector<int64_t> sparse;  // [rows, num_sparse]
  std::vector<float> labels;    // [rows]
  std::vector<int64_t> table_sizes;
};

constexpr int64_t kBaseDense = 6;

std::vector<CtrRow> ctr_train_rows(const data::movielens::Split& split, int32_t num_items, int64_t negatives,
                                   uint64_t seed);
// Base features of `rows` (see above), from the split's training events.
CtrTable base_features(const data::movielens::MovieLens& ml, const data::movielens::Split& split,
                       const std::vector<CtrRow>& rows);
// Appends per_user.at(row.user) (each of `width` values) to every row's dense features. A row whose user has
// no vector is an error naming the user.
void join_user_features(CtrTable& table, const std::vector<CtrRow>& rows,
                        const std::unordered_map<int32_t, std::vector<float>>& per_user, int64_t width);
// Appends one column: sum over the item's genres of per_user.at(user)[genre] (vectors of kNumGenres values).
void join_genre_match(CtrTable& table, const std::vector<CtrRow>& rows, const data::movielens::MovieLens& ml,
                      const std::unordered_map<int32_t, std::vector<float>>& per_user);

}  // namespace nabla::hkf

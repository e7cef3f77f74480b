// Top-K ranking metrics and candidate protocols for next-item recommendation (docs/hkf.md).
//
// Rank of the held-out positive among the candidates, by descending score, ties counted against it
// (pessimistic: a constant scorer gets the worst rank, never a lucky hit):
//   rank = 1 + #{negatives with score >= positive's score}
// With several positives (the genre task: every genre of the held-out movie counts), the best-ranked
// positive is used: rank = min over positives of 1 + #{negatives with score >= its score}.
//   HR@K   = [rank <= K]
//   NDCG@K = [rank <= K] / log2(rank + 1)       (one relevant item: IDCG = 1)
// averaged over users. Scores must be finite (a NaN would make the order meaningless): an error names it.
//
// Candidate protocols:
//   sampled   the positive and `n` negatives drawn uniformly without replacement from the items the user
//             has not interacted with in training (nor the positive), with philox draws keyed by (seed,
//             user): the same candidates for every model scored on the split.
//   full      every item except the user's training items (the positive included).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace nabla::recsys {

// `scores` over the candidates; `positives` indices into scores (>= 1 of them). Returns the rank (1-based).
int64_t rank_of_positive(std::span<const double> scores, std::span<const int64_t> positives);

struct RankingMetrics {
  double hr5 = 0, hr10 = 0, ndcg5 = 0, ndcg10 = 0;  // sums until finish(); then means
  int64_t count = 0;
  void add(int64_t rank);
  RankingMetrics mean() const;  // the sums divided by count (NaN when empty)
  std::string str() const;      // "HR@5 0.1234 NDCG@5 ... (n users)"
};

double hit_at(int64_t rank, int64_t k);
double ndcg_at(int64_t rank, int64_t k);

// Items 1..num_items. `excluded` (any order, may hold the positive) are never drawn as negatives.
// Returns {positive, negatives...} (n + 1 ids). Throws when fewer than n items are eligible.
std::vector<int32_t> sample_candidates(int32_t positive, std::span<const int32_t> excluded, int32_t num_items,
                                       int64_t n, uint64_t seed, int64_t user);
// Every item of 1..num_items not in `excluded`, with the positive first.
std::vector<int32_t> full_candidates(int32_t positive, std::span<const int32_t> excluded, int32_t num_items);

}  // namespace nabla::recsys

// Ranking metrics and candidate protocols (see ranking.h).
#include "algorithms/recsys/ranking.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/error.h"
#include "engine/random.h"

namespace nabla::recsys {

int64_t rank_of_positive(std::span<const double> scores, std::span<const int64_t> positives) {
  NABLA_CHECK(!positives.empty(), "rank_of_positive: expected at least one positive, got none");
  std::vector<bool> is_pos(scores.size(), false);
  for (int64_t p : positives) {
    NABLA_CHECK(p >= 0 && p < static_cast<int64_t>(scores.size()), "rank_of_positive: positive index ", p,
                " outside [0, ", scores.size(), ")");
    is_pos[p] = true;
  }
  for (size_t i = 0; i < scores.size(); ++i)
    NABLA_CHECK(std::isfinite(scores[i]), "rank_of_positive: score ", i, " is ", scores[i],
                ", expected finite");
  int64_t best = std::numeric_limits<int64_t>::max();
  for (int64_t p : positives) {
    int64_t above = 0;
    for (size_t i = 0; i < scores.size(); ++i)
      if (!is_pos[i] && scores[i] >= scores[p]) ++above;
    best = std::min(best, above + 1);
  }
  return best;
}

double hit_at(int64_t rank, int64_t k) { return rank <= k ? 1.0 : 0.0; }
double ndcg_at(int64_t rank, int64_t k) {
  return rank <= k ? 1.0 / std::log2(static_cast<double>(rank) + 1) : 0.0;
}

void RankingMetrics::add(int64_t rank) {
  NABLA_CHECK(rank >= 1, "RankingMetrics: expected a rank >= 1, got ", rank);
  hr5 += hit_at(rank, 5), hr10 += hit_at(rank, 10);
  ndcg5 += ndcg_at(rank, 5), ndcg10 += ndcg_at(rank, 10);
  ++count;
}

RankingMetrics RankingMetrics::mean() const {
  RankingMetrics m = *this;
  const double n = count > 0 ? static_cast<double>(count) : std::nan("");
  m.hr5 /= n, m.hr10 /= n, m.ndcg5 /= n, m.ndcg10 /= n;
  return m;
}

std::string RankingMetrics::str() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "HR@5 %.4f NDCG@5 %.4f HR@10 %.4f NDCG@10 %.4f (%lld users)", hr5, ndcg5,
                hr10, ndcg10, static_cast<long long>(count));
  return buf;
}

std::vector<int32_t> sample_candidates(int32_t positive, std::span<const int32_t> excluded, int32_t num_items,
                                       int64_t n, uint64_t seed, int64_t user) {
  NABLA_CHECK(positive >= 1 && positive <= num_items, "sample_candidates: positive ", positive,
              " outside [1, ", num_items, "]");
  std::vector<bool> banned(num_items + 1, false);
  banned[0] = banned[positive] = true;
  for (int32_t e : excluded)
    if (e >= 1 && e <= num_items) banned[e] = true;
  std::vector<int32_t> pool;
  for (int32_t i = 1; i <= num_items; ++i)
    if (!banned[i]) pool.push_back(i);
  NABLA_CHECK(static_cast<int64_t>(pool.size()) >= n, "sample_candidates: user ", user, " has ", pool.size(),
              " items to draw negatives from, expected at least ", n);
  std::vector<int32_t> out{positive};
  // Partial Fisher-Yates: the first n slots of a shuffle keyed by (seed, user).
  for (int64_t i = 0; i < n; ++i) {
    const auto left = static_cast<uint64_t>(pool.size()) - static_cast<uint64_t>(i);
    const auto j = static_cast<size_t>(i) +
                   philox_bits64(seed ^ 0x6e656773ull, static_cast<uint64_t>(user) << 20, i) % left;
    std::swap(pool[i], pool[j]);
    out.push_back(pool[i]);
  }
  return out;
}

std::vector<int32_t> full_candidates(int32_t positive, std::span<const int32_t> excluded, int32_t num_items) {
  NABLA_CHECK(positive >= 1 && positive <= num_items, "full_candidates: positive ", positive, " outside [1, ",
              num_items, "]");
  std::vector<bool> banned(num_items + 1, false);
  for (int32_t e : excluded)
    if (e >= 1 && e <= num_items) banned[e] = true;
  std::vector<int32_t> out{positive};
  for (int32_t i = 1; i <= num_items; ++i)
    if (!banned[i] && i != positive) out.push_back(i);
  return out;
}

}  // namespace nabla::recsys

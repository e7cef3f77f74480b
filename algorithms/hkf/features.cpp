// CTR rows and features for DLRM with and without LM features (see features.h).
#include "algorithms/hkf/features.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_set>

#include "algorithms/hkf/instructions.h"
#include "engine/error.h"
#include "engine/random.h"

namespace nabla::hkf {

namespace ml = data::movielens;

std::vector<CtrRow> ctr_train_rows(const ml::Split& split, int32_t num_items, int64_t negatives,
                                   uint64_t seed) {
  NABLA_CHECK(negatives >= 0, "ctr_train_rows: expected negatives >= 0, got ", negatives);
  std::vector<CtrRow> rows;
  for (const auto& us : split.users) {
    std::unordered_set<int32_t> seen;
    for (const auto& r : us.train) seen.insert(r.item);
    seen.insert(us.test.item);  // never a training negative: it is the held-out positive
    int64_t draw = 0;
    for (const auto& r : us.train) {
      rows.push_back({us.user, r.item, 1.0f});
      for (int64_t k = 0; k < negatives; ++k) {
        int32_t j = 0;
        do {
          j = 1 + static_cast<int32_t>(
                      philox_bits64(seed ^ 0x63747221ull, static_cast<uint64_t>(us.user), draw++) %
                      static_cast<uint64_t>(num_items));
        } while (seen.count(j) && draw < 1000000);
        rows.push_back({us.user, j, 0.0f});
      }
    }
  }
  return rows;
}

CtrTable base_features(const ml::MovieLens& data, const ml::Split& split, const std::vector<CtrRow>& rows) {
  const int32_t nu = data.num_users(), ni = data.num_items();
  std::vector<std::array<float, ml::kNumGenres>> frac(nu + 1);
  std::vector<int64_t> events(nu + 1, 0);
  for (auto& f : frac) f.fill(0.0f);
  const std::vector<int64_t> counts = ml::train_item_counts(split, ni);
  for (const auto& us : split.users) {
    events[us.user] = static_cast<int64_t>(us.train.size());
    for (const auto& r : us.train)
      for (int g : data.movies[r.item].genres) frac[us.user][g] += 1.0f;
    if (!us.train.empty())
      for (auto& v : frac[us.user]) v /= static_cast<float>(us.train.size());
  }
  const double max_log = std::log1p(static_cast<double>(*std::max_element(counts.begin(), counts.end())));
  CtrTable t;
  t.rows = static_cast<int64_t>(rows.size());
  t.num_dense = kBaseDense;
  t.num_sparse = 4;
  t.table_sizes = {nu + 1, ni + 1, static_cast<int64_t>(data.occupations.size()), ml::kNumGenres};
  t.dense.reserve(rows.size() * kBaseDense);
  for (const CtrRow& r : rows) {
    NABLA_CHECK(r.user >= 1 && r.user <= nu && r.item >= 1 && r.item <= ni, "base_features: row (", r.user,
                ", ", r.item, ") outside users [1, ", nu, "] x items [1, ", ni, "]");
    const ml::User& u = data.users[r.user];
    const ml::Movie& m = data.movies[r.item];
    float match = 0;
    for (int g : m.genres) match += frac[r.user][g];
    t.dense.insert(
        t.dense.end(),
        {static_cast<float>(u.age) / 100.0f, u.gender == "F" ? 1.0f : 0.0f,
         m.year > 0 ? static_cast<float>(m.year - 1900) / 100.0f : 0.0f,
         max_log > 0 ? static_cast<float>(std::log1p(static_cast<double>(counts[r.item])) / max_log) : 0.0f,
         match, static_cast<float>(std::log1p(static_cast<double>(events[r.user])) / std::log1p(300.0))});
    const auto occ = std::lower_bound(data.occupations.begin(), data.occupations.end(), u.occupation) -
                     data.occupations.begin();
    t.sparse.insert(t.sparse.end(), {r.user, r.item, static_cast<int64_t>(occ), first_genre(m)});
    t.labels.push_back(r.label);
  }
  return t;
}

namespace {

// Rewrites the dense block with `extra` more columns, filled by fill(row, out).
template <class Fill>
void widen(CtrTable& t, int64_t extra, Fill&& fill) {
  std::vector<float> d;
  d.reserve(static_cast<size_t>(t.rows * (t.num_dense + extra)));
  for (int64_t i = 0; i < t.rows; ++i) {
    d.insert(d.end(), t.dense.begin() + i * t.num_dense, t.dense.begin() + (i + 1) * t.num_dense);
    const size_t at = d.size();
    d.resize(at + static_cast<size_t>(extra));
    fill(i, d.data() + at);
  }
  t.dense = std::move(d);
  t.num_dense += extra;
}

}  // namespace

void join_user_features(CtrTable& table, const std::vector<CtrRow>& rows,
                        const std::unordered_map<int32_t, std::vector<float>>& per_user, int64_t width) {
  NABLA_CHECK(static_cast<int64_t>(rows.size()) == table.rows, "join_user_features: ", rows.size(),
              " rows for a table of ", table.rows);
  widen(table, width, [&](int64_t i, float* out) {
    auto it = per_user.find(rows[i].user);
    NABLA_CHECK(it != per_user.end(), "join_user_features: row ", i, ": user ", rows[i].user,
                " has no feature vector");
    NABLA_CHECK(static_cast<int64_t>(it->second.size()) == width, "join_user_features: user ", rows[i].user,
                " has ", it->second.size(), " features, expected ", width);
    std::copy(it->second.begin(), it->second.end(), out);
  });
}

void join_genre_match(CtrTable& table, const std::vector<CtrRow>& rows, const ml::MovieLens& data,
                      const std::unordered_map<int32_t, std::vector<float>>& per_user) {
  NABLA_CHECK(static_cast<int64_t>(rows.size()) == table.rows, "join_genre_match: ", rows.size(),
              " rows for a table of ", table.rows);
  widen(table, 1, [&](int64_t i, float* out) {
    auto it = per_user.find(rows[i].user);
    NABLA_CHECK(it != per_user.end(), "join_genre_match: row ", i, ": user ", rows[i].user,
                " has no genre scores");
    NABLA_CHECK(it->second.size() == ml::kNumGenres, "join_genre_match: user ", rows[i].user, " has ",
                it->second.size(), " genre scores, expected ", ml::kNumGenres);
    float s = 0;
    for (int g : data.movies.at(rows[i].item).genres) s += it->second[g];
    *out = s;
  });
}

}  // namespace nabla::hkf

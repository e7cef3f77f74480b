// Synthetic Criteo rows and their hidden teacher (data/criteo_synthetic.h).
//
// Random streams (Philox, key = seed): row i takes uniforms at counters i * 128 + [0, 64) and normals at
// i * 128 + [64, 128); the teacher's weights take normals under key weight_key at counter
// ((f + 1) << 40) + 4 id (w at element 0, u at 1..k); the dense weights and the pairs come from counters
// below 2^40 of the same key.
#include "data/criteo_synthetic.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "engine/random.h"

namespace nabla::data::criteo {

const std::array<double, kNumDense> kDenseMissingRate = {0.454,  0.0,   0.215, 0.217, 0.026, 0.224, 0.043,
                                                         0.0005, 0.043, 0.454, 0.043, 0.765, 0.217};
const std::array<double, kNumSparse> kSparseMissingRate = {0,    0,    0.034, 0.034, 0, 0.121, 0,     0,   0,
                                                           0,    0,    0.034, 0,     0, 0,     0.034, 0,   0,
                                                           0.44, 0.44, 0.034, 0.763, 0, 0.034, 0.44,  0.44};

namespace {

// Log-normal parameters of the dense columns (roughly Criteo's scales: I5 in the thousands, I10 near 0).
constexpr std::array<double, kNumDense> kMu = {0.7, 2.0, 2.5, 1.8, 7.5, 3.5, 1.5,
                                               2.5, 4.0, 0.3, 1.0, 0.3, 1.8};
constexpr std::array<double, kNumDense> kSigma = {1.2, 1.5, 1.5, 1.0, 2.0, 1.8, 1.5,
                                                  1.0, 1.3, 0.6, 1.0, 1.0, 1.2};
constexpr uint64_t kRowStride = 128;
constexpr int64_t kChunk = 8192;  // rows drawn in parallel before they are written in order

uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}
uint32_t fmix32_inverse(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7ed1b41du;  // inverse of 0xc2b2ae35 mod 2^32
  h ^= (h >> 13) ^ (h >> 26);
  h *= 0xa5cb9243u;  // inverse of 0x85ebca6b mod 2^32
  h ^= h >> 16;
  return h;
}

double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

}  // namespace

std::vector<int64_t> scaled_kaggle_sizes(int64_t cap) {
  NABLA_CHECK(cap >= 1, "criteo synthetic: cap must be >= 1, got ", cap);
  std::vector<int64_t> s(kKaggleTableSizes.begin(), kKaggleTableSizes.end());
  for (auto& v : s) v = std::min(v, cap);
  return s;
}

SyntheticCriteo::SyntheticCriteo(SyntheticOptions options) : options_(std::move(options)) {
  auto& o = options_;
  if (o.cardinalities.empty()) o.cardinalities = scaled_kaggle_sizes(10000);
  NABLA_CHECK(o.cardinalities.size() == kNumSparse, "criteo synthetic: expected 26 cardinalities, got ",
              o.cardinalities.size());
  for (size_t f = 0; f < o.cardinalities.size(); ++f)
    NABLA_CHECK(o.cardinalities[f] >= 1 && o.cardinalities[f] <= INT32_MAX,
                "criteo synthetic: cardinality of C", f + 1, " must be in [1, 2^31-1], got ",
                o.cardinalities[f]);
  NABLA_CHECK(o.zipf_exponent > 0, "criteo synthetic: zipf_exponent must be > 0, got ", o.zipf_exponent);
  NABLA_CHECK(o.positive_rate > 0 && o.positive_rate < 1,
              "criteo synthetic: positive_rate must be in (0, 1), got ", o.positive_rate);
  NABLA_CHECK(o.latent_dim >= 1 && o.latent_dim <= 7, "criteo synthetic: latent_dim must be in [1, 7], got ",
              o.latent_dim);
  NABLA_CHECK(o.num_pairs >= 0 && o.num_pairs <= kNumSparse * (kNumSparse - 1) / 2,
              "criteo synthetic: num_pairs must be in [0, 325], got ", o.num_pairs);
  weight_key_ = philox_bits64(o.seed, uint64_t{1} << 62, 0);
  for (int j = 0; j < kNumDense; ++j) dense_weight_[j] = o.dense_std * philox_normal(weight_key_, 0, j);
  for (int f = 0; f < kNumSparse; ++f) hex_key_[f] = static_cast<uint32_t>(philox_bits64(weight_key_, 16, f));
  // Pairs: a Philox-driven shuffle of all 325 pairs, the first num_pairs kept.
  std::vector<std::pair<int, int>> all;
  for (int f = 0; f < kNumSparse; ++f)
    for (int g = f + 1; g < kNumSparse; ++g) all.emplace_back(f, g);
  for (int64_t i = static_cast<int64_t>(all.size()) - 1; i > 0; --i) {
    uint64_t bits = philox_bits64(weight_key_, 1024, i);
    std::swap(all[i], all[bits % static_cast<uint64_t>(i + 1)]);
  }
  pairs_.assign(all.begin(), all.begin() + o.num_pairs);
  for (auto [f, g] : pairs_) in_pair_[f] = in_pair_[g] = true;
  // Bias: mean sigmoid(b + logit) = positive_rate on a calibration draw of 20,000 rows, by bisection.
  std::vector<double> logits(20000);
  const int64_t cal_first = int64_t{1} << 41;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < 20000; ++i) logits[i] = row(cal_first + i).logit;  // bias_ is still 0 here
  double lo = -30, hi = 30;
  for (int it = 0; it < 100; ++it) {
    double mid = 0.5 * (lo + hi), mean = 0;
    for (double z : logits) mean += sigmoid(z + mid);
    (mean / static_cast<double>(logits.size()) < o.positive_rate ? lo : hi) = mid;
  }
  bias_ = 0.5 * (lo + hi);
}

namespace {
// Normals 0 .. 2 * pairs - 1 at counter `base` of `key`, exactly philox_normal's: normals 2m and 2m + 1
// share counter base + m (r cos, r sin), so one Philox call gives two.
void normals(uint64_t key, uint64_t base, int count, double* out) {
  for (int m = 0; 2 * m < count; ++m) {
    auto w = philox4x32(base + static_cast<uint64_t>(m), key);
    uint64_t b1 = ((static_cast<uint64_t>(w[0]) << 21) ^ (w[1] >> 11)) & ((1ull << 53) - 1);
    uint64_t b2 = ((static_cast<uint64_t>(w[2]) << 21) ^ (w[3] >> 11)) & ((1ull << 53) - 1);
    double u1 = (static_cast<double>(b1) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = static_cast<double>(b2) * (1.0 / 9007199254740992.0);
    double r = std::sqrt(-2.0 * std::log(u1)), theta = 6.283185307179586 * u2;
    out[2 * m] = r * std::cos(theta);
    if (2 * m + 1 < count) out[2 * m + 1] = r * std::sin(theta);
  }
}
}  // namespace

double SyntheticCriteo::unbiased_logit(const std::array<float, kNumDense>& dense,
                                       const std::array<int32_t, kNumSparse>& ids) const {
  double z = 0;
  for (int j = 0; j < kNumDense; ++j) z += dense_weight_[j] * dense[j];
  const int k = options_.latent_dim;
  // per feature: w at element 0, u at 1..k of counter ((f + 1) << 40) + 4 id
  double v[kNumSparse][8];
  for (int f = 0; f < kNumSparse; ++f) {
    uint64_t base = (static_cast<uint64_t>(f + 1) << 40) + 4 * static_cast<uint64_t>(ids[f]);
    normals(weight_key_, base, in_pair_[f] ? k + 1 : 1, v[f]);
    z += options_.sparse_std * v[f][0];
  }
  const double pair_scale = options_.pair_std * options_.pair_std / std::sqrt(static_cast<double>(k));
  for (auto [f, g] : pairs_) {
    double dot = 0;
    for (int d = 1; d <= k; ++d) dot += v[f][d] * v[g][d];
    z += pair_scale * dot;
  }
  return z;
}

double SyntheticCriteo::logit(const std::array<float, kNumDense>& dense,
                              const std::array<int32_t, kNumSparse>& ids) const {
  return bias_ + unbiased_logit(dense, ids);
}

SyntheticRow SyntheticCriteo::row(int64_t i) const {
  NABLA_CHECK(i >= 0 && static_cast<uint64_t>(i) < (uint64_t{1} << 56), "criteo synthetic: row ", i,
              " out of range");
  const uint64_t u_at = static_cast<uint64_t>(i) * kRowStride, n_at = u_at + kRowStride / 2;
  const uint64_t seed = options_.seed;
  SyntheticRow r;
  std::array<float, kNumDense> d{};
  for (int j = 0; j < kNumDense; ++j) {
    r.dense_missing[j] = philox_uniform(seed, u_at, j) < kDenseMissingRate[j];
    if (r.dense_missing[j]) continue;
    double x = std::exp(std::min(kMu[j] + kSigma[j] * philox_normal(seed, n_at, j), 21.0));  // < 2^31
    r.dense[j] = static_cast<int64_t>(std::floor(x)) - (j == 1 ? 1 : 0);
    d[j] = dense_transform(r.dense[j], false);
  }
  const double s = options_.zipf_exponent;
  for (int f = 0; f < kNumSparse; ++f) {
    const int64_t card = options_.cardinalities[f];
    bool missing = card == 1 || philox_uniform(seed, u_at, kNumDense + f) < kSparseMissingRate[f];
    if (missing) {
      r.ids[f] = 0;
      continue;
    }
    const double m = static_cast<double>(card - 1),
                 u = philox_uniform(seed, u_at, kNumDense + kNumSparse + f);
    double x = std::abs(s - 1) < 1e-9 ? std::pow(m + 1, u)
                                      : std::pow(1 + u * (std::pow(m + 1, 1 - s) - 1), 1 / (1 - s));
    r.ids[f] = static_cast<int32_t>(std::clamp(static_cast<int64_t>(std::floor(x)), int64_t{1}, card - 1));
  }
  r.logit = logit(d, r.ids);
  r.probability = sigmoid(r.logit);
  r.label = philox_uniform(seed, u_at, kNumDense + 2 * kNumSparse) < r.probability ? 1 : 0;
  return r;
}

uint32_t SyntheticCriteo::hex_of(int feature, int32_t id) const {
  return fmix32(static_cast<uint32_t>(id) ^ hex_key_[feature]);
}

int32_t SyntheticCriteo::id_of_hex(int feature, uint64_t hex) const {
  if (hex > UINT32_MAX) return -1;
  uint32_t id = fmix32_inverse(static_cast<uint32_t>(hex)) ^ hex_key_[feature];
  return id >= 1 && id < options_.cardinalities[feature] ? static_cast<int32_t>(id) : -1;
}

RawRow SyntheticCriteo::raw_row(int64_t i) const {
  SyntheticRow s = row(i);
  RawRow r;
  r.label = s.label;
  r.dense = s.dense;
  r.dense_missing = s.dense_missing;
  for (int f = 0; f < kNumSparse; ++f) {
    r.sparse_missing[f] = s.ids[f] == 0;
    r.sparse[f] = r.sparse_missing[f] ? 0 : hex_of(f, s.ids[f]);
  }
  return r;
}

EncodedRow SyntheticCriteo::encoded_row(int64_t i) const {
  SyntheticRow s = row(i);
  EncodedRow e;
  e.label = static_cast<uint8_t>(s.label);
  for (int j = 0; j < kNumDense; ++j) e.dense[j] = dense_transform(s.dense[j], s.dense_missing[j]);
  e.sparse = s.ids;
  return e;
}

TeacherReport SyntheticCriteo::teacher_report(int64_t rows, int64_t first_row) const {
  NABLA_CHECK(rows >= 2, "criteo synthetic: teacher_report needs >= 2 rows, got ", rows);
  std::vector<double> p(rows), y(rows);
  TeacherReport t;
  t.rows = rows;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    SyntheticRow r = row(first_row + i);
    p[i] = r.probability;
    y[i] = r.label;
  }
  double ll = 0;
  for (int64_t i = 0; i < rows; ++i) {
    t.positive_rate += y[i];
    t.mean_probability += p[i];
    double q = std::clamp(p[i], 1e-7, 1 - 1e-7);
    ll -= y[i] == 1 ? std::log(q) : std::log1p(-q);
  }
  t.positive_rate /= static_cast<double>(rows);
  t.mean_probability /= static_cast<double>(rows);
  t.log_loss = ll / static_cast<double>(rows);
  // AUC by sort and tie groups, as algorithms/metrics/auc.h (data/ cannot include algorithms/).
  std::vector<int64_t> order(rows);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] < p[b]; });
  double twice_u = 0, neg_below = 0, pos_total = 0;
  for (int64_t g = 0; g < rows;) {
    int64_t e = g;
    double pos = 0, neg = 0;
    for (; e < rows && p[order[e]] == p[order[g]]; ++e) (y[order[e]] == 1 ? pos : neg) += 1;
    twice_u += 2 * neg_below * pos + pos * neg;
    neg_below += neg;
    pos_total += pos;
    g = e;
  }
  NABLA_CHECK(pos_total > 0 && neg_below > 0, "criteo synthetic: the draw has only one class");
  t.auc = twice_u / (2 * pos_total * neg_below);
  return t;
}

void SyntheticCriteo::write_text(const std::string& path, int64_t rows, int64_t first_row) const {
  TextWriter w(path);
  std::vector<RawRow> chunk;
  for (int64_t at = 0; at < rows; at += kChunk) {
    const int64_t n = std::min(kChunk, rows - at);
    chunk.resize(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; ++k) chunk[k] = raw_row(first_row + at + k);
    for (const auto& r : chunk) w.write(r);
  }
  w.close();
}

void SyntheticCriteo::write_binary(const std::string& path, int64_t rows, int days) const {
  NABLA_CHECK(days >= 1, "criteo synthetic: days must be >= 1, got ", days);
  BinaryWriter w(path, options_.cardinalities);
  std::vector<int64_t> per_day = days == 1 ? std::vector<int64_t>{rows} : kaggle_day_rows(rows, days);
  int64_t first = 0;
  std::vector<EncodedRow> chunk;
  for (int64_t day : per_day) {
    for (int64_t at = 0; at < day; at += kChunk) {
      const int64_t n = std::min(kChunk, day - at);
      chunk.resize(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < n; ++k) chunk[k] = encoded_row(first + at + k);
      for (const auto& r : chunk) w.write(r);
    }
    first += day;
    w.end_day();
  }
  w.finish();
}

}  // namespace nabla::data::criteo

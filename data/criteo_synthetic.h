// Synthetic Criteo with a planted truth: rows in exactly Criteo's shape whose labels come from a hidden
// teacher, so the best achievable AUC is known (docs/dlrm.md reports it).
//
// Row i is a pure function of (seed, i) (Philox, engine/random.h): rows can be drawn in any order, in
// parallel, and millions of them streamed to a file without being stored.
//   dense I_j  : missing with Criteo's rate for that column, else floor(exp(mu_j + sigma_j z)) (- 1 for I2,
//                which has -1 values in Criteo): count-like, heavy-tailed (log-normal)
//   sparse C_f : id 0 = missing (Criteo's rate for that column), else a Zipf(s) rank in 1 .. card_f - 1
//                drawn by inverting the continuous power law: r = floor((1 + u((card_f)^(1-s) -
//                1))^(1/(1-s))) so the table of feature f has exactly card_f rows; in text the id is written
//                as 8 hex digits, hex = fmix32(id ^ key_f), a bijection of 32-bit words
// The teacher (its weights hashed from (seed, feature, id), never stored):
//   logit = b + sum_j a_j d_j + sum_f w_f(id_f) + sum_{(f,g) in P} <u_f(id_f), u_g(id_g)> / sqrt(k)
//   d_j = log(max(I_j, 0) + 1) (what the model sees), a_j ~ N(0, dense_std^2), w_f(id) ~ N(0, sparse_std^2),
//   u_f(id) ~ N(0, pair_std^2 I_k), P = num_pairs distinct feature pairs drawn from the seed, and b set by
//   bisection on a calibration draw so that the mean click probability is positive_rate (Criteo: ~25%).
//   label ~ Bernoulli(sigmoid(logit)).
// Every term is a function of the encoded features (dense_transform and the ids), so a model reading the
// binary file can reach the teacher: the teacher's AUC on its own probabilities over a held-out draw is the
// best achievable AUC (and its mean cross-entropy the best log loss).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/criteo.h"

namespace nabla::data::criteo {

struct SyntheticOptions {
  std::vector<int64_t> cardinalities;  // 26 table sizes (>= 1); empty: scaled_kaggle_sizes(10000)
  double zipf_exponent = 1.1;
  double positive_rate = 0.25;
  double dense_std = 0.1;
  double sparse_std = 0.2;
  double pair_std = 0.5;
  int num_pairs = 8;
  int latent_dim = 4;
  uint64_t seed = 1;
};

// Kaggle's table sizes, each capped at `cap` rows (the full sizes: kKaggleTableSizes).
std::vector<int64_t> scaled_kaggle_sizes(int64_t cap);
// Criteo Kaggle's fraction of missing values per column (measured on train.txt, rounded).
extern const std::array<double, kNumDense> kDenseMissingRate;
extern const std::array<double, kNumSparse> kSparseMissingRate;

struct SyntheticRow {
  int label = 0;
  std::array<int64_t, kNumDense> dense{};
  std::array<bool, kNumDense> dense_missing{};
  std::array<int32_t, kNumSparse> ids{};  // 0 = missing
  double logit = 0;                       // the teacher's
  double probability = 0;                 // sigmoid(logit): the click probability
};

struct TeacherReport {
  int64_t rows = 0;
  double positive_rate = 0;  // of the drawn labels
  double mean_probability = 0;
  double auc = 0;       // of the teacher's probabilities against the drawn labels: the best achievable
  double log_loss = 0;  // of the same
};

class SyntheticCriteo {
 public:
  explicit SyntheticCriteo(SyntheticOptions options);

  SyntheticRow row(int64_t i) const;
  RawRow raw_row(int64_t i) const;          // as the text file has it (hex values)
  EncodedRow encoded_row(int64_t i) const;  // as the binary file has it (ids, log-transformed dense)
  double logit(const std::array<float, kNumDense>& dense, const std::array<int32_t, kNumSparse>& ids) const;

  uint32_t hex_of(int feature, int32_t id) const;      // id >= 1
  int32_t id_of_hex(int feature, uint64_t hex) const;  // the inverse (-1 when no id maps to it)

  const SyntheticOptions& options() const { return options_; }
  double bias() const { return bias_; }
  const std::vector<std::pair<int, int>>& pairs() const { return pairs_; }

  // Labels and probabilities of rows [first_row, first_row + rows): held-out when the range is not trained
  // on.
  TeacherReport teacher_report(int64_t rows, int64_t first_row = int64_t{1} << 40) const;

  // Rows [first_row, first_row + rows) in the Kaggle text format (gzip when the name ends .gz).
  void write_text(const std::string& path, int64_t rows, int64_t first_row = 0) const;
  // Rows [0, rows) straight to the binary format, cut into `days` equal days (the reference's split).
  void write_binary(const std::string& path, int64_t rows, int days = 7) const;

 private:
  double unbiased_logit(const std::array<float, kNumDense>& dense,
                        const std::array<int32_t, kNumSparse>& ids) const;

  SyntheticOptions options_;
  uint64_t weight_key_ = 0;
  std::array<double, kNumDense> dense_weight_{};
  std::array<uint32_t, kNumSparse> hex_key_{};
  std::vector<std::pair<int, int>> pairs_;
  std::array<bool, kNumSparse> in_pair_{};
  double bias_ = 0;
};

}  // namespace nabla::data::criteo

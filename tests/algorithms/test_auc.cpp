// Exact ROC AUC and log loss (algorithms/metrics/auc.h): hand-computed cases with ties, a brute-force
// pairwise count on fresh random data with many ties, invariances and the errors.
#include <cmath>
#include <random>
#include <vector>

#include "algorithms/metrics/auc.h"
#include "testing.h"

namespace nabla::metrics {
namespace {

double brute_auc(const std::vector<double>& s, const std::vector<double>& y) {
  double num = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return num / pairs;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RocAuc, HandComputedCaseWithTies) {
  // positives 0.35, 0.8, 0.4; negatives 0.1, 0.4, 0.1:
  // 0.35 beats 2 of 3, 0.8 beats 3, 0.4 beats 2 and ties 1 (0.5) -> 7.5 / 9
  std::vector<double> s{0.1, 0.4, 0.35, 0.8, 0.4, 0.1}, y{0, 0, 1, 1, 1, 0};
  EXPECT_NEAR(roc_auc(std::span<const double>(s), std::span<const double>(y)), 7.5 / 9, 1e-15);
  // scikit-learn's documented example: 0.75
  std::vector<float> s2{0.1f, 0.4f, 0.35f, 0.8f}, y2{0, 0, 1, 1};
  EXPECT_NEAR(roc_auc(std::span<const float>(s2), std::span<const float>(y2)), 0.75, 1e-15);
  // all scores equal: every pair is a tie
  std::vector<double> s3(7, 0.3), y3{1, 0, 0, 1, 0, 1, 0};
  EXPECT_EQ(roc_auc(std::span<const double>(s3), std::span<const double>(y3)), 0.5);
}

TEST(RocAuc, MatchesBruteForcePairCountOnRandomDataWithTies) {
  for (int trial = 0; trial < 6; ++trial) {
    std::mt19937_64 rng(test::next_seed());
    int n = 50 + static_cast<int>(rng() % 400);
    int levels = trial % 2 ? 7 : 1000;  // many ties, then few
    std::vector<double> s(n), y(n);
    std::uniform_int_distribution<int> level(0, levels - 1);
    std::bernoulli_distribution click(0.3);
    for (int i = 0; i < n; ++i) {
      y[i] = click(rng) ? 1 : 0;
      s[i] = level(rng) + (y[i] == 1 ? levels / 5 : 0);  // informative but noisy; integers, so ties are exact
    }
    y[0] = 1;
    y[1] = 0;
    double exact = brute_auc(s, y);
    EXPECT_NEAR(roc_auc(std::span<const double>(s), std::span<const double>(y)), exact, 1e-13) << "n " << n;
    EXPECT_GT(exact, 0.5);
    // a strictly increasing transform keeps it; negating the scores mirrors it
    std::vector<double> t(n), neg(n);
    for (int i = 0; i < n; ++i) t[i] = std::exp(s[i] / levels), neg[i] = -s[i];
    EXPECT_NEAR(roc_auc(std::span<const double>(t), std::span<const double>(y)), exact, 1e-13);
    EXPECT_NEAR(roc_auc(std::span<const double>(neg), std::span<const double>(y)), 1 - exact, 1e-13);
  }
}

TEST(RocAuc, TensorOverloadsAgreeWithSpans) {
  Tensor s = test::randn32({300});
  Tensor u = test::randn32({300});
  Tensor y = Tensor::empty({300}, DType::f32);
  for (int i = 0; i < 300; ++i) y.data<float>()[i] = (s.data<float>()[i] + u.data<float>()[i] > 0.5f) ? 1 : 0;
  double a = roc_auc(s, y);
  EXPECT_EQ(
      a, roc_auc(std::span<const float>(s.data<float>(), 300), std::span<const float>(y.data<float>(), 300)));
  EXPECT_GT(a, 0.6);
  EXPECT_NEAR(roc_auc(s.to(DType::f64), y.to(DType::f64)), a, 1e-15);
}

TEST(RocAuc, RejectsOneClassBadLabelsAndNonFiniteScores) {
  std::vector<double> s{0.1, 0.2, 0.3}, one{1, 1, 1}, bad{0, 2, 1}, y{0, 1, 1};
  EXPECT_EQ(error_of([&] { roc_auc(std::span<const double>(s), std::span<const double>(one)); }),
            "roc_auc: needs both classes, got 3 positives and 0 negatives");
  EXPECT_EQ(error_of([&] { roc_auc(std::span<const double>(s), std::span<const double>(bad)); }),
            "roc_auc: label 2 at index 1, expected 0 or 1");
  std::vector<double> nan_s{0.1, std::nan(""), 0.3};
  EXPECT_EQ(error_of([&] { roc_auc(std::span<const double>(nan_s), std::span<const double>(y)); }),
            "roc_auc: score nan at index 1 is not finite");
  std::vector<double> two{0, 1};
  EXPECT_EQ(error_of([&] { roc_auc(std::span<const double>(s), std::span<const double>(two)); }),
            "roc_auc: 3 scores but 2 labels");
}

TEST(LogLoss, HandComputedAndClipped) {
  std::vector<double> p{0.9, 0.2, 0.6}, y{1, 0, 0};
  EXPECT_NEAR(log_loss(std::span<const double>(p), std::span<const double>(y)),
              -(std::log(0.9) + std::log(0.8) + std::log(0.4)) / 3, 1e-15);
  // p = 0 for a click is clipped to 1e-7: -log(1e-7) / 2 with a perfect second example
  std::vector<double> p2{0.0, 0.0}, y2{1, 0};
  EXPECT_NEAR(log_loss(std::span<const double>(p2), std::span<const double>(y2)),
              (-std::log(1e-7) - std::log1p(-1e-7)) / 2, 1e-12);
  std::vector<double> p3{1.5};
  std::vector<double> y3{1};
  EXPECT_EQ(error_of([&] { log_loss(std::span<const double>(p3), std::span<const double>(y3)); }),
            "log_loss: probability 1.5 at index 0 outside [0, 1]");
}

TEST(LogLoss, MatchesADirectSumOnRandomData) {
  std::mt19937_64 rng(test::next_seed());
  std::uniform_real_distribution<double> u(0.001, 0.999);
  std::vector<float> p(1000), y(1000);
  double want = 0;
  for (int i = 0; i < 1000; ++i) {
    p[i] = static_cast<float>(u(rng));
    y[i] = u(rng) < p[i] ? 1 : 0;
    want -= y[i] ? std::log(double(p[i])) : std::log(1 - double(p[i]));
  }
  EXPECT_NEAR(log_loss(std::span<const float>(p), std::span<const float>(y)), want / 1000, 1e-9);
}

}  // namespace
}  // namespace nabla::metrics

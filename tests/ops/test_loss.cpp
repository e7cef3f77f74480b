#include <cmath>

#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using test::rand64;
using In = const std::vector<Tensor>&;

Tensor class_targets(int64_t n, int64_t c) { return test::randint64(0, c, {n}); }

NABLA_GRADCHECK(cross_entropy, indices_mean) {
  Tensor t = class_targets(5, 4);
  EXPECT_GRADCHECK([t](In in) { return cross_entropy(in[0], t); }, {randn64({5, 4})});
}
NABLA_GRADCHECK(cross_entropy, label_smoothing_ignore_index) {
  Tensor t = from_vector({1, -100, 3, 0, 2}, {5}, {.dtype = DType::i64});
  EXPECT_GRADCHECK([t](In in) { return cross_entropy(in[0], t, {.ignore_index = -100, .label_smoothing = 0.1}); },
                   {randn64({5, 4})});
}
NABLA_GRADCHECK(cross_entropy, spatial_noncontiguous_sum) {
  Tensor t = test::randint64(0, 3, {2, 4, 2});
  EXPECT_GRADCHECK([t](In in) { return cross_entropy(in[0].permute({0, 3, 1, 2}), t, {.reduction = Reduction::sum}); },
                   {randn64({2, 4, 2, 3})});
}
NABLA_GRADCHECK(cross_entropy, soft_targets) {
  Tensor t = softmax(randn64({3, 5}, false), 1);
  EXPECT_GRADCHECK([t](In in) { return cross_entropy(in[0], t, {.label_smoothing = 0.2}); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(nll_loss, none) {
  Tensor t = class_targets(4, 3);
  EXPECT_GRADCHECK([t](In in) { return nll_loss(log_softmax(in[0], 1), t, Reduction::none); }, {randn64({4, 3})});
}
NABLA_GRADCHECK(mse_loss, broadcast_free) {
  EXPECT_GRADCHECK([](In in) { return mse_loss(in[0], in[1]); }, {randn64({3, 4}), randn64({3, 4})});
}
NABLA_GRADCHECK(l1_loss, sum) {
  EXPECT_GRADCHECK([](In in) { return l1_loss(in[0], in[1], Reduction::sum); }, {randn64({3, 4}), randn64({3, 4})});
}
NABLA_GRADCHECK(smooth_l1_loss, both_regions) {
  Tensor a = rand64({4, 4}, -3, 3), b = rand64({4, 4}, -3, 3);
  EXPECT_GRADCHECK([](In in) { return smooth_l1_loss(in[0], in[1], Reduction::mean, 1.0); }, {a, b});
}
NABLA_GRADCHECK(binary_cross_entropy_with_logits, pos_weight) {
  Tensor y = rand64({3, 4}, 0, 1, false), pw = rand64({4}, 0.5, 2, false);
  EXPECT_GRADCHECK([y, pw](In in) { return binary_cross_entropy_with_logits(in[0], y, Reduction::mean, pw); },
                   {randn64({3, 4})});
}
NABLA_GRADCHECK(binary_cross_entropy_with_logits, plain_target_grad) {
  EXPECT_GRADCHECK([](In in) { return binary_cross_entropy_with_logits(in[0], in[1], Reduction::sum); },
                   {randn64({3, 4}), rand64({3, 4}, 0, 1)});
}
NABLA_GRADCHECK(kl_div, batchmean_with_zero_targets) {
  Tensor p = softmax(randn64({3, 4}, false), 1);
  p.data<double>()[1] = 0.0;  // a zero-probability entry must contribute 0 and no NaN
  EXPECT_GRADCHECK([p](In in) { return kl_div(log_softmax(in[0], 1), p, Reduction::batchmean); }, {randn64({3, 4})});
}

TEST(Loss, CrossEntropyMatchesTheFormula) {
  Tensor x = randn64({6, 5}, false);
  Tensor t = class_targets(6, 5);
  auto vx = x.to_vector();
  auto vt = t.to_vector();
  double ref = 0, ref_smooth = 0;
  for (int i = 0; i < 6; ++i) {
    double m = -1e300, s = 0;
    for (int c = 0; c < 5; ++c) m = std::max(m, vx[i * 5 + c]);
    for (int c = 0; c < 5; ++c) s += std::exp(vx[i * 5 + c] - m);
    double lse = m + std::log(s), mean_logp = 0;
    for (int c = 0; c < 5; ++c) mean_logp += (vx[i * 5 + c] - lse) / 5;
    double nll = lse - vx[i * 5 + static_cast<int>(vt[i])];
    ref += nll / 6;
    ref_smooth += (0.9 * nll - 0.1 * mean_logp) / 6;
  }
  EXPECT_NEAR(cross_entropy(x, t).item(), ref, 1e-12);
  EXPECT_NEAR(cross_entropy(x, t, {.label_smoothing = 0.1}).item(), ref_smooth, 1e-12);
}

TEST(Loss, IgnoredTargetsLeaveTheMeanAndTheGradient) {
  Tensor x = randn64({4, 3});
  Tensor t = from_vector({2, -100, 0, -100}, {4}, {.dtype = DType::i64});
  Tensor kept = from_vector({2, 0}, {2}, {.dtype = DType::i64});
  Tensor full_loss = cross_entropy(x, t);
  Tensor sub_loss = cross_entropy(index_select(x.detach(), 0, from_vector({0, 2}, {2}, {.dtype = DType::i64})), kept);
  EXPECT_NEAR(full_loss.item(), sub_loss.item(), 1e-12);
  full_loss.backward();
  auto g = x.grad().to_vector();
  for (int c = 0; c < 3; ++c) EXPECT_EQ(g[3 + c], 0.0);
}

TEST(Loss, BceWithLogitsIsStableAndCorrect) {
  Tensor x = from_vector({-1000, -1, 0, 2, 1000}, {5}, {.dtype = DType::f64});
  Tensor y = from_vector({0, 1, 0.5, 0, 1}, {5}, {.dtype = DType::f64});
  auto per = binary_cross_entropy_with_logits(x, y, Reduction::none).to_vector();
  auto ref = [](double x, double y) { return -(y * std::log(1 / (1 + std::exp(-x))) + (1 - y) * std::log(1 - 1 / (1 + std::exp(-x)))); };
  EXPECT_NEAR(per[0], 0.0, 1e-12);
  EXPECT_NEAR(per[1], ref(-1, 1), 1e-12);
  EXPECT_NEAR(per[2], std::log(2.0), 1e-12);
  EXPECT_NEAR(per[3], ref(2, 0), 1e-12);
  EXPECT_NEAR(per[4], 0.0, 1e-12);
}

TEST(Loss, RegressionLossesMatchFormulas) {
  Tensor a = from_vector({0.0, 2.0, -3.0}, {3}, {.dtype = DType::f64}), b = from_vector({0.5, 0.0, 0.0}, {3}, {.dtype = DType::f64});
  EXPECT_NEAR(mse_loss(a, b).item(), (0.25 + 4 + 9) / 3, 1e-12);
  EXPECT_NEAR(l1_loss(a, b, Reduction::sum).item(), 0.5 + 2 + 3, 1e-12);
  EXPECT_NEAR(smooth_l1_loss(a, b, Reduction::sum).item(), 0.5 * 0.25 + 1.5 + 2.5, 1e-12);
  Tensor p = from_vector({0.5, 0.5, 0.0}, {1, 3}, {.dtype = DType::f64});
  Tensor logq = log(from_vector({0.25, 0.5, 0.25}, {1, 3}, {.dtype = DType::f64}));
  EXPECT_NEAR(kl_div(logq, p, Reduction::sum).item(), 0.5 * std::log(2.0), 1e-12);
}

TEST(LossErrors, ShapesAndTargetsAreChecked) {
  test::expect_error([] { cross_entropy(test::randn32({4, 3}), test::randint64(0, 3, {5})); }, {"cross_entropy", "[4,3]", "[5]"});
  test::expect_error([] { cross_entropy(test::randn32({2, 3}), from_vector({0, 3}, {2}, {.dtype = DType::i64})); },
                     {"cross_entropy", "target 3", "3 classes"});
  test::expect_error([] { mse_loss(test::randn32({2, 3}), test::randn32({3, 2})); }, {"mse_loss", "[2,3]", "[3,2]"});
}

}  // namespace
}  // namespace nabla

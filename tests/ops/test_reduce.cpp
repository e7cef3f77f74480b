#include <cmath>

#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

NABLA_GRADCHECK(sum, all) {
  EXPECT_GRADCHECK([](In in) { return sum(in[0]); }, {randn64({3, 4})});
}
NABLA_GRADCHECK(sum, non_adjacent_dims_keepdim) {
  EXPECT_GRADCHECK([](In in) { return sum(in[0], {0, 2}, true); }, {randn64({2, 3, 4})});
}
NABLA_GRADCHECK(sum, noncontiguous) {
  EXPECT_GRADCHECK([](In in) { return sum(in[0].t(), {1}); }, {randn64({3, 4})});
}
NABLA_GRADCHECK(mean, dims) {
  EXPECT_GRADCHECK([](In in) { return mean(in[0], {-1}); }, {randn64({2, 3, 4})});
}
NABLA_GRADCHECK(amax, several_dims) {
  EXPECT_GRADCHECK([](In in) { return amax(in[0], {0, 2}); }, {randn64({2, 3, 4})});
}
NABLA_GRADCHECK(amin, one_dim) {
  EXPECT_GRADCHECK([](In in) { return amin(in[0], {1}, true); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(max, dim_values) {
  EXPECT_GRADCHECK([](In in) { return max(in[0], 1).values; }, {randn64({3, 5})});
}
NABLA_GRADCHECK(min, dim_keepdim) {
  EXPECT_GRADCHECK([](In in) { return min(in[0], 0, true).values; }, {randn64({4, 3})});
}
NABLA_GRADCHECK(var, unbiased) {
  EXPECT_GRADCHECK([](In in) { return var(in[0], {1}); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(std_dev, biased_all) {
  EXPECT_GRADCHECK([](In in) { return std_dev(in[0], {}, 0); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(norm, p2_p1_p3) {
  EXPECT_GRADCHECK(
      [](In in) { return norm(in[0], 2.0, {1}) + norm(in[0], 1.0, {1}) + norm(in[0], 3.0, {1}); },
      {randn64({3, 5})});
}
NABLA_GRADCHECK(norm, inf) {
  EXPECT_GRADCHECK([](In in) { return norm(in[0], INFINITY); }, {randn64({3, 5})});
}
NABLA_GRADCHECK(logsumexp, dim) {
  EXPECT_GRADCHECK([](In in) { return logsumexp(in[0] * 5.0, {1}); }, {randn64({3, 5})});
}

TEST(Reduce, ValuesOverAnyDims) {
  Tensor a = arange(24).to(DType::f64).reshape({2, 3, 4});
  test::expect_close(sum(a, {1}), {12, 15, 18, 21, 48, 51, 54, 57});
  test::expect_close(sum(a, {0, 2}), {6 + 54, 22 + 70, 38 + 86});
  test::expect_close(mean(a), {11.5});
  EXPECT_EQ(sum(a, {0, 2}, true).shape(), (Shape{1, 3, 1}));
  auto [v, i] = max(a, 2);
  test::expect_close(v, {3, 7, 11, 15, 19, 23});
  test::expect_close(i, {3, 3, 3, 3, 3, 3});
  test::expect_close(argmin(a, 0), std::vector<double>(12, 0.0));
}

TEST(Reduce, VarStdNormMatchDirectFormulas) {
  Tensor x = test::randn64({7}, false);
  auto v = x.to_vector();
  double m = 0, ss = 0, l1 = 0;
  for (double e : v) m += e / 7;
  for (double e : v) ss += (e - m) * (e - m), l1 += std::abs(e);
  test::expect_close(var(x), {ss / 6}, 1e-12);
  test::expect_close(std_dev(x, {}, 0), {std::sqrt(ss / 7)}, 1e-12);
  test::expect_close(norm(x, 1.0), {l1}, 1e-12);
}

TEST(Reduce, LogSumExpIsStableForLargeInputs) {
  Tensor x = from_vector({1000, 1000, -INFINITY}, {3}, {.dtype = DType::f64});
  test::expect_close(logsumexp(x), {1000 + std::log(2.0)}, 1e-9);
  Tensor all_neg_inf = from_vector({-INFINITY, -INFINITY}, {2}, {.dtype = DType::f64});
  EXPECT_EQ(logsumexp(all_neg_inf).item(), -INFINITY);
}

TEST(Reduce, LargeSumUsesThreadsAndAccumulatesInDouble) {
  Tensor x = full({1 << 20}, 0.1f);
  EXPECT_NEAR(x.sum().item(), 0.1f * double(1 << 20), 1e-2);
  Tensor y = test::randn32({512, 300});
  auto vy = y.to_vector();
  auto s = sum(y, {0}).to_vector();
  for (int j = 0; j < 300; j += 37) {
    double ref = 0;
    for (int i = 0; i < 512; ++i) ref += vy[i * 300 + j];
    EXPECT_NEAR(s[j], ref, 1e-3);
  }
}

TEST(ReduceErrors, BadDimsAreNamed) {
  test::expect_error([] { sum(test::randn32({2, 3}), {2}); }, {"sum", "dim 2"});
  test::expect_error([] { sum(test::randn32({2, 3}), {1, -1}); }, {"sum", "repeated"});
  test::expect_error([] { amax(Tensor::empty({0, 3}), {0}); }, {"amax", "size 0"});
}

}  // namespace
}  // namespace nabla

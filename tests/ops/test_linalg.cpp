#include "testing.h"

namespace nabla {
namespace {
using test::randn64;
using In = const std::vector<Tensor>&;

NABLA_GRADCHECK(linear, bias) {
  EXPECT_GRADCHECK([](In in) { return linear(in[0], in[1], in[2]); },
                   {randn64({5, 4}), randn64({3, 4}), randn64({3})});
}
NABLA_GRADCHECK(linear, relu_3d_input_no_bias) {
  EXPECT_GRADCHECK([](In in) { return linear(in[0], in[1], Tensor(), true); },
                   {randn64({2, 3, 4}), randn64({6, 4})});
}

TEST(Linear, EqualsMatmulPlusBiasThenRelu) {
  Tensor x = randn64({4, 2, 5}, false), w = randn64({3, 5}, false), b = randn64({3}, false);
  test::expect_close(linear(x, w, b), matmul(x, w.t()) + b, 1e-12);
  test::expect_close(linear(x, w, b, true), relu(matmul(x, w.t()) + b), 1e-12);
  test::expect_error([&] { linear(x, randn64({3, 4}, false)); }, {"linear", "5 features", "expected 4"});
  test::expect_error([&] { linear(x, w, randn64({4}, false)); }, {"linear", "bias", "[3]"});
}

NABLA_GRADCHECK(matmul, two_d) {
  EXPECT_GRADCHECK([](In in) { return matmul(in[0], in[1]); }, {randn64({3, 4}), randn64({4, 5})});
}
NABLA_GRADCHECK(matmul, transposed_operands) {
  EXPECT_GRADCHECK([](In in) { return matmul(in[0].t(), in[1].t()); }, {randn64({4, 3}), randn64({5, 4})});
}
NABLA_GRADCHECK(matmul, batch_broadcast) {
  EXPECT_GRADCHECK([](In in) { return matmul(in[0], in[1]); }, {randn64({2, 1, 3, 4}), randn64({3, 4, 2})});
}
NABLA_GRADCHECK(matmul, batched_times_matrix) {
  EXPECT_GRADCHECK([](In in) { return matmul(in[0], in[1]); }, {randn64({2, 3, 4}), randn64({4, 2})});
}
NABLA_GRADCHECK(matmul, vectors) {
  EXPECT_GRADCHECK([](In in) { return matmul(in[0], in[1]) + matmul(in[1], in[2]).sum(); },
                   {randn64({4}), randn64({4}), randn64({4, 3})});
}

// Reference: the triple loop.
std::vector<double> naive(const std::vector<double>& a, const std::vector<double>& b, int n, int k, int m) {
  std::vector<double> c(n * m, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j)
      for (int p = 0; p < k; ++p) c[i * m + j] += a[i * k + p] * b[p * m + j];
  return c;
}

TEST(Matmul, MatchesTheTripleLoopIncludingBatches) {
  Tensor a = test::randn32({3, 17, 33}), b = test::randn32({33, 9});
  Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{3, 17, 9}));
  auto va = a.to_vector(), vb = b.to_vector(), vc = c.to_vector();
  for (int bi = 0; bi < 3; ++bi) {
    std::vector<double> ab(va.begin() + bi * 17 * 33, va.begin() + (bi + 1) * 17 * 33);
    auto ref = naive(ab, vb, 17, 33, 9);
    for (int i = 0; i < 17 * 9; ++i) EXPECT_NEAR(vc[bi * 17 * 9 + i], ref[i], 1e-4);
  }
  Tensor bt = test::randn32({9, 33});  // a transposed weight: no copy, same answer as the copy
  test::expect_close(matmul(a, bt.t()), matmul(a, bt.t().contiguous()), 1e-4);
}

TEST(MatmulErrors, InnerDimsMustAgree) {
  test::expect_error(
      [] {
        matmul(test::randn32({2, 3}), test::randn32({4, 5}));
      },
      {"matmul", "[2,3]", "[4,5]"});
  test::expect_error([] { matmul(test::randn32({2, 2, 3}), test::randn32({3, 3, 5})); }, {"matmul", "batch"});
}

}  // namespace
}  // namespace nabla

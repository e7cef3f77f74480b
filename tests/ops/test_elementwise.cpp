#include <cmath>

#include "testing.h"

namespace nabla {
namespace {
using test::rand64;
using test::randn64;
using In = const std::vector<Tensor>&;

// ---- gradient checks: plain, broadcast and non-contiguous inputs ----
#define UNARY_GRADCHECK(op, expr, lo, hi) \
  NABLA_GRADCHECK(op, random) {           \
    Tensor x = rand64({3, 4}, lo, hi);    \
    EXPECT_GRADCHECK(                     \
        [](In in) {                       \
          const Tensor& x = in[0];        \
          return expr;                    \
        },                                \
        {x});                             \
  }                                       \
  NABLA_GRADCHECK(op, noncontiguous) {    \
    Tensor x = rand64({4, 3}, lo, hi);    \
    EXPECT_GRADCHECK(                     \
        [](In in) {                       \
          const Tensor x = in[0].t();     \
          return expr;                    \
        },                                \
        {x});                             \
  }

UNARY_GRADCHECK(neg, neg(x), -2, 2)
UNARY_GRADCHECK(abs, abs(x), 0.1, 2)  // away from the kink at 0
UNARY_GRADCHECK(exp, exp(x), -2, 2)
UNARY_GRADCHECK(log, log(x), 0.2, 3)
UNARY_GRADCHECK(log1p, log1p(x), -0.5, 3)
UNARY_GRADCHECK(sqrt, sqrt(x), 0.2, 3)
UNARY_GRADCHECK(rsqrt, rsqrt(x), 0.2, 3)
UNARY_GRADCHECK(tanh, tanh(x), -2, 2)
UNARY_GRADCHECK(sigmoid, sigmoid(x), -3, 3)
UNARY_GRADCHECK(relu, relu(x), 0.1, 2)
UNARY_GRADCHECK(leaky_relu, leaky_relu(x * 1.0, 0.2), -2, 2)
UNARY_GRADCHECK(gelu, gelu(x), -3, 3)
UNARY_GRADCHECK(gelu_tanh, gelu_tanh(x), -3, 3)
UNARY_GRADCHECK(silu, silu(x), -3, 3)
UNARY_GRADCHECK(clamp, clamp(x, -0.5, 0.7), -2, 2)

NABLA_GRADCHECK(cast, through_f32) {
  // f32 rounding (~1e-7 relative) needs a larger step and a looser tolerance than the f64 default.
  Tensor x = rand64({3, 4}, -2, 2);
  EXPECT_GRADCHECK([](In in) { return in[0].to(DType::f32).to(DType::f64) * 3.0; }, {x},
                   {.eps = 1e-2, .atol = 1e-4, .rtol = 1e-4});
}

NABLA_GRADCHECK(relu, mixed_signs) {
  // Inputs on both sides of 0 (but not at it): the gradient is 0 on the left, g on the right.
  Tensor x = rand64({5, 5}, 0.05, 1.0);
  Tensor sign = from_vector(std::vector<double>(25, 1.0), {5, 5}, {.dtype = DType::f64});
  for (int i = 0; i < 25; i += 2) sign.data<double>()[i] = -1.0;
  EXPECT_GRADCHECK([sign](In in) { return relu(in[0] * sign); }, {x});
}

NABLA_GRADCHECK(pow, scalar_exponent) {
  Tensor x = rand64({3, 4}, 0.5, 2.0);
  EXPECT_GRADCHECK([](In in) { return pow(in[0], 2.5); }, {x});
}

NABLA_GRADCHECK(pow, tensor_exponent_broadcast) {
  Tensor a = rand64({3, 4}, 0.5, 2.0), b = rand64({4}, -1.5, 1.5);
  EXPECT_GRADCHECK([](In in) { return pow(in[0], in[1]); }, {a, b});
}

NABLA_GRADCHECK(add_relu, mixed_signs_broadcast) {
  // Sums on both sides of 0 but not near it (a + b is kept >= 0.05 away): the kink is not differentiable.
  Tensor a = rand64({4, 5}, 0.3, 1.0), b = rand64({5}, -0.2, 0.2);
  Tensor sign = from_vector(std::vector<double>(20, 1.0), {4, 5}, {.dtype = DType::f64});
  for (int i = 0; i < 20; i += 3) sign.data<double>()[i] = -1.0;
  EXPECT_GRADCHECK([sign](In in) { return add_relu(in[0] * sign, in[1]); }, {a, b});
}

TEST(Elementwise, AddReluIsReluOfTheSum) {
  Tensor a = test::randn32({3, 7, 5}), b = test::randn32({7, 1});
  test::expect_close(add_relu(a, b), relu(a + b), 0.0);
  test::expect_error([] { add_relu(zeros({2}, {.dtype = DType::i64}), zeros({2}, {.dtype = DType::i64})); },
                     {"add_relu"});
}

#define BINARY_GRADCHECK(op, expr, lo, hi)                            \
  NABLA_GRADCHECK(op, same_shape) {                                   \
    Tensor a = rand64({3, 4}, lo, hi), b = rand64({3, 4}, lo, hi);    \
    EXPECT_GRADCHECK(                                                 \
        [](In in) {                                                   \
          const Tensor &a = in[0], &b = in[1];                        \
          return expr;                                                \
        },                                                            \
        {a, b});                                                      \
  }                                                                   \
  NABLA_GRADCHECK(op, broadcast) {                                    \
    Tensor a = rand64({2, 1, 4}, lo, hi), b = rand64({3, 1}, lo, hi); \
    EXPECT_GRADCHECK(                                                 \
        [](In in) {                                                   \
          const Tensor &a = in[0], &b = in[1];                        \
          return expr;                                                \
        },                                                            \
        {a, b});                                                      \
  }                                                                   \
  NABLA_GRADCHECK(op, noncontiguous) {                                \
    Tensor a = rand64({4, 3}, lo, hi), b = rand64({3, 4}, lo, hi);    \
    EXPECT_GRADCHECK(                                                 \
        [](In in) {                                                   \
          const Tensor a = in[0].t(), &b = in[1];                     \
          return expr;                                                \
        },                                                            \
        {a, b});                                                      \
  }

BINARY_GRADCHECK(add, add(a, b, 0.5), -2, 2)
BINARY_GRADCHECK(sub, sub(a, b, 1.5), -2, 2)
BINARY_GRADCHECK(mul, a* b, -2, 2)
BINARY_GRADCHECK(div, a / b, 0.5, 2)
BINARY_GRADCHECK(maximum, maximum(a, b), -2, 2)
BINARY_GRADCHECK(minimum, minimum(a, b), -2, 2)

NABLA_GRADCHECK(where, broadcast_condition) {
  Tensor a = randn64({3, 4}), b = randn64({4});
  Tensor c = gt(test::randn64({3, 1}, false), scalar_like(0.0, a));
  EXPECT_GRADCHECK([c](In in) { return where(c, in[0], in[1]); }, {a, b});
}

// ---- values ----
TEST(Elementwise, ValuesMatchTheFormulas) {
  Tensor x = from_vector({-2.0, -0.5, 0.0, 0.5, 3.0}, {5}, {.dtype = DType::f64});
  test::expect_close(relu(x), {0, 0, 0, 0.5, 3});
  test::expect_close(leaky_relu(x, 0.1), {-0.2, -0.05, 0, 0.5, 3});
  test::expect_close(sigmoid(x), {1 / (1 + std::exp(2.0)), 1 / (1 + std::exp(0.5)), 0.5,
                                  1 / (1 + std::exp(-0.5)), 1 / (1 + std::exp(-3.0))});
  test::expect_close(
      gelu(x),
      {-2 * 0.5 * (1 + std::erf(-2 / std::sqrt(2.0))), -0.5 * 0.5 * (1 + std::erf(-0.5 / std::sqrt(2.0))), 0,
       0.5 * 0.5 * (1 + std::erf(0.5 / std::sqrt(2.0))), 3 * 0.5 * (1 + std::erf(3 / std::sqrt(2.0)))});
  // PyTorch: gelu(1.0, approximate='tanh') = 0.8411919906082768
  test::expect_close(gelu_tanh(from_vector({1.0}, {1}, {.dtype = DType::f64})), {0.8411919906082768}, 1e-12);
  test::expect_close(clamp(x, -1, 1), {-1, -0.5, 0, 0.5, 1});
  test::expect_close(silu(x), {-2 / (1 + std::exp(2.0)), -0.5 / (1 + std::exp(0.5)), 0,
                               0.5 / (1 + std::exp(-0.5)), 3 / (1 + std::exp(-3.0))});
}

TEST(Elementwise, BroadcastingFollowsNumPy) {
  Tensor a = test::randn32({2, 1, 3}), b = test::randn32({4, 1});
  Tensor c = a + b;
  ASSERT_EQ(c.shape(), (Shape{2, 4, 3}));
  auto va = a.to_vector(), vb = b.to_vector(), vc = c.to_vector();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(vc[(i * 4 + j) * 3 + k], float(va[i * 3 + k] + vb[j]));
}

TEST(Elementwise, ComparisonsGiveBool) {
  Tensor a = from_vector({1, 2, 3}, {3}), b = from_vector({3, 2, 1}, {3});
  Tensor r = lt(a, b);
  EXPECT_EQ(r.dtype(), DType::b8);
  test::expect_close(r, {1, 0, 0});
  test::expect_close(ge(a, b), {0, 1, 1});
  test::expect_close(eq(a, b), {0, 1, 0});
}

TEST(Elementwise, LargeStridedInputsUseEveryThreadAndStayCorrect) {
  Tensor a = test::randn32({300, 257});
  Tensor at = a.t();  // non-contiguous, above the parallel grain
  Tensor y = exp(at);
  auto va = a.to_vector(), vy = y.to_vector();
  for (int64_t i = 0; i < 257; i += 13)
    for (int64_t j = 0; j < 300; j += 7)
      EXPECT_NEAR(vy[i * 300 + j], std::exp(va[j * 257 + i]), 1e-5 * std::exp(std::abs(va[j * 257 + i])));
}

TEST(Elementwise, InPlaceAddScalesAndBroadcasts) {
  Tensor a = test::randn32({3, 4}), b = test::randn32({4});
  Tensor expect = a + b * 2.0;
  add_(a, b, 2.0);
  test::expect_close(a, expect, 1e-6);
}

// ---- errors ----
TEST(ElementwiseErrors, ShapesThatDoNotBroadcastNameTheOpAndShapes) {
  test::expect_error([] { add(test::randn32({2, 3}), test::randn32({4})); }, {"add", "[2,3]", "[4]"});
}

TEST(ElementwiseErrors, DTypeMismatchNamesBoth) {
  test::expect_error([] { mul(test::randn32({2}), test::randn64({2}, false)); }, {"mul", "f32", "f64"});
}

TEST(ElementwiseErrors, InPlaceOnALeafThatRequiresGradIsRefused) {
  Tensor w = test::randn64({3});
  test::expect_error([&] { add_(w, test::randn64({3}, false)); }, {"add_", "requires grad"});
}

TEST(ElementwiseErrors, UnaryOnIntegersIsRefusedByName) {
  test::expect_error([] { exp(arange(4)); }, {"exp", "i64"});
}

}  // namespace
}  // namespace nabla

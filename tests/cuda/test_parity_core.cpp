// Parity cases of the families the core CUDA files implement: views and copies, element-wise, reductions,
// linear algebra, factories.
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using test::parity_uniform;
using In = const std::vector<Tensor>&;

// ---- views and copies ----
NABLA_PARITY(view, split) {
  EXPECT_PARITY([](In in) { return in[0].view({2, 3, 2}) * 2.0; }, {parity_randn({6, 2})});
}
NABLA_PARITY(reshape, of_transpose) {
  EXPECT_PARITY([](In in) { return in[0].t().reshape({-1}) * 2.0; }, {parity_randn({3, 5})});
}
NABLA_PARITY(permute, three_dims) {
  EXPECT_PARITY([](In in) { return in[0].permute({2, 0, 1}).contiguous(); }, {parity_randn({4, 5, 6})});
}
NABLA_PARITY(transpose, batch) {
  EXPECT_PARITY([](In in) { return in[0].transpose(0, 2) * 1.5; }, {parity_randn({3, 4, 5})});
}
NABLA_PARITY(narrow, middle) {
  EXPECT_PARITY([](In in) { return in[0].narrow(1, 2, 3) * 2.0; }, {parity_randn({4, 7})});
}
NABLA_PARITY(select, row) {
  EXPECT_PARITY([](In in) { return in[0].select(1, -1) * 2.0; }, {parity_randn({4, 7})});
}
NABLA_PARITY(expand, broadcast) {
  EXPECT_PARITY(
      [](In in) {
        return in[0].expand({3, 4, 5}) * in[1];
      },
      {parity_randn({4, 1}), parity_randn({3, 4, 5})});
}
NABLA_PARITY(squeeze, one) {
  EXPECT_PARITY([](In in) { return in[0].squeeze(1) * 2.0; }, {parity_randn({4, 1, 3})});
}
NABLA_PARITY(unsqueeze, one) {
  EXPECT_PARITY([](In in) { return in[0].unsqueeze(0) * 2.0; }, {parity_randn({4, 3})});
}
NABLA_PARITY(flatten, inner) {
  EXPECT_PARITY([](In in) { return in[0].flatten(1) * 2.0; }, {parity_randn({2, 3, 4})});
}
NABLA_PARITY(contiguous, permuted) {
  EXPECT_PARITY([](In in) { return in[0].permute({1, 0}).contiguous(); }, {parity_randn({33, 65})});
}
NABLA_PARITY(clone, plain) {
  EXPECT_PARITY([](In in) { return in[0].clone() * in[0]; }, {parity_randn({5, 6})});
}
NABLA_PARITY(cast, every_dtype) {
  EXPECT_PARITY(
      [](In in) {
        Tensor x = in[0];
        return x.to(DType::f64).to(DType::f32) + x.to(DType::bf16).to(DType::f32) +
               x.to(DType::f16).to(DType::f32) + (x * 10.0).to(DType::i32).to(DType::f32) +
               (x * 10.0).to(DType::i64).to(DType::f32) + gt(x, scalar_like(0.0, x)).to(DType::f32) +
               abs(x * 50.0).to(DType::u8).to(DType::f32);
      },
      {parity_randn({7, 9})});
}

// ---- element-wise ----
#define UNARY_PARITY(op, expr, lo, hi)         \
  NABLA_PARITY(op, large_contiguous) {         \
    EXPECT_PARITY(                             \
        [](In in) {                            \
          const Tensor& x = in[0];             \
          return expr;                         \
        },                                     \
        {parity_uniform({257, 129}, lo, hi)}); \
  }                                            \
  NABLA_PARITY(op, strided) {                  \
    EXPECT_PARITY(                             \
        [](In in) {                            \
          const Tensor x = in[0].t();          \
          return expr;                         \
        },                                     \
        {parity_uniform({31, 17}, lo, hi)});   \
  }
UNARY_PARITY(neg, neg(x), -2, 2)
UNARY_PARITY(abs, abs(x), -2, 2)
UNARY_PARITY(exp, exp(x), -3, 3)
UNARY_PARITY(log, log(x), 0.1, 4)
UNARY_PARITY(log1p, log1p(x), -0.5, 4)
UNARY_PARITY(sqrt, sqrt(x), 0.1, 4)
UNARY_PARITY(rsqrt, rsqrt(x), 0.1, 4)
UNARY_PARITY(tanh, tanh(x), -3, 3)
UNARY_PARITY(sigmoid, sigmoid(x), -5, 5)
UNARY_PARITY(relu, relu(x), -2, 2)
UNARY_PARITY(leaky_relu, leaky_relu(x, 0.1), -2, 2)
UNARY_PARITY(gelu, gelu(x), -4, 4)
UNARY_PARITY(gelu_tanh, gelu_tanh(x), -4, 4)
UNARY_PARITY(silu, silu(x), -4, 4)
UNARY_PARITY(clamp, clamp(x, -0.5, 0.8), -2, 2)

#define BINARY_PARITY(op, expr, lo, hi)                                            \
  NABLA_PARITY(op, same_shape_vectorised) {                                        \
    EXPECT_PARITY(                                                                 \
        [](In in) {                                                                \
          const Tensor &a = in[0], &b = in[1];                                     \
          return expr;                                                             \
        },                                                                         \
        {parity_uniform({64, 1000}, lo, hi), parity_uniform({64, 1000}, lo, hi)}); \
  }                                                                                \
  NABLA_PARITY(op, broadcast_strided) {                                            \
    EXPECT_PARITY(                                                                 \
        [](In in) {                                                                \
          const Tensor a = in[0].t(), &b = in[1];                                  \
          return expr;                                                             \
        },                                                                         \
        {parity_uniform({5, 3}, lo, hi), parity_uniform({2, 1, 5}, lo, hi)});      \
  }
BINARY_PARITY(add, add(a, b, 0.5), -2, 2)
BINARY_PARITY(sub, sub(a, b, 2.0), -2, 2)
BINARY_PARITY(mul, a* b, -2, 2)
BINARY_PARITY(div, a / b, 0.5, 2)
BINARY_PARITY(maximum, maximum(a, b), -2, 2)
BINARY_PARITY(minimum, minimum(a, b), -2, 2)
NABLA_PARITY(pow, scalar_and_tensor) {
  EXPECT_PARITY([](In in) { return pow(in[0], 1.7) + pow(in[0], in[1]); },
                {parity_uniform({40, 30}, 0.5, 2), parity_uniform({30}, -1, 1)});
}
NABLA_PARITY(where, broadcast) {
  EXPECT_PARITY([](In in) { return where(gt(in[2], scalar_like(0.0, in[2])), in[0], in[1]); },
                {parity_randn({4, 5}), parity_randn({5}), parity_randn({4, 1}, false)});
}
#define COMPARE_PARITY(op)                                                           \
  NABLA_PARITY(op, floats_and_ints) {                                                \
    EXPECT_PARITY(                                                                   \
        [](In in) {                                                                  \
          Tensor a = (in[0] * 3.0).to(DType::i64), b = (in[1] * 3.0).to(DType::i64); \
          return op(in[0], in[1]).to(DType::f32) + op(a, b).to(DType::f32) * 2.0;    \
        },                                                                           \
        {parity_randn({30, 20}, false), parity_randn({20}, false)});                 \
  }
COMPARE_PARITY(eq)
COMPARE_PARITY(ne)
COMPARE_PARITY(lt)
COMPARE_PARITY(le)
COMPARE_PARITY(gt)
COMPARE_PARITY(ge)

// ---- reductions (shapes hit every CUDA path: warp rows, block rows, columns) ----
NABLA_PARITY(sum, rows_blocks_columns) {
  EXPECT_PARITY(
      [](In in) {
        return sum(in[0], {1}).sum() + sum(in[1], {1}).sum() + sum(in[0], {0}).sum() +
               sum(in[2], {0, 2}).sum();
      },
      {parity_randn({300, 70}), parity_randn({3, 9000}), parity_randn({6, 40, 33})},
      {.atol = 2e-3, .rtol = 1e-4});
}
NABLA_PARITY(mean, dims) {
  EXPECT_PARITY([](In in) { return mean(in[0], {-1}, true); }, {parity_randn({7, 5, 300})});
}
NABLA_PARITY(amax, several) {
  EXPECT_PARITY([](In in) { return amax(in[0], {0, 2}); }, {parity_randn({5, 6, 7})});
}
NABLA_PARITY(amin, rows) {
  EXPECT_PARITY([](In in) { return amin(in[0], {1}); }, {parity_randn({50, 5000})});
}
NABLA_PARITY(max, dim_with_indices) {
  EXPECT_PARITY(
      [](In in) {
        auto [v, i] = max(in[0], 1);
        return v + i.to(DType::f32);
      },
      {parity_randn({20, 37})});
}
NABLA_PARITY(min, columns) {
  EXPECT_PARITY(
      [](In in) {
        auto [v, i] = min(in[0], 0);
        return v + i.to(DType::f32);
      },
      {parity_randn({37, 20})});
}
// Split reductions (cuda/reduce.cu): too few natural blocks, so k is split over blocks and combined in a
// second launch: one long row (a grad norm), a few long rows with indices, a tall matrix's columns (a bias
// gradient), with and without indices.
NABLA_PARITY(sum, split_long_row_and_columns) {
  EXPECT_PARITY([](In in) { return in[0].sum() + sum(in[1], {0}).sum() * 0.5 + sum(in[2], {1}).sum(); },
                {parity_randn({250000}), parity_randn({20000, 96}), parity_randn({2, 150000})},
                {.atol = 5e-3, .rtol = 1e-4});
}
NABLA_PARITY(max, split_rows_with_indices) {
  EXPECT_PARITY(
      [](In in) {
        auto [v, i] = max(in[0], 1);
        return v + i.to(DType::f32);
      },
      {parity_randn({3, 120000}, false)});
}
NABLA_PARITY(min, split_columns_with_indices) {
  EXPECT_PARITY(
      [](In in) {
        auto [v, i] = min(in[0], 0);
        return v + i.to(DType::f32);
      },
      {parity_randn({30000, 40}, false)});
}
NABLA_PARITY(argmax, split_long_row) {
  EXPECT_PARITY([](In in) { return argmax(in[0].reshape({-1}), 0).to(DType::f32); },
                {parity_randn({400, 1000}, false)});
}
NABLA_PARITY(argmax, rows) {
  EXPECT_PARITY([](In in) { return argmax(in[0], -1).to(DType::f32); }, {parity_randn({64, 1000}, false)});
}
NABLA_PARITY(argmin, columns) {
  EXPECT_PARITY([](In in) { return argmin(in[0], 0).to(DType::f32); }, {parity_randn({100, 64}, false)});
}
NABLA_PARITY(var, dim) {
  EXPECT_PARITY([](In in) { return var(in[0], {1}); }, {parity_randn({8, 500})}, {.atol = 1e-3});
}
NABLA_PARITY(std_dev, all) {
  EXPECT_PARITY([](In in) { return std_dev(in[0]); }, {parity_randn({8, 500})}, {.atol = 1e-3});
}
NABLA_PARITY(norm, p2_p1_inf) {
  EXPECT_PARITY(
      [](In in) { return norm(in[0], 2.0, {1}) + norm(in[0], 1.0, {1}) + norm(in[0], INFINITY, {1}); },
      {parity_randn({8, 300})}, {.atol = 1e-3});
}
NABLA_PARITY(logsumexp, rows) {
  EXPECT_PARITY([](In in) { return logsumexp(in[0] * 10.0, {1}); }, {parity_randn({16, 777})});
}

// ---- linear algebra (TF32 off: full f32) ----
NABLA_PARITY(matmul, shapes) {
  EXPECT_PARITY(
      [](In in) {
        return matmul(in[0], in[1]).sum() + matmul(in[2], in[1]).sum() + matmul(in[3], in[4].t()).sum() +
               matmul(in[0].select(0, 0), in[1]).sum();
      },
      {parity_randn({17, 33}), parity_randn({33, 9}), parity_randn({3, 5, 33}), parity_randn({2, 4, 6}),
       parity_randn({7, 6})},
      {.atol = 2e-3, .rtol = 1e-4});
}
NABLA_PARITY(einsum, ring) {
  EXPECT_PARITY(
      [](In in) {
        return einsum("ijk,klm,mni->jln", {in[0], in[1], in[2]});
      },
      {parity_randn({3, 4, 5}), parity_randn({5, 6, 2}), parity_randn({2, 7, 3})}, {.atol = 1e-3});
}
NABLA_PARITY(tensordot, two_dims) {
  EXPECT_PARITY(
      [](In in) {
        return tensordot(in[0], in[1], {1, 2}, {0, 1});
      },
      {parity_randn({4, 5, 6}), parity_randn({5, 6, 3})}, {.atol = 1e-3});
}

// ---- factories: the same seed gives the same numbers on both backends ----
#define FACTORY_PARITY(op, expr)                                   \
  NABLA_PARITY(op, same_values) {                                  \
    EXPECT_PARITY(                                                 \
        [](In in) {                                                \
          Device d = in[0].device();                               \
          Generator g{42, 7};                                      \
          (void)g;                                                 \
          return (expr).to(DType::f32);                            \
        },                                                         \
        {parity_randn({1}, false)}, {.atol = 1e-6, .rtol = 1e-6}); \
  }
FACTORY_PARITY(empty, empty({3, 4}, {.device = d}).fill_(2.0))
FACTORY_PARITY(zeros, zeros({3, 4}, {.device = d}))
FACTORY_PARITY(ones, ones({3, 4}, {.dtype = DType::bf16, .device = d}))
FACTORY_PARITY(full, full({3, 4}, 2.5, {.dtype = DType::f16, .device = d}))
FACTORY_PARITY(arange, arange(0.0, 10.0, 0.5, {.device = d}))
FACTORY_PARITY(linspace, linspace(-1.0, 1.0, 17, {.device = d}))
FACTORY_PARITY(rand, rand({1000}, {.device = d}, &g))
FACTORY_PARITY(randn, randn({1001}, {.device = d}, &g))
FACTORY_PARITY(uniform, uniform({1000}, -3, 2, {.device = d}, &g))
FACTORY_PARITY(normal, normal({999}, 1.0, 2.0, {.dtype = DType::f64, .device = d}, &g))
FACTORY_PARITY(randint, randint(-5, 17, {1000}, {.device = d}, &g))

}  // namespace
}  // namespace nabla

// Parity cases of the nn family (cuda/softmax.cu, layer_norm.cu, batch_norm.cu, dropout.cu): softmax,
// log_softmax, layer_norm, batch_norm, dropout, forward and backward. The shapes walk every launch path of
// the CUDA kernels:
//   rows (softmax inner == 1, layer_norm): warp per row with 4..32 elements a lane (scalar and 16-byte
//     vector loads), block per row with 8 or 16 elements a thread (vector and scalar), the looping block
//     kernel for rows over 8192; softmax with dim not last: the strided kernel with wide and narrow inner
//     and small r; -inf (masked) entries in every softmax path.
//   layer_norm dweight/dbias: one and many row chunks; no affine, weight only, multi-dim normalized_shape.
//   batch_norm: the plane partials (s >= 32) with one and several chunks of n, the column partials (s < 32,
//     including [N, C]), training (running statistics checked too) and evaluation, no affine, large means;
//     the planes' 16-byte packed kernels (s a multiple of the pack: s = 100, 256, 32, 64, 40 and a count of
//     packs per block that leaves the two-cursor loop a tail) beside the scalar ones (s = 37, 81, 49), and
//     the packed apply of c s a multiple of the pack with packs across two planes (s = 49); the
//     finalize with 32 threads a channel (its 64- and 256-thread groups: test_parity_channels_last.cpp).
//   dropout: odd sizes (the last Philox counter serves one element), a non-zero generator offset, p = 1.
// bf16/f16 run on the GPU only (the CPU kernels compute f32/f64): the CPU reference runs in f32 on the
// inputs rounded to the 16-bit type and rounds its result, the GPU runs in the 16-bit type (in_dtype below).
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using test::parity_uniform;
using In = const std::vector<Tensor>&;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr test::ParityOptions kF64{.atol = 1e-10, .rtol = 1e-10};
constexpr test::ParityOptions kSoft{.atol = 1e-6, .rtol = 1e-4};

// f on inputs cast to dt on the GPU; on the CPU, f in f32 on the inputs rounded to dt, its result rounded to
// dt.
Tensor in_dtype(In in, DType dt, const Fn& f) {
  const bool gpu = in[0].device().is_cuda();
  std::vector<Tensor> c;
  for (const Tensor& t : in) c.push_back(!t.defined() ? t : gpu ? t.to(dt) : t.to(dt).to(DType::f32));
  Tensor y = f(c);
  return gpu ? y.to(DType::f32) : y.to(dt).to(DType::f32);
}

// x with the entries where mask <= 0 set to -inf.
Tensor masked(const Tensor& x, const Tensor& mask) {
  return where(gt(mask, scalar_like(0.0, mask)), x, scalar_like(-INFINITY, x));
}

// ---- softmax / log_softmax ----
#define SOFTMAX_PARITY(op, tol, tol16)                                                                    \
  NABLA_PARITY(op, warp_small_rows) {                                                                     \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({37, 10})}, tol);                    \
  }                                                                                                       \
  NABLA_PARITY(op, warp_vectorised) {                                                                     \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({16, 1000})}, tol);                  \
  }                                                                                                       \
  NABLA_PARITY(op, warp_odd_long) {                                                                       \
    EXPECT_PARITY([](In in) { return op(in[0] * 3.0, 1); }, {parity_randn({9, 1001})}, tol);              \
  }                                                                                                       \
  NABLA_PARITY(op, warp_many_rows) {                                                                      \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({1027, 64})}, tol);                  \
  }                                                                                                       \
  NABLA_PARITY(op, block_vectorised) {                                                                    \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({5, 3000})}, tol);                   \
  }                                                                                                       \
  NABLA_PARITY(op, block_odd) {                                                                           \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({4, 2049})}, tol);                   \
  }                                                                                                       \
  NABLA_PARITY(op, block_16_per_thread) {                                                                 \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({3, 6000})}, tol);                   \
  }                                                                                                       \
  NABLA_PARITY(op, loop_long_rows) {                                                                      \
    EXPECT_PARITY([](In in) { return op(in[0] * 4.0, -1); }, {parity_randn({3, 20001})}, tol);            \
  }                                                                                                       \
  NABLA_PARITY(op, middle_dim) {                                                                          \
    EXPECT_PARITY([](In in) { return op(in[0], 1); }, {parity_randn({4, 7, 33})}, tol);                   \
  }                                                                                                       \
  NABLA_PARITY(op, dim0_narrow_inner) {                                                                   \
    EXPECT_PARITY([](In in) { return op(in[0], 0); }, {parity_randn({300, 3})}, tol);                     \
  }                                                                                                       \
  NABLA_PARITY(op, channels) {                                                                            \
    EXPECT_PARITY([](In in) { return op(in[0], 1); }, {parity_randn({2, 3, 20, 20})}, tol);               \
  }                                                                                                       \
  NABLA_PARITY(op, long_strided) {                                                                        \
    EXPECT_PARITY([](In in) { return op(in[0], 1); }, {parity_randn({2, 5000, 2})}, tol);                 \
  }                                                                                                       \
  NABLA_PARITY(op, transposed_input) {                                                                    \
    EXPECT_PARITY([](In in) { return op(in[0].t(), -1); }, {parity_randn({40, 50})}, tol);                \
  }                                                                                                       \
  NABLA_PARITY(op, scalar_and_single) {                                                                   \
    EXPECT_PARITY([](In in) { return op(in[0], 0) + op(in[1], 0); },                                      \
                  {parity_randn({}), parity_randn({6, 1})}, tol);                                         \
  }                                                                                                       \
  NABLA_PARITY(op, f64) {                                                                                 \
    EXPECT_PARITY([](In in) { return op(in[0], -1); }, {parity_randn({6, 500}, true, DType::f64)}, kF64); \
  }                                                                                                       \
  NABLA_PARITY(op, f64_strided) {                                                                         \
    EXPECT_PARITY([](In in) { return op(in[0], 0); }, {parity_randn({70, 9}, true, DType::f64)}, kF64);   \
  }                                                                                                       \
  NABLA_PARITY(op, bf16_warp) {                                                                           \
    EXPECT_PARITY([](In in) { return in_dtype(in, DType::bf16, [](In c) { return op(c[0], -1); }); },     \
                  {parity_randn({8, 1000})}, tol16);                                                      \
  }                                                                                                       \
  NABLA_PARITY(op, bf16_block) {                                                                          \
    EXPECT_PARITY([](In in) { return in_dtype(in, DType::bf16, [](In c) { return op(c[0], -1); }); },     \
                  {parity_randn({3, 3000})}, tol16);                                                      \
  }                                                                                                       \
  NABLA_PARITY(op, f16_small_rows) {                                                                      \
    EXPECT_PARITY([](In in) { return in_dtype(in, DType::f16, [](In c) { return op(c[0], -1); }); },      \
                  {parity_randn({8, 77})}, tol16);                                                        \
  }                                                                                                       \
  NABLA_PARITY(op, f16_strided) {                                                                         \
    EXPECT_PARITY([](In in) { return in_dtype(in, DType::f16, [](In c) { return op(c[0], 1); }); },       \
                  {parity_randn({3, 40, 17})}, tol16);                                                    \
  }
// Softmax outputs are small (1/r): the absolute tolerance must be far below them. bf16 log_softmax
// gradients use exp(y) of a bf16 y (0.4% off), so they get an absolute tolerance of their own.
SOFTMAX_PARITY(softmax, kSoft, (test::ParityOptions{.atol = 1e-5, .rtol = 2e-2}))
SOFTMAX_PARITY(log_softmax, kSoft, (test::ParityOptions{.atol = 2e-2, .rtol = 2e-2}))

// Masked entries (-inf) in every softmax path (log_softmax would give -inf outputs, which do not compare).
NABLA_PARITY(softmax, masked_warp) {
  EXPECT_PARITY([](In in) { return softmax(masked(in[0], in[1]), -1); },
                {parity_randn({20, 300}), parity_randn({20, 300}, false)}, kSoft);
}
NABLA_PARITY(softmax, masked_block) {
  EXPECT_PARITY([](In in) { return softmax(masked(in[0], in[1]), -1); },
                {parity_randn({6, 2000}), parity_randn({6, 2000}, false)}, kSoft);
}
NABLA_PARITY(softmax, masked_loop) {
  EXPECT_PARITY([](In in) { return softmax(masked(in[0], in[1]), -1); },
                {parity_randn({2, 20000}), parity_randn({2, 20000}, false)}, kSoft);
}
NABLA_PARITY(softmax, masked_strided) {
  EXPECT_PARITY([](In in) { return softmax(masked(in[0], in[1]), 1); },
                {parity_randn({4, 50, 9}), parity_randn({4, 50, 9}, false)}, kSoft);
}
// Leading -inf entries (the first half of every row): the online (max, sum) must not turn them into NaN.
Tensor prefix_mask(int64_t rows, int64_t cols) {  // 0 for the first half of each row, 1 after
  Tensor k = arange(0.0, static_cast<double>(cols), 1.0, {.dtype = DType::f32});
  return gt(k, scalar_like(cols / 2 - 0.5, k)).to(DType::f32).expand({rows, cols}).contiguous();
}
NABLA_PARITY(softmax, masked_prefix_loop) {
  EXPECT_PARITY([](In in) { return softmax(masked(in[0], in[1]), -1); },
                {parity_randn({4, 18000}), prefix_mask(4, 18000)}, kSoft);
}
NABLA_PARITY(softmax, masked_prefix_strided) {
  EXPECT_PARITY([](In in) { return softmax(masked(in[0], in[1]).t(), 0); },
                {parity_randn({4, 3000}), prefix_mask(4, 3000)}, kSoft);
}

// ---- layer_norm ----
#define LN_AFFINE(name, rows, cols)                                                         \
  NABLA_PARITY(layer_norm, name) {                                                          \
    EXPECT_PARITY([](In in) { return layer_norm(in[0], {cols}, in[1], in[2]); },            \
                  {parity_randn({rows, cols}), parity_randn({cols}), parity_randn({cols})}, \
                  {.atol = 2e-4, .rtol = 1e-4});                                            \
  }
LN_AFFINE(warp_vectorised, 33, 256)
LN_AFFINE(warp_odd, 17, 77)
LN_AFFINE(warp_small, 50, 5)
LN_AFFINE(warp_full, 9, 1024)
LN_AFFINE(block_vectorised, 6, 4096)
LN_AFFINE(block_odd, 5, 1501)
LN_AFFINE(block_16_per_thread, 3, 7000)
LN_AFFINE(loop_long_rows, 3, 20001)
LN_AFFINE(many_rows_narrow, 3000, 64)
LN_AFFINE(many_rows_wide, 200, 768)
NABLA_PARITY(layer_norm, no_affine) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0], {300}); }, {parity_randn({20, 300})});
}
NABLA_PARITY(layer_norm, weight_only) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0], {300}, in[1]); },
                {parity_randn({20, 300}), parity_randn({300})});
}
NABLA_PARITY(layer_norm, bias_only_no_input_grad) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0], {129}, Tensor(), in[1]); },
                {parity_randn({40, 129}, false), parity_randn({129})});
}
NABLA_PARITY(layer_norm, multi_dim_normalized_shape) {
  EXPECT_PARITY(
      [](In in) {
        return layer_norm(in[0], {6, 10}, in[1], in[2], 1e-3);
      },
      {parity_randn({4, 6, 10}), parity_randn({6, 10}), parity_randn({6, 10})});
}
NABLA_PARITY(layer_norm, transposed_input) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0].t(), {40}, in[1], in[2]); },
                {parity_randn({40, 30}), parity_randn({40}), parity_randn({40})});
}
NABLA_PARITY(layer_norm, large_mean) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0] * 0.1 + 5.0, {500}, in[1], in[2]); },
                {parity_randn({16, 500}), parity_randn({500}), parity_randn({500})},
                {.atol = 5e-4, .rtol = 1e-3});
}
NABLA_PARITY(layer_norm, f64) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0], {130}, in[1], in[2]); },
                {parity_randn({10, 130}, true, DType::f64), parity_randn({130}, true, DType::f64),
                 parity_randn({130}, true, DType::f64)},
                kF64);
}
NABLA_PARITY(layer_norm, f64_block) {
  EXPECT_PARITY([](In in) { return layer_norm(in[0], {3000}, in[1], in[2]); },
                {parity_randn({4, 3000}, true, DType::f64), parity_randn({3000}, true, DType::f64),
                 parity_randn({3000}, true, DType::f64)},
                kF64);
}
NABLA_PARITY(layer_norm, bf16) {
  EXPECT_PARITY(
      [](In in) {
        return in_dtype(in, DType::bf16, [](In c) { return layer_norm(c[0], {768}, c[1], c[2]); });
      },
      {parity_randn({64, 768}), parity_randn({768}), parity_randn({768})}, {.atol = 6e-2, .rtol = 3e-2});
}
NABLA_PARITY(layer_norm, f16_block) {
  EXPECT_PARITY(
      [](In in) {
        return in_dtype(in, DType::f16, [](In c) { return layer_norm(c[0], {2000}, c[1], c[2]); });
      },
      {parity_randn({8, 2000}), parity_randn({2000}), parity_randn({2000})}, {.atol = 6e-2, .rtol = 3e-2});
}

// ---- batch_norm ----
// Training with running statistics: they are cloned inside (both backends start from the same values) and
// added into the output, so the running-statistics update is compared too. Inputs: x, w, b, rm, rv.
Tensor bn_train(In in, const Shape& stat_shape, double momentum = 0.1, double eps = 1e-5) {
  Tensor rm = in[3].clone(), rv = in[4].clone();
  Tensor y = batch_norm(in[0], in[1], in[2], rm, rv, true, momentum, eps);
  return y + rm.reshape(stat_shape) * 0.5 + rv.reshape(stat_shape) * 0.25;
}
std::vector<Tensor> bn_inputs(const Shape& x, int64_t c) {
  return {parity_randn(x), parity_randn({c}), parity_randn({c}), parity_randn({c}, false),
          parity_uniform({c}, 0.5, 2.0, false)};
}
#define BN_TRAIN(name, xshape, c, statshape)                                           \
  NABLA_PARITY(batch_norm, name) {                                                     \
    EXPECT_PARITY([](In in) { return bn_train(in, statshape); }, bn_inputs(xshape, c), \
                  {.atol = 2e-4, .rtol = 1e-4});                                       \
  }
BN_TRAIN(train_planes_one_chunk, Shape({8, 6, 10, 10}), 6, Shape({1, 6, 1, 1}))
BN_TRAIN(train_planes_chunks, Shape({64, 3, 16, 16}), 3, Shape({1, 3, 1, 1}))
BN_TRAIN(train_planes_s32, Shape({4, 5, 32}), 5, Shape({1, 5, 1}))
BN_TRAIN(train_planes_odd, Shape({7, 130, 37}), 130, Shape({1, 130, 1}))
BN_TRAIN(train_columns_2d, Shape({64, 10}), 10, Shape({1, 10}))
BN_TRAIN(train_columns_s31, Shape({6, 5, 31}), 5, Shape({1, 5, 1}))
BN_TRAIN(train_columns_spatial, Shape({40, 7, 5}), 7, Shape({1, 7, 1}))
BN_TRAIN(train_columns_many_rows, Shape({1000, 16}), 16, Shape({1, 16}))
BN_TRAIN(train_columns_wide, Shape({33, 300, 3, 3}), 300, Shape({1, 300, 1, 1}))
NABLA_PARITY(batch_norm, train_three_values) {
  EXPECT_PARITY(
      [](In in) {
        return bn_train(in, {1, 4});
      },
      bn_inputs({3, 4}, 4), {.atol = 2e-4, .rtol = 1e-4});
}
NABLA_PARITY(batch_norm, train_large_mean) {
  EXPECT_PARITY(
      [](In in) {
        std::vector<Tensor> c(in.begin(), in.end());
        c[0] = in[0] * 0.5 + 3.0;
        return bn_train(c, {1, 4, 1, 1}, 0.3, 1e-3);
      },
      bn_inputs({16, 4, 12, 12}, 4), {.atol = 5e-4, .rtol = 5e-4});
}
NABLA_PARITY(batch_norm, train_no_affine_no_running) {
  EXPECT_PARITY([](In in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                {parity_randn({10, 8, 6, 6})}, {.atol = 2e-4, .rtol = 1e-4});
}
NABLA_PARITY(batch_norm, train_permuted_input) {
  EXPECT_PARITY(
      [](In in) {
        return bn_train({in[0].permute({0, 3, 1, 2}), in[1], in[2], in[3], in[4]}, {1, 5, 1, 1});
      },
      bn_inputs({6, 7, 8, 5}, 5), {.atol = 2e-4, .rtol = 1e-4});
}
NABLA_PARITY(batch_norm, eval_planes) {
  EXPECT_PARITY([](In in) { return batch_norm(in[0], in[1], in[2], in[3], in[4], false); },
                bn_inputs({8, 6, 7, 7}, 6));
}
NABLA_PARITY(batch_norm, eval_columns) {
  EXPECT_PARITY([](In in) { return batch_norm(in[0], in[1], in[2], in[3], in[4], false, 0.1, 1e-3); },
                bn_inputs({50, 12}, 12));
}
NABLA_PARITY(batch_norm, eval_no_affine) {
  EXPECT_PARITY([](In in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], false); },
                {parity_randn({5, 3, 40}), parity_randn({3}, false), parity_uniform({3}, 0.5, 2.0, false)});
}
NABLA_PARITY(batch_norm, f64) {
  EXPECT_PARITY(
      [](In in) {
        return bn_train(in, {1, 5, 1});
      },
      {parity_randn({9, 5, 40}, true, DType::f64), parity_randn({5}, true, DType::f64),
       parity_randn({5}, true, DType::f64), parity_randn({5}, false, DType::f64),
       parity_randn({5}, false, DType::f64) * 0.1 + 1.0},
      kF64);
}
NABLA_PARITY(batch_norm, f64_columns_eval) {
  EXPECT_PARITY([](In in) { return batch_norm(in[0], in[1], in[2], in[3], in[4], false); },
                {parity_randn({30, 6}, true, DType::f64), parity_randn({6}, true, DType::f64),
                 parity_randn({6}, true, DType::f64), parity_randn({6}, false, DType::f64),
                 parity_randn({6}, false, DType::f64) * 0.1 + 1.0},
                kF64);
}
NABLA_PARITY(batch_norm, bf16_train) {
  EXPECT_PARITY(
      [](In in) { return in_dtype(in, DType::bf16, [](In c) {
                    return bn_train(c, {1, 8, 1, 1});
                  }); },
      bn_inputs({16, 8, 9, 9}, 8), {.atol = 6e-2, .rtol = 3e-2});
}
// The planes' packed kernels in bf16 (8 values a pack; s = 64 and 3 chunks of n) and in f32 with an odd
// number of packs per block (s = 36: 9 packs a plane, 7 planes a chunk), both directions.
NABLA_PARITY(batch_norm, bf16_planes_packed_train) {
  EXPECT_PARITY(
      [](In in) { return in_dtype(in, DType::bf16, [](In c) {
                    return bn_train(c, {1, 4, 1, 1});
                  }); },
      bn_inputs({48, 4, 8, 8}, 4), {.atol = 6e-2, .rtol = 3e-2});
}
BN_TRAIN(train_planes_packed_tail, Shape({7, 3, 6, 6}), 3, Shape({1, 3, 1, 1}))
// s not a multiple of the pack but c s is: the packed apply with packs that straddle two planes (ResNet-50's
// 7 x 7 layers), f32 and bf16; the partials take the scalar planes kernel.
BN_TRAIN(train_apply_packs_straddle_planes, Shape({6, 4, 7, 7}), 4, Shape({1, 4, 1, 1}))
NABLA_PARITY(batch_norm, bf16_apply_packs_straddle_planes) {
  EXPECT_PARITY(
      [](In in) { return in_dtype(in, DType::bf16, [](In c) {
                    return bn_train(c, {1, 8, 1, 1});
                  }); },
      bn_inputs({4, 8, 7, 7}, 8), {.atol = 6e-2, .rtol = 3e-2});
}
NABLA_PARITY(batch_norm, f16_columns_eval) {
  EXPECT_PARITY(
      [](In in) {
        return in_dtype(in, DType::f16, [](In c) { return batch_norm(c[0], c[1], c[2], c[3], c[4], false); });
      },
      bn_inputs({64, 20}, 20), {.atol = 6e-2, .rtol = 3e-2});
}

// ---- dropout: the same Generator on both backends, so the masks must agree exactly ----
#define DROPOUT_PARITY(name, expr, input, opts) \
  NABLA_PARITY(dropout, name) {                 \
    EXPECT_PARITY(                              \
        [](In in) {                             \
          Generator g{1234, 77};                \
          const Tensor& x = in[0];              \
          (void)x;                              \
          return (expr);                        \
        },                                      \
        {input}, opts);                         \
  }
constexpr test::ParityOptions kExact{.atol = 1e-6, .rtol = 1e-6};
DROPOUT_PARITY(odd_size, dropout(x, 0.3, true, &g), parity_randn({1001}), kExact)
DROPOUT_PARITY(transposed, dropout(x.t(), 0.5, true, &g), parity_randn({40, 33}), kExact)
NABLA_PARITY(dropout, large_offset) {
  EXPECT_PARITY(
      [](In in) {
        Generator h{99, 1ull << 40};
        return dropout(in[0], 0.1, true, &h);
      },
      {parity_randn({300, 1001})}, kExact);
}
DROPOUT_PARITY(twice_same_generator, dropout(x, 0.2, true, &g) + dropout(x, 0.6, true, &g) * 2.0,
               parity_randn({7, 13}), kExact)
DROPOUT_PARITY(p_one, dropout(x, 1.0, true, &g), parity_randn({5, 6}), kExact)
DROPOUT_PARITY(f64, dropout(x, 0.4, true, &g), parity_randn({999}, true, DType::f64), kF64)
DROPOUT_PARITY(bf16, in_dtype(in, DType::bf16, [&](In c) { return dropout(c[0], 0.25, true, &g); }),
               parity_randn({64, 257}), kExact)
DROPOUT_PARITY(f16, in_dtype(in, DType::f16, [&](In c) { return dropout(c[0], 0.5, true, &g); }),
               parity_randn({3, 5, 7}), kExact)

}  // namespace
}  // namespace nabla

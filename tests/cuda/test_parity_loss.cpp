// Parity cases of the losses, forward and backward: class-index targets with ignore_index and label
// smoothing, soft targets, spatial [N, C, d...] inputs, every reduction.
// cross_entropy with class-index targets runs the fused kernels of cuda/loss.cu; the cases walk their paths:
//   warp per row (C <= 1024) and block per row (C > 1024, 256 and 512 threads), each with 16-byte vector
//   loads (C a multiple of 4 for f32, of 8 for bf16/f16) and scalar ones (odd C, f64), ignored rows in both
//   (the early exit), label smoothing, -inf (masked) logits, f64, bf16 and f16.
// The other losses compose log_softmax, gather, where, reductions and element-wise ops.
// bf16/f16 run on the GPU only: the CPU reference runs in f32 on the logits rounded to the 16-bit type and
// rounds its result (in_dtype below).
#include "parity.h"

namespace nabla {
namespace {
using test::parity_randn;
using test::parity_uniform;
using In = const std::vector<Tensor>&;

Tensor ids(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, {.dtype = DType::i64}); }
Tensor rand_ids(int64_t hi, const Shape& s) {
  Generator g{test::next_seed(), 0};
  return randint(0, hi, s, {.dtype = DType::i64}, &g);
}

// f with the floating inputs cast to dt on the GPU; on the CPU, f in f32 on them rounded to dt, its result
// rounded to dt. Index inputs pass unchanged.
Tensor in_dtype(In in, DType dt, const std::function<Tensor(In)>& f) {
  const bool gpu = in[0].device().is_cuda();
  std::vector<Tensor> c;
  for (const Tensor& t : in)
    c.push_back(!is_floating(t.dtype()) ? t : gpu ? t.to(dt) : t.to(dt).to(DType::f32));
  Tensor y = f(c);
  return gpu ? y.to(DType::f32) : y.to(dt).to(DType::f32);
}

// Targets in [0, c) with every `every`-th one set to ignore_index -100.
Tensor ids_ignored(int64_t c, int64_t n, int64_t every) {
  std::vector<double> v = rand_ids(c, {n}).to_double_vector();
  for (int64_t i = 0; i < n; i += every) v[i] = -100;
  return ids(v, {n});
}

// ---- cross_entropy ----
NABLA_PARITY(cross_entropy, indices_mean) {
  EXPECT_PARITY([](In in) { return cross_entropy(in[0], in[1]); },
                {parity_randn({64, 10}), rand_ids(10, {64})});
}
NABLA_PARITY(cross_entropy, ignore_index_label_smoothing) {
  EXPECT_PARITY(
      [](In in) { return cross_entropy(in[0], in[1], {.ignore_index = -100, .label_smoothing = 0.1}); },
      {parity_randn({6, 5}), ids({1, -100, 3, 0, -100, 4}, {6})});
}
NABLA_PARITY(cross_entropy, custom_ignore_index_none_and_sum) {
  EXPECT_PARITY(
      [](In in) {
        Tensor none = cross_entropy(in[0], in[1], {.reduction = Reduction::none, .ignore_index = 2});
        return none * 0.5 + cross_entropy(in[0], in[1], {.reduction = Reduction::sum, .ignore_index = 2});
      },
      {parity_randn({9, 4}), ids({2, 0, 3, 2, 1, 1, 3, 0, 2}, {9})});
}
NABLA_PARITY(cross_entropy, large_vocab_rows) {
  // 32 rows of 5000 classes: long softmax rows.
  EXPECT_PARITY([](In in) { return cross_entropy(in[0] * 3.0, in[1], {.label_smoothing = 0.05}); },
                {parity_randn({32, 5000}), rand_ids(5000, {32})}, {.atol = 1e-4, .rtol = 1e-4});
}
// Fused kernel paths (cuda/loss.cu). Reduction none: every row's loss is compared, and the cotangent
// weights each row's gradient differently.
NABLA_PARITY(cross_entropy, warp_widest_row_vector) {
  EXPECT_PARITY(
      [](In in) {
        return cross_entropy(in[0] * 4.0, in[1], {.reduction = Reduction::none, .label_smoothing = 0.1});
      },
      {parity_randn({37, 1024}), ids_ignored(1024, 37, 5)});
}
NABLA_PARITY(cross_entropy, warp_odd_classes_scalar) {
  EXPECT_PARITY([](In in) { return cross_entropy(in[0], in[1], {.reduction = Reduction::none}); },
                {parity_randn({70, 37}), ids_ignored(37, 70, 3)});
}
NABLA_PARITY(cross_entropy, block_narrowest_row_scalar) {
  // C = 1025: the first block-per-row size, odd (scalar loads); ignored rows leave the block early.
  EXPECT_PARITY(
      [](In in) {
        return cross_entropy(in[0], in[1], {.reduction = Reduction::sum, .label_smoothing = 0.2});
      },
      {parity_randn({9, 1025}), ids_ignored(1025, 9, 4)}, {.atol = 1e-4, .rtol = 1e-4});
}
NABLA_PARITY(cross_entropy, block_5000_classes_ignored_none) {
  EXPECT_PARITY([](In in) { return cross_entropy(in[0] * 3.0, in[1], {.reduction = Reduction::none}); },
                {parity_randn({20, 5000}), ids_ignored(5000, 20, 6)}, {.atol = 1e-4, .rtol = 1e-4});
}
NABLA_PARITY(cross_entropy, block_512_threads_odd) {
  // C = 20001 > 8192: 512-thread blocks, scalar loads; mean over the non-ignored rows.
  EXPECT_PARITY([](In in) { return cross_entropy(in[0] * 2.0, in[1], {.label_smoothing = 0.05}); },
                {parity_randn({6, 20001}), ids_ignored(20001, 6, 4)}, {.atol = 1e-4, .rtol = 1e-4});
}
NABLA_PARITY(cross_entropy, masked_logits) {
  // -inf logits (never in the 8 target columns): the online max/sum skips them in the warp ([8, 300]) and
  // block ([8, 3000]) paths, and their gradient is 0.
  EXPECT_PARITY(
      [](In in) {
        Tensor x = cat({in[0], in[2]}, 1);
        Tensor rest = x.narrow(1, 8, 2992);
        Tensor xm = cat({x.narrow(1, 0, 8),
                         where(gt(in[1], scalar_like(-0.5, in[1])), rest, scalar_like(-INFINITY, rest))},
                        1);
        return cross_entropy(xm.narrow(1, 0, 300), in[3], {.reduction = Reduction::none}) +
               cross_entropy(xm, in[3], {.reduction = Reduction::none});
      },
      {parity_randn({8, 200}), parity_uniform({8, 2992}, -1.0, 1.0, false), parity_randn({8, 2800}),
       ids({0, 1, 2, 3, 4, 5, 6, 7}, {8})},
      {.atol = 1e-4, .rtol = 1e-4});
}
NABLA_PARITY(cross_entropy, f64_warp_and_block) {
  EXPECT_PARITY(
      [](In in) {
        return cross_entropy(in[0], in[1], {.reduction = Reduction::none, .label_smoothing = 0.1}).sum() +
               cross_entropy(in[2], in[3], {.label_smoothing = 0.3});
      },
      {parity_randn({11, 100}, true, DType::f64), ids_ignored(100, 11, 5),
       parity_randn({5, 3000}, true, DType::f64), ids_ignored(3000, 5, 3)},
      {.atol = 1e-10, .rtol = 1e-10});
}
// bf16/f16: losses round to the 16-bit type (0.4% / 0.05%); the gradients g (softmax - onehot) as well.
NABLA_PARITY(cross_entropy, bf16_warp_vector) {
  EXPECT_PARITY(
      [](In in) {
        return in_dtype(in, DType::bf16, [](In c) {
          return cross_entropy(c[0], c[1], {.reduction = Reduction::none, .label_smoothing = 0.1});
        });
      },
      {parity_randn({64, 1000}), ids_ignored(1000, 64, 7)}, {.atol = 1e-6, .rtol = 2e-2});
}
NABLA_PARITY(cross_entropy, bf16_block_5000_mean) {
  EXPECT_PARITY(
      [](In in) { return in_dtype(in, DType::bf16, [](In c) { return cross_entropy(c[0], c[1]); }); },
      {parity_randn({16, 5000}), ids_ignored(5000, 16, 5)}, {.atol = 1e-6, .rtol = 2e-2});
}
NABLA_PARITY(cross_entropy, f16_odd_scalar_and_block) {
  EXPECT_PARITY(
      [](In in) {
        return in_dtype(in, DType::f16, [](In c) {
          return cross_entropy(c[0], c[1], {.reduction = Reduction::none}) +
                 cross_entropy(c[2], c[3], {.reduction = Reduction::sum, .label_smoothing = 0.1});
        });
      },
      {parity_randn({33, 37}), ids_ignored(37, 33, 4), parity_randn({4, 1600}), ids_ignored(1600, 4, 3)},
      {.atol = 1e-5, .rtol = 5e-3});
}
NABLA_PARITY(cross_entropy, i32_targets_spatial) {
  EXPECT_PARITY([](In in) { return cross_entropy(in[0], in[1].to(DType::i32)); },
                {parity_randn({3, 40, 7}), rand_ids(40, {3, 7})});
}
NABLA_PARITY(cross_entropy, soft_targets_smoothing) {
  // Probabilities as targets (rows of a uniform tensor normalised to sum 1), label smoothing 0.2.
  EXPECT_PARITY(
      [](In in) {
        Tensor p = in[1] / sum(in[1], {1}, true);
        return cross_entropy(in[0], p, {.label_smoothing = 0.2});
      },
      {parity_randn({7, 6}), parity_uniform({7, 6}, 0.0, 1.0, false)});
}
NABLA_PARITY(cross_entropy, spatial_noncontiguous_sum) {
  // logits [2, 3, 4, 5] built from a permuted [2, 4, 5, 3]; targets [2, 4, 5] with an ignored entry.
  EXPECT_PARITY(
      [](In in) {
        Tensor t = where(eq(in[1], scalar_like(0.0, in[1])), full_like(in[1], -100.0), in[1]);
        return cross_entropy(in[0].permute({0, 3, 1, 2}), t, {.reduction = Reduction::sum});
      },
      {parity_randn({2, 4, 5, 3}), rand_ids(3, {2, 4, 5})});
}
NABLA_PARITY(cross_entropy, spatial_soft_targets_none) {
  EXPECT_PARITY(
      [](In in) {
        Tensor p = in[1] / sum(in[1], {1}, true);
        return cross_entropy(in[0], p, {.reduction = Reduction::none});
      },
      {parity_randn({2, 4, 3, 3}), parity_uniform({2, 4, 3, 3}, 0.1, 1.0, false)});
}

// ---- nll_loss ----
NABLA_PARITY(nll_loss, reductions_and_ignore) {
  EXPECT_PARITY(
      [](In in) {
        Tensor logp = log_softmax(in[0], 1);
        return nll_loss(logp, in[1], Reduction::none) + nll_loss(logp, in[1], Reduction::mean, 1) +
               nll_loss(logp, in[1], Reduction::sum) * 0.1;
      },
      {parity_randn({12, 5}), ids({0, 1, 4, 4, 1, 2, 3, 0, 1, 2, 4, 3}, {12})});
}
NABLA_PARITY(nll_loss, spatial) {
  EXPECT_PARITY([](In in) { return nll_loss(log_softmax(in[0], 1), in[1]); },
                {parity_randn({3, 6, 7}), rand_ids(6, {3, 7})});
}

// ---- regression losses ----
NABLA_PARITY(mse_loss, reductions) {
  EXPECT_PARITY(
      [](In in) {
        return mse_loss(in[0], in[1]) + mse_loss(in[0].t(), in[2], Reduction::sum) * 0.01 +
               mse_loss(in[0], in[1], Reduction::none).sum();
      },
      {parity_randn({33, 17}), parity_randn({33, 17}), parity_randn({17, 33})}, {.atol = 1e-3, .rtol = 1e-4});
}
NABLA_PARITY(l1_loss, reductions) {
  EXPECT_PARITY([](In in) { return l1_loss(in[0], in[1]) + l1_loss(in[0], in[1], Reduction::none) * 0.5; },
                {parity_randn({20, 9}), parity_randn({20, 9})});
}
NABLA_PARITY(smooth_l1_loss, betas) {
  // Both regions (|d| < beta and beyond), beta 0.5 and 1, and beta = 0 (plain l1).
  EXPECT_PARITY(
      [](In in) {
        return smooth_l1_loss(in[0], in[1], Reduction::none, 0.5) +
               smooth_l1_loss(in[0], in[1], Reduction::mean, 1.0) +
               smooth_l1_loss(in[0], in[1], Reduction::sum, 0.0) * 0.01;
      },
      {parity_uniform({25, 8}, -3, 3), parity_uniform({25, 8}, -3, 3)});
}

// ---- binary cross-entropy with logits ----
NABLA_PARITY(binary_cross_entropy_with_logits, pos_weight) {
  // pos_weight [C] broadcast over the last dim; large logits check the stable form.
  EXPECT_PARITY(
      [](In in) { return binary_cross_entropy_with_logits(in[0] * 8.0, in[1], Reduction::mean, in[2]); },
      {parity_randn({16, 5}), parity_uniform({16, 5}, 0.0, 1.0, false),
       parity_uniform({5}, 0.5, 3.0, false)});
}
NABLA_PARITY(binary_cross_entropy_with_logits, target_grad_none_and_sum) {
  EXPECT_PARITY(
      [](In in) {
        return binary_cross_entropy_with_logits(in[0], in[1], Reduction::none) +
               binary_cross_entropy_with_logits(in[0], in[1], Reduction::sum) * 0.01;
      },
      {parity_randn({40, 3}), parity_uniform({40, 3}, 0.0, 1.0)});
}

// ---- kl_div ----
NABLA_PARITY(kl_div, batchmean_with_zero_targets) {
  // Targets with exact zeros (their terms and gradients are 0, never NaN).
  EXPECT_PARITY(
      [](In in) {
        Tensor p = relu(in[1]);
        p = p / (sum(p, {1}, true) + 1e-3);
        return kl_div(log_softmax(in[0], 1), p, Reduction::batchmean) +
               kl_div(log_softmax(in[0], 1), p, Reduction::mean);
      },
      {parity_randn({8, 10}), parity_randn({8, 10}, false)});
}
NABLA_PARITY(kl_div, none_and_sum) {
  EXPECT_PARITY(
      [](In in) {
        return kl_div(in[0], in[1], Reduction::none) + kl_div(in[0], in[1], Reduction::sum) * 0.01;
      },
      {parity_randn({6, 7}), parity_uniform({6, 7}, 0.0, 1.0)});
}

}  // namespace
}  // namespace nabla

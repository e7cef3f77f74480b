// Parity cases of the losses. They have no kernels of their own (ops/loss.cpp composes log_softmax,
// gather, where, reductions and element-wise ops), so these cases pass once every op they use has a CUDA
// kernel; they check the compositions end to end, forward and backward: class-index targets with
// ignore_index and label smoothing, soft targets, spatial [N, C, d...] inputs, every reduction.
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

// Losses. Reduction::mean averages over the elements (cross_entropy/nll: over the targets that are not
// ignore_index), sum adds, none keeps one loss per element/sample.
//
//   cross_entropy(logits [N, C] or [N, C, d...], target):
//     class indices (i64 [N] / [N, d...]): -log_softmax(x)[target], with label smoothing s:
//        (1 - s) * nll + s * mean_c(-log_softmax(x)_c)
//     soft targets (float, the logits' shape): -sum_c t_c log_softmax(x)_c
//   nll_loss(logp, target): -logp[target]
//   mse_loss = (a - b)^2;  l1_loss = |a - b|
//   smooth_l1_loss: 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta
//   binary_cross_entropy_with_logits(x, y) = max(x, 0) - x y + log(1 + exp(-|x|))   (stable form),
//     pos_weight (optional, broadcast over the last dim) weights the positive term
//   kl_div(input = log q, target = p) = p (log p - input), 0 where p = 0; mean, sum, or batchmean
//
// cross_entropy with class-index targets is one fused kernel pair (the slots below), row i of the logits
// viewed as [M, C] (class dim last), t_i its target, s the label smoothing:
//   lse_i  = m_i + log sum_c exp(x_ic - m_i),  m_i = max_c x_ic
//   loss_i = (1 - s) (lse_i - x_i[t_i]) + s (lse_i - mean_c x_ic)          0 when t_i = ignore_index
//   dx_ic  = g_i (exp(x_ic - lse_i) - (1 - s) [c = t_i] - s / C)           0 when t_i = ignore_index
#pragma once
#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

enum class Reduction { none, mean, sum, batchmean /* kl_div only: sum / batch size */ };

struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o = {});
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction = Reduction::mean,
                int64_t ignore_index = -100);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
                      double beta = 1.0);
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction = Reduction::mean,
                                        const Tensor& pos_weight = Tensor());
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace nabla

namespace nabla::ops {

// Fused cross-entropy of class-index targets (the maths above). Kernels see contiguous tensors:
//   logits [M, C] of a float dtype (CPU: f32/f64; CUDA: f32/f64/bf16/f16), targets i64 [M], each either
//   ignore_index or in [0, C) (the op layer checks the range on the host);
//   loss [M] in the logits' dtype; lse [M] in f64 for f64 logits, f32 otherwise (bf16/f16 keep it in f32
//   for the backward); both 0 for ignored rows.
using CrossEntropyKernelFn = void (*)(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                                      double label_smoothing, Tensor& loss, Tensor& lse);
// grad [M]: the gradient of loss, in the logits' dtype. dlogits [M, C] in the logits' dtype.
using CrossEntropyBackwardKernelFn = void (*)(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                              const Tensor& grad, int64_t ignore_index,
                                              double label_smoothing, Tensor& dlogits);

inline Kernel<CrossEntropyKernelFn> cross_entropy_kernel{"cross_entropy"};
inline Kernel<CrossEntropyBackwardKernelFn> cross_entropy_backward_kernel{"cross_entropy_backward"};

}  // namespace nabla::ops

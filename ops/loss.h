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
#pragma once
#include "engine/tensor.h"

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

// Exact binary-classification metrics for CTR models: ROC AUC and log loss.
//
//   AUC = P(score of a random positive > score of a random negative) + 0.5 P(equal)
//       = sum over tie groups g, in ascending score order, of (neg_below_g * pos_g + pos_g * neg_g / 2) / (P
//       N)
// computed after one sort, with integer counts in 128 bits, so it is exact up to the final division and
// equal to the average-rank (Mann-Whitney U) formula, also with ties. O(n log n).
//
//   log loss = -mean(y log p + (1 - y) log(1 - p)),  p clipped to [eps, 1 - eps] (eps = 1e-7 by default,
//   as Keras / scikit-learn's clipping), accumulated in double.
//
// Labels must be 0 or 1 and scores finite (an error names the first index that is not); AUC needs at least
// one positive and one negative.
#pragma once
#include <cstdint>
#include <span>

#include "engine/tensor.h"

namespace nabla::metrics {

double roc_auc(std::span<const float> scores, std::span<const float> labels);
double roc_auc(std::span<const double> scores, std::span<const double> labels);
double log_loss(std::span<const float> probabilities, std::span<const float> labels, double eps = 1e-7);
double log_loss(std::span<const double> probabilities, std::span<const double> labels, double eps = 1e-7);

// Tensors of equal size (any shape, f32 or f64, on the CPU).
double roc_auc(const Tensor& scores, const Tensor& labels);
double log_loss(const Tensor& probabilities, const Tensor& labels, double eps = 1e-7);

}  // namespace nabla::metrics

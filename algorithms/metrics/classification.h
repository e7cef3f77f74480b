// The GLUE metrics of classification and regression tasks, in double, from host vectors.
//
//   accuracy  = mean(pred == label)
//   F1        = 2 TP / (2 TP + FP + FN), class 1 positive (binary tasks: MRPC, QQP; 0 when TP + FP + FN = 0)
//   Matthews  = (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)) for two classes (CoLA), and
//               Gorodkin's R_K for more: (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)),
//               c correct, s samples, p_k predicted and t_k true counts of class k; 0 when the denominator
//               is 0 (scikit-learn's convention)
//   Pearson   = cov(x, y) / (sd(x) sd(y)) (STS-B); NaN when either is constant
// Inputs of different lengths, or empty, throw naming both sizes.
#pragma once
#include <cstdint>
#include <span>

namespace nabla::metrics {

double accuracy(std::span<const int64_t> predictions, std::span<const int64_t> labels);
double f1_binary(std::span<const int64_t> predictions, std::span<const int64_t> labels);
double matthews_corrcoef(std::span<const int64_t> predictions, std::span<const int64_t> labels);
double pearson(std::span<const double> x, std::span<const double> y);

}  // namespace nabla::metrics

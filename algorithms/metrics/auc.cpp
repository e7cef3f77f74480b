// ROC AUC by one sort and tie groups, and clipped log loss (algorithms/metrics/auc.h).
#include "algorithms/metrics/auc.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/error.h"

namespace nabla::metrics {
namespace {

template <class T>
void check_inputs(std::span<const T> scores, std::span<const T> labels, const char* who) {
  NABLA_CHECK(scores.size() == labels.size(), who, ": ", scores.size(), " scores but ", labels.size(),
              " labels");
  for (size_t i = 0; i < labels.size(); ++i) {
    NABLA_CHECK(labels[i] == T(0) || labels[i] == T(1), who, ": label ", labels[i], " at index ", i,
                ", expected 0 or 1");
    NABLA_CHECK(std::isfinite(scores[i]), who, ": score ", scores[i], " at index ", i, " is not finite");
  }
}

template <class T>
double auc_impl(std::span<const T> scores, std::span<const T> labels) {
  check_inputs(scores, labels, "roc_auc");
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // 2 * (pairs ranked right) + (pairs tied): exact in 128 bits for any n below 2^63.
  unsigned __int128 twice_u = 0;
  uint64_t neg_below = 0, pos_total = 0;
  for (size_t g = 0; g < n;) {
    size_t e = g;
    uint64_t pos = 0, neg = 0;
    for (; e < n && scores[order[e]] == scores[order[g]]; ++e) (labels[order[e]] == T(1) ? pos : neg)++;
    twice_u +=
        static_cast<unsigned __int128>(2) * neg_below * pos + static_cast<unsigned __int128>(pos) * neg;
    neg_below += neg;
    pos_total += pos;
    g = e;
  }
  NABLA_CHECK(pos_total > 0 && neg_below > 0, "roc_auc: needs both classes, got ", pos_total,
              " positives and ", neg_below, " negatives");
  unsigned __int128 pairs = static_cast<unsigned __int128>(pos_total) * neg_below;
  // Split the quotient so that the division is done in double without losing the integer part's precision.
  unsigned __int128 whole = twice_u / (2 * pairs), rest = twice_u % (2 * pairs);
  return static_cast<double>(whole) + static_cast<double>(rest) / static_cast<double>(2 * pairs);
}

template <class T>
double log_loss_impl(std::span<const T> p, std::span<const T> labels, double eps) {
  check_inputs(p, labels, "log_loss");
  NABLA_CHECK(eps > 0 && eps < 0.5, "log_loss: eps must be in (0, 0.5), got ", eps);
  NABLA_CHECK(!p.empty(), "log_loss: no examples");
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    double q = static_cast<double>(p[i]);
    NABLA_CHECK(q >= 0 && q <= 1, "log_loss: probability ", q, " at index ", i, " outside [0, 1]");
    q = std::clamp(q, eps, 1 - eps);
    sum -= labels[i] == T(1) ? std::log(q) : std::log1p(-q);
  }
  return sum / static_cast<double>(p.size());
}

template <class F>
double on_tensors(const Tensor& a, const Tensor& b, const char* who, F&& f) {
  NABLA_CHECK(a.defined() && b.defined(), who, ": undefined tensor");
  NABLA_CHECK(a.device().is_cpu() && b.device().is_cpu(), who, ": expected CPU tensors, got ",
              a.device().str(), " and ", b.device().str());
  NABLA_CHECK(a.numel() == b.numel(), who, ": ", a.numel(), " scores but ", b.numel(), " labels");
  if (a.dtype() == DType::f64 && b.dtype() == DType::f64) {
    Tensor x = a.contiguous(), y = b.contiguous();
    return f(std::span<const double>(x.data<double>(), x.numel()),
             std::span<const double>(y.data<double>(), y.numel()));
  }
  Tensor x = a.to(DType::f32).contiguous(), y = b.to(DType::f32).contiguous();
  return f(std::span<const float>(x.data<float>(), x.numel()),
           std::span<const float>(y.data<float>(), y.numel()));
}

}  // namespace

double roc_auc(std::span<const float> s, std::span<const float> l) { return auc_impl(s, l); }
double roc_auc(std::span<const double> s, std::span<const double> l) { return auc_impl(s, l); }
double log_loss(std::span<const float> p, std::span<const float> l, double eps) {
  return log_loss_impl(p, l, eps);
}
double log_loss(std::span<const double> p, std::span<const double> l, double eps) {
  return log_loss_impl(p, l, eps);
}

double roc_auc(const Tensor& scores, const Tensor& labels) {
  return on_tensors(scores, labels, "roc_auc", [](auto s, auto l) { return auc_impl(s, l); });
}
double log_loss(const Tensor& p, const Tensor& labels, double eps) {
  return on_tensors(p, labels, "log_loss", [eps](auto s, auto l) { return log_loss_impl(s, l, eps); });
}

}  // namespace nabla::metrics

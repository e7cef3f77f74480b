// GLUE metrics (see classification.h).
#include "algorithms/metrics/classification.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "engine/error.h"

namespace nabla::metrics {
namespace {
template <class T>
void check_sizes(const char* what, std::span<const T> a, std::span<const T> b) {
  NABLA_CHECK(a.size() == b.size() && !a.empty(), what, ": expected two non-empty inputs of one size, got ",
              a.size(), " and ", b.size());
}
}  // namespace

double accuracy(std::span<const int64_t> p, std::span<const int64_t> y) {
  check_sizes("accuracy", p, y);
  int64_t hits = 0;
  for (size_t i = 0; i < p.size(); ++i) hits += p[i] == y[i];
  return static_cast<double>(hits) / static_cast<double>(p.size());
}

double f1_binary(std::span<const int64_t> p, std::span<const int64_t> y) {
  check_sizes("f1", p, y);
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    tp += p[i] == 1 && y[i] == 1;
    fp += p[i] == 1 && y[i] != 1;
    fn += p[i] != 1 && y[i] == 1;
  }
  const double d = 2 * tp + fp + fn;
  return d > 0 ? 2 * tp / d : 0.0;
}

double matthews_corrcoef(std::span<const int64_t> p, std::span<const int64_t> y) {
  check_sizes("matthews_corrcoef", p, y);
  std::map<int64_t, double> pk, tk;
  double c = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    pk[p[i]] += 1;
    tk[y[i]] += 1;
    c += p[i] == y[i];
  }
  const double s = static_cast<double>(p.size());
  double pt = 0, pp = 0, tt = 0;
  for (auto& [k, v] : pk) {
    pp += v * v;
    auto it = tk.find(k);
    if (it != tk.end()) pt += v * it->second;
  }
  for (auto& [k, v] : tk) tt += v * v;
  const double d = std::sqrt((s * s - pp) * (s * s - tt));
  return d > 0 ? (c * s - pt) / d : 0.0;
}

double pearson(std::span<const double> x, std::span<const double> y) {
  check_sizes("pearson", x, y);
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i], my += y[i];
  mx /= n, my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace nabla::metrics

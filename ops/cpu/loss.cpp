// CPU kernels of the fused cross-entropy with class-index targets (maths and slot contracts: ops/loss.h).
//
// Logits [M, C] contiguous, one row per iteration, OpenMP over rows (rows are independent, so the result
// does not depend on the thread count). Forward: max, then sum of exp(x - max) and sum of x in f64, then
// lse = max + log(sum) and the row's loss. Backward: dx = g (exp(x - lse) - (1 - s) [c = t] - s / C).
// Ignored rows are skipped: loss, lse and dx are 0 there. Works for f32 and f64 (f64 sums for both).
#include <cmath>
#include <limits>

#include "ops/cpu/loops.h"
#include "ops/loss.h"

namespace nabla::ops::cpu {
namespace {

template <class T>
void cross_entropy_rows(const T* x, const int64_t* tgt, int64_t M, int64_t C, int64_t ignore, double s,
                        T* loss, T* lse) {
#pragma omp parallel for if (M * C >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const int64_t t = tgt[i];
    if (t == ignore) {
      loss[i] = T(0);
      lse[i] = T(0);
      continue;
    }
    const T* xr = x + i * C;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < C; ++c) m = std::max(m, xr[c]);
    double se = 0, sx = 0;
    for (int64_t c = 0; c < C; ++c) {
      se += std::exp(static_cast<double>(xr[c]) - m);
      sx += xr[c];
    }
    const double l = m + std::log(se);
    // The op layer checked the range; an out-of-range target still reads nothing outside the row.
    const double xt = t >= 0 && t < C ? static_cast<double>(xr[t]) : std::numeric_limits<double>::quiet_NaN();
    double v = (1.0 - s) * (l - xt);
    if (s > 0) v += s * (l - sx / static_cast<double>(C));
    loss[i] = static_cast<T>(v);
    lse[i] = static_cast<T>(l);
  }
}

template <class T>
void cross_entropy_backward_rows(const T* x, const int64_t* tgt, const T* lse, const T* g, int64_t M,
                                 int64_t C, int64_t ignore, double s, T* dx) {
#pragma omp parallel for if (M * C >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const int64_t t = tgt[i];
    T* dr = dx + i * C;
    if (t == ignore) {
      for (int64_t c = 0; c < C; ++c) dr[c] = T(0);
      continue;
    }
    const T* xr = x + i * C;
    const T gi = g[i], l = lse[i];
    const T off = static_cast<T>(s / static_cast<double>(C)), on = static_cast<T>(1.0 - s);
    for (int64_t c = 0; c < C; ++c) dr[c] = gi * (std::exp(xr[c] - l) - off);
    if (t >= 0 && t < C) dr[t] -= gi * on;
  }
}

void cross_entropy_cpu(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                       double label_smoothing, Tensor& loss, Tensor& lse) {
  visit_float(logits.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_rows(base<T>(logits), base<int64_t>(targets), logits.size(0), logits.size(1), ignore_index,
                       label_smoothing, base<T>(loss), base<T>(lse));
  });
}

void cross_entropy_backward_cpu(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                const Tensor& grad, int64_t ignore_index, double label_smoothing,
                                Tensor& dlogits) {
  visit_float(logits.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_backward_rows(base<T>(logits), base<int64_t>(targets), base<T>(lse), base<T>(grad),
                                logits.size(0), logits.size(1), ignore_index, label_smoothing,
                                base<T>(dlogits));
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(cross_entropy_kernel, cpu, cross_entropy_cpu);
NABLA_REGISTER_KERNEL(cross_entropy_backward_kernel, cpu, cross_entropy_backward_cpu);

}  // namespace nabla::ops::cpu

// CPU kernels of softmax / log_softmax (forward, backward; the math is in ops/nn.h). All tensors arrive
// contiguous, viewed as [outer, r, inner] with the softmax over r.
//
// When inner == 1 each row is a contiguous run, reduced in place (max, sum of exp, normalise); otherwise a
// task owns (o, a block of up to 256 i's) and walks k, keeping 256 running values, so memory is read
// contiguously whatever `inner` is (as ops/cpu/reduce.cpp). Sums accumulate in f64 for both f32 and f64.
// The CUDA twin is cuda/softmax.cu.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/cpu/loops.h"
#include "ops/nn.h"

namespace nabla::ops::cpu {
namespace {

constexpr int64_t kBlock = 256;

template <class T>
void softmax_rows(const T* x, int64_t outer, int64_t r, bool log, T* y) {
#pragma omp parallel for if (outer * r >= kParallelGrain) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    const T* xr = x + o * r;
    T* yr = y + o * r;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < r; ++k) m = std::max(m, xr[k]);
    double sum = 0;
    if (log) {
      for (int64_t k = 0; k < r; ++k) sum += std::exp(xr[k] - m);
      const T shift = m + static_cast<T>(std::log(sum));
      for (int64_t k = 0; k < r; ++k) yr[k] = xr[k] - shift;
    } else {
      for (int64_t k = 0; k < r; ++k) {
        yr[k] = std::exp(xr[k] - m);
        sum += yr[k];
      }
      const T inv = static_cast<T>(1.0 / sum);
      for (int64_t k = 0; k < r; ++k) yr[k] *= inv;
    }
  }
}

template <class T>
void softmax_strided(const T* x, int64_t outer, int64_t r, int64_t inner, bool log, T* y) {
  const int64_t nblk = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for if (outer * r * inner >= kParallelGrain) schedule(static)
  for (int64_t t = 0; t < outer * nblk; ++t) {
    const int64_t o = t / nblk, i0 = (t % nblk) * kBlock, len = std::min(kBlock, inner - i0);
    const T* xb = x + o * r * inner + i0;
    T* yb = y + o * r * inner + i0;
    T m[kBlock];
    double sum[kBlock];
    std::fill(m, m + len, -std::numeric_limits<T>::infinity());
    std::fill(sum, sum + len, 0.0);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < len; ++i) m[i] = std::max(m[i], xb[k * inner + i]);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < len; ++i) {
        T e = std::exp(xb[k * inner + i] - m[i]);
        if (!log) yb[k * inner + i] = e;
        sum[i] += e;
      }
    if (log) {
      for (int64_t i = 0; i < len; ++i) m[i] += static_cast<T>(std::log(sum[i]));  // now the shift
      for (int64_t k = 0; k < r; ++k)
        for (int64_t i = 0; i < len; ++i) yb[k * inner + i] = xb[k * inner + i] - m[i];
    } else {
      T inv[kBlock];
      for (int64_t i = 0; i < len; ++i) inv[i] = static_cast<T>(1.0 / sum[i]);
      for (int64_t k = 0; k < r; ++k)
        for (int64_t i = 0; i < len; ++i) yb[k * inner + i] *= inv[i];
    }
  }
}

void softmax_cpu(const Tensor& x, int64_t outer, int64_t r, int64_t inner, bool log, Tensor& y) {
  visit_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto zero) {
    using T = decltype(zero);
    if (inner == 1)
      softmax_rows(base<T>(x), outer, r, log, base<T>(y));
    else
      softmax_strided(base<T>(x), outer, r, inner, log, base<T>(y));
  });
}

// softmax: dx = y * (g - sum(g * y));  log_softmax: dx = g - exp(y) * sum(g).
template <class T>
void softmax_backward_rows(const T* g, const T* y, int64_t outer, int64_t r, bool log, T* dx) {
#pragma omp parallel for if (outer * r >= kParallelGrain) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    const T* gr = g + o * r;
    const T* yr = y + o * r;
    T* dr = dx + o * r;
    double acc = 0;
    if (log) {
      for (int64_t k = 0; k < r; ++k) acc += gr[k];
      const T s = static_cast<T>(acc);
      for (int64_t k = 0; k < r; ++k) dr[k] = gr[k] - std::exp(yr[k]) * s;
    } else {
      for (int64_t k = 0; k < r; ++k) acc += static_cast<double>(gr[k]) * yr[k];
      const T s = static_cast<T>(acc);
      for (int64_t k = 0; k < r; ++k) dr[k] = yr[k] * (gr[k] - s);
    }
  }
}

template <class T>
void softmax_backward_strided(const T* g, const T* y, int64_t outer, int64_t r, int64_t inner, bool log,
                              T* dx) {
  const int64_t nblk = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for if (outer * r * inner >= kParallelGrain) schedule(static)
  for (int64_t t = 0; t < outer * nblk; ++t) {
    const int64_t o = t / nblk, i0 = (t % nblk) * kBlock, len = std::min(kBlock, inner - i0);
    const int64_t start = o * r * inner + i0;
    const T* gb = g + start;
    const T* yb = y + start;
    T* db = dx + start;
    double acc[kBlock];
    T s[kBlock];
    std::fill(acc, acc + len, 0.0);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < len; ++i)
        acc[i] += log ? static_cast<double>(gb[k * inner + i])
                      : static_cast<double>(gb[k * inner + i]) * yb[k * inner + i];
    for (int64_t i = 0; i < len; ++i) s[i] = static_cast<T>(acc[i]);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < len; ++i) {
        const int64_t e = k * inner + i;
        db[e] = log ? gb[e] - std::exp(yb[e]) * s[i] : yb[e] * (gb[e] - s[i]);
      }
  }
}

void softmax_backward_cpu(const Tensor& g, const Tensor& y, int64_t outer, int64_t r, int64_t inner, bool log,
                          Tensor& dx) {
  visit_float(y.dtype(), log ? "log_softmax" : "softmax", [&](auto zero) {
    using T = decltype(zero);
    if (inner == 1)
      softmax_backward_rows(base<T>(g), base<T>(y), outer, r, log, base<T>(dx));
    else
      softmax_backward_strided(base<T>(g), base<T>(y), outer, r, inner, log, base<T>(dx));
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(softmax_kernel, cpu, softmax_cpu);
NABLA_REGISTER_KERNEL(softmax_backward_kernel, cpu, softmax_backward_cpu);

}  // namespace nabla::ops::cpu

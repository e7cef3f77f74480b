// CPU kernels of the nn family (the math is in ops/nn.h). All tensors arrive contiguous.
//
// softmax / log_softmax over [outer, r, inner]: when inner == 1 each row is a contiguous run, reduced in
//   place (max, sum of exp, normalise); otherwise a task owns (o, a block of up to 256 i's) and walks k,
//   keeping 256 running values, so memory is read contiguously whatever `inner` is (as ops/cpu/reduce.cpp).
// layer_norm over [rows, cols]: one row per iteration, two passes (mean, then centred variance) in f64.
//   The backward computes dx per row and the dweight/dbias column sums as partial sums over a fixed number
//   of row chunks, added up in chunk order: the result does not depend on the thread count.
// batch_norm over [n, c, s]: statistics are partial sums per (n, c) plane (parallel over n * c), added up
//   over n in order; then one pass applies y = x * scale[c] + shift[c].
// dropout: element i keeps its value when philox_uniform(seed, offset, i) >= p; any thread count draws
//   the same mask.
// Sums accumulate in f64 for both f32 and f64.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/loops.h"
#include "ops/nn.h"

namespace nabla::ops::cpu {
namespace {

constexpr int64_t kBlock = 256;
// Row chunks of the layer_norm weight/bias gradient: enough for the cores, fixed for determinism.
constexpr int64_t kMaxRowChunks = 64;

// ---- softmax -------------------------------------------------------------------------------------

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

// ---- layer_norm ----------------------------------------------------------------------------------

void layer_norm_cpu(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t rows, int64_t cols,
                    double eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  visit_float(x.dtype(), "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    const T* pw = weight.defined() ? base<T>(weight) : nullptr;
    const T* pb = bias.defined() ? base<T>(bias) : nullptr;
    T* py = base<T>(y);
    T* pm = base<T>(mean);
    T* ps = base<T>(rstd);
#pragma omp parallel for if (rows * cols >= kParallelGrain) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const T* xr = px + row * cols;
      T* yr = py + row * cols;
      double sum = 0;
      for (int64_t j = 0; j < cols; ++j) sum += xr[j];
      const double mu = cols > 0 ? sum / cols : 0.0;
      double sq = 0;
      for (int64_t j = 0; j < cols; ++j) sq += (xr[j] - mu) * (xr[j] - mu);
      const double rs = 1.0 / std::sqrt((cols > 0 ? sq / cols : 0.0) + eps);
      pm[row] = static_cast<T>(mu);
      ps[row] = static_cast<T>(rs);
      const T m = static_cast<T>(mu), s = static_cast<T>(rs);
      for (int64_t j = 0; j < cols; ++j) {
        T v = (xr[j] - m) * s;
        if (pw) v *= pw[j];
        if (pb) v += pb[j];
        yr[j] = v;
      }
    }
  });
}

void layer_norm_backward_cpu(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                             const Tensor& weight, int64_t rows, int64_t cols, Tensor& dx, Tensor& dweight,
                             Tensor& dbias) {
  visit_float(x.dtype(), "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(g);
    const T* px = base<T>(x);
    const T* pm = base<T>(mean);
    const T* ps = base<T>(rstd);
    const T* pw = weight.defined() ? base<T>(weight) : nullptr;
    T* pdx = dx.defined() ? base<T>(dx) : nullptr;
    const bool params = dweight.defined() || dbias.defined();
    const int64_t chunks = params ? std::min(rows, kMaxRowChunks) : 0;
    // partial[chunk] = {sum g * xhat, sum g} per column over the chunk's rows.
    std::vector<double> part_w(params ? chunks * cols : 0), part_b(params ? chunks * cols : 0);
    // Without dweight/dbias every row is its own task.
    const int64_t tasks = params ? chunks : rows;
#pragma omp parallel for if (rows * cols >= kParallelGrain) schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t r0 = params ? rows * t / chunks : t;
      const int64_t r1 = params ? rows * (t + 1) / chunks : t + 1;
      double* pw_acc = params ? part_w.data() + t * cols : nullptr;
      double* pb_acc = params ? part_b.data() + t * cols : nullptr;
      for (int64_t row = r0; row < r1; ++row) {
        const T* gr = pg + row * cols;
        const T* xr = px + row * cols;
        const double mu = pm[row], rs = ps[row];
        if (params)
          for (int64_t j = 0; j < cols; ++j) {
            pw_acc[j] += static_cast<double>(gr[j]) * (xr[j] - mu) * rs;
            pb_acc[j] += gr[j];
          }
        if (!pdx) continue;
        // dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)), gh = g * w
        double sum_gh = 0, sum_ghx = 0;
        for (int64_t j = 0; j < cols; ++j) {
          const double gh = pw ? static_cast<double>(gr[j]) * pw[j] : static_cast<double>(gr[j]);
          sum_gh += gh;
          sum_ghx += gh * (xr[j] - mu) * rs;
        }
        const double a = sum_gh / cols, b = sum_ghx / cols;
        T* dr = pdx + row * cols;
        for (int64_t j = 0; j < cols; ++j) {
          const double gh = pw ? static_cast<double>(gr[j]) * pw[j] : static_cast<double>(gr[j]);
          dr[j] = static_cast<T>(rs * (gh - a - (xr[j] - mu) * rs * b));
        }
      }
    }
    if (!params) return;
    T* pdw = dweight.defined() ? base<T>(dweight) : nullptr;
    T* pdb = dbias.defined() ? base<T>(dbias) : nullptr;
#pragma omp parallel for if (chunks * cols >= kParallelGrain) schedule(static)
    for (int64_t j = 0; j < cols; ++j) {
      double sw = 0, sb = 0;
      for (int64_t t = 0; t < chunks; ++t) {
        sw += part_w[t * cols + j];
        sb += part_b[t * cols + j];
      }
      if (pdw) pdw[j] = static_cast<T>(sw);
      if (pdb) pdb[j] = static_cast<T>(sb);
    }
  });
}

// ---- batch_norm ----------------------------------------------------------------------------------

// out[c] = sum over n of f(plane (n, c)), planes summed in parallel and added up in order of n.
template <class F>
std::vector<double> sum_planes(int64_t n, int64_t c, int64_t s, F plane_sum) {
  std::vector<double> part(n * c);
#pragma omp parallel for if (n * c * s >= kParallelGrain) schedule(static)
  for (int64_t p = 0; p < n * c; ++p) part[p] = plane_sum(p / c, p % c);
  std::vector<double> out(c, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) out[ch] += part[i * c + ch];
  return out;
}

void batch_norm_cpu(const Tensor& x, const Tensor& weight, const Tensor& bias, bool training, int64_t n,
                    int64_t c, int64_t s, double eps, double momentum, Tensor& mean, Tensor& var,
                    Tensor& running_mean, Tensor& running_var, Tensor& y) {
  visit_float(x.dtype(), "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    T* pmean = base<T>(mean);
    T* pvar = base<T>(var);
    std::vector<double> mu(c), sigma2(c);
    if (training) {
      const double count = static_cast<double>(n * s);
      mu = sum_planes(n, c, s, [&](int64_t i, int64_t ch) {
        const T* xp = px + (i * c + ch) * s;
        double acc = 0;
        for (int64_t k = 0; k < s; ++k) acc += xp[k];
        return acc;
      });
      for (double& v : mu) v /= count;
      sigma2 = sum_planes(n, c, s, [&](int64_t i, int64_t ch) {
        const T* xp = px + (i * c + ch) * s;
        const double m = mu[ch];
        double acc = 0;
        for (int64_t k = 0; k < s; ++k) acc += (xp[k] - m) * (xp[k] - m);
        return acc;
      });
      for (int64_t ch = 0; ch < c; ++ch) {
        sigma2[ch] /= count;
        pmean[ch] = static_cast<T>(mu[ch]);
        pvar[ch] = static_cast<T>(sigma2[ch]);
      }
      if (running_mean.defined()) {
        // The roundings of mul_(r, 1 - momentum) then add_(r, batch, alpha) in T, as the op layer once did.
        T* prm = base<T>(running_mean);
        T* prv = base<T>(running_var);
        const T keep = static_cast<T>(1.0 - momentum), am = static_cast<T>(momentum),
                av = static_cast<T>(momentum * count / (count - 1.0));
        for (int64_t ch = 0; ch < c; ++ch) {
          prm[ch] = static_cast<T>(prm[ch] * keep);
          prm[ch] = static_cast<T>(prm[ch] + static_cast<T>(am * pmean[ch]));
          prv[ch] = static_cast<T>(prv[ch] * keep);
          prv[ch] = static_cast<T>(prv[ch] + static_cast<T>(av * pvar[ch]));
        }
      }
    } else {
      for (int64_t ch = 0; ch < c; ++ch) {
        mu[ch] = pmean[ch];
        sigma2[ch] = pvar[ch];
      }
    }
    // y = x * scale + shift with scale = w * rstd, shift = b - mean * scale.
    const T* pw = weight.defined() ? base<T>(weight) : nullptr;
    const T* pb = bias.defined() ? base<T>(bias) : nullptr;
    std::vector<T> scale(c), shift(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      const double sc = (pw ? static_cast<double>(pw[ch]) : 1.0) / std::sqrt(sigma2[ch] + eps);
      scale[ch] = static_cast<T>(sc);
      shift[ch] = static_cast<T>((pb ? static_cast<double>(pb[ch]) : 0.0) - mu[ch] * sc);
    }
    T* py = base<T>(y);
#pragma omp parallel for if (n * c * s >= kParallelGrain) schedule(static)
    for (int64_t p = 0; p < n * c; ++p) {
      const T sc = scale[p % c], sh = shift[p % c];
      const T* xp = px + p * s;
      T* yp = py + p * s;
      for (int64_t k = 0; k < s; ++k) yp[k] = xp[k] * sc + sh;
    }
  });
}

void batch_norm_backward_cpu(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                             const Tensor& var, bool training, int64_t n, int64_t c, int64_t s, double eps,
                             Tensor& dx, Tensor& dweight, Tensor& dbias) {
  visit_float(x.dtype(), "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(g);
    const T* px = base<T>(x);
    const T* pw = weight.defined() ? base<T>(weight) : nullptr;
    const T* pmean = base<T>(mean);
    const T* pvar = base<T>(var);
    std::vector<double> mu(c), rs(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      mu[ch] = pmean[ch];
      rs[ch] = 1.0 / std::sqrt(static_cast<double>(pvar[ch]) + eps);
    }
    // Per channel: sum g and sum g * xhat (needed by dweight, dbias and the training-mode dx).
    std::vector<double> sum_g(c, 0.0), sum_gx(c, 0.0);
    if (training || dweight.defined() || dbias.defined()) {
      sum_g = sum_planes(n, c, s, [&](int64_t i, int64_t ch) {
        const T* gp = pg + (i * c + ch) * s;
        double acc = 0;
        for (int64_t k = 0; k < s; ++k) acc += gp[k];
        return acc;
      });
      sum_gx = sum_planes(n, c, s, [&](int64_t i, int64_t ch) {
        const T* gp = pg + (i * c + ch) * s;
        const T* xp = px + (i * c + ch) * s;
        const double m = mu[ch];
        double acc = 0;
        for (int64_t k = 0; k < s; ++k) acc += gp[k] * (xp[k] - m);
        return acc;
      });
      for (int64_t ch = 0; ch < c; ++ch) sum_gx[ch] *= rs[ch];
    }
    if (dweight.defined()) {
      T* p = base<T>(dweight);
      for (int64_t ch = 0; ch < c; ++ch) p[ch] = static_cast<T>(sum_gx[ch]);
    }
    if (dbias.defined()) {
      T* p = base<T>(dbias);
      for (int64_t ch = 0; ch < c; ++ch) p[ch] = static_cast<T>(sum_g[ch]);
    }
    if (!dx.defined()) return;
    // training: dx = w * rstd * (g - mean(g) - xhat * mean(g * xhat)); evaluation: dx = w * rstd * g.
    // Written as dx = g * a + x * b + d per channel.
    const double count = static_cast<double>(n * s);
    std::vector<T> ca(c), cb(c), cd(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      const double wr = (pw ? static_cast<double>(pw[ch]) : 1.0) * rs[ch];
      const double kx = training ? wr * rs[ch] * sum_gx[ch] / count : 0.0;  // coefficient of (x - mean)
      const double k0 = training ? wr * sum_g[ch] / count : 0.0;
      ca[ch] = static_cast<T>(wr);
      cb[ch] = static_cast<T>(-kx);
      cd[ch] = static_cast<T>(kx * mu[ch] - k0);
    }
    T* pdx = base<T>(dx);
#pragma omp parallel for if (n * c * s >= kParallelGrain) schedule(static)
    for (int64_t p = 0; p < n * c; ++p) {
      const int64_t ch = p % c;
      const T a = ca[ch], b = cb[ch], d = cd[ch];
      const T* gp = pg + p * s;
      const T* xp = px + p * s;
      T* dp = pdx + p * s;
      for (int64_t k = 0; k < s; ++k) dp[k] = gp[k] * a + xp[k] * b + d;
    }
  });
}

// ---- dropout -------------------------------------------------------------------------------------

void dropout_cpu(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset, Tensor& out) {
  visit_float(in.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    const T* pi = base<T>(in);
    T* po = base<T>(out);
    const T sc = static_cast<T>(scale);
    const int64_t numel = in.numel();
    // Philox costs far more than the multiply, so even small tensors are worth spreading over threads.
#pragma omp parallel for if (numel >= kParallelGrain / 8) schedule(static)
    for (int64_t i = 0; i < numel; ++i) po[i] = philox_uniform(seed, offset, i) >= p ? pi[i] * sc : T(0);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(softmax_kernel, cpu, softmax_cpu);
NABLA_REGISTER_KERNEL(softmax_backward_kernel, cpu, softmax_backward_cpu);
NABLA_REGISTER_KERNEL(layer_norm_kernel, cpu, layer_norm_cpu);
NABLA_REGISTER_KERNEL(layer_norm_backward_kernel, cpu, layer_norm_backward_cpu);
NABLA_REGISTER_KERNEL(batch_norm_kernel, cpu, batch_norm_cpu);
NABLA_REGISTER_KERNEL(batch_norm_backward_kernel, cpu, batch_norm_backward_cpu);
NABLA_REGISTER_KERNEL(dropout_kernel, cpu, dropout_cpu);

}  // namespace nabla::ops::cpu

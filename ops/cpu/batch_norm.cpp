// CPU kernels of batch_norm (forward, backward, training and evaluation; the math is in ops/nn.h). All
// tensors arrive contiguous, x viewed as [n, c, s].
//
// Statistics are partial sums per (n, c) plane (parallel over n * c), added up over n in order; then one
// pass applies y = x * scale[c] + shift[c] (+ residual, then the (leaky) relu, for batch_norm_add_relu). Sums
// accumulate in f64 for both f32 and f64. The backward of batch_norm_add_relu reads gm = (y > 0 ? g : a g)
// wherever batch_norm's reads g (no pass of its own), and its dx pass also writes gm as the residual's
// gradient. The CUDA twin is cuda/batch_norm.cu.
#include <cmath>
#include <vector>

#include "ops/cpu/loops.h"
#include "ops/nn.h"

namespace nabla::ops::cpu {
namespace {

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

void batch_norm_cpu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual,
                    bool relu, double slope, bool training, int64_t n, int64_t c, int64_t s, double eps,
                    double momentum, Tensor& mean, Tensor& var, Tensor& running_mean, Tensor& running_var,
                    Tensor& y) {
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
    const T* pr = residual.defined() ? base<T>(residual) : nullptr;
    const T a = static_cast<T>(slope);
    const bool leaky = slope != 0.0;  // slope 0 keeps ReLU's exact 0 (for NaN and -0 too)
#pragma omp parallel for if (n * c * s >= kParallelGrain) schedule(static)
    for (int64_t p = 0; p < n * c; ++p) {
      const T sc = scale[p % c], sh = shift[p % c];
      const T* xp = px + p * s;
      T* yp = py + p * s;
      if (!pr && !relu) {
        for (int64_t k = 0; k < s; ++k) yp[k] = xp[k] * sc + sh;
        continue;
      }
      const T* rp = pr ? pr + p * s : nullptr;
      for (int64_t k = 0; k < s; ++k) {
        T v = xp[k] * sc + sh;
        if (rp) v += rp[k];
        yp[k] = relu && !(v > T(0)) ? (leaky ? a * v : T(0)) : v;
      }
    }
  });
}

void batch_norm_backward_cpu(const Tensor& g, const Tensor& x, const Tensor& relu_out, double slope,
                             const Tensor& weight, const Tensor& mean, const Tensor& var, bool training,
                             int64_t n, int64_t c, int64_t s, double eps, Tensor& dx, Tensor& dweight,
                             Tensor& dbias, Tensor& dresidual) {
  visit_float(x.dtype(), "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    // The (leaky) ReLU backward of batch_norm_add_relu folded into every read of g: gm = g where the
    // forward's output is positive, else slope * g (0 for ReLU; plain batch_norm: py == nullptr, gm = g).
    const T* pg = base<T>(g);
    const T* py = relu_out.defined() ? base<T>(relu_out) : nullptr;
    const T a = static_cast<T>(slope);
    const bool leaky = slope != 0.0;
    const auto gm = [pg, py, a, leaky](int64_t e) -> T {
      return py && !(py[e] > T(0)) ? (leaky ? a * pg[e] : T(0)) : pg[e];
    };
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
        const int64_t o = (i * c + ch) * s;
        double acc = 0;
        for (int64_t k = 0; k < s; ++k) acc += gm(o + k);
        return acc;
      });
      sum_gx = sum_planes(n, c, s, [&](int64_t i, int64_t ch) {
        const int64_t o = (i * c + ch) * s;
        const T* xp = px + o;
        const double m = mu[ch];
        double acc = 0;
        for (int64_t k = 0; k < s; ++k) acc += gm(o + k) * (xp[k] - m);
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
    if (!dx.defined() && !dresidual.defined()) return;
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
    // One pass: dx, and the residual's gradient gm (batch_norm_add_relu).
    T* pdx = dx.defined() ? base<T>(dx) : nullptr;
    T* pdr = dresidual.defined() ? base<T>(dresidual) : nullptr;
#pragma omp parallel for if (n * c * s >= kParallelGrain) schedule(static)
    for (int64_t p = 0; p < n * c; ++p) {
      const int64_t ch = p % c;
      const T a = ca[ch], b = cb[ch], d = cd[ch];
      const T* xp = px + p * s;
      if (!py) {  // plain batch_norm (dx defined, no residual): the loop without branches
        const T* gp = pg + p * s;
        T* dp = pdx + p * s;
        for (int64_t k = 0; k < s; ++k) dp[k] = gp[k] * a + xp[k] * b + d;
        continue;
      }
      for (int64_t k = 0; k < s; ++k) {
        const T gv = gm(p * s + k);
        if (pdr) pdr[p * s + k] = gv;
        if (pdx) pdx[p * s + k] = gv * a + xp[k] * b + d;
      }
    }
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(batch_norm_kernel, cpu, batch_norm_cpu);
NABLA_REGISTER_KERNEL(batch_norm_backward_kernel, cpu, batch_norm_backward_cpu);

}  // namespace nabla::ops::cpu

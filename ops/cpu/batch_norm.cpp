// CPU kernels of batch_norm (forward, backward, training and evaluation; the math is in ops/nn.h). All
// tensors arrive contiguous, x viewed as [n, c, s].
//
// Statistics are partial sums per (n, c) plane (parallel over n * c), added up over n in order; then one
// pass applies y = x * scale[c] + shift[c] (+ residual, then relu, for batch_norm_add_relu). Sums accumulate
// in f64 for both f32 and f64. The backward of batch_norm_add_relu reads gm = (y > 0 ? g : 0) wherever
// batch_norm's reads g, and writes gm as the residual's gradient. The CUDA twin is cuda/batch_norm.cu.
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
                    bool relu, bool training, int64_t n, int64_t c, int64_t s, double eps, double momentum,
                    Tensor& mean, Tensor& var, Tensor& running_mean, Tensor& running_var, Tensor& y) {
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
        yp[k] = relu && !(v > T(0)) ? T(0) : v;
      }
    }
  });
}

void batch_norm_backward_cpu(const Tensor& g_in, const Tensor& x, const Tensor& relu_out,
                             const Tensor& weight, const Tensor& mean, const Tensor& var, bool training,
                             int64_t n, int64_t c, int64_t s, double eps, Tensor& dx, Tensor& dweight,
                             Tensor& dbias, Tensor& dresidual) {
  visit_float(x.dtype(), "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    // The ReLU backward first (gm = g where the output is positive), into dresidual when it is wanted: the
    // CPU keeps this a separate pass for clarity; the sums and dx below read gm as batch_norm reads g.
    Tensor g = g_in;
    if (relu_out.defined()) {
      g = dresidual.defined() ? dresidual : Tensor::empty(g_in.shape(), g_in.dtype(), g_in.device());
      const T* src = base<T>(g_in);
      const T* py = base<T>(relu_out);
      T* dst = base<T>(g);
      const int64_t total = n * c * s;
#pragma omp parallel for if (total >= kParallelGrain) schedule(static)
      for (int64_t e = 0; e < total; ++e) dst[e] = py[e] > T(0) ? src[e] : T(0);
    }
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

}  // namespace

NABLA_REGISTER_KERNEL(batch_norm_kernel, cpu, batch_norm_cpu);
NABLA_REGISTER_KERNEL(batch_norm_backward_kernel, cpu, batch_norm_backward_cpu);

}  // namespace nabla::ops::cpu

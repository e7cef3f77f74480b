// CPU kernels of layer_norm (forward, backward; the math is in ops/nn.h). All tensors arrive contiguous,
// x viewed as [rows, cols].
//
// One row per iteration, two passes (mean, then centred variance) in f64. The backward computes dx per row
// and the dweight/dbias column sums as partial sums over a fixed number of row chunks, added up in chunk
// order: the result does not depend on the thread count. The CUDA twin is cuda/layer_norm.cu.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/loops.h"
#include "ops/nn.h"

namespace nabla::ops::cpu {
namespace {

// Row chunks of the layer_norm weight/bias gradient: enough for the cores, fixed for determinism.
constexpr int64_t kMaxRowChunks = 64;

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

}  // namespace

NABLA_REGISTER_KERNEL(layer_norm_kernel, cpu, layer_norm_cpu);
NABLA_REGISTER_KERNEL(layer_norm_backward_kernel, cpu, layer_norm_backward_cpu);

}  // namespace nabla::ops::cpu

// CPU kernels of conv2d: im2col + GEMM (CBLAS). Pooling and nearest upsampling (same ops/conv.h) are in
// ops/cpu/pool.cpp. The CUDA twin is cuda/conv.cu.
//
// conv2d, per (batch item n, group gi), with cg = C_in / groups input and kg = C_out / groups output
// channels and ckk = cg * kh * kw:
//   forward   cols[ckk, OH*OW] = im2col(x[n, gi])          y[n, gi] (kg x OH*OW) = W_gi (kg x ckk) @ cols (+
//   b) backward  dW_gi += dY[n, gi] @ cols^T                 dcols = W_gi^T @ dY[n, gi]    dx[n, gi] =
//   col2im(dcols)
//             db = sum of dY over n, i, j
// A 1x1 stride-1 unpadded conv's cols are x[n, gi] itself ([cg, H*W]), so it is one GEMM with no copy.
// Depthwise convs (groups == C_in == C_out) skip im2col: a direct loop per (n, c) plane, and dw per channel.
// Threads: with at least as many (n, group) items as threads, items run in parallel (each thread owns its
// cols buffer and, in backward, its own dW accumulator, summed at the end); OpenBLAS runs single-threaded
// inside an OpenMP parallel region, so nothing is oversubscribed. With fewer items (batch 1), items run one
// after another, im2col/col2im split over threads and OpenBLAS threads each GEMM.
//
// Channels-last calls (the geometry's flag) are computed in NCHW: inputs copied to row-major scratch, the
// NCHW kernel run, results copied into the caller's channels-last outputs. The CPU gains nothing from NHWC
// here (im2col reads planes), and this keeps one set of loops; what matters is that the values and the
// output layouts equal the CUDA backend's, which runs NHWC natively.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "ops/conv.h"
#include "ops/cpu/loops.h"
#include "ops/cpu/nchw_scratch.h"
#include "ops/elementwise.h"
#include "ops/util.h"

namespace nabla::ops::cpu {
namespace {

// Row-major C[m, n] = op(A) @ op(B) + beta C.
template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
          T beta, T* c, int64_t ldc) {
  const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

// Uninitialised scratch (std::vector would zero megabytes of cols on every call).
template <class T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return std::unique_ptr<T[]>(n > 0 ? new T[n] : nullptr);
}

bool is_pointwise(const Conv2dGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// For kernel column q: output columns j in [lo, hi) read a real input column (j * sw + q * dw - pw in [0,
// W)).
struct ValidCols {
  int64_t lo, hi, offset;  // offset = q * dw - pw, the input column of output column 0
};
ValidCols valid_cols(const Conv2dGeometry& g, int64_t q) {
  const int64_t off = q * g.dil_w - g.pad_w;
  int64_t lo = off >= 0 ? 0 : ceil_div(-off, g.stride_w);
  int64_t hi = g.w - off <= 0 ? 0 : ceil_div(g.w - off, g.stride_w);
  lo = std::min(lo, g.ow);
  hi = std::clamp(hi, lo, g.ow);
  return {lo, hi, off};
}

// x: [cg, H, W] -> cols: [cg * kh * kw, OH * OW]; padding reads as 0.
template <class T>
void im2col(const Conv2dGeometry& g, int64_t cg, const T* x, T* cols, bool parallel) {
  const int64_t rows = cg * g.kh * g.kw, ohw = g.oh * g.ow;
#pragma omp parallel for if (parallel && rows * ohw >= kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / (g.kh * g.kw), p = (r / g.kw) % g.kh, q = r % g.kw;
    const T* plane = x + c * g.h * g.w;
    T* row = cols + r * ohw;
    const ValidCols vc = valid_cols(g, q);
    for (int64_t i = 0; i < g.oh; ++i) {
      T* out = row + i * g.ow;
      const int64_t ih = i * g.stride_h + p * g.dil_h - g.pad_h;
      if (ih < 0 || ih >= g.h) {
        std::fill(out, out + g.ow, T(0));
        continue;
      }
      const T* src = plane + ih * g.w;
      std::fill(out, out + vc.lo, T(0));
      if (g.stride_w == 1) {
        std::memcpy(out + vc.lo, src + vc.lo + vc.offset, (vc.hi - vc.lo) * sizeof(T));
      } else {
        for (int64_t j = vc.lo; j < vc.hi; ++j) out[j] = src[j * g.stride_w + vc.offset];
      }
      std::fill(out + vc.hi, out + g.ow, T(0));
    }
  }
}

// The adjoint of im2col: dx[cg, H, W] = sum of every cols entry that read it (padding entries dropped).
template <class T>
void col2im(const Conv2dGeometry& g, int64_t cg, const T* cols, T* dx, bool parallel) {
  const int64_t ohw = g.oh * g.ow, kk = g.kh * g.kw;
  // One channel per iteration: a channel's rows only touch its own plane, so threads never share a target.
#pragma omp parallel for if (parallel && cg * kk * ohw >= kParallelGrain) schedule(static)
  for (int64_t c = 0; c < cg; ++c) {
    T* plane = dx + c * g.h * g.w;
    std::fill(plane, plane + g.h * g.w, T(0));
    for (int64_t p = 0; p < g.kh; ++p)
      for (int64_t q = 0; q < g.kw; ++q) {
        const T* row = cols + (c * kk + p * g.kw + q) * ohw;
        const ValidCols vc = valid_cols(g, q);
        for (int64_t i = 0; i < g.oh; ++i) {
          const int64_t ih = i * g.stride_h + p * g.dil_h - g.pad_h;
          if (ih < 0 || ih >= g.h) continue;
          T* dst = plane + ih * g.w;
          const T* src = row + i * g.ow;
          for (int64_t j = vc.lo; j < vc.hi; ++j) dst[j * g.stride_w + vc.offset] += src[j];
        }
      }
  }
}

// Items (n, group) run in parallel when there are enough of them to keep every thread busy and the whole
// conv is worth waking the threads for (multiply-adds of all items).
bool items_in_parallel(const Conv2dGeometry& g) {
  const int nt = omp_get_max_threads();
  const int64_t items = g.n * g.groups;
  const int64_t macs = g.n * g.c_out * g.oh * g.ow * (g.c_in / g.groups) * g.kh * g.kw;
  return nt > 1 && items >= nt && macs >= 8 * kParallelGrain;
}

// Depthwise convs (groups == C_in == C_out, DARTS's separable and dilated convs): a direct loop per
// (n, c) plane. The im2col + GEMM path would run N x C GEMMs of one row each.
bool is_depthwise(const Conv2dGeometry& g) {
  return g.groups > 1 && g.groups == g.c_in && g.groups == g.c_out;
}

template <class T>
void depthwise_forward_t(const Conv2dGeometry& g, const T* px, const T* pw, const T* pb, T* py) {
  const int64_t planes = g.n * g.c_out, hw = g.h * g.w, ohw = g.oh * g.ow, kk = g.kh * g.kw;
#pragma omp parallel for if (planes * ohw * kk >= kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int64_t c = plane % g.c_out;
    const T* xp = px + plane * hw;
    const T* wc = pw + c * kk;
    T* yp = py + plane * ohw;
    const T b = pb ? pb[c] : T(0);
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t j = 0; j < g.ow; ++j) {
        T acc = b;
        for (int64_t p = 0; p < g.kh; ++p) {
          const int64_t r = i * g.stride_h + p * g.dil_h - g.pad_h;
          if (r < 0 || r >= g.h) continue;
          for (int64_t q = 0; q < g.kw; ++q) {
            const int64_t col = j * g.stride_w + q * g.dil_w - g.pad_w;
            if (col >= 0 && col < g.w) acc += wc[p * g.kw + q] * xp[r * g.w + col];
          }
        }
        yp[i * g.ow + j] = acc;
      }
  }
}

// dx per (n, c) plane (a scatter within the plane), dw per channel (summed over n inside one thread).
template <class T>
void depthwise_backward_t(const Conv2dGeometry& g, const T* px, const T* pw, const T* pgy, T* pdx, T* pdw) {
  const int64_t hw = g.h * g.w, ohw = g.oh * g.ow, kk = g.kh * g.kw;
  auto taps = [&](int64_t plane, auto&& f) {  // f(output index, input index, tap)
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t p = 0; p < g.kh; ++p) {
        const int64_t r = i * g.stride_h + p * g.dil_h - g.pad_h;
        if (r < 0 || r >= g.h) continue;
        for (int64_t j = 0; j < g.ow; ++j)
          for (int64_t q = 0; q < g.kw; ++q) {
            const int64_t col = j * g.stride_w + q * g.dil_w - g.pad_w;
            if (col >= 0 && col < g.w) f(i * g.ow + j, r * g.w + col, p * g.kw + q);
          }
      }
    (void)plane;
  };
  const bool parallel = g.n * g.c_out * ohw * kk >= kParallelGrain;
  if (pdx) {
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c_out; ++plane) {
      const T* gyp = pgy + plane * ohw;
      const T* wc = pw + (plane % g.c_out) * kk;
      T* dxp = pdx + plane * hw;
      std::fill(dxp, dxp + hw, T(0));
      taps(plane, [&](int64_t o, int64_t in, int64_t t) { dxp[in] += wc[t] * gyp[o]; });
    }
  }
  if (pdw) {
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t c = 0; c < g.c_out; ++c) {
      double acc[64] = {};  // kk <= 64 (checked by the caller); f64 sums over n * OH * OW terms
      for (int64_t n = 0; n < g.n; ++n) {
        const int64_t plane = n * g.c_out + c;
        const T* gyp = pgy + plane * ohw;
        const T* xp = px + plane * hw;
        taps(plane,
             [&](int64_t o, int64_t in, int64_t t) { acc[t] += static_cast<double>(gyp[o]) * xp[in]; });
      }
      for (int64_t t = 0; t < kk; ++t) pdw[c * kk + t] = static_cast<T>(acc[t]);
    }
  }
}

template <class T>
void conv2d_forward_t(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                      Tensor& y) {
  const int64_t cg = g.c_in / g.groups, kg = g.c_out / g.groups, ckk = cg * g.kh * g.kw;
  const int64_t hw = g.h * g.w, ohw = g.oh * g.ow, items = g.n * g.groups;
  const bool direct = is_pointwise(g);
  const T* px = base<T>(x);
  const T* pw = base<T>(w);
  const T* pb = bias.defined() ? base<T>(bias) : nullptr;
  T* py = base<T>(y);
  if (is_depthwise(g) && g.kh * g.kw <= 64) return depthwise_forward_t<T>(g, px, pw, pb, py);
  auto run_item = [&](int64_t item, T* cols, bool inner_parallel) {
    const int64_t n = item / g.groups, gi = item % g.groups;
    const T* xg = px + (n * g.c_in + gi * cg) * hw;
    T* yg = py + (n * g.c_out + gi * kg) * ohw;
    const T* src = xg;
    if (!direct) {
      im2col(g, cg, xg, cols, inner_parallel);
      src = cols;
    }
    T beta = T(0);
    if (pb) {  // start from the bias and let the GEMM add onto it
      for (int64_t k = 0; k < kg; ++k) std::fill(yg + k * ohw, yg + (k + 1) * ohw, pb[gi * kg + k]);
      beta = T(1);
    }
    gemm<T>(false, false, kg, ohw, ckk, pw + gi * kg * ckk, ckk, src, ohw, beta, yg, ohw);
  };
  const int64_t cols_size = direct ? 0 : ckk * ohw;
  if (items_in_parallel(g)) {
#pragma omp parallel
    {
      auto cols = scratch<T>(cols_size);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < items; ++item) run_item(item, cols.get(), false);
    }
  } else {
    auto cols = scratch<T>(cols_size);
    for (int64_t item = 0; item < items; ++item) run_item(item, cols.get(), true);
  }
}

template <class T>
void conv2d_backward_t(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& gy,
                       Tensor& dx, Tensor& dw, Tensor& db) {
  const int64_t cg = g.c_in / g.groups, kg = g.c_out / g.groups, ckk = cg * g.kh * g.kw;
  const int64_t hw = g.h * g.w, ohw = g.oh * g.ow, items = g.n * g.groups;
  const bool direct = is_pointwise(g), want_x = dx.defined(), want_w = dw.defined();
  const T* pgy = base<T>(gy);

  if (db.defined()) {
    T* pdb = base<T>(db);
#pragma omp parallel for if (g.n * g.c_out * ohw >= kParallelGrain) schedule(static)
    for (int64_t k = 0; k < g.c_out; ++k) {
      double s = 0;  // f32 sums over n * OH * OW (hundreds of thousands of terms) lose digits otherwise
      for (int64_t n = 0; n < g.n; ++n) {
        const T* row = pgy + (n * g.c_out + k) * ohw;
        for (int64_t e = 0; e < ohw; ++e) s += row[e];
      }
      pdb[k] = static_cast<T>(s);
    }
  }
  if (!want_x && !want_w) return;

  const T* px = want_w ? base<T>(x) : nullptr;
  const T* pw = want_x ? base<T>(w) : nullptr;
  T* pdx = want_x ? base<T>(dx) : nullptr;
  T* pdw = want_w ? base<T>(dw) : nullptr;
  if (is_depthwise(g) && g.kh * g.kw <= 64) return depthwise_backward_t<T>(g, px, pw, pgy, pdx, pdw);
  const int64_t w_size = g.c_out * ckk;
  if (want_w) std::fill(pdw, pdw + w_size, T(0));

  auto run_item = [&](int64_t item, T* cols, T* dcols, T* dw_acc, bool inner_parallel) {
    const int64_t n = item / g.groups, gi = item % g.groups;
    const T* gyg = pgy + (n * g.c_out + gi * kg) * ohw;
    if (want_w) {
      const T* xg = px + (n * g.c_in + gi * cg) * hw;
      const T* src = xg;
      if (!direct) {
        im2col(g, cg, xg, cols, inner_parallel);
        src = cols;
      }
      gemm<T>(false, true, kg, ckk, ohw, gyg, ohw, src, ohw, T(1), dw_acc + gi * kg * ckk, ckk);
    }
    if (want_x) {
      T* dxg = pdx + (n * g.c_in + gi * cg) * hw;
      gemm<T>(true, false, ckk, ohw, kg, pw + gi * kg * ckk, ckk, gyg, ohw, T(0), direct ? dxg : dcols, ohw);
      if (!direct) col2im(g, cg, dcols, dxg, inner_parallel);
    }
  };

  const int64_t cols_size = direct ? 0 : ckk * ohw;
  if (items_in_parallel(g)) {
    // Thread 0 accumulates dW in place; the others into zeroed buffers summed in afterwards.
    std::vector<std::unique_ptr<T[]>> partial(omp_get_max_threads());
#pragma omp parallel
    {
      const int tid = omp_get_thread_num();
      auto cols = scratch<T>(want_w ? cols_size : 0);
      auto dcols = scratch<T>(want_x ? cols_size : 0);
      T* acc = pdw;
      if (want_w && tid > 0) {
        partial[tid] = scratch<T>(w_size);
        acc = partial[tid].get();
        std::fill(acc, acc + w_size, T(0));
      }
#pragma omp for schedule(static)
      for (int64_t item = 0; item < items; ++item) run_item(item, cols.get(), dcols.get(), acc, false);
    }
    if (want_w) {
      const int64_t nparts = static_cast<int64_t>(partial.size());
#pragma omp parallel for if (w_size * nparts >= kParallelGrain) schedule(static)
      for (int64_t e = 0; e < w_size; ++e)
        for (int64_t t = 1; t < nparts; ++t)
          if (partial[t]) pdw[e] += partial[t][e];
    }
  } else {
    auto cols = scratch<T>(want_w ? cols_size : 0);
    auto dcols = scratch<T>(want_x ? cols_size : 0);
    for (int64_t item = 0; item < items; ++item) run_item(item, cols.get(), dcols.get(), pdw, true);
  }
}

void conv2d_forward_cpu(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                        Tensor& y) {
  if (g.channels_last) {
    Conv2dGeometry g2 = g;
    g2.channels_last = false;
    Tensor ys = nchw_out(y);
    conv2d_forward_cpu(g2, nchw_in(x), nchw_in(w), bias, ys);
    return place(ys, y);
  }
  visit_float(y.dtype(), "conv2d", [&](auto zero) { conv2d_forward_t<decltype(zero)>(g, x, w, bias, y); });
}

void conv2d_backward_cpu(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& gy,
                         Tensor& dx, Tensor& dw, Tensor& db) {
  if (g.channels_last) {
    Conv2dGeometry g2 = g;
    g2.channels_last = false;
    Tensor dxs = nchw_out(dx), dws = nchw_out(dw);
    conv2d_backward_cpu(g2, nchw_in(x), nchw_in(w), nchw_in(gy), dxs, dws, db);
    place(dxs, dx);
    return place(dws, dw);
  }
  visit_float(gy.dtype(), "conv2d",
              [&](auto zero) { conv2d_backward_t<decltype(zero)>(g, x, w, gy, dx, dw, db); });
}

}  // namespace

NABLA_REGISTER_KERNEL(conv2d_forward_kernel, cpu, conv2d_forward_cpu);
NABLA_REGISTER_KERNEL(conv2d_backward_kernel, cpu, conv2d_backward_cpu);

}  // namespace nabla::ops::cpu

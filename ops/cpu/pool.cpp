// CPU kernels of pooling (max, average, adaptive average) and nearest upsampling, forward and backward, as
// loops (the geometry and maths are in ops/conv.h). The CUDA twin is cuda/pool.cu.
//
// Pools work on planes = N * C independent [H, W] maps, one plane per loop iteration, so backward scatters
// (max-pool argmax, overlapping average windows) never race.
//
// Channels-last calls (the geometry's flag) are computed in NCHW: inputs copied to row-major scratch, the
// NCHW kernel run, results copied into the caller's channels-last outputs. The CPU gains nothing from NHWC
// here (the loops read planes), and this keeps one set of loops; what matters is that the values and the
// output layouts equal the CUDA backend's, which runs NHWC natively.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/conv.h"
#include "ops/cpu/loops.h"
#include "ops/cpu/nchw_scratch.h"

namespace nabla::ops::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs f(plane) for every plane, in parallel when the whole job is big enough.
template <class F>
void for_each_plane(const Pool2dGeometry& g, int64_t work_per_plane, F&& f) {
#pragma omp parallel for if (g.planes * work_per_plane >= kParallelGrain) schedule(static)
  for (int64_t pl = 0; pl < g.planes; ++pl) f(pl);
}

// The input rectangle [h0, h1) x [w0, w1) averaged into output (i, j), and the divisor.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double count;
};

AvgWindow avg_window(const Pool2dGeometry& g, int64_t i, int64_t j) {
  if (g.adaptive) {
    const int64_t h0 = i * g.h / g.oh, h1 = ceil_div((i + 1) * g.h, g.oh);
    const int64_t w0 = j * g.w / g.ow, w1 = ceil_div((j + 1) * g.w, g.ow);
    return {h0, h1, w0, w1, static_cast<double>((h1 - h0) * (w1 - w0))};
  }
  const int64_t hs = i * g.stride_h - g.pad_h, ws = j * g.stride_w - g.pad_w;
  // The window clipped to the padded input (what count_include_pad counts), then to the real input.
  const int64_t he = std::min(hs + g.kh, g.h + g.pad_h), we = std::min(ws + g.kw, g.w + g.pad_w);
  const int64_t padded = (he - hs) * (we - ws);
  const int64_t h0 = std::max<int64_t>(hs, 0), h1 = std::min(he, g.h);
  const int64_t w0 = std::max<int64_t>(ws, 0), w1 = std::min(we, g.w);
  return {h0, h1, w0, w1, static_cast<double>(g.count_include_pad ? padded : (h1 - h0) * (w1 - w0))};
}

Pool2dGeometry as_nchw(const Pool2dGeometry& g) {
  Pool2dGeometry g2 = g;
  g2.channels_last = false;
  return g2;
}

void max_pool2d_forward_cpu(const Pool2dGeometry& g, const Tensor& x, Tensor& y, Tensor& indices) {
  if (g.channels_last) {
    Tensor ys = nchw_out(y), is = nchw_out(indices);
    max_pool2d_forward_cpu(as_nchw(g), nchw_in(x), ys, is);
    place(ys, y);
    return place(is, indices);
  }
  visit_float(x.dtype(), "max_pool2d", [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    T* py = base<T>(y);
    int64_t* pi = base<int64_t>(indices);
    for_each_plane(g, g.oh * g.ow * g.kh * g.kw, [&](int64_t pl) {
      const T* in = px + pl * g.h * g.w;
      T* out = py + pl * g.oh * g.ow;
      int64_t* idx = pi + pl * g.oh * g.ow;
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          const int64_t hs = i * g.stride_h - g.pad_h, ws = j * g.stride_w - g.pad_w;
          const int64_t h0 = std::max<int64_t>(hs, 0), h1 = std::min(hs + g.kh, g.h);
          const int64_t w0 = std::max<int64_t>(ws, 0), w1 = std::min(ws + g.kw, g.w);
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_at = h0 * g.w + w0;
          for (int64_t a = h0; a < h1; ++a)
            for (int64_t b = w0; b < w1; ++b) {
              const T v = in[a * g.w + b];
              if (v > best || std::isnan(v)) {  // NaN propagates, as in PyTorch
                best = v;
                best_at = a * g.w + b;
              }
            }
          out[i * g.ow + j] = best;
          idx[i * g.ow + j] = best_at;
        }
    });
  });
}

void max_pool2d_backward_cpu(const Pool2dGeometry& g, const Tensor& gy, const Tensor& indices, Tensor& dx) {
  if (g.channels_last) {
    Tensor dxs = nchw_out(dx);
    max_pool2d_backward_cpu(as_nchw(g), nchw_in(gy), nchw_in(indices), dxs);
    return place(dxs, dx);
  }
  visit_float(gy.dtype(), "max_pool2d", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(gy);
    const int64_t* pi = base<int64_t>(indices);
    T* pd = base<T>(dx);
    for_each_plane(g, g.h * g.w + g.oh * g.ow, [&](int64_t pl) {
      T* d = pd + pl * g.h * g.w;
      std::fill(d, d + g.h * g.w, T(0));
      for (int64_t e = 0; e < g.oh * g.ow; ++e) d[pi[pl * g.oh * g.ow + e]] += pg[pl * g.oh * g.ow + e];
    });
  });
}

void avg_pool2d_forward_cpu(const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  if (g.channels_last) {
    Tensor s = nchw_out(y);
    avg_pool2d_forward_cpu(as_nchw(g), nchw_in(x), s);
    return place(s, y);
  }
  visit_float(x.dtype(), "avg_pool2d", [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    T* py = base<T>(y);
    const int64_t window = g.adaptive ? ceil_div(g.h, g.oh) * ceil_div(g.w, g.ow) : g.kh * g.kw;
    for_each_plane(g, g.oh * g.ow * window, [&](int64_t pl) {
      const T* in = px + pl * g.h * g.w;
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          const AvgWindow aw = avg_window(g, i, j);
          double s = 0;
          for (int64_t a = aw.h0; a < aw.h1; ++a)
            for (int64_t b = aw.w0; b < aw.w1; ++b) s += in[a * g.w + b];
          py[(pl * g.oh + i) * g.ow + j] = static_cast<T>(s / aw.count);
        }
    });
  });
}

void avg_pool2d_backward_cpu(const Pool2dGeometry& g, const Tensor& gy, Tensor& dx) {
  if (g.channels_last) {
    Tensor s = nchw_out(dx);
    avg_pool2d_backward_cpu(as_nchw(g), nchw_in(gy), s);
    return place(s, dx);
  }
  visit_float(gy.dtype(), "avg_pool2d", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(gy);
    T* pd = base<T>(dx);
    const int64_t window = g.adaptive ? ceil_div(g.h, g.oh) * ceil_div(g.w, g.ow) : g.kh * g.kw;
    for_each_plane(g, g.h * g.w + g.oh * g.ow * window, [&](int64_t pl) {
      T* d = pd + pl * g.h * g.w;
      std::fill(d, d + g.h * g.w, T(0));
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          const AvgWindow aw = avg_window(g, i, j);
          const T v = static_cast<T>(pg[(pl * g.oh + i) * g.ow + j] / aw.count);
          for (int64_t a = aw.h0; a < aw.h1; ++a)
            for (int64_t b = aw.w0; b < aw.w1; ++b) d[a * g.w + b] += v;
        }
    });
  });
}

// kh, kw hold the integer scales.
void upsample_nearest2d_forward_cpu(const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  if (g.channels_last) {
    Tensor s = nchw_out(y);
    upsample_nearest2d_forward_cpu(as_nchw(g), nchw_in(x), s);
    return place(s, y);
  }
  visit_float(x.dtype(), "upsample_nearest2d", [&](auto zero) {
    using T = decltype(zero);
    const T* px = base<T>(x);
    T* py = base<T>(y);
    for_each_plane(g, g.oh * g.ow, [&](int64_t pl) {
      const T* in = px + pl * g.h * g.w;
      T* out = py + pl * g.oh * g.ow;
      for (int64_t i = 0; i < g.oh; ++i) {
        const T* src = in + (i / g.kh) * g.w;
        for (int64_t j = 0; j < g.ow; ++j) out[i * g.ow + j] = src[j / g.kw];
      }
    });
  });
}

void upsample_nearest2d_backward_cpu(const Pool2dGeometry& g, const Tensor& gy, Tensor& dx) {
  if (g.channels_last) {
    Tensor s = nchw_out(dx);
    upsample_nearest2d_backward_cpu(as_nchw(g), nchw_in(gy), s);
    return place(s, dx);
  }
  visit_float(gy.dtype(), "upsample_nearest2d", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = base<T>(gy);
    T* pd = base<T>(dx);
    for_each_plane(g, g.oh * g.ow, [&](int64_t pl) {
      const T* in = pg + pl * g.oh * g.ow;
      T* d = pd + pl * g.h * g.w;
      std::fill(d, d + g.h * g.w, T(0));
      for (int64_t i = 0; i < g.oh; ++i) {
        T* dst = d + (i / g.kh) * g.w;
        for (int64_t j = 0; j < g.ow; ++j) dst[j / g.kw] += in[i * g.ow + j];
      }
    });
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(max_pool2d_forward_kernel, cpu, max_pool2d_forward_cpu);
NABLA_REGISTER_KERNEL(max_pool2d_backward_kernel, cpu, max_pool2d_backward_cpu);
NABLA_REGISTER_KERNEL(avg_pool2d_forward_kernel, cpu, avg_pool2d_forward_cpu);
NABLA_REGISTER_KERNEL(avg_pool2d_backward_kernel, cpu, avg_pool2d_backward_cpu);
NABLA_REGISTER_KERNEL(upsample_nearest2d_forward_kernel, cpu, upsample_nearest2d_forward_cpu);
NABLA_REGISTER_KERNEL(upsample_nearest2d_backward_kernel, cpu, upsample_nearest2d_backward_cpu);

}  // namespace nabla::ops::cpu

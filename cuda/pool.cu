// CUDA pooling and nearest upsampling (the max_pool2d / avg_pool2d (plain and adaptive) /
// upsample_nearest2d slots of ops/conv.h). The maths is the CPU kernels' (ops/cpu/pool.cpp), term for term:
//
//   max_pool2d   y[i, j] = max over the window clipped to the input (padding never wins), first maximum
//                kept, a NaN wins (the last NaN, as the CPU loop); indices[i, j] = a * W + b of the winner.
//                backward: dx[a, b] = sum of dy[i, j] over the outputs whose saved index is a * W + b.
//   avg_pool2d   y[i, j] = (sum of the window clipped to the input) / count, count = the window clipped to
//                the padded input (count_include_pad) or to the real input; adaptive windows are rows
//                [floor(i H / OH), ceil((i + 1) H / OH)) (same for columns), count = their area.
//                backward: dx[a, b] = sum over the windows (i, j) holding (a, b) of T(dy[i, j] / count).
//   upsample     y[i, j] = x[i / sh, j / sw]; backward dx[a, b] = sum of the sh x sw block of dy.
//
// Launch shape: one thread per element of the tensor being written (grid-stride loop, 256 threads), so the
// writes are coalesced and no two threads write one element. Backward passes are GATHERS, not scatters:
// each input element's thread walks the few output windows that can contain it (ceil(k / s) per dim) and
// adds their contributions in increasing (i, j) order, the order in which the CPU kernel adds them; so
// there are no atomics, the result is deterministic, and f32 results are bit-identical to the CPU ones.
// Sums accumulate in f32 (f64 for f64) except the average pool's forward window sum, which is f64 for f32
// input as on the CPU. 32-bit index arithmetic is used whenever the tensors are small enough.
//
// Channels-last (template flag CL, from the geometry): every tensor of the call is [N, C, *, *] with memory
// order N, H, W, C. The thread of linear index idx still writes element idx of its output in memory order
// (c fastest, so a warp's writes and reads are coalesced across channels), splitting idx as (n, a, b, c);
// plane p = n C + c starts at n H W C + c and its elements are C apart. Indices and arithmetic per element
// are unchanged, so results equal the NCHW kernels' bit for bit.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "ops/conv.h"

namespace nabla::cuda {
namespace {
using ops::Pool2dGeometry;

// The geometry in the index type I of the launch.
template <class I>
struct Geo {
  I planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
  bool count_include_pad, adaptive;
  I c;  // channels (channels-last addressing)
};

// Splits a linear index of a [planes, H, W] tensor (NCHW) or [N, H, W, C] (CL, memory order) into its
// plane and in-plane position (a, b).
template <class I, bool CL>
__device__ __forceinline__ void split(I idx, I H, I W, I C, I& pl, I& a, I& b) {
  if constexpr (CL) {
    const I c = idx % C;
    I t = idx / C;
    b = t % W;
    t /= W;
    a = t % H;
    pl = (t / H) * C + c;
  } else {
    b = idx % W;
    const I t = idx / W;
    a = t % H;
    pl = t / H;
  }
}

// Offset of plane pl's element (0, 0) in an [*, H, W] tensor, and the distance between its elements.
template <class I, bool CL>
__device__ __forceinline__ I plane_base(I pl, I H, I W, I C) {
  if constexpr (CL)
    return (pl / C) * H * W * C + pl % C;
  else
    return pl * H * W;
}
template <class I, bool CL>
__device__ __forceinline__ I elem_stride(I C) {
  if constexpr (CL)
    return C;
  else
    return I(1);
}

template <class I>
Geo<I> geo(const Pool2dGeometry& g) {
  return {static_cast<I>(g.planes),
          static_cast<I>(g.h),
          static_cast<I>(g.w),
          static_cast<I>(g.oh),
          static_cast<I>(g.ow),
          static_cast<I>(g.kh),
          static_cast<I>(g.kw),
          static_cast<I>(g.stride_h),
          static_cast<I>(g.stride_w),
          static_cast<I>(g.pad_h),
          static_cast<I>(g.pad_w),
          g.count_include_pad,
          g.adaptive,
          static_cast<I>(g.channels)};
}

template <class I>
__device__ __forceinline__ I imax(I a, I b) {
  return a > b ? a : b;
}
template <class I>
__device__ __forceinline__ I imin(I a, I b) {
  return a < b ? a : b;
}

// Average window of output (i, j): rows [h0, h1), columns [w0, w1), divisor count (ops/cpu/pool.cpp's
// avg_window).
template <class I>
struct Window {
  I h0, h1, w0, w1;
  double count;
};

template <class I>
__device__ __forceinline__ Window<I> avg_window(const Geo<I>& g, I i, I j) {
  if (g.adaptive) {
    // Products in 64 bits: i * H may not fit 32 bits even when the tensors do.
    const int64_t H = g.h, W = g.w, OH = g.oh, OW = g.ow;
    const I h0 = static_cast<I>(i * H / OH), h1 = static_cast<I>(((i + 1) * H + OH - 1) / OH);
    const I w0 = static_cast<I>(j * W / OW), w1 = static_cast<I>(((j + 1) * W + OW - 1) / OW);
    return {h0, h1, w0, w1, static_cast<double>(h1 - h0) * static_cast<double>(w1 - w0)};
  }
  const I hs = i * g.sh - g.ph, ws = j * g.sw - g.pw;
  const I he = imin<I>(hs + g.kh, g.h + g.ph), we = imin<I>(ws + g.kw, g.w + g.pw);
  const I h0 = imax<I>(hs, 0), h1 = imin<I>(he, g.h), w0 = imax<I>(ws, 0), w1 = imin<I>(we, g.w);
  const double count = g.count_include_pad ? static_cast<double>(he - hs) * static_cast<double>(we - ws)
                                           : static_cast<double>(h1 - h0) * static_cast<double>(w1 - w0);
  return {h0, h1, w0, w1, count};
}

// Outputs along one dim whose (plain, strided) window [o * s - p, o * s - p + k) holds input position a:
// o in [lo, hi] (empty when lo > hi).
template <class I>
__device__ __forceinline__ void covering(I a, I k, I s, I p, I out, I& lo, I& hi) {
  lo = a + p < k ? I(0) : (a + p - k) / s + 1;
  hi = imin<I>((a + p) / s, out - 1);
}

// Adaptive windows [floor(o n / out), ceil((o + 1) n / out)) holding a: o in [floor(a out / n),
// ceil((a + 1) out / n) - 1].
template <class I>
__device__ __forceinline__ void covering_adaptive(I a, I n, I out, I& lo, I& hi) {
  const int64_t A = a, N = n, O = out;
  lo = static_cast<I>(A * O / N);
  hi = imin<I>(static_cast<I>(((A + 1) * O + N - 1) / N - 1), out - 1);
}

#define GRID_STRIDE(i, n)                                                    \
  for (I i = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<I>(blockDim.x) * gridDim.x)

template <class T, class I, bool CL>
__global__ void max_pool_forward_kernel(Geo<I> g, const T* __restrict__ x, T* __restrict__ y,
                                        int64_t* __restrict__ indices, I total) {
  using A = acc_t<T>;
  const I es = elem_stride<I, CL>(g.c);
  GRID_STRIDE(idx, total) {
    I pl, i, j;
    split<I, CL>(idx, g.oh, g.ow, g.c, pl, i, j);
    const I hs = i * g.sh - g.ph, ws = j * g.sw - g.pw;
    const I h0 = imax<I>(hs, 0), h1 = imin<I>(hs + g.kh, g.h);
    const I w0 = imax<I>(ws, 0), w1 = imin<I>(ws + g.kw, g.w);
    const T* in = x + plane_base<I, CL>(pl, g.h, g.w, g.c);
    A best = -static_cast<A>(INFINITY);
    I best_at = h0 * g.w + w0;
    for (I a = h0; a < h1; ++a)
      for (I b = w0; b < w1; ++b) {
        const A v = load(in[(a * g.w + b) * es]);
        if (v > best || v != v) {  // NaN propagates, as in PyTorch and the CPU kernel
          best = v;
          best_at = a * g.w + b;
        }
      }
    y[idx] = store<T>(best);
    indices[idx] = static_cast<int64_t>(best_at);
  }
}

template <class T, class I, bool CL>
__global__ void max_pool_backward_kernel(Geo<I> g, const T* __restrict__ gy,
                                         const int64_t* __restrict__ indices, T* __restrict__ dx, I total) {
  using A = acc_t<T>;
  const I es = elem_stride<I, CL>(g.c);
  GRID_STRIDE(idx, total) {
    I pl, a, b;
    split<I, CL>(idx, g.h, g.w, g.c, pl, a, b);
    I i0, i1, j0, j1;
    covering<I>(a, g.kh, g.sh, g.ph, g.oh, i0, i1);
    covering<I>(b, g.kw, g.sw, g.pw, g.ow, j0, j1);
    const I plane = plane_base<I, CL>(pl, g.oh, g.ow, g.c);
    const int64_t target = static_cast<int64_t>(a) * g.w + b;
    A s = A(0);
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j) {
        const I o = plane + (i * g.ow + j) * es;
        if (indices[o] == target) s += load(gy[o]);
      }
    dx[idx] = store<T>(s);
  }
}

template <class T, class I, bool CL>
__global__ void avg_pool_forward_kernel(Geo<I> g, const T* __restrict__ x, T* __restrict__ y, I total) {
  // The CPU kernel sums in f64; so does this one for f32 and f64 (16-bit types sum in f32).
  using S = std::conditional_t<sizeof(acc_t<T>) == 4 && sizeof(T) == 4, double, acc_t<T>>;
  const I es = elem_stride<I, CL>(g.c);
  GRID_STRIDE(idx, total) {
    I pl, i, j;
    split<I, CL>(idx, g.oh, g.ow, g.c, pl, i, j);
    const Window<I> win = avg_window<I>(g, i, j);
    const T* in = x + plane_base<I, CL>(pl, g.h, g.w, g.c);
    S s = S(0);
    for (I a = win.h0; a < win.h1; ++a)
      for (I b = win.w0; b < win.w1; ++b) s += static_cast<S>(load(in[(a * g.w + b) * es]));
    y[idx] = store<T>(static_cast<double>(s) / win.count);
  }
}

template <class T, class I, bool CL>
__global__ void avg_pool_backward_kernel(Geo<I> g, const T* __restrict__ gy, T* __restrict__ dx, I total) {
  using A = acc_t<T>;
  const I es = elem_stride<I, CL>(g.c);
  GRID_STRIDE(idx, total) {
    I pl, a, b;
    split<I, CL>(idx, g.h, g.w, g.c, pl, a, b);
    I i0, i1, j0, j1;
    if (g.adaptive) {
      covering_adaptive<I>(a, g.h, g.oh, i0, i1);
      covering_adaptive<I>(b, g.w, g.ow, j0, j1);
    } else {
      covering<I>(a, g.kh, g.sh, g.ph, g.oh, i0, i1);
      covering<I>(b, g.kw, g.sw, g.pw, g.ow, j0, j1);
    }
    const I plane = plane_base<I, CL>(pl, g.oh, g.ow, g.c);
    A s = A(0);
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j) {
        const Window<I> win = avg_window<I>(g, i, j);
        if (a < win.h0 || a >= win.h1 || b < win.w0 || b >= win.w1) continue;  // (never, by construction)
        // T(dy / count) with the division in f64, summed in T's compute type: the CPU's arithmetic for f32
        // and f64 (16-bit types keep the term in f32).
        s += static_cast<A>(static_cast<double>(load(gy[plane + (i * g.ow + j) * es])) / win.count);
      }
    dx[idx] = store<T>(s);
  }
}

template <class T, class I, bool CL>
__global__ void upsample_forward_kernel(Geo<I> g, const T* __restrict__ x, T* __restrict__ y, I total) {
  const I es = elem_stride<I, CL>(g.c);
  GRID_STRIDE(idx, total) {
    I pl, i, j;
    split<I, CL>(idx, g.oh, g.ow, g.c, pl, i, j);
    y[idx] = x[plane_base<I, CL>(pl, g.h, g.w, g.c) + ((i / g.kh) * g.w + j / g.kw) * es];
  }
}

template <class T, class I, bool CL>
__global__ void upsample_backward_kernel(Geo<I> g, const T* __restrict__ gy, T* __restrict__ dx, I total) {
  using A = acc_t<T>;
  const I es = elem_stride<I, CL>(g.c);
  GRID_STRIDE(idx, total) {
    I pl, a, b;
    split<I, CL>(idx, g.h, g.w, g.c, pl, a, b);
    const T* src = gy + plane_base<I, CL>(pl, g.oh, g.ow, g.c) + ((a * g.kh) * g.ow + b * g.kw) * es;
    A s = A(0);
    for (I i = 0; i < g.kh; ++i)
      for (I j = 0; j < g.kw; ++j) s += load(src[(i * g.ow + j) * es]);
    dx[idx] = store<T>(s);
  }
}

#undef GRID_STRIDE

// 32-bit indexing when every index (including a grid-stride loop's last step past the end) fits.
bool fits_i32(int64_t n) { return n + int64_t(kBlock) * 65535 * 8 < INT32_MAX; }

// Runs launch.template operator()<T, I, CL>() for the dtype, the index width `n` needs and the layout.
template <class F>
void dispatch(DType dtype, int64_t n, bool channels_last, const char* op, F&& launch) {
  visit_cuda_float(dtype, op, [&](auto zero) {
    using T = decltype(zero);
    if (fits_i32(n)) {
      if (channels_last)
        launch.template operator()<T, int32_t, true>();
      else
        launch.template operator()<T, int32_t, false>();
    } else if (channels_last) {
      launch.template operator()<T, int64_t, true>();
    } else {
      launch.template operator()<T, int64_t, false>();
    }
  });
}

void max_pool2d_forward_cuda(const Pool2dGeometry& g, const Tensor& x, Tensor& y, Tensor& indices) {
  DeviceGuard guard(x.device().index);
  const int64_t total = y.numel();
  if (total == 0) return;
  dispatch(x.dtype(), std::max(total, x.numel()), g.channels_last, "max_pool2d",
           [&]<class T, class I, bool CL>() {
             max_pool_forward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                 geo<I>(g), ptr<T>(x), ptr<T>(y), ptr<int64_t>(indices), static_cast<I>(total));
             NABLA_CUDA_LAUNCH_CHECK();
           });
}

void max_pool2d_backward_cuda(const Pool2dGeometry& g, const Tensor& gy, const Tensor& indices, Tensor& dx) {
  DeviceGuard guard(gy.device().index);
  const int64_t total = dx.numel();
  if (total == 0) return;
  dispatch(gy.dtype(), std::max(total, gy.numel()), g.channels_last, "max_pool2d",
           [&]<class T, class I, bool CL>() {
             max_pool_backward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                 geo<I>(g), ptr<T>(gy), ptr<int64_t>(indices), ptr<T>(dx), static_cast<I>(total));
             NABLA_CUDA_LAUNCH_CHECK();
           });
}

void avg_pool2d_forward_cuda(const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  DeviceGuard guard(x.device().index);
  const int64_t total = y.numel();
  if (total == 0) return;
  dispatch(x.dtype(), std::max(total, x.numel()), g.channels_last, "avg_pool2d",
           [&]<class T, class I, bool CL>() {
             avg_pool_forward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                 geo<I>(g), ptr<T>(x), ptr<T>(y), static_cast<I>(total));
             NABLA_CUDA_LAUNCH_CHECK();
           });
}

void avg_pool2d_backward_cuda(const Pool2dGeometry& g, const Tensor& gy, Tensor& dx) {
  DeviceGuard guard(gy.device().index);
  const int64_t total = dx.numel();
  if (total == 0) return;
  dispatch(gy.dtype(), std::max(total, gy.numel()), g.channels_last, "avg_pool2d",
           [&]<class T, class I, bool CL>() {
             avg_pool_backward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                 geo<I>(g), ptr<T>(gy), ptr<T>(dx), static_cast<I>(total));
             NABLA_CUDA_LAUNCH_CHECK();
           });
}

void upsample_nearest2d_forward_cuda(const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  DeviceGuard guard(x.device().index);
  const int64_t total = y.numel();
  if (total == 0) return;
  dispatch(x.dtype(), std::max(total, x.numel()), g.channels_last, "upsample_nearest2d",
           [&]<class T, class I, bool CL>() {
             upsample_forward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                 geo<I>(g), ptr<T>(x), ptr<T>(y), static_cast<I>(total));
             NABLA_CUDA_LAUNCH_CHECK();
           });
}

void upsample_nearest2d_backward_cuda(const Pool2dGeometry& g, const Tensor& gy, Tensor& dx) {
  DeviceGuard guard(gy.device().index);
  const int64_t total = dx.numel();
  if (total == 0) return;
  dispatch(gy.dtype(), std::max(total, gy.numel()), g.channels_last, "upsample_nearest2d",
           [&]<class T, class I, bool CL>() {
             upsample_backward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                 geo<I>(g), ptr<T>(gy), ptr<T>(dx), static_cast<I>(total));
             NABLA_CUDA_LAUNCH_CHECK();
           });
}

}  // namespace

NABLA_REGISTER_KERNEL(max_pool2d_forward_kernel, cuda, max_pool2d_forward_cuda);
NABLA_REGISTER_KERNEL(max_pool2d_backward_kernel, cuda, max_pool2d_backward_cuda);
NABLA_REGISTER_KERNEL(avg_pool2d_forward_kernel, cuda, avg_pool2d_forward_cuda);
NABLA_REGISTER_KERNEL(avg_pool2d_backward_kernel, cuda, avg_pool2d_backward_cuda);
NABLA_REGISTER_KERNEL(upsample_nearest2d_forward_kernel, cuda, upsample_nearest2d_forward_cuda);
NABLA_REGISTER_KERNEL(upsample_nearest2d_backward_kernel, cuda, upsample_nearest2d_backward_cuda);

}  // namespace nabla::cuda

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
// Packed backward kernels (16 bytes of one tensor a thread; NABLA_POOL_FAST=0 turns them off): the max-pool
// backward over V = 16 / sizeof(T) channels (channels-last, C % V == 0) or V columns (NCHW, W % V == 0),
// and the average-pool backward of a global pooling (one window: the whole plane). Each element's terms
// are the general kernel's, added in the same order, so the results are bit-identical to it.
//
// Channels-last (template flag CL, from the geometry): every tensor of the call is [N, C, *, *] with memory
// order N, H, W, C. The thread of linear index idx still writes element idx of its output in memory order
// (c fastest, so a warp's writes and reads are coalesced across channels), splitting idx as (n, a, b, c);
// plane p = n C + c starts at n H W C + c and its elements are C apart. Indices and arithmetic per element
// are unchanged, so results equal the NCHW kernels' bit for bit.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/vec.cuh"
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

// max_pool backward in channels-last with 16-byte packs (C a multiple of the pack V = 16 / sizeof(T); gy, dx
// and the indices 16-byte aligned): a thread per V consecutive channels of one input position, so the
// window arithmetic is done once for V elements, gy and dx move in 16-byte loads and stores and the V
// indices in V / 2 16-byte loads. Each element's sum is the scalar kernel's, in the same order. (The scalar
// kernel took 1.36 ms for ResNet-50's stem pooling at batch 128 in bf16, 5% of the step on the H200.)
template <class T, class I>
__global__ void max_pool_backward_cl_packed(Geo<I> g, const T* __restrict__ gy,
                                            const int64_t* __restrict__ indices, T* __restrict__ dx,
                                            I total_packs) {
  using A = acc_t<T>;
  constexpr int V = static_cast<int>(16 / sizeof(T));
  const I cp = g.c / V;  // packs per position
  GRID_STRIDE(idx, total_packs) {
    const I pk = idx % cp;
    I t = idx / cp;
    const I b = t % g.w;
    t /= g.w;
    const I a = t % g.h, nn = t / g.h;
    I i0, i1, j0, j1;
    covering<I>(a, g.kh, g.sh, g.ph, g.oh, i0, i1);
    covering<I>(b, g.kw, g.sw, g.pw, g.ow, j0, j1);
    const int64_t target = static_cast<int64_t>(a) * g.w + b;
    A s[V];
#pragma unroll
    for (int e = 0; e < V; ++e) s[e] = A(0);
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j) {
        const I o = ((nn * g.oh + i) * g.ow + j) * g.c + pk * V;  // element (nn, i, j, pk V) of gy
        A gv[V];
        load_pack<T, V>(gy + o, gv);
        const longlong2* ip = reinterpret_cast<const longlong2*>(indices + o);
#pragma unroll
        for (int e2 = 0; e2 < V / 2; ++e2) {
          const longlong2 q = ip[e2];
          if (q.x == target) s[2 * e2] += gv[2 * e2];
          if (q.y == target) s[2 * e2 + 1] += gv[2 * e2 + 1];
        }
      }
    store_pack<T, V>(dx + static_cast<int64_t>(idx) * V, s);
  }
}

// max_pool backward in NCHW, V = 16 / sizeof(T) consecutive input columns per thread (W a multiple of V, dx
// 16-byte aligned): the windows covering the V columns are walked once (rows i ascending, then columns j),
// each window's index and gradient loaded once for all V, and element e adds window (i, j) only when j is
// in its own covering range: so each element's sum has the scalar kernel's terms in the scalar kernel's
// order. (The scalar kernel took 1.16 ms for ResNet-50's f32 stem pooling at batch 128 on the H200,
// bound by its per-element index arithmetic.)
template <class T, class I>
__global__ void max_pool_backward_nchw_packed(Geo<I> g, const T* __restrict__ gy,
                                              const int64_t* __restrict__ indices, T* __restrict__ dx,
                                              I total_packs) {
  using A = acc_t<T>;
  constexpr int V = static_cast<int>(16 / sizeof(T));
  const I wp = g.w / V;  // packs per input row
  GRID_STRIDE(idx, total_packs) {
    const I b0 = (idx % wp) * V;
    const I t = idx / wp;
    const I a = t % g.h, pl = t / g.h;
    I i0, i1, jlo[V], jhi[V];
    covering<I>(a, g.kh, g.sh, g.ph, g.oh, i0, i1);
#pragma unroll
    for (int e = 0; e < V; ++e) covering<I>(b0 + e, g.kw, g.sw, g.pw, g.ow, jlo[e], jhi[e]);
    const I j0 = jlo[0], j1 = jhi[V - 1];  // covering ranges grow with the column
    A s[V];
#pragma unroll
    for (int e = 0; e < V; ++e) s[e] = A(0);
    const I plane = pl * g.oh * g.ow;
    const int64_t row_target = static_cast<int64_t>(a) * g.w + b0;
    for (I i = i0; i <= i1; ++i)
      for (I j = j0; j <= j1; ++j) {
        const I o = plane + i * g.ow + j;
        const int64_t k = indices[o] - row_target;  // the winner's column offset from b0, if in this row
        if (k < 0 || k >= V) continue;
        const A gv = load(gy[o]);
#pragma unroll
        for (int e = 0; e < V; ++e)
          if (k == e && j >= jlo[e] && j <= jhi[e]) s[e] += gv;
      }
    store_pack<T, V>(dx + static_cast<int64_t>(idx) * V, s);
  }
}

// avg_pool backward of a global pooling (one output per plane whose window is the whole input: adaptive to
// 1 x 1, or a kernel the input's size without padding): dx = T(gy[plane] / (H W)), the general kernel's
// arithmetic without its window search (0.28 ms for ResNet-50's head at batch 128 on the H200).
template <class T, class I, bool CL>
__global__ void avg_pool_backward_global(Geo<I> g, const T* __restrict__ gy, T* __restrict__ dx, I total) {
  using A = acc_t<T>;
  const double count = static_cast<double>(g.h) * static_cast<double>(g.w);
  GRID_STRIDE(idx, total) {
    I pl;
    if constexpr (CL)
      pl = (idx / (g.h * g.w * g.c)) * g.c + idx % g.c;
    else
      pl = idx / (g.h * g.w);
    A s = A(0);
    s += static_cast<A>(static_cast<double>(load(gy[pl])) / count);  // plane pl's one output: index pl
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

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// NABLA_POOL_FAST=0: the general kernels only (no packed channels-last max-pool backward, no global
// average-pool backward), for comparison.
bool packed_pool_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("NABLA_POOL_FAST");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

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
             constexpr int64_t V = 16 / sizeof(T);
             if (CL && g.channels % V == 0 && aligned16(ptr<T>(gy)) && aligned16(ptr<T>(dx)) &&
                 aligned16(ptr<int64_t>(indices)) && packed_pool_enabled()) {
               max_pool_backward_cl_packed<T, I><<<grid_for(total / V), kBlock, 0, current_stream()>>>(
                   geo<I>(g), ptr<T>(gy), ptr<int64_t>(indices), ptr<T>(dx), static_cast<I>(total / V));
             } else if (!CL && g.w % V == 0 && aligned16(ptr<T>(dx)) && packed_pool_enabled()) {
               max_pool_backward_nchw_packed<T, I><<<grid_for(total / V), kBlock, 0, current_stream()>>>(
                   geo<I>(g), ptr<T>(gy), ptr<int64_t>(indices), ptr<T>(dx), static_cast<I>(total / V));
             } else {
               max_pool_backward_kernel<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                   geo<I>(g), ptr<T>(gy), ptr<int64_t>(indices), ptr<T>(dx), static_cast<I>(total));
             }
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
  const bool global =
      g.oh == 1 && g.ow == 1 && (g.adaptive || (g.kh == g.h && g.kw == g.w && g.pad_h == 0 && g.pad_w == 0));
  dispatch(gy.dtype(), std::max(total, gy.numel()), g.channels_last, "avg_pool2d",
           [&]<class T, class I, bool CL>() {
             if (global && packed_pool_enabled())
               avg_pool_backward_global<T, I, CL><<<grid_for(total), kBlock, 0, current_stream()>>>(
                   geo<I>(g), ptr<T>(gy), ptr<T>(dx), static_cast<I>(total));
             else
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

// CUDA kernels of softmax / log_softmax (forward, backward). The maths and the slot contracts are the CPU
// kernels' (ops/nn.h, ops/cpu/softmax.cpp); every type computes in acc_t<T> (f32 for f32/bf16/f16, f64 for
// f64).
//
// inner == 1 (dim last): x is [rows, r] and runs as a row kernel (cuda/rows.cuh: a warp or a block per row,
//   the row in registers, or a looping block for rows past 8192): max, then sum of exp, then the write.
// inner > 1 ([outer, r, inner], dim not last): blocks of bx x by = 256 threads, x over i (coalesced), y
//   splitting r; each thread keeps an online (max, sum of exp) over its k's, the by partial results meet in
//   a shared-memory tree, then a write pass. bx/by adapt to inner and r, so that small inner (e.g. 3) or
//   small r (e.g. 3 channels) still fill the block.
// Online (max m, sum s) merges: s = s1 exp(m1 - m) + s2 exp(m2 - m); an -inf side contributes nothing, so
//   masked (-inf) entries are fine; an all -inf row gives NaN, as on the CPU.
// Backward: softmax dx = y * (g - sum(g * y)); log_softmax dx = g - exp(y) * sum(g), with the same launch
//   shapes as the forward.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/rows.cuh"
#include "cuda/vec.cuh"
#include "ops/nn.h"

namespace nabla::cuda {
namespace {

// std::max(a, b) of the CPU kernel: a NaN never replaces the running maximum.
struct MaxOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    return a < b ? b : a;
  }
};
// Online softmax statistics: (m, s) = (max, sum of exp(x - m)).
template <class A>
__device__ __forceinline__ void online_add(A& m, A& s, A x) {
  if (x > m) {
    s = s * ::exp(m - x) + A(1);  // m = -inf: s is 0 and exp(-inf) 0
    m = x;
  } else if (!(m == neg_inf<A>() && x == neg_inf<A>())) {
    s += ::exp(x - m);  // NaN x (or m) makes s NaN, as the CPU's sum
  }
}

// Block-wide online merge; every thread gets the result. shm: 66 slots.
template <class A>
__device__ __forceinline__ void block_online_allreduce(A& m, A& s, A* shm) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    const A m2 = __shfl_xor_sync(kFull, m, d), s2 = __shfl_xor_sync(kFull, s, d);
    online_merge(m, s, m2, s2);
  }
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) {
    shm[w] = m;
    shm[32 + w] = s;
  }
  __syncthreads();
  if (w == 0) {
    A mm = lane < nw ? shm[lane] : neg_inf<A>(), ss = lane < nw ? shm[32 + lane] : A(0);
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      const A m2 = __shfl_xor_sync(kFull, mm, d), s2 = __shfl_xor_sync(kFull, ss, d);
      online_merge(mm, ss, m2, s2);
    }
    if (lane == 0) {
      shm[64] = mm;
      shm[65] = ss;
    }
  }
  __syncthreads();
  m = shm[64];
  s = shm[65];
}

template <class T, int EPL, int V, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * kWarpRowsPerBlock : kMaxBlockThreads)
    softmax_fwd_reg(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t r, bool log) {
  using A = acc_t<T>;
  constexpr int P = EPL / V;
  __shared__ A shm[33];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(rows, t, G, row)) return;
  const T* xr = x + row * r;
  T* yr = y + row * r;
  A v[EPL];
  A m = neg_inf<A>();
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k < r) {
      load_pack<T, V>(xr + k, v + p * V);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) v[p * V + e] = neg_inf<A>();
    }
#pragma unroll
    for (int e = 0; e < V; ++e) m = MaxOp{}(m, v[p * V + e]);
  }
  m = group_allreduce<WARP>(m, MaxOp{}, neg_inf<A>(), shm);
  A s = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    if (static_cast<int64_t>(t + G * p) * V >= r) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const A ex = ::exp(v[p * V + e] - m);
      if (!log) v[p * V + e] = ex;
      s += ex;
    }
  }
  s = group_allreduce<WARP>(s, SumOp{}, A(0), shm);
  const A shift = m + ::log(s), inv = A(1) / s;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k >= r) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) v[p * V + e] = log ? v[p * V + e] - shift : v[p * V + e] * inv;
    store_pack<T, V>(yr + k, v + p * V);
  }
}

template <class T>
__global__ void __launch_bounds__(kLoopThreads)
    softmax_fwd_loop(const T* __restrict__ x, T* __restrict__ y, int64_t r, bool log) {
  using A = acc_t<T>;
  __shared__ A shm[66];
  const T* xr = x + static_cast<int64_t>(blockIdx.x) * r;
  T* yr = y + static_cast<int64_t>(blockIdx.x) * r;
  A m = neg_inf<A>(), s = 0;
  for (int64_t k = threadIdx.x; k < r; k += blockDim.x) online_add(m, s, load(xr[k]));
  block_online_allreduce(m, s, shm);
  const A shift = m + ::log(s), inv = A(1) / s;
  for (int64_t k = threadIdx.x; k < r; k += blockDim.x) {
    const A v = load(xr[k]);
    yr[k] = store<T>(log ? v - shift : ::exp(v - m) * inv);
  }
}

template <class T>
__global__ void __launch_bounds__(256) softmax_fwd_strided(const T* __restrict__ x, T* __restrict__ y,
                                                           int64_t r, int64_t inner, int64_t nblk, bool log) {
  using A = acc_t<T>;
  __shared__ A sm[256], ss[256];
  const int64_t o = blockIdx.x / nblk;
  const int64_t i = (blockIdx.x % nblk) * blockDim.x + threadIdx.x;
  const bool active = i < inner;
  const int64_t base = o * r * inner + i;
  A m = neg_inf<A>(), s = 0;
  if (active)
    for (int64_t k = threadIdx.y; k < r; k += blockDim.y) online_add(m, s, load(x[base + k * inner]));
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  sm[tid] = m;
  ss[tid] = s;
  __syncthreads();
  for (int st = blockDim.y / 2; st > 0; st >>= 1) {  // fixed tree over y
    if (threadIdx.y < st) {
      A mm = sm[tid], s1 = ss[tid];
      online_merge(mm, s1, sm[tid + st * blockDim.x], ss[tid + st * blockDim.x]);
      sm[tid] = mm;
      ss[tid] = s1;
    }
    __syncthreads();
  }
  m = sm[threadIdx.x];
  s = ss[threadIdx.x];
  if (!active) return;
  const A shift = m + ::log(s), inv = A(1) / s;
  for (int64_t k = threadIdx.y; k < r; k += blockDim.y) {
    const A v = load(x[base + k * inner]);
    y[base + k * inner] = store<T>(log ? v - shift : ::exp(v - m) * inv);
  }
}

// softmax: dx = y * (g - sum(g * y));  log_softmax: dx = g - exp(y) * sum(g).
template <class T, int EPL, int V, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * kWarpRowsPerBlock : kMaxBlockThreads)
    softmax_bwd_reg(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dx, int64_t rows,
                    int64_t r, bool log) {
  using A = acc_t<T>;
  constexpr int P = EPL / V;
  __shared__ A shm[33];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(rows, t, G, row)) return;
  const T* gr = g + row * r;
  const T* yr = y + row * r;
  T* dr = dx + row * r;
  A gv[EPL], yv[EPL];
  A acc = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k < r) {
      load_pack<T, V>(gr + k, gv + p * V);
      load_pack<T, V>(yr + k, yv + p * V);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) gv[p * V + e] = yv[p * V + e] = A(0);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) acc += log ? gv[p * V + e] : gv[p * V + e] * yv[p * V + e];
  }
  acc = group_allreduce<WARP>(acc, SumOp{}, A(0), shm);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k >= r) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const int j = p * V + e;
      gv[j] = log ? gv[j] - ::exp(yv[j]) * acc : yv[j] * (gv[j] - acc);
    }
    store_pack<T, V>(dr + k, gv + p * V);
  }
}

template <class T>
__global__ void __launch_bounds__(kLoopThreads)
    softmax_bwd_loop(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dx, int64_t r,
                     bool log) {
  using A = acc_t<T>;
  __shared__ A shm[33];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * r;
  A acc = 0;
  for (int64_t k = threadIdx.x; k < r; k += blockDim.x)
    acc += log ? load(g[base + k]) : load(g[base + k]) * load(y[base + k]);
  acc = group_allreduce<false>(acc, SumOp{}, A(0), shm);
  for (int64_t k = threadIdx.x; k < r; k += blockDim.x) {
    const A gv = load(g[base + k]), yv = load(y[base + k]);
    dx[base + k] = store<T>(log ? gv - ::exp(yv) * acc : yv * (gv - acc));
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    softmax_bwd_strided(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dx, int64_t r,
                        int64_t inner, int64_t nblk, bool log) {
  using A = acc_t<T>;
  __shared__ A sa[256];
  const int64_t o = blockIdx.x / nblk;
  const int64_t i = (blockIdx.x % nblk) * blockDim.x + threadIdx.x;
  const bool active = i < inner;
  const int64_t base = o * r * inner + i;
  A acc = 0;
  if (active)
    for (int64_t k = threadIdx.y; k < r; k += blockDim.y) {
      const int64_t e = base + k * inner;
      acc += log ? load(g[e]) : load(g[e]) * load(y[e]);
    }
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  sa[tid] = acc;
  __syncthreads();
  for (int st = blockDim.y / 2; st > 0; st >>= 1) {
    if (threadIdx.y < st) sa[tid] += sa[tid + st * blockDim.x];
    __syncthreads();
  }
  acc = sa[threadIdx.x];
  if (!active) return;
  for (int64_t k = threadIdx.y; k < r; k += blockDim.y) {
    const int64_t e = base + k * inner;
    const A gv = load(g[e]), yv = load(y[e]);
    dx[e] = store<T>(log ? gv - ::exp(yv) * acc : yv * (gv - acc));
  }
}

// Block shape of the strided kernels: bx x by = 256 (or fewer when inner * r is small), bx over i.
dim3 strided_block(int64_t r, int64_t inner) {
  int64_t bx = std::min<int64_t>(32, pow2ceil(inner));
  const int64_t by = std::min<int64_t>(pow2ceil(r), 256 / bx);
  bx = std::min<int64_t>(pow2ceil(inner), 256 / by);
  return dim3(static_cast<unsigned>(bx), static_cast<unsigned>(by));
}

template <class T>
void softmax_typed(const Tensor& x, int64_t outer, int64_t r, int64_t inner, bool log, Tensor& y) {
  const T* px = ptr<T>(x);
  T* py = ptr<T>(y);
  cudaStream_t st = current_stream();
  if (inner == 1) {
    const RowPlan p = plan_rows(outer, r, kVec<T>, aligned16(px) && aligned16(py));
    if (p.reg) {
      dispatch_reg<T>(p, [&]<int E, int V, bool W>() {
        softmax_fwd_reg<T, E, V, W>
            <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(px, py, outer, r, log);
      });
    } else {
      softmax_fwd_loop<T><<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(px, py, r, log);
    }
  } else {
    const dim3 block = strided_block(r, inner);
    const int64_t nblk = ceil_div(inner, block.x);
    NABLA_CHECK(outer * nblk <= INT32_MAX, "softmax: cuda grid limit: ", outer, " x ", inner);
    softmax_fwd_strided<T>
        <<<static_cast<unsigned>(outer * nblk), block, 0, st>>>(px, py, r, inner, nblk, log);
  }
  NABLA_CUDA_LAUNCH_CHECK();
}

void softmax_cuda(const Tensor& x, int64_t outer, int64_t r, int64_t inner, bool log, Tensor& y) {
  DeviceGuard g(x.device().index);
  if (outer == 0 || r == 0 || inner == 0) return;
  visit_cuda_float(x.dtype(), log ? "log_softmax" : "softmax",
                   [&](auto zero) { softmax_typed<decltype(zero)>(x, outer, r, inner, log, y); });
}

template <class T>
void softmax_backward_typed(const Tensor& g, const Tensor& y, int64_t outer, int64_t r, int64_t inner,
                            bool log, Tensor& dx) {
  const T* pg = ptr<T>(g);
  const T* py = ptr<T>(y);
  T* pd = ptr<T>(dx);
  cudaStream_t st = current_stream();
  if (inner == 1) {
    const RowPlan p = plan_rows(outer, r, kVec<T>, aligned16(pg) && aligned16(py) && aligned16(pd));
    if (p.reg) {
      dispatch_reg<T>(p, [&]<int E, int V, bool W>() {
        softmax_bwd_reg<T, E, V, W>
            <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(pg, py, pd, outer, r, log);
      });
    } else {
      softmax_bwd_loop<T><<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(pg, py, pd, r, log);
    }
  } else {
    const dim3 block = strided_block(r, inner);
    const int64_t nblk = ceil_div(inner, block.x);
    NABLA_CHECK(outer * nblk <= INT32_MAX, "softmax: cuda grid limit: ", outer, " x ", inner);
    softmax_bwd_strided<T>
        <<<static_cast<unsigned>(outer * nblk), block, 0, st>>>(pg, py, pd, r, inner, nblk, log);
  }
  NABLA_CUDA_LAUNCH_CHECK();
}

void softmax_backward_cuda(const Tensor& g, const Tensor& y, int64_t outer, int64_t r, int64_t inner,
                           bool log, Tensor& dx) {
  DeviceGuard guard(y.device().index);
  if (outer == 0 || r == 0 || inner == 0) return;
  visit_cuda_float(y.dtype(), log ? "log_softmax" : "softmax", [&](auto zero) {
    softmax_backward_typed<decltype(zero)>(g, y, outer, r, inner, log, dx);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(softmax_kernel, cuda, softmax_cuda);
NABLA_REGISTER_KERNEL(softmax_backward_kernel, cuda, softmax_backward_cuda);

}  // namespace nabla::cuda

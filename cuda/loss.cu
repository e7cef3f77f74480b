// CUDA kernels of the fused cross-entropy with class-index targets (maths and slot contracts: ops/loss.h;
// the CPU kernels are ops/cpu/loss.cpp). Every dtype computes in acc_t<T> (f32 for f32/bf16/f16, f64 for
// f64); lse is stored in acc_t<T>, which is the dtype the op layer allocates (f64 for f64, f32 otherwise).
//
// Logits [M, C] contiguous, one row per thread group:
//   C <= 1024: one warp per row, 4 rows per 128-thread block;
//   C > 1024:  one block per row (256 threads, 512 when C > 8192).
// Forward, one read of the row: each thread walks its elements (16-byte vector loads when C is a multiple of
//   the vector width and the buffer 16-byte aligned) keeping an online (max m, sum of exp(x - m)) and the
//   plain sum of x; the partials meet through warp shuffles (then shared memory for a block). Online merges:
//   s = s1 exp(m1 - m) + s2 exp(m2 - m), an all -inf side contributes nothing. Thread 0 reads x[t] and
//   writes loss = (1 - s)(lse - x[t]) + s(lse - sum x / C) and lse = m + log(sum).
// Backward, the same launch shape, element-wise along the row given the row's (g, lse, t):
//   dx = g (exp(x - lse) - s / C) - g (1 - s) [c = t]. No reduction, no atomics: deterministic.
// Ignored rows: the whole group skips the row (uniform branch, before any barrier) and writes loss 0, lse 0,
// dx 0. A target outside [0, C) (the op layer rejects them on the host) gives a NaN loss and reads nothing
// outside the row.
#include <algorithm>
#include <cmath>

#include "cuda/dtype.cuh"
#include "cuda/vec.cuh"
#include "cuda/loops.cuh"
#include "ops/loss.h"

namespace nabla::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWarpRowsPerBlock = 4;  // warp-per-row kernels: 128-thread blocks
constexpr int64_t kMaxWarpRow = 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }


// Warp-wide merge of (m, s) and sum of sx; every lane gets the result.
template <class A>
__device__ __forceinline__ void warp_reduce(A& m, A& s, A& sx) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    const A m2 = __shfl_xor_sync(kFull, m, d), s2 = __shfl_xor_sync(kFull, s, d);
    sx += __shfl_xor_sync(kFull, sx, d);
    online_merge(m, s, m2, s2);
  }
}

// Thread index inside the row's group, group size, row; false for a warp past the last row.
template <bool WARP>
__device__ __forceinline__ bool row_setup(int64_t rows, int& t, int& G, int64_t& row) {
  if constexpr (WARP) {
    t = threadIdx.x & 31;
    G = 32;
    row = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    return row < rows;
  } else {
    t = threadIdx.x;
    G = blockDim.x;
    row = blockIdx.x;
    return true;
  }
}

template <class T, int V, bool WARP>
__global__ void __launch_bounds__(512)
    ce_fwd(const T* __restrict__ x, const int64_t* __restrict__ tgt, int64_t M, int64_t C, int64_t ignore,
           acc_t<T> on, acc_t<T> smooth, T* __restrict__ loss, acc_t<T>* __restrict__ lse) {
  using A = acc_t<T>;
  __shared__ A shm[3 * 32];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(M, t, G, row)) return;
  const int64_t tg = tgt[row];
  if (tg == ignore) {  // uniform over the group: the row is the group's
    if (t == 0) {
      loss[row] = store<T>(A(0));
      lse[row] = A(0);
    }
    return;
  }
  const T* xr = x + row * C;
  A m = neg_inf<A>(), s = 0, sx = 0;
  for (int64_t k = static_cast<int64_t>(t) * V; k < C; k += static_cast<int64_t>(G) * V) {
    A v[V];
    load_pack<T, V>(xr + k, v);
    A pm = v[0];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      pm = pm < v[e] ? v[e] : pm;  // a NaN never replaces the running maximum (as std::max)
      sx += v[e];
    }
    if (pm > m) {
      s *= ::exp(m - pm);  // m = -inf: s is 0 and exp(-inf) 0
      m = pm;
    }
    if (m != neg_inf<A>()) {
#pragma unroll
      for (int e = 0; e < V; ++e) s += ::exp(v[e] - m);  // a NaN entry makes s NaN, as on the CPU
    }
  }
  warp_reduce(m, s, sx);
  if constexpr (!WARP) {
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (lane == 0) {
      shm[w] = m;
      shm[32 + w] = s;
      shm[64 + w] = sx;
    }
    __syncthreads();
    if (w != 0) return;
    m = lane < nw ? shm[lane] : neg_inf<A>();
    s = lane < nw ? shm[32 + lane] : A(0);
    sx = lane < nw ? shm[64 + lane] : A(0);
    warp_reduce(m, s, sx);
  }
  if (t != 0) return;
  const A l = m + ::log(s);
  const A xt = tg >= 0 && tg < C ? load(xr[tg]) : static_cast<A>(NAN);
  A v = on * (l - xt);
  if (smooth > A(0)) v += smooth * (l - sx / static_cast<A>(C));
  loss[row] = store<T>(v);
  lse[row] = l;
}

template <class T, int V, bool WARP>
__global__ void __launch_bounds__(512)
    ce_bwd(const T* __restrict__ x, const int64_t* __restrict__ tgt, const acc_t<T>* __restrict__ lse,
           const T* __restrict__ g, int64_t M, int64_t C, int64_t ignore, acc_t<T> on, acc_t<T> off,
           T* __restrict__ dx) {
  using A = acc_t<T>;
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(M, t, G, row)) return;
  const int64_t tg = tgt[row];
  T* dr = dx + row * C;
  if (tg == ignore) {
    A z[V];
#pragma unroll
    for (int e = 0; e < V; ++e) z[e] = A(0);
    for (int64_t k = static_cast<int64_t>(t) * V; k < C; k += static_cast<int64_t>(G) * V)
      store_pack<T, V>(dr + k, z);
    return;
  }
  const T* xr = x + row * C;
  const A gi = load(g[row]), l = lse[row], goff = gi * off, gon = gi * on;
  for (int64_t k = static_cast<int64_t>(t) * V; k < C; k += static_cast<int64_t>(G) * V) {
    A v[V];
    load_pack<T, V>(xr + k, v);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      v[e] = gi * ::exp(v[e] - l) - goff;
      if (k + e == tg) v[e] -= gon;
    }
    store_pack<T, V>(dr + k, v);
  }
}

struct Launch {
  bool warp;
  int threads;
  unsigned blocks;
};

Launch plan(int64_t M, int64_t C) {
  Launch p;
  p.warp = C <= kMaxWarpRow;
  const int64_t blocks = p.warp ? ceil_div(M, kWarpRowsPerBlock) : M;
  NABLA_CHECK(blocks <= INT32_MAX, "cross_entropy: cuda grid limit: ", M, " rows");
  p.blocks = static_cast<unsigned>(blocks);
  p.threads = p.warp ? 32 * kWarpRowsPerBlock : C > 8192 ? 512 : 256;
  return p;
}

// Calls f.template operator()<V, WARP>() with V = the vector width when the rows allow it, else 1.
template <class T, class F>
void dispatch(const Launch& p, bool vec, F&& f) {
  constexpr int W = kVec<T>;
  if (vec && W > 1) {
    if (p.warp)
      f.template operator()<W, true>();
    else
      f.template operator()<W, false>();
  } else {
    if (p.warp)
      f.template operator()<1, true>();
    else
      f.template operator()<1, false>();
  }
}

template <class T>
void forward_typed(const Tensor& logits, const Tensor& targets, int64_t ignore, double s, Tensor& loss,
                   Tensor& lse) {
  using A = acc_t<T>;
  const int64_t M = logits.size(0), C = logits.size(1);
  const T* px = ptr<T>(logits);
  const int64_t* pt = ptr<int64_t>(targets);
  T* pl = ptr<T>(loss);
  A* pe = ptr<A>(lse);
  const Launch p = plan(M, C);
  const bool vec = C % kVec<T> == 0 && aligned16(px);
  const A on = static_cast<A>(1.0 - s), smooth = static_cast<A>(s);
  cudaStream_t st = current_stream();
  dispatch<T>(p, vec, [&]<int V, bool W>() {
    ce_fwd<T, V, W><<<p.blocks, p.threads, 0, st>>>(px, pt, M, C, ignore, on, smooth, pl, pe);
  });
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T>
void backward_typed(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& grad,
                    int64_t ignore, double s, Tensor& dlogits) {
  using A = acc_t<T>;
  const int64_t M = logits.size(0), C = logits.size(1);
  const T* px = ptr<T>(logits);
  const int64_t* pt = ptr<int64_t>(targets);
  const A* pe = ptr<A>(lse);
  const T* pg = ptr<T>(grad);
  T* pd = ptr<T>(dlogits);
  const Launch p = plan(M, C);
  const bool vec = C % kVec<T> == 0 && aligned16(px) && aligned16(pd);
  const A on = static_cast<A>(1.0 - s), off = static_cast<A>(s / static_cast<double>(C));
  cudaStream_t st = current_stream();
  dispatch<T>(p, vec, [&]<int V, bool W>() {
    ce_bwd<T, V, W><<<p.blocks, p.threads, 0, st>>>(px, pt, pe, pg, M, C, ignore, on, off, pd);
  });
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T>
void check_lse(const Tensor& lse) {
  const DType want = std::is_same_v<T, double> ? DType::f64 : DType::f32;
  NABLA_CHECK(lse.dtype() == want, "cross_entropy: lse has dtype ", lse.dtype(), ", expected ", want);
}

void cross_entropy_cuda(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                        double label_smoothing, Tensor& loss, Tensor& lse) {
  DeviceGuard g(logits.device().index);
  NABLA_CHECK(targets.dtype() == DType::i64, "cross_entropy: targets must be i64, got ", targets.dtype());
  if (logits.size(0) == 0) return;
  visit_cuda_float(logits.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    check_lse<T>(lse);
    forward_typed<T>(logits, targets, ignore_index, label_smoothing, loss, lse);
  });
}

void cross_entropy_backward_cuda(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                 const Tensor& grad, int64_t ignore_index, double label_smoothing,
                                 Tensor& dlogits) {
  DeviceGuard g(logits.device().index);
  NABLA_CHECK(targets.dtype() == DType::i64, "cross_entropy: targets must be i64, got ", targets.dtype());
  NABLA_CHECK(grad.dtype() == logits.dtype(), "cross_entropy: grad has dtype ", grad.dtype(), ", logits ",
              logits.dtype());
  if (logits.size(0) == 0 || logits.size(1) == 0) return;
  visit_cuda_float(logits.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    check_lse<T>(lse);
    backward_typed<T>(logits, targets, lse, grad, ignore_index, label_smoothing, dlogits);
  });
}

}  // namespace

NABLA_REGISTER_KERNEL(cross_entropy_kernel, cuda, cross_entropy_cuda);
NABLA_REGISTER_KERNEL(cross_entropy_backward_kernel, cuda, cross_entropy_backward_cuda);

}  // namespace nabla::cuda

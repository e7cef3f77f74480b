// CUDA kernels of the nn family: softmax / log_softmax (forward, backward), layer_norm (forward, backward),
// batch_norm (forward, backward, training and evaluation) and dropout. The maths and the slot contracts are
// the CPU kernels' (ops/nn.h, ops/cpu/nn.cpp); every type computes in acc_t<T> (f32 for f32/bf16/f16, f64
// for f64), and per-row or per-channel constants are worked out in f64 where the CPU does so.
//
// Row kernels (softmax/log_softmax with inner == 1, layer_norm), x viewed as [rows, r]:
//   r <= 1024:   one warp per row (4 rows per 128-thread block). Each lane keeps its EPL = 4..32 elements in
//                registers (element (lane + 32 p) * V + e), so x is read once and the row statistics are
//                exact two-pass ones (max then sum of exp; mean then centred variance), combined with warp
//                shuffles.
//   r <= 8192:   one block of 128..512 threads per row, EPL = 8 or 16 elements per thread in registers; warp
//                shuffles, then one value per warp through shared memory.
//   longer rows: one 512-thread block per row looping over the row (softmax: an online max/sum in one pass
//                and a write pass; layer_norm: mean, centred variance and write passes).
//   Contiguous rows whose length is a multiple of 16 bytes' worth of elements, on 16-byte-aligned buffers,
//   move V = 16 / sizeof(T) elements per load (float4, 8 x bf16); f64 moves one.
// softmax/log_softmax with inner > 1 ([outer, r, inner], dim not last): blocks of bx x by = 256 threads, x
//   over i (coalesced), y splitting r; each thread keeps an online (max, sum of exp) over its k's, the by
//   partial results meet in a shared-memory tree, then a write pass. bx/by adapt to inner and r, so that
//   small inner (e.g. 3) or small r (e.g. 3 channels) still fill the block.
// Online (max m, sum s) merges: s = s1 exp(m1 - m) + s2 exp(m2 - m); an -inf side contributes nothing, so
//   masked (-inf) entries are fine; an all -inf row gives NaN, as on the CPU.
// layer_norm backward: dx one row per warp/block as above (two row sums: gh and gh * xhat). dweight/dbias:
//   deterministic two-stage reduction: 32-column x 16-row-thread blocks sum a fixed chunk of rows each into
//   partials[chunk, col] (fixed tree over the 16 thread rows), then one thread per column adds the chunks in
//   order. The chunk count depends only on the shape.
// batch_norm, x viewed as [n, c, s]; every reduction is deterministic and two-stage:
//   1. partials: s >= 32: a 256-thread block per (channel, chunk of n) walks its planes flat (so small s
//      still fills the block); s < 32: x is [n, c*s] and 32 x 8 blocks take 32 columns over a chunk of rows.
//      Forward partials are (count, mean, M2) from per-thread sums shifted by the thread's first value
//      (robust against large means), merged with Chan's formula; backward partials are sum g and
//      sum g (x - mean).
//   2. finalize: one warp per channel merges its partials in a fixed order in f64 and writes the batch
//      mean/biased variance (training), dweight/dbias, and per-channel coefficients.
//   3. apply: x as [n, c*s], a thread per column (channel computed once) looping over rows: y = x * scale +
//      shift; dx = g * w rstd - kx (x - mean) - k0 (training) or g * w rstd (evaluation).
//   The running-statistics update stays in the op layer (element-wise ops on the CUDA tensors).
// dropout: element i keeps in[i] * scale when philox_uniform(seed, offset, i) >= p. One thread per counter:
//   elements 2j and 2j + 1 share counter offset + j, so one Philox call serves both (the same words and bit
//   recipe as engine/random.h's philox_uniform: the mask equals the CPU one bit for bit).
// Saved statistics (layer_norm mean/rstd, batch_norm mean/var) are read and written in the input's dtype, or
// in f32 when the input is bf16/f16 and the op layer allocated them in f32.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "cuda/dtype.cuh"
#include "cuda/vec.cuh"
#include "cuda/loops.cuh"
#include "engine/random.h"
#include "ops/nn.h"

namespace nabla::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWarpRowsPerBlock = 4;   // warp-per-row kernels: 128-thread blocks
constexpr int kMaxWarpRow = 1024;      // longest row kept in one warp's registers (32 lanes x 32)
constexpr int kMaxBlockThreads = 512;  // register-row blocks
// Longest row kept in a block's registers: 16 elements a thread (32 spill under the 128-register cap).
constexpr int kMaxRegRow = kMaxBlockThreads * 16;
constexpr int kLoopThreads = 512;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t pow2ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class T>
constexpr bool is16 = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return DType::bf16;
  else
    return DType::f16;
}

// ---- loads, reductions ---------------------------------------------------------------------------

struct SumOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    return a + b;
  }
};
// std::max(a, b) of the CPU kernel: a NaN never replaces the running maximum.
struct MaxOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    return a < b ? b : a;
  }
};

template <class A, class Op>
__device__ __forceinline__ A warp_allreduce(A v, Op op) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) v = op(v, __shfl_xor_sync(kFull, v, d));
  return v;
}

// Reduces v over the row's thread group (a warp, or the whole block) and gives every thread the result.
// shm: 33 slots of shared memory (unused for a warp). blockDim.x is a multiple of 32.
template <bool WARP, class A, class Op>
__device__ __forceinline__ A group_allreduce(A v, Op op, A ident, A* shm) {
  v = warp_allreduce(v, op);
  if constexpr (WARP) {
    return v;
  } else {
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();  // the previous call's readers are done with shm
    if (lane == 0) shm[w] = v;
    __syncthreads();
    if (w == 0) {
      A u = lane < nw ? shm[lane] : ident;
      u = warp_allreduce(u, op);
      if (lane == 0) shm[32] = u;
    }
    __syncthreads();
    return shm[32];
  }
}

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

// A saved statistic (per row or per channel): the input's dtype, or f32 for a bf16/f16 input.
template <class T>
struct Stat {
  void* p;
  bool f32;
  __device__ __forceinline__ acc_t<T> get(int64_t i) const {
    if constexpr (is16<T>)
      if (f32) return static_cast<const float*>(p)[i];
    return load(static_cast<const T*>(p)[i]);
  }
  __device__ __forceinline__ void set(int64_t i, double v) const {
    if constexpr (is16<T>)
      if (f32) {
        static_cast<float*>(p)[i] = static_cast<float>(v);
        return;
      }
    static_cast<T*>(p)[i] = store<T>(v);
  }
};

template <class T>
Stat<T> stat_of(const Tensor& t, const char* op, const char* what) {
  const bool f32 = is16<T> && t.dtype() == DType::f32;
  NABLA_CHECK(t.dtype() == dtype_of<T>() || f32, op, ": ", what, " has dtype ", t.dtype(), ", expected ",
              dtype_of<T>());
  return {t.data_ptr(), f32};
}

// A Stat over an optional tensor (p == nullptr when undefined).
template <class T>
Stat<T> stat_or_null(const Tensor& t, const char* op, const char* what) {
  return t.defined() ? stat_of<T>(t, op, what) : Stat<T>{nullptr, false};
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? ptr<T>(t) : nullptr;
}

// ---- row plans ------------------------------------------------------------------------------------

// How a [rows, r] row kernel is launched: registers (warp or block per row) or the looping block kernel.
struct RowPlan {
  bool reg = false, warp = false;
  int epl = 0, v = 1, threads = 0;
  int64_t blocks = 0;
};

RowPlan plan_rows(int64_t rows, int64_t r, int vmax, bool aligned) {
  RowPlan p;
  const bool vec = vmax > 1 && aligned && r % vmax == 0;
  if (r <= kMaxWarpRow) {
    p.reg = p.warp = true;
    p.epl = static_cast<int>(std::max<int64_t>(4, pow2ceil(ceil_div(r, 32))));
    p.v = vec && p.epl >= vmax ? vmax : 1;
    p.threads = 32 * kWarpRowsPerBlock;
    p.blocks = ceil_div(rows, kWarpRowsPerBlock);
  } else if (r <= kMaxRegRow) {
    p.reg = true;
    p.threads = static_cast<int>(std::clamp<int64_t>(pow2ceil(ceil_div(r, 8)), 128, kMaxBlockThreads));
    p.epl = static_cast<int>(pow2ceil(ceil_div(r, p.threads)));  // 8 or 16
    p.v = vec ? vmax : 1;
    p.blocks = rows;
  } else {
    p.threads = kLoopThreads;
    p.blocks = rows;
  }
  NABLA_CHECK(p.blocks <= INT32_MAX, "cuda: ", rows, " rows exceed the grid limit");
  return p;
}

template <int E, int V, bool W, class F>
void launch_if_valid(F& f) {
  if constexpr (E >= V)
    f.template operator()<E, V, W>();
  else
    fail("cuda nn: internal error: row plan with ", E, " elements per thread and vectors of ", V);
}

template <int V, class F>
void dispatch_reg_v(const RowPlan& p, F& f) {
  if (p.warp) {
    switch (p.epl) {
      case 4:
        return launch_if_valid<4, V, true>(f);
      case 8:
        return launch_if_valid<8, V, true>(f);
      case 16:
        return launch_if_valid<16, V, true>(f);
      case 32:
        return launch_if_valid<32, V, true>(f);
    }
  } else {
    switch (p.epl) {
      case 8:
        return launch_if_valid<8, V, false>(f);
      case 16:
        return launch_if_valid<16, V, false>(f);
    }
  }
  fail("cuda nn: internal error: row plan with ", p.epl, " elements per thread");
}

// Calls f.template operator()<EPL, V, WARP>() for the plan's register configuration.
template <class T, class F>
void dispatch_reg(const RowPlan& p, F&& f) {
  if (p.v == 1)
    dispatch_reg_v<1>(p, f);
  else if constexpr (kVec<T> > 1)
    dispatch_reg_v<kVec<T>>(p, f);
  else
    fail("cuda nn: internal error: vector row plan for a scalar type");
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

// ---- softmax / log_softmax -----------------------------------------------------------------------

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

// ---- layer_norm ----------------------------------------------------------------------------------

template <class T, int EPL, int V, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * kWarpRowsPerBlock : kMaxBlockThreads)
    layer_norm_fwd_reg(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                       int64_t rows, int64_t cols, acc_t<T> eps, T* __restrict__ y, Stat<T> mean,
                       Stat<T> rstd) {
  using A = acc_t<T>;
  constexpr int P = EPL / V;
  __shared__ A shm[33];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(rows, t, G, row)) return;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  A v[EPL];
  A s = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k < cols) {
      load_pack<T, V>(xr + k, v + p * V);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) v[p * V + e] = A(0);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) s += v[p * V + e];
  }
  const A mu = group_allreduce<WARP>(s, SumOp{}, A(0), shm) / static_cast<A>(cols);
  A sq = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    if (static_cast<int64_t>(t + G * p) * V >= cols) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const A d = v[p * V + e] - mu;
      sq += d * d;
    }
  }
  const A var = group_allreduce<WARP>(sq, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A rs = A(1) / ::sqrt(var + eps);
  if (t == 0) {
    mean.set(row, mu);
    rstd.set(row, rs);
  }
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k >= cols) continue;
    A wv[V], bv[V];
    if (w) load_pack<T, V>(w + k, wv);
    if (b) load_pack<T, V>(b + k, bv);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      A o = (v[p * V + e] - mu) * rs;
      if (w) o *= wv[e];
      if (b) o += bv[e];
      v[p * V + e] = o;
    }
    store_pack<T, V>(yr + k, v + p * V);
  }
}

template <class T>
__global__ void __launch_bounds__(kLoopThreads)
    layer_norm_fwd_loop(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                        int64_t cols, acc_t<T> eps, T* __restrict__ y, Stat<T> mean, Stat<T> rstd) {
  using A = acc_t<T>;
  __shared__ A shm[33];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  A s = 0;
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) s += load(xr[k]);
  const A mu = group_allreduce<false>(s, SumOp{}, A(0), shm) / static_cast<A>(cols);
  A sq = 0;
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const A d = load(xr[k]) - mu;
    sq += d * d;
  }
  const A var = group_allreduce<false>(sq, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A rs = A(1) / ::sqrt(var + eps);
  if (threadIdx.x == 0) {
    mean.set(row, mu);
    rstd.set(row, rs);
  }
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    A o = (load(xr[k]) - mu) * rs;
    if (w) o *= load(w[k]);
    if (b) o += load(b[k]);
    yr[k] = store<T>(o);
  }
}

// dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)),  gh = g * w,  xhat = (x - mean) * rstd.
template <class T, int EPL, int V, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * kWarpRowsPerBlock : kMaxBlockThreads)
    layer_norm_bwd_reg(const T* __restrict__ g, const T* __restrict__ x, Stat<T> mean, Stat<T> rstd,
                       const T* __restrict__ w, int64_t rows, int64_t cols, T* __restrict__ dx) {
  using A = acc_t<T>;
  constexpr int P = EPL / V;
  __shared__ A shm[33];
  int t, G;
  int64_t row;
  if (!row_setup<WARP>(rows, t, G, row)) return;
  const A mu = mean.get(row), rs = rstd.get(row);
  const T* gr = g + row * cols;
  const T* xr = x + row * cols;
  T* dr = dx + row * cols;
  A gh[EPL], xh[EPL];
  A sum_gh = 0, sum_ghx = 0;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k < cols) {
      load_pack<T, V>(gr + k, gh + p * V);
      load_pack<T, V>(xr + k, xh + p * V);
      if (w) {
        A wv[V];
        load_pack<T, V>(w + k, wv);
#pragma unroll
        for (int e = 0; e < V; ++e) gh[p * V + e] *= wv[e];
      }
#pragma unroll
      for (int e = 0; e < V; ++e) xh[p * V + e] = (xh[p * V + e] - mu) * rs;
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) gh[p * V + e] = xh[p * V + e] = A(0);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      sum_gh += gh[p * V + e];
      sum_ghx += gh[p * V + e] * xh[p * V + e];
    }
  }
  const A a = group_allreduce<WARP>(sum_gh, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A bb = group_allreduce<WARP>(sum_ghx, SumOp{}, A(0), shm) / static_cast<A>(cols);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t k = static_cast<int64_t>(t + G * p) * V;
    if (k >= cols) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) gh[p * V + e] = rs * (gh[p * V + e] - a - xh[p * V + e] * bb);
    store_pack<T, V>(dr + k, gh + p * V);
  }
}

template <class T>
__global__ void __launch_bounds__(kLoopThreads)
    layer_norm_bwd_loop(const T* __restrict__ g, const T* __restrict__ x, Stat<T> mean, Stat<T> rstd,
                        const T* __restrict__ w, int64_t cols, T* __restrict__ dx) {
  using A = acc_t<T>;
  __shared__ A shm[33];
  const int64_t row = blockIdx.x;
  const A mu = mean.get(row), rs = rstd.get(row);
  const int64_t base = row * cols;
  A sum_gh = 0, sum_ghx = 0;
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const A gh = w ? load(g[base + k]) * load(w[k]) : load(g[base + k]);
    sum_gh += gh;
    sum_ghx += gh * (load(x[base + k]) - mu) * rs;
  }
  const A a = group_allreduce<false>(sum_gh, SumOp{}, A(0), shm) / static_cast<A>(cols);
  const A bb = group_allreduce<false>(sum_ghx, SumOp{}, A(0), shm) / static_cast<A>(cols);
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const A gh = w ? load(g[base + k]) * load(w[k]) : load(g[base + k]);
    const A xh = (load(x[base + k]) - mu) * rs;
    dx[base + k] = store<T>(rs * (gh - a - xh * bb));
  }
}

// Stage 1 of dweight/dbias: block (32, 16) sums columns [32 blockIdx.x, +32) over the rows of chunk
// blockIdx.y; part_w/part_b[chunk * cols + j].
template <class T>
__global__ void __launch_bounds__(512)
    layer_norm_param_partial(const T* __restrict__ g, const T* __restrict__ x, Stat<T> mean, Stat<T> rstd,
                             int64_t rows, int64_t cols, int64_t chunks, acc_t<T>* __restrict__ part_w,
                             acc_t<T>* __restrict__ part_b) {
  using A = acc_t<T>;
  __shared__ A sw[16][33], sb[16][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = rows * chunk / chunks, r1 = rows * (chunk + 1) / chunks;
  A aw = 0, ab = 0;
  if (j < cols)
    for (int64_t row = r0 + ty; row < r1; row += 16) {
      const A gv = load(g[row * cols + j]);
      aw += gv * ((load(x[row * cols + j]) - mean.get(row)) * rstd.get(row));
      ab += gv;
    }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  for (int st = 8; st > 0; st >>= 1) {
    if (ty < st) {
      sw[ty][tx] += sw[ty + st][tx];
      sb[ty][tx] += sb[ty + st][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && j < cols) {
    part_w[chunk * cols + j] = sw[0][tx];
    part_b[chunk * cols + j] = sb[0][tx];
  }
}

// Stage 2: one thread per column adds the chunks in order.
template <class T>
__global__ void layer_norm_param_final(const acc_t<T>* __restrict__ part_w,
                                       const acc_t<T>* __restrict__ part_b, int64_t cols, int64_t chunks,
                                       T* __restrict__ dw, T* __restrict__ db) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  double aw = 0, ab = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    aw += part_w[c * cols + j];
    ab += part_b[c * cols + j];
  }
  if (dw) dw[j] = store<T>(aw);
  if (db) db[j] = store<T>(ab);
}

template <class T>
void layer_norm_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t rows, int64_t cols,
                      double eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  using A = acc_t<T>;
  const T* px = ptr<T>(x);
  const T* pw = ptr_or_null<T>(weight);
  const T* pb = ptr_or_null<T>(bias);
  T* py = ptr<T>(y);
  const Stat<T> sm = stat_of<T>(mean, "layer_norm", "mean"), sr = stat_of<T>(rstd, "layer_norm", "rstd");
  const A e = static_cast<A>(eps);
  cudaStream_t st = current_stream();
  const bool aligned = aligned16(px) && aligned16(py) && (!pw || aligned16(pw)) && (!pb || aligned16(pb));
  const RowPlan p = plan_rows(rows, cols, kVec<T>, aligned);
  if (p.reg) {
    dispatch_reg<T>(p, [&]<int E, int V, bool W>() {
      layer_norm_fwd_reg<T, E, V, W>
          <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(px, pw, pb, rows, cols, e, py, sm, sr);
    });
  } else {
    layer_norm_fwd_loop<T>
        <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(px, pw, pb, cols, e, py, sm, sr);
  }
  NABLA_CUDA_LAUNCH_CHECK();
}

void layer_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t rows, int64_t cols,
                     double eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  DeviceGuard g(x.device().index);
  if (rows == 0) return;
  if (cols == 0) {  // the CPU kernel's statistics of an empty row
    mean.fill_(0.0);
    rstd.fill_(1.0 / std::sqrt(eps));
    return;
  }
  visit_cuda_float(x.dtype(), "layer_norm", [&](auto zero) {
    layer_norm_typed<decltype(zero)>(x, weight, bias, rows, cols, eps, y, mean, rstd);
  });
}

template <class T>
void layer_norm_backward_typed(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                               const Tensor& weight, int64_t rows, int64_t cols, Tensor& dx, Tensor& dweight,
                               Tensor& dbias) {
  using A = acc_t<T>;
  const T* pg = ptr<T>(g);
  const T* px = ptr<T>(x);
  const T* pw = ptr_or_null<T>(weight);
  const Stat<T> sm = stat_of<T>(mean, "layer_norm", "mean"), sr = stat_of<T>(rstd, "layer_norm", "rstd");
  cudaStream_t st = current_stream();
  if (dx.defined()) {
    T* pd = ptr<T>(dx);
    const bool aligned = aligned16(pg) && aligned16(px) && aligned16(pd) && (!pw || aligned16(pw));
    const RowPlan p = plan_rows(rows, cols, kVec<T>, aligned);
    if (p.reg) {
      dispatch_reg<T>(p, [&]<int E, int V, bool W>() {
        layer_norm_bwd_reg<T, E, V, W>
            <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(pg, px, sm, sr, pw, rows, cols, pd);
      });
    } else {
      layer_norm_bwd_loop<T>
          <<<static_cast<unsigned>(p.blocks), p.threads, 0, st>>>(pg, px, sm, sr, pw, cols, pd);
    }
    NABLA_CUDA_LAUNCH_CHECK();
  }
  if (!dweight.defined() && !dbias.defined()) return;
  // Row chunks: about 1024 blocks of 32 columns, at least 16 rows a chunk; fixed by the shape alone.
  const int64_t tiles = ceil_div(cols, 32);
  const int64_t chunks = std::clamp<int64_t>(ceil_div(1024, tiles), 1, ceil_div(rows, 16));
  NABLA_CHECK(tiles <= INT32_MAX, "layer_norm: cuda grid limit: ", cols, " columns");
  Tensor part =
      Tensor::empty({2 * chunks * cols}, std::is_same_v<A, double> ? DType::f64 : DType::f32, x.device());
  A* pw_part = ptr<A>(part);
  A* pb_part = pw_part + chunks * cols;
  layer_norm_param_partial<T>
      <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks)), dim3(32, 16), 0, st>>>(
          pg, px, sm, sr, rows, cols, chunks, pw_part, pb_part);
  NABLA_CUDA_LAUNCH_CHECK();
  layer_norm_param_final<T><<<static_cast<unsigned>(ceil_div(cols, 256)), 256, 0, st>>>(
      pw_part, pb_part, cols, chunks, dweight.defined() ? ptr<T>(dweight) : nullptr,
      dbias.defined() ? ptr<T>(dbias) : nullptr);
  NABLA_CUDA_LAUNCH_CHECK();
}

void layer_norm_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                              const Tensor& weight, int64_t rows, int64_t cols, Tensor& dx, Tensor& dweight,
                              Tensor& dbias) {
  DeviceGuard guard(x.device().index);
  if (cols == 0) return;
  if (rows == 0) {  // sums over no rows
    if (dweight.defined()) dweight.fill_(0.0);
    if (dbias.defined()) dbias.fill_(0.0);
    return;
  }
  visit_cuda_float(x.dtype(), "layer_norm", [&](auto zero) {
    layer_norm_backward_typed<decltype(zero)>(g, x, mean, rstd, weight, rows, cols, dx, dweight, dbias);
  });
}

// ---- batch_norm ----------------------------------------------------------------------------------

// (count, mean, M2) of a set of values; Chan et al.'s pairwise merge.
template <class A>
struct Moments {
  A n, mean, m2;
};

template <class A>
__device__ __forceinline__ Moments<A> merge(Moments<A> a, Moments<A> b) {
  if (b.n == A(0)) return a;
  if (a.n == A(0)) return b;
  const A n = a.n + b.n, d = b.mean - a.mean, fb = b.n / n;
  return {n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb};
}

template <class A>
__device__ __forceinline__ Moments<A> shfl_down(Moments<A> v, int d) {
  return {__shfl_down_sync(kFull, v.n, d), __shfl_down_sync(kFull, v.mean, d),
          __shfl_down_sync(kFull, v.m2, d)};
}

// Per-thread accumulation. Forward: sums of (x - k) and (x - k)^2 with k the thread's first value (a shift
// that keeps the sums of squares free of cancellation); backward: sum g and sum g * (x - mu).
template <class A, bool BWD>
struct BnAcc {
  A k = 0, n = 0, s1 = 0, s2 = 0;
  __device__ __forceinline__ void add(A xv, A gv, A mu) {
    if constexpr (BWD) {
      s1 += gv;
      s2 += gv * (xv - mu);
    } else {
      const A d = xv - k;
      n += A(1);
      s1 += d;
      s2 += d * d;
    }
  }
  __device__ __forceinline__ Moments<A> moments() const {
    if (n == A(0)) return {A(0), A(0), A(0)};
    const A m = s1 / n;
    return {n, k + m, s2 - s1 * m > A(0) ? s2 - s1 * m : A(0)};
  }
};

// Writes one thread's (block-merged) partial: forward part[0 | 1 | 2][idx] = count, mean, M2; backward
// part[0 | 1][idx] = sum g, sum g (x - mu). `stride` is the size of one of those planes (c * J).
template <class A, bool BWD>
__device__ __forceinline__ void bn_store_partial(A* part, int64_t stride, int64_t idx, Moments<A> m, A s1,
                                                 A s2) {
  if constexpr (BWD) {
    part[idx] = s1;
    part[stride + idx] = s2;
  } else {
    part[idx] = m.n;
    part[stride + idx] = m.mean;
    part[2 * stride + idx] = m.m2;
  }
}

// s >= 32: a 256-thread block per (channel, chunk of n); its planes are walked as one flat range.
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_planes(const T* __restrict__ x, const T* __restrict__ g, Stat<T> mean, int64_t n, int64_t c,
                      int64_t s, int64_t chunks, acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  __shared__ A sh[3][8];
  const int64_t ch = blockIdx.x / chunks, j = blockIdx.x % chunks;
  const int64_t i0 = n * j / chunks, i1 = n * (j + 1) / chunks;
  const int64_t total = (i1 - i0) * s;
  const int B = blockDim.x;
  const int64_t di = B / s, dk = B % s;
  int64_t e = threadIdx.x, i = i0 + e / s, k = e % s;
  BnAcc<A, BWD> acc;
  const A mu = BWD ? mean.get(ch) : A(0);
  if (!BWD && e < total) acc.k = load(x[(i * c + ch) * s + k]);
  for (; e < total; e += B) {
    const int64_t off = (i * c + ch) * s + k;
    acc.add(load(x[off]), BWD ? load(g[off]) : A(0), mu);
    k += dk;
    i += di;
    if (k >= s) {
      k -= s;
      ++i;
    }
  }
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = B >> 5;
  Moments<A> m{};
  A s1 = acc.s1, s2 = acc.s2;
  if constexpr (BWD) {
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      s1 += __shfl_down_sync(kFull, s1, d);
      s2 += __shfl_down_sync(kFull, s2, d);
    }
    if (lane == 0) {
      sh[0][w] = s1;
      sh[1][w] = s2;
    }
  } else {
    m = acc.moments();
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) m = merge(m, shfl_down(m, d));
    if (lane == 0) {
      sh[0][w] = m.n;
      sh[1][w] = m.mean;
      sh[2][w] = m.m2;
    }
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  if constexpr (BWD) {
    s1 = sh[0][0];
    s2 = sh[1][0];
    for (int q = 1; q < nw; ++q) {
      s1 += sh[0][q];
      s2 += sh[1][q];
    }
  } else {
    m = {sh[0][0], sh[1][0], sh[2][0]};
    for (int q = 1; q < nw; ++q) m = merge(m, Moments<A>{sh[0][q], sh[1][q], sh[2][q]});
  }
  bn_store_partial<A, BWD>(part, c * chunks, ch * chunks + j, m, s1, s2);
}

// s < 32: x as [n, Q = c * s]; block (32, 8) takes 32 columns over the rows of chunk blockIdx.y. The partial
// of column q = ch * s + k in chunk ck goes to channel ch's slot ck * s + k (J = chunks * s per channel).
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_columns(const T* __restrict__ x, const T* __restrict__ g, Stat<T> mean, int64_t n, int64_t c,
                       int64_t s, int64_t chunks, acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  __shared__ A sh[3][8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t Q = c * s;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  const int64_t ck = blockIdx.y;
  const int64_t i0 = n * ck / chunks, i1 = n * (ck + 1) / chunks;
  const bool active = q < Q;
  const int64_t ch = active ? q / s : 0;
  BnAcc<A, BWD> acc;
  if (active) {
    const A mu = BWD ? mean.get(ch) : A(0);
    if (!BWD && i0 + ty < i1) acc.k = load(x[(i0 + ty) * Q + q]);
    for (int64_t i = i0 + ty; i < i1; i += 8)
      acc.add(load(x[i * Q + q]), BWD ? load(g[i * Q + q]) : A(0), mu);
  }
  if constexpr (BWD) {
    sh[0][ty][tx] = acc.s1;
    sh[1][ty][tx] = acc.s2;
  } else {
    const Moments<A> m = acc.moments();
    sh[0][ty][tx] = m.n;
    sh[1][ty][tx] = m.mean;
    sh[2][ty][tx] = m.m2;
  }
  __syncthreads();
  if (ty != 0 || !active) return;
  const int64_t J = chunks * s;
  const int64_t idx = ch * J + ck * s + (q - ch * s);
  if constexpr (BWD) {
    A s1 = sh[0][0][tx], s2 = sh[1][0][tx];
    for (int r = 1; r < 8; ++r) {
      s1 += sh[0][r][tx];
      s2 += sh[1][r][tx];
    }
    bn_store_partial<A, BWD>(part, c * J, idx, Moments<A>{}, s1, s2);
  } else {
    Moments<A> m{sh[0][0][tx], sh[1][0][tx], sh[2][0][tx]};
    for (int r = 1; r < 8; ++r) m = merge(m, Moments<A>{sh[0][r][tx], sh[1][r][tx], sh[2][r][tx]});
    bn_store_partial<A, BWD>(part, c * J, idx, m, A(0), A(0));
  }
}

// One warp per channel: merges the channel's J partials (fixed order, f64) and writes the per-channel
// results. Forward: the batch mean/biased variance (training) or the running ones (read), then
//   coef[ch] = scale = w rstd, coef[c + ch] = shift = b - mean * scale.
// Backward: dweight = sum g xhat, dbias = sum g, then coef[0|1|2|3][ch] = w rstd, kx, k0, mean with
//   dx = g w rstd - kx (x - mean) - k0.
// w, b, dweight, dbias, running_mean, running_var: Stats (f32 or T; p == nullptr when absent). Training
// forward with running statistics: running = (1 - momentum) running + momentum batch (unbiased variance),
// in double, rounded once.
template <class T, bool BWD>
__global__ void bn_finalize(const acc_t<T>* __restrict__ part, int64_t c, int64_t J, double count,
                            bool training, bool have_sums, double eps, Stat<T> w, Stat<T> b, Stat<T> mean,
                            Stat<T> var, acc_t<T>* __restrict__ coef, Stat<T> dweight, Stat<T> dbias,
                            Stat<T> running_mean, Stat<T> running_var, double momentum) {
  using A = acc_t<T>;
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (ch >= c) return;
  const int64_t stride = c * J;
  double s1 = 0, s2 = 0;  // backward sums
  Moments<double> m{0, 0, 0};
  if (have_sums) {
    for (int64_t j = lane; j < J; j += 32) {
      const int64_t idx = ch * J + j;
      if constexpr (BWD) {
        s1 += part[idx];
        s2 += part[stride + idx];
      } else {
        m = merge(m, Moments<double>{part[idx], part[stride + idx], part[2 * stride + idx]});
      }
    }
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      if constexpr (BWD) {
        s1 += __shfl_down_sync(kFull, s1, d);
        s2 += __shfl_down_sync(kFull, s2, d);
      } else {
        m = merge(m, shfl_down(m, d));
      }
    }
  }
  if (lane != 0) return;
  const double wv = w.p ? static_cast<double>(w.get(ch)) : 1.0;
  if constexpr (!BWD) {
    double mu, sigma2;
    if (training) {
      mu = m.mean;
      sigma2 = m.m2 / count;
      mean.set(ch, mu);
      var.set(ch, sigma2);
      if (running_mean.p) {
        running_mean.set(ch, (1.0 - momentum) * static_cast<double>(running_mean.get(ch)) + momentum * mu);
        running_var.set(ch, (1.0 - momentum) * static_cast<double>(running_var.get(ch)) +
                                momentum * sigma2 * count / (count - 1.0));
      }
    } else {
      mu = mean.get(ch);
      sigma2 = var.get(ch);
    }
    const double sc = wv / ::sqrt(sigma2 + eps);
    coef[ch] = static_cast<A>(sc);
    coef[c + ch] = static_cast<A>((b.p ? static_cast<double>(b.get(ch)) : 0.0) - mu * sc);
  } else {
    const double mu = mean.get(ch);
    const double rs = 1.0 / ::sqrt(static_cast<double>(var.get(ch)) + eps);
    s2 *= rs;  // sum g * xhat
    if (dweight.p) dweight.set(ch, s2);
    if (dbias.p) dbias.set(ch, s1);
    const double wr = wv * rs;
    coef[ch] = static_cast<A>(wr);
    coef[c + ch] = static_cast<A>(training ? wr * rs * s2 / count : 0.0);
    coef[2 * c + ch] = static_cast<A>(training ? wr * s1 / count : 0.0);
    coef[3 * c + ch] = static_cast<A>(mu);
  }
}

// x as [n, Q = c * s]: a thread per column q (channel q / s), looping over rows i = blockIdx.y + k gridDim.y.
template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_apply(const T* __restrict__ x, const T* __restrict__ g, const acc_t<T>* __restrict__ coef, int64_t n,
             int64_t c, int64_t s, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t Q = c * s;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (q >= Q) return;
  const int64_t ch = q / s;
  if constexpr (BWD) {
    const A wr = coef[ch], kx = coef[c + ch], k0 = coef[2 * c + ch], mu = coef[3 * c + ch];
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
      const int64_t off = i * Q + q;
      out[off] = store<T>(load(g[off]) * wr - kx * (load(x[off]) - mu) - k0);
    }
  } else {
    const A sc = coef[ch], sh = coef[c + ch];
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
      const int64_t off = i * Q + q;
      out[off] = store<T>(load(x[off]) * sc + sh);
    }
  }
}

// s == 1 (a channels-last input seen as [N H W, C], or [N, C]): flat over the n * c elements, channel
// e % c; a grid-stride loop over all elements keeps every thread busy whatever c is (the column kernel
// above would leave most of a 256-thread block idle for c = 64).
template <class T, bool BWD, class I>
__global__ void __launch_bounds__(256)
    bn_apply_flat(const T* __restrict__ x, const T* __restrict__ g, const acc_t<T>* __restrict__ coef,
                  I total, I c, T* __restrict__ out) {
  using A = acc_t<T>;
  for (I e = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<I>(blockDim.x) * gridDim.x) {
    const I ch = e % c;
    if constexpr (BWD) {
      out[e] =
          store<T>(load(g[e]) * coef[ch] - coef[c + ch] * (load(x[e]) - coef[3 * c + ch]) - coef[2 * c + ch]);
    } else {
      out[e] = store<T>(load(x[e]) * coef[ch] + coef[c + ch]);
    }
  }
}

// ---- s == 1 with 16-byte packs (channels-last activations: [N H W, C] with C a multiple of the pack) ----
// The column kernel above gives a warp 32 channels of one row: 64 bytes per bf16 load, one value per thread,
// which left the channels-last batch norms of ResNet-50 behind PyTorch's. Here a thread owns a pack of V
// consecutive channels (16 bytes: 8 bf16/f16, 4 f32, 2 f64) and keeps V accumulators; the `tpr` threads of
// a row cover min(c / V, 32) packs, so a warp reads whole rows (C = 64 bf16: 8 threads per row, 4 rows per
// warp), and a block walks 256 / tpr rows at a time. Partials go to the same planes as the column kernel's
// (channel ch, chunk ck at ch * J + ck, J = chunks), so bn_finalize is shared.
template <class T>
constexpr int kBnPack = static_cast<int>(16 / sizeof(T));

template <class T, bool BWD>
__global__ void __launch_bounds__(256)
    bn_partial_rows_packed(const T* __restrict__ x, const T* __restrict__ g, Stat<T> mean, int64_t n,
                           int64_t c, int64_t chunks, acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  __shared__ A sh[BWD ? 2 : 3][256 * V];
  const int64_t packs = c / V;
  const int tpr = packs < 32 ? static_cast<int>(packs) : 32;  // threads per row
  const int rows = 256 / tpr;                                 // rows per block iteration
  const int t = threadIdx.x, r = t / tpr, pk = t % tpr;
  const int64_t pack = static_cast<int64_t>(blockIdx.x) * 32 + pk;
  const bool active = r < rows && pack < packs;
  const int64_t ck = blockIdx.y, i0 = n * ck / chunks, i1 = n * (ck + 1) / chunks;
  BnAcc<A, BWD> acc[V];
  if (active) {
    A mu[V], xv[V], gv[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      mu[e] = BWD ? mean.get(pack * V + e) : A(0);
      gv[e] = A(0);
    }
    if (!BWD && i0 + r < i1) {
      load_pack<T, V>(x + (i0 + r) * c + pack * V, xv);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e].k = xv[e];
    }
    for (int64_t i = i0 + r; i < i1; i += rows) {
      load_pack<T, V>(x + i * c + pack * V, xv);
      if constexpr (BWD) load_pack<T, V>(g + i * c + pack * V, gv);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e].add(xv[e], gv[e], mu[e]);
    }
  }
#pragma unroll
  for (int e = 0; e < V; ++e) {
    if constexpr (BWD) {
      sh[0][t * V + e] = acc[e].s1;
      sh[1][t * V + e] = acc[e].s2;
    } else {
      const Moments<A> m = acc[e].moments();
      sh[0][t * V + e] = m.n;
      sh[1][t * V + e] = m.mean;
      sh[2][t * V + e] = m.m2;
    }
  }
  __syncthreads();
  // Thread t merges channel e of pack column q (t = q * V + e) over the block's rows, in row order.
  const int q = t / V, e = t % V;
  const int64_t my_pack = static_cast<int64_t>(blockIdx.x) * 32 + q;
  if (q >= tpr || my_pack >= packs) return;
  const int64_t ch = my_pack * V + e, stride = c * chunks, idx = ch * chunks + ck;
  if constexpr (BWD) {
    A s1 = 0, s2 = 0;
    for (int rr = 0; rr < rows; ++rr) {
      s1 += sh[0][(rr * tpr + q) * V + e];
      s2 += sh[1][(rr * tpr + q) * V + e];
    }
    part[idx] = s1;
    part[stride + idx] = s2;
  } else {
    Moments<A> m{0, 0, 0};
    for (int rr = 0; rr < rows; ++rr) {
      const int src = (rr * tpr + q) * V + e;
      m = merge(m, Moments<A>{sh[0][src], sh[1][src], sh[2][src]});
    }
    part[idx] = m.n;
    part[stride + idx] = m.mean;
    part[2 * stride + idx] = m.m2;
  }
}

// The element pass of s == 1 by packs: pack p covers channels (p mod c / V) * V ... + V - 1 of one row.
template <class T, bool BWD, class I>
__global__ void __launch_bounds__(256)
    bn_apply_packed(const T* __restrict__ x, const T* __restrict__ g, const acc_t<T>* __restrict__ coef,
                    I total_packs, I row_packs, I c, T* __restrict__ out) {
  using A = acc_t<T>;
  constexpr int V = kBnPack<T>;
  for (I p = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; p < total_packs;
       p += static_cast<I>(blockDim.x) * gridDim.x) {
    const I ch0 = (p % row_packs) * V;
    A xv[V], gv[V];
    load_pack<T, V>(x + p * V, xv);
    if constexpr (BWD) {
      load_pack<T, V>(g + p * V, gv);
#pragma unroll
      for (int e = 0; e < V; ++e)
        xv[e] = gv[e] * coef[ch0 + e] - coef[c + ch0 + e] * (xv[e] - coef[3 * c + ch0 + e]) -
                coef[2 * c + ch0 + e];
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) xv[e] = xv[e] * coef[ch0 + e] + coef[c + ch0 + e];
    }
    store_pack<T, V>(out + p * V, xv);
  }
}

template <class T>
bool bn_packable(int64_t c, int64_t s, const void* x, const void* g, const void* out) {
  const auto al = [](const void* q) { return q == nullptr || reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  return s == 1 && c % kBnPack<T> == 0 && al(x) && al(g) && al(out);
}

// The stage-1 layout of a batch_norm reduction over [n, c, s].
struct BnPlan {
  bool planes = false, packed = false;
  int64_t chunks = 0, J = 0;  // chunks of n; partials per channel
  dim3 grid, block;
};

BnPlan plan_bn(int64_t n, int64_t c, int64_t s, int pack = 0) {
  BnPlan p;
  if (pack > 0) {  // bn_partial_rows_packed: tiles of 32 packs, about 1024 blocks, >= 4 block-rows each
    p.packed = true;
    const int64_t packs = c / pack, tiles = ceil_div(packs, 32);
    const int64_t rows = 256 / std::min<int64_t>(packs, 32);
    NABLA_CHECK(tiles <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " channels");
    p.chunks = std::clamp<int64_t>(ceil_div(1024, tiles), 1,
                                   std::min<int64_t>(65535, std::max<int64_t>(1, n / (4 * rows))));
    p.J = p.chunks;
    p.grid = dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(p.chunks));
    p.block = dim3(256);
  } else if (s >= 32) {
    p.planes = true;
    // About 1024 blocks, each at least 4096 elements (or one plane).
    p.chunks = std::clamp<int64_t>(ceil_div(1024, c), 1, std::max<int64_t>(1, std::min(n, n * s / 4096)));
    p.J = p.chunks;
    NABLA_CHECK(c * p.chunks <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " channels");
    p.grid = dim3(static_cast<unsigned>(c * p.chunks));
    p.block = dim3(256);
  } else {
    const int64_t tiles = ceil_div(c * s, 32);
    NABLA_CHECK(tiles <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " x ", s);
    p.chunks = std::clamp<int64_t>(ceil_div(512, tiles), 1, ceil_div(n, 32));
    p.J = p.chunks * s;
    p.grid = dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(p.chunks));
    p.block = dim3(32, 8);
  }
  return p;
}

template <class T, bool BWD>
void bn_launch_apply(const T* x, const T* g, const acc_t<T>* coef, int64_t n, int64_t c, int64_t s, T* out) {
  if (bn_packable<T>(c, s, x, g, out)) {
    constexpr int V = kBnPack<T>;
    const int64_t total = n * c / V;
    const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(total, 256), 65535LL * 8));
    if (total + int64_t(256) * 65535 * 8 < INT32_MAX)
      bn_apply_packed<T, BWD, int32_t><<<blocks, 256, 0, current_stream()>>>(
          x, g, coef, static_cast<int32_t>(total), static_cast<int32_t>(c / V), static_cast<int32_t>(c), out);
    else
      bn_apply_packed<T, BWD, int64_t>
          <<<blocks, 256, 0, current_stream()>>>(x, g, coef, total, c / V, c, out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  if (s == 1) {
    const int64_t total = n * c;
    const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(total, 256), 65535LL * 8));
    if (total + int64_t(256) * 65535 * 8 < INT32_MAX)
      bn_apply_flat<T, BWD, int32_t><<<blocks, 256, 0, current_stream()>>>(
          x, g, coef, static_cast<int32_t>(total), static_cast<int32_t>(c), out);
    else
      bn_apply_flat<T, BWD, int64_t><<<blocks, 256, 0, current_stream()>>>(x, g, coef, total, c, out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  const int64_t gx = ceil_div(c * s, 256);
  NABLA_CHECK(gx <= INT32_MAX, "batch_norm: cuda grid limit: ", c, " x ", s);
  const int64_t gy = std::clamp<int64_t>(ceil_div(4096, gx), 1, std::min<int64_t>(n, 65535));
  bn_apply<T, BWD><<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), 256, 0, current_stream()>>>(
      x, g, coef, n, c, s, out);
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T>
DType acc_dtype() {
  return std::is_same_v<acc_t<T>, double> ? DType::f64 : DType::f32;
}

template <class T>
void batch_norm_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, bool training, int64_t n,
                      int64_t c, int64_t s, double eps, double momentum, Tensor& mean, Tensor& var,
                      Tensor& running_mean, Tensor& running_var, Tensor& y) {
  using A = acc_t<T>;
  const T* px = ptr<T>(x);
  const Stat<T> sm = stat_of<T>(mean, "batch_norm", "mean"), sv = stat_of<T>(var, "batch_norm", "var");
  cudaStream_t st = current_stream();
  const bool have_sums = training && n * s > 0;
  BnPlan p;
  Tensor part;
  if (have_sums) {
    p = plan_bn(n, c, s, bn_packable<T>(c, s, px, nullptr, nullptr) ? kBnPack<T> : 0);
    part = Tensor::empty({3 * c * p.J}, acc_dtype<T>(), x.device());
    if (p.packed)
      bn_partial_rows_packed<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, sm, n, c, p.chunks, ptr<A>(part));
    else if (p.planes)
      bn_partial_planes<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, sm, n, c, s, p.chunks, ptr<A>(part));
    else
      bn_partial_columns<T, false>
          <<<p.grid, p.block, 0, st>>>(px, nullptr, sm, n, c, s, p.chunks, ptr<A>(part));
    NABLA_CUDA_LAUNCH_CHECK();
  }
  Tensor coef = Tensor::empty({2 * c}, acc_dtype<T>(), x.device());
  bn_finalize<T, false><<<static_cast<unsigned>(ceil_div(c, 4)), 128, 0, st>>>(
      have_sums ? ptr<A>(part) : nullptr, c, p.J, static_cast<double>(n * s), training, have_sums, eps,
      stat_or_null<T>(weight, "batch_norm", "weight"), stat_or_null<T>(bias, "batch_norm", "bias"), sm, sv,
      ptr<A>(coef), Stat<T>{nullptr, false}, Stat<T>{nullptr, false},
      stat_or_null<T>(training && have_sums ? running_mean : Tensor(), "batch_norm", "running_mean"),
      stat_or_null<T>(training && have_sums ? running_var : Tensor(), "batch_norm", "running_var"), momentum);
  NABLA_CUDA_LAUNCH_CHECK();
  if (n * s > 0) bn_launch_apply<T, false>(px, nullptr, ptr<A>(coef), n, c, s, ptr<T>(y));
}

void batch_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, bool training, int64_t n,
                     int64_t c, int64_t s, double eps, double momentum, Tensor& mean, Tensor& var,
                     Tensor& running_mean, Tensor& running_var, Tensor& y) {
  DeviceGuard g(x.device().index);
  if (c == 0) return;
  visit_cuda_float(x.dtype(), "batch_norm", [&](auto zero) {
    batch_norm_typed<decltype(zero)>(x, weight, bias, training, n, c, s, eps, momentum, mean, var,
                                     running_mean, running_var, y);
  });
}

template <class T>
void batch_norm_backward_typed(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                               const Tensor& var, bool training, int64_t n, int64_t c, int64_t s, double eps,
                               Tensor& dx, Tensor& dweight, Tensor& dbias) {
  using A = acc_t<T>;
  const T* pg = ptr<T>(g);
  const T* px = ptr<T>(x);
  const Stat<T> sm = stat_of<T>(mean, "batch_norm", "mean"), sv = stat_of<T>(var, "batch_norm", "var");
  cudaStream_t st = current_stream();
  const bool need_sums = training || dweight.defined() || dbias.defined();
  const bool have_sums = need_sums && n * s > 0;  // with no elements the sums are 0
  BnPlan p;
  Tensor part;
  if (have_sums) {
    p = plan_bn(n, c, s, bn_packable<T>(c, s, px, pg, nullptr) ? kBnPack<T> : 0);
    part = Tensor::empty({2 * c * p.J}, acc_dtype<T>(), x.device());
    if (p.packed)
      bn_partial_rows_packed<T, true><<<p.grid, p.block, 0, st>>>(px, pg, sm, n, c, p.chunks, ptr<A>(part));
    else if (p.planes)
      bn_partial_planes<T, true><<<p.grid, p.block, 0, st>>>(px, pg, sm, n, c, s, p.chunks, ptr<A>(part));
    else
      bn_partial_columns<T, true><<<p.grid, p.block, 0, st>>>(px, pg, sm, n, c, s, p.chunks, ptr<A>(part));
    NABLA_CUDA_LAUNCH_CHECK();
  }
  Tensor coef = Tensor::empty({4 * c}, acc_dtype<T>(), x.device());
  bn_finalize<T, true><<<static_cast<unsigned>(ceil_div(c, 4)), 128, 0, st>>>(
      have_sums ? ptr<A>(part) : nullptr, c, p.J, static_cast<double>(n * s), training, have_sums, eps,
      stat_or_null<T>(weight, "batch_norm", "weight"), Stat<T>{nullptr, false}, sm, sv, ptr<A>(coef),
      stat_or_null<T>(dweight, "batch_norm", "weight gradient"),
      stat_or_null<T>(dbias, "batch_norm", "bias gradient"), Stat<T>{nullptr, false}, Stat<T>{nullptr, false},
      0.0);
  NABLA_CUDA_LAUNCH_CHECK();
  if (dx.defined() && n * s > 0) bn_launch_apply<T, true>(px, pg, ptr<A>(coef), n, c, s, ptr<T>(dx));
}

void batch_norm_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                              const Tensor& var, bool training, int64_t n, int64_t c, int64_t s, double eps,
                              Tensor& dx, Tensor& dweight, Tensor& dbias) {
  DeviceGuard guard(x.device().index);
  if (c == 0) return;
  visit_cuda_float(x.dtype(), "batch_norm", [&](auto zero) {
    batch_norm_backward_typed<decltype(zero)>(g, x, weight, mean, var, training, n, c, s, eps, dx, dweight,
                                              dbias);
  });
}

// ---- dropout -------------------------------------------------------------------------------------

// philox_uniform's 53-bit recipe (engine/random.h) on the word pair (hi, lo).
__device__ __forceinline__ double uniform_from_words(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Thread j handles elements 2j (words 0, 1) and 2j + 1 (words 2, 3) of counter offset + j.
template <class T>
__global__ void dropout_kernel_cuda(const T* __restrict__ in, T* __restrict__ out, int64_t numel, double p,
                                    acc_t<T> scale, uint64_t seed, uint64_t offset) {
  const int64_t pairs = (numel + 1) / 2;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < pairs;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const auto w = philox4x32(offset + static_cast<uint64_t>(j), seed);
    const int64_t i = 2 * j;
    out[i] = uniform_from_words(w[0], w[1]) >= p ? store<T>(load(in[i]) * scale) : store<T>(0);
    if (i + 1 < numel)
      out[i + 1] = uniform_from_words(w[2], w[3]) >= p ? store<T>(load(in[i + 1]) * scale) : store<T>(0);
  }
}

template <class T>
void dropout_typed(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset, Tensor& out) {
  const int64_t numel = in.numel();
  const int64_t pairs = (numel + 1) / 2;
  dropout_kernel_cuda<T><<<grid_for(pairs), kBlock, 0, current_stream()>>>(
      ptr<T>(in), ptr<T>(out), numel, p, static_cast<acc_t<T>>(scale), seed, offset);
  NABLA_CUDA_LAUNCH_CHECK();
}

void dropout_cuda(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset, Tensor& out) {
  DeviceGuard g(in.device().index);
  if (in.numel() == 0) return;
  visit_cuda_float(in.dtype(), "dropout",
                   [&](auto zero) { dropout_typed<decltype(zero)>(in, p, scale, seed, offset, out); });
}

}  // namespace

NABLA_REGISTER_KERNEL(softmax_kernel, cuda, softmax_cuda);
NABLA_REGISTER_KERNEL(softmax_backward_kernel, cuda, softmax_backward_cuda);
NABLA_REGISTER_KERNEL(layer_norm_kernel, cuda, layer_norm_cuda);
NABLA_REGISTER_KERNEL(layer_norm_backward_kernel, cuda, layer_norm_backward_cuda);
NABLA_REGISTER_KERNEL(batch_norm_kernel, cuda, batch_norm_cuda);
NABLA_REGISTER_KERNEL(batch_norm_backward_kernel, cuda, batch_norm_backward_cuda);
NABLA_REGISTER_KERNEL(dropout_kernel, cuda, dropout_cuda);

}  // namespace nabla::cuda

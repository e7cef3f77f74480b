// Shared helpers of the CUDA row kernels (cuda/softmax.cu, cuda/layer_norm.cu) and the per-channel
// statistics of cuda/batch_norm.cu: warp/block all-reductions, the saved-statistic accessor, and the row
// plan that picks how a [rows, r] row kernel is launched.
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
// Saved statistics (layer_norm mean/rstd, batch_norm mean/var) are read and written in the input's dtype, or
// in f32 when the input is bf16/f16 and the op layer allocated them in f32 (Stat<T>).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "cuda/vec.cuh"
#include "engine/error.h"
#include "engine/tensor.h"

namespace nabla::cuda {

inline constexpr unsigned kFull = 0xffffffffu;
inline constexpr int kWarpRowsPerBlock = 4;   // warp-per-row kernels: 128-thread blocks
inline constexpr int kMaxWarpRow = 1024;      // longest row kept in one warp's registers (32 lanes x 32)
inline constexpr int kMaxBlockThreads = 512;  // register-row blocks
// Longest row kept in a block's registers: 16 elements a thread (32 spill under the 128-register cap).
inline constexpr int kMaxRegRow = kMaxBlockThreads * 16;
inline constexpr int kLoopThreads = 512;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t pow2ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

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

inline RowPlan plan_rows(int64_t rows, int64_t r, int vmax, bool aligned) {
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

}  // namespace nabla::cuda

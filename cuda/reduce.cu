// CUDA reduce kernel: out[o, i] = reduce_k x[o, k, i] over a contiguous [outer, r, inner] input (the op
// layer, ops/reduce.cpp, brings any reduction into this form).
//
//   inner == 1: one warp per row; lanes stride over k and combine with warp shuffles (rows of r <= 4096),
//               or one 256-thread block per row with a shared-memory tree (longer rows).
//   inner  > 1: 32 x 8 thread blocks; x runs over i (coalesced reads), y splits k eight ways, and the eight
//               partial results meet in shared memory.
// Sums accumulate in f32 for the float types (f64 for f64), max/min keep the first index of the extreme
// and let NaN win, as the CPU kernel does.
#include <cfloat>

#include "cuda/dtype.cuh"
#include "cuda/loops.cuh"
#include "ops/reduce.h"

namespace nabla::cuda {
namespace {
using ops::ReduceOp;

template <class A>
struct Val {
  A v;
  int64_t i;
};

template <class A>
__device__ __forceinline__ Val<A> combine(ReduceOp op, Val<A> a, Val<A> b) {
  if (op == ReduceOp::sum) return {a.v + b.v, 0};
  const bool a_nan = a.v != a.v, b_nan = b.v != b.v;
  if (a_nan || b_nan) {
    if (a_nan && b_nan) return a.i <= b.i ? a : b;
    return a_nan ? a : b;
  }
  const bool b_better = op == ReduceOp::max ? (b.v > a.v || (b.v == a.v && b.i < a.i))
                                            : (b.v < a.v || (b.v == a.v && b.i < a.i));
  return b_better ? b : a;
}

template <class A>
__device__ __forceinline__ Val<A> shuffle_down(Val<A> x, int delta) {
  return {__shfl_down_sync(0xffffffffu, x.v, delta), __shfl_down_sync(0xffffffffu, x.i, delta)};
}

template <class A>
__device__ __forceinline__ Val<A> identity(ReduceOp op) {
  return {A(0), INT64_MAX};  // for max/min the first real element replaces it (see `have`)
}

template <class T, class A>
__global__ void reduce_rows_warp(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t r, T* __restrict__ out,
                                 int64_t* __restrict__ idx) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= outer) return;
  const T* p = x + row * r;
  Val<A> acc = identity<A>(op);
  bool have = false;
  for (int64_t k = lane; k < r; k += 32) {
    Val<A> v{static_cast<A>(load(p[k])), k};
    acc = (op == ReduceOp::sum || have) ? combine(op, acc, v) : v;
    have = true;
  }
  // Lanes without elements (r < 32) must not win: give them the row's first element.
  if (!have && op != ReduceOp::sum) acc = {static_cast<A>(load(p[0])), 0};
  for (int d = 16; d > 0; d /= 2) acc = combine(op, acc, shuffle_down(acc, d));
  if (lane == 0) {
    out[row] = store<T>(acc.v);
    if (idx) idx[row] = acc.i;
  }
}

template <class T, class A>
__global__ void reduce_rows_block(ReduceOp op, const T* __restrict__ x, int64_t r, T* __restrict__ out,
                                  int64_t* __restrict__ idx) {
  __shared__ A sv[256];
  __shared__ int64_t si[256];
  const int64_t row = blockIdx.x;
  const T* p = x + row * r;
  Val<A> acc{static_cast<A>(load(p[0])), 0};
  if (op == ReduceOp::sum) acc = {A(0), 0};
  for (int64_t k = threadIdx.x; k < r; k += blockDim.x) acc = combine(op, acc, Val<A>{static_cast<A>(load(p[k])), k});
  sv[threadIdx.x] = acc.v;
  si[threadIdx.x] = acc.i;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      Val<A> c = combine(op, Val<A>{sv[threadIdx.x], si[threadIdx.x]}, Val<A>{sv[threadIdx.x + s], si[threadIdx.x + s]});
      sv[threadIdx.x] = c.v;
      si[threadIdx.x] = c.i;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[row] = store<T>(sv[0]);
    if (idx) idx[row] = si[0];
  }
}

template <class T, class A>
__global__ void reduce_columns(ReduceOp op, const T* __restrict__ x, int64_t r, int64_t inner, T* __restrict__ out,
                               int64_t* __restrict__ idx) {
  __shared__ A sv[8][33];
  __shared__ int64_t si[8][33];
  const int64_t o = blockIdx.y;
  const int64_t i = blockIdx.x * 32 + threadIdx.x;
  Val<A> acc{A(0), INT64_MAX};
  bool have = false;
  if (i < inner) {
    const T* p = x + o * r * inner + i;
    for (int64_t k = threadIdx.y; k < r; k += 8) {
      Val<A> v{static_cast<A>(load(p[k * inner])), k};
      acc = (op == ReduceOp::sum || have) ? combine(op, acc, v) : v;
      have = true;
    }
    if (!have && op != ReduceOp::sum) acc = {static_cast<A>(load(p[0])), 0};
  }
  sv[threadIdx.y][threadIdx.x] = acc.v;
  si[threadIdx.y][threadIdx.x] = acc.i;
  __syncthreads();
  if (threadIdx.y == 0 && i < inner) {
    Val<A> c{sv[0][threadIdx.x], si[0][threadIdx.x]};
    for (int y = 1; y < 8; ++y) c = combine(op, c, Val<A>{sv[y][threadIdx.x], si[y][threadIdx.x]});
    out[o * inner + i] = store<T>(c.v);
    if (idx) idx[o * inner + i] = c.i;
  }
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, Tensor& out, int64_t* idx) {
  using A = std::conditional_t<std::is_same_v<T, double>, double,
                               std::conditional_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int64_t, float>>;
  const T* px = ptr<T>(x);
  T* po = ptr<T>(out);
  if (outer == 0 || inner == 0) return;
  if (r == 0) {  // an empty sum is 0 (max/min of nothing is refused by the op layer)
    out.fill_(0.0);
    return;
  }
  if (inner == 1 && r <= 4096) {
    const int rows_per_block = 8;
    reduce_rows_warp<T, A><<<static_cast<unsigned>((outer + rows_per_block - 1) / rows_per_block), 32 * rows_per_block, 0,
                             current_stream()>>>(op, px, outer, r, po, idx);
  } else if (inner == 1) {
    reduce_rows_block<T, A><<<static_cast<unsigned>(outer), 256, 0, current_stream()>>>(op, px, r, po, idx);
  } else {
    dim3 grid(static_cast<unsigned>((inner + 31) / 32), static_cast<unsigned>(outer));
    reduce_columns<T, A><<<grid, dim3(32, 8), 0, current_stream()>>>(op, px, r, inner, po, idx);
  }
  NABLA_CUDA_LAUNCH_CHECK();
}

void reduce_cuda(ReduceOp op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, Tensor& out, Tensor* indices) {
  DeviceGuard g(x.device().index);
  NABLA_CHECK(outer <= 65535 || inner == 1, "reduce: cuda grid limit: ", outer, " outer rows with inner ", inner);
  int64_t* idx = indices && indices->defined() ? ptr<int64_t>(*indices) : nullptr;
  NABLA_CHECK(!(op == ReduceOp::sum && x.dtype() == DType::b8), "sum: cannot sum a bool tensor; cast it to i64 first");
  visit_all(x.dtype(), [&](auto zero) { reduce_typed<decltype(zero)>(op, x, outer, r, inner, out, idx); });
}

}  // namespace

NABLA_REGISTER_KERNEL(reduce_kernel, cuda, reduce_cuda);

}  // namespace nabla::cuda

// CUDA reduce kernel: out[o, i] = reduce_k x[o, k, i] over a contiguous [outer, r, inner] input (the op
// layer, ops/reduce.cpp, brings any reduction into this form).
//
//   inner == 1: one warp per row; lanes stride over k and combine with warp shuffles (rows of r <= 4096),
//               or 256-thread blocks with a shared-memory tree (longer rows).
//   inner  > 1: 32 x 8 thread blocks; x runs over i (coalesced reads), y splits k eight ways, and the eight
//               partial results meet in shared memory.
// When that natural grid has fewer blocks than the GPU can run at once (a full sum of one long row, a bias
// gradient [16384, 768] -> [768]), k is split over more blocks and a second launch combines the splits
// (reduce_typed); without it a grad-norm or bias-gradient sum ran on one or a few dozen blocks.
// Sums accumulate in f32 for the float types (f64 for f64), max/min keep the first index of the extreme
// and let NaN win, as the CPU kernel does.
#include <algorithm>
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

// Where the elements come from: the input itself (value and its index k along the reduced axis), or the
// partial results of a first pass (split reductions below), which carry their own indices.
template <class T, class A>
struct FromInput {
  const T* x;
  int64_t r, inner;
  __device__ __forceinline__ Val<A> operator()(int64_t o, int64_t k, int64_t i) const {
    return {static_cast<A>(load(x[(o * r + k) * inner + i])), k};
  }
};
template <class A>
struct FromPartial {  // [outer, splits, inner] partial values and indices
  const A* v;
  const int64_t* idx;
  int64_t splits, inner;
  __device__ __forceinline__ Val<A> operator()(int64_t o, int64_t k, int64_t i) const {
    const int64_t at = (o * splits + k) * inner + i;
    return {v[at], idx[at]};
  }
};
// Where the results go: the output tensor (and indices), or the partial buffers of a first pass.
template <class T, class A>
struct ToOutput {
  T* out;
  int64_t* idx;
  int64_t inner;
  __device__ __forceinline__ void operator()(int64_t o, int64_t /*z*/, int64_t i, Val<A> c) const {
    out[o * inner + i] = store<T>(c.v);
    if (idx) idx[o * inner + i] = c.i;
  }
};
template <class A>
struct ToPartial {
  A* v;
  int64_t* idx;
  int64_t splits, inner;
  __device__ __forceinline__ void operator()(int64_t o, int64_t z, int64_t i, Val<A> c) const {
    const int64_t at = (o * splits + z) * inner + i;
    v[at] = c.v;
    idx[at] = c.i;
  }
};

// The k range [k0, k1) that block z of `splits` covers; every block gets at least one element when
// splits <= r (the launcher guarantees it), so max/min never see an empty range.
__device__ __forceinline__ void split_range(int64_t r, int64_t splits, int64_t z, int64_t* k0, int64_t* k1) {
  const int64_t chunk = (r + splits - 1) / splits;
  *k0 = z * chunk;
  *k1 = *k0 + chunk < r ? *k0 + chunk : r;
}

// inner == 1, short rows: one warp per row.
template <class A, class Src, class Dst>
__global__ void reduce_rows_warp(ReduceOp op, Src src, int64_t outer, int64_t r, Dst dst) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= outer) return;
  Val<A> acc = identity<A>(op);
  bool have = false;
  for (int64_t k = lane; k < r; k += 32) {
    const Val<A> v = src(row, k, 0);
    acc = (op == ReduceOp::sum || have) ? combine(op, acc, v) : v;
    have = true;
  }
  // Lanes without elements (r < 32) must not win: give them the row's first element.
  if (!have && op != ReduceOp::sum) acc = src(row, 0, 0);
  for (int d = 16; d > 0; d /= 2) acc = combine(op, acc, shuffle_down(acc, d));
  if (lane == 0) dst(row, 0, 0, acc);
}

// inner == 1, long rows: one 256-thread block per (row, split); blockIdx.x = split, blockIdx.y = row.
template <class A, class Src, class Dst>
__global__ void reduce_rows_block(ReduceOp op, Src src, int64_t r, int64_t splits, Dst dst) {
  __shared__ A sv[256];
  __shared__ int64_t si[256];
  const int64_t row = blockIdx.y, z = blockIdx.x;
  int64_t k0, k1;
  split_range(r, splits, z, &k0, &k1);
  Val<A> acc = op == ReduceOp::sum ? Val<A>{A(0), 0} : src(row, k0, 0);
  for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) acc = combine(op, acc, src(row, k, 0));
  sv[threadIdx.x] = acc.v;
  si[threadIdx.x] = acc.i;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      Val<A> c = combine(op, Val<A>{sv[threadIdx.x], si[threadIdx.x]},
                         Val<A>{sv[threadIdx.x + s], si[threadIdx.x + s]});
      sv[threadIdx.x] = c.v;
      si[threadIdx.x] = c.i;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) dst(row, z, 0, Val<A>{sv[0], si[0]});
}

// inner > 1: 32 x 8 thread blocks; x runs over i (coalesced reads), y splits the block's k range eight ways,
// and the eight partial results meet in shared memory. blockIdx.z is the split of k.
template <class A, class Src, class Dst>
__global__ void reduce_columns(ReduceOp op, Src src, int64_t r, int64_t inner, int64_t splits, Dst dst) {
  __shared__ A sv[8][33];
  __shared__ int64_t si[8][33];
  const int64_t o = blockIdx.y, z = blockIdx.z;
  const int64_t i = blockIdx.x * 32 + threadIdx.x;
  int64_t k0, k1;
  split_range(r, splits, z, &k0, &k1);
  Val<A> acc{A(0), INT64_MAX};
  bool have = false;
  if (i < inner) {
    for (int64_t k = k0 + threadIdx.y; k < k1; k += 8) {
      const Val<A> v = src(o, k, i);
      acc = (op == ReduceOp::sum || have) ? combine(op, acc, v) : v;
      have = true;
    }
    if (!have && op != ReduceOp::sum) acc = src(o, k0, i);
  }
  sv[threadIdx.y][threadIdx.x] = acc.v;
  si[threadIdx.y][threadIdx.x] = acc.i;
  __syncthreads();
  if (threadIdx.y == 0 && i < inner) {
    Val<A> c{sv[0][threadIdx.x], si[0][threadIdx.x]};
    for (int y = 1; y < 8; ++y) c = combine(op, c, Val<A>{sv[y][threadIdx.x], si[y][threadIdx.x]});
    dst(o, z, i, c);
  }
}

// Enough blocks to fill the GPU: a reduction whose natural grid is smaller than this (one long row, a few
// hundred columns over many rows: a bias gradient, a norm) splits its k axis over several blocks, writes
// per-split results (values and indices) to a scratch buffer, and a second launch reduces the splits. The
// combine order is fixed, so the result does not depend on timing (no atomics).
constexpr int64_t kFillBlocks = 2 * 132;
constexpr int64_t kMinPerThread = 16;  // elements each thread of a split should still read

// The number of splits with none empty: every split's range starts inside [0, r) (see split_range).
int64_t nonempty_splits(int64_t r, int64_t splits) {
  const int64_t chunk = (r + splits - 1) / splits;
  return (r + chunk - 1) / chunk;
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, Tensor& out,
                  int64_t* idx) {
  using A = std::conditional_t<
      std::is_same_v<T, double>, double,
      std::conditional_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int64_t, float>>;
  if (outer == 0 || inner == 0) return;
  if (r == 0) {  // an empty sum is 0 (max/min of nothing is refused by the op layer)
    out.fill_(0.0);
    return;
  }
  const FromInput<T, A> in{ptr<T>(x), r, inner};
  const ToOutput<T, A> to_out{ptr<T>(out), idx, inner};
  cudaStream_t s = current_stream();
  // Scratch for the per-split results, [outer, splits, inner] values and indices.
  auto partials = [&](int64_t splits, Tensor* v, Tensor* i) {
    const DType vt = std::is_same_v<A, double>    ? DType::f64
                     : std::is_same_v<A, int64_t> ? DType::i64
                                                  : DType::f32;
    *v = Tensor::empty({outer * splits * inner}, vt, x.device());
    *i = Tensor::empty({outer * splits * inner}, DType::i64, x.device());
    return ToPartial<A>{ptr<A>(*v), ptr<int64_t>(*i), splits, inner};
  };
  if (inner == 1) {
    if (r <= 4096) {
      const int rows_per_block = 8;
      reduce_rows_warp<A><<<static_cast<unsigned>((outer + rows_per_block - 1) / rows_per_block),
                            32 * rows_per_block, 0, s>>>(op, in, outer, r, to_out);
      NABLA_CUDA_LAUNCH_CHECK();
      return;
    }
    int64_t splits = 1;
    if (outer < kFillBlocks)
      splits = std::clamp<int64_t>((kFillBlocks + outer - 1) / outer, 1,
                                   std::max<int64_t>(1, r / (256 * kMinPerThread)));
    splits = nonempty_splits(r, splits);
    if (splits == 1 || outer > 65535) {
      reduce_rows_block<A><<<dim3(1, static_cast<unsigned>(outer)), 256, 0, s>>>(op, in, r, 1, to_out);
      NABLA_CUDA_LAUNCH_CHECK();
      return;
    }
    Tensor pv, pi;
    const ToPartial<A> to_part = partials(splits, &pv, &pi);
    reduce_rows_block<A><<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(outer)), 256, 0, s>>>(
        op, in, r, splits, to_part);
    NABLA_CUDA_LAUNCH_CHECK();
    const FromPartial<A> from_part{ptr<A>(pv), ptr<int64_t>(pi), splits, 1};
    reduce_rows_warp<A>
        <<<static_cast<unsigned>((outer + 7) / 8), 256, 0, s>>>(op, from_part, outer, splits, to_out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  const int64_t col_blocks = (inner + 31) / 32;
  int64_t splits = 1;
  if (col_blocks * outer < kFillBlocks)
    splits = std::clamp<int64_t>((kFillBlocks + col_blocks * outer - 1) / (col_blocks * outer), 1,
                                 std::max<int64_t>(1, r / (8 * kMinPerThread)));
  splits = nonempty_splits(r, splits);
  if (splits == 1) {
    dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(outer), 1);
    reduce_columns<A><<<grid, dim3(32, 8), 0, s>>>(op, in, r, inner, 1, to_out);
    NABLA_CUDA_LAUNCH_CHECK();
    return;
  }
  Tensor pv, pi;
  const ToPartial<A> to_part = partials(splits, &pv, &pi);
  reduce_columns<A>
      <<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(outer), static_cast<unsigned>(splits)),
         dim3(32, 8), 0, s>>>(op, in, r, inner, splits, to_part);
  NABLA_CUDA_LAUNCH_CHECK();
  const FromPartial<A> from_part{ptr<A>(pv), ptr<int64_t>(pi), splits, inner};
  reduce_columns<A>
      <<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(outer), 1), dim3(32, 8), 0, s>>>(
          op, from_part, splits, inner, 1, to_out);
  NABLA_CUDA_LAUNCH_CHECK();
}

void reduce_cuda(ReduceOp op, const Tensor& x, int64_t outer, int64_t r, int64_t inner, Tensor& out,
                 Tensor* indices) {
  DeviceGuard g(x.device().index);
  NABLA_CHECK(outer <= 65535 || inner == 1, "reduce: cuda grid limit: ", outer, " outer rows with inner ",
              inner);
  int64_t* idx = indices && indices->defined() ? ptr<int64_t>(*indices) : nullptr;
  NABLA_CHECK(!(op == ReduceOp::sum && x.dtype() == DType::b8),
              "sum: cannot sum a bool tensor; cast it to i64 first");
  visit_all(x.dtype(), [&](auto zero) { reduce_typed<decltype(zero)>(op, x, outer, r, inner, out, idx); });
}

}  // namespace

NABLA_REGISTER_KERNEL(reduce_kernel, cuda, reduce_cuda);

}  // namespace nabla::cuda

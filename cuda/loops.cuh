// Element-wise launch helpers for CUDA kernels (the GPU twin of ops/cpu/loops.h).
//
// launch_elementwise<N>(out_shape, {strides of t0..tN-1}, f) runs f(offsets) on every element of
// out_shape, where offsets[k] is the element's offset inside tensor k (broadcast dims have stride 0).
// When every tensor is contiguous the offsets are the linear index itself, and so they are when N >= 2
// tensors all share one dense, non-overlapping layout (e.g. all channels-last: the walk is then in memory
// order, which is still one visit per element with matching offsets); otherwise each thread turns its
// linear index into per-tensor offsets with one division per dim (dims of size 1 are dropped and adjacent
// dims that are contiguous in every tensor merged first, after ordering the dims by the first tensor's
// strides, so most views need 1-2 divisions, 32-bit ones below 2^31 elements).
// f is a __device__ lambda (nvcc --extended-lambda).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "cuda/runtime.h"
#include "engine/tensor.h"

namespace nabla::cuda {

inline constexpr int kMaxDims = 10;
inline constexpr int kBlock = 256;

template <int N>
struct OffsetCalc {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];

  __device__ __forceinline__ std::array<int64_t, N> get(int64_t linear) const {
    std::array<int64_t, N> off{};
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t idx = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
    }
    return off;
  }
  // The same with 32-bit index arithmetic (linear < 2^31: a 64-bit division costs several times a 32-bit
  // one).
  __device__ __forceinline__ std::array<int64_t, N> get32(uint32_t linear) const {
    std::array<int64_t, N> off{};
    for (int d = ndim - 1; d >= 0; --d) {
      const uint32_t size = static_cast<uint32_t>(sizes[d]);
      const uint32_t idx = linear % size;
      linear /= size;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(idx) * strides[k][d];
    }
    return off;
  }
};

// Drops size-1 dims and merges dims that are contiguous with their neighbour in every tensor.
template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const std::array<const Strides*, N>& strides) {
  OffsetCalc<N> c;
  Shape sz;
  std::array<Strides, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sz.empty();
    for (int k = 0; k < N && merge; ++k) merge = st[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      sz.back() *= shape[d];
      for (int k = 0; k < N; ++k) st[k].back() = (*strides[k])[d];
    } else {
      sz.push_back(shape[d]);
      for (int k = 0; k < N; ++k) st[k].push_back((*strides[k])[d]);
    }
  }
  NABLA_CHECK(static_cast<int>(sz.size()) <= kMaxDims, "cuda: tensors of more than ", kMaxDims,
              " non-mergeable dims are not supported (shape ", shape, ")");
  c.ndim = static_cast<int>(sz.size());
  for (int d = 0; d < c.ndim; ++d) {
    c.sizes[d] = sz[d];
    for (int k = 0; k < N; ++k) c.strides[k][d] = st[k][d];
  }
  return c;
}

template <int N, class F>
__global__ void elementwise_kernel(int64_t n, OffsetCalc<N> calc, bool contiguous, F f) {
  const bool small = n < (int64_t(1) << 31);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    if (contiguous) {
      std::array<int64_t, N> off;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] = i;
      f(off);
    } else if (small) {
      f(calc.get32(static_cast<uint32_t>(i)));
    } else {
      f(calc.get(i));
    }
  }
}

inline int grid_for(int64_t n, int block = kBlock) {
  int64_t blocks = (n + block - 1) / block;
  return static_cast<int>(std::min<int64_t>(blocks, 65535LL * 8));
}

template <int N, class F>
void launch_elementwise(const Shape& shape, const std::array<const Strides*, N>& strides, F f) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const Strides cs = contiguous_strides(shape);
  bool contiguous = true;
  for (int k = 0; k < N; ++k)
    for (size_t d = 0; d < shape.size(); ++d)
      if (shape[d] != 1 && (*strides[k])[d] != cs[d]) contiguous = false;
  if (!contiguous && N >= 2 && is_non_overlapping_and_dense(shape, *strides[0])) {
    contiguous = true;
    for (int k = 1; k < N; ++k) contiguous = contiguous && *strides[k] == *strides[0];
  }
  OffsetCalc<N> calc{};
  if (!contiguous) {
    // Walk the elements in the first tensor's memory order (dims by decreasing stride, ties in order):
    // each element is still visited once, the first tensor's accesses are in order, and views whose dims
    // are contiguous only in memory order merge (a channel slice of a channels-last tensor, [N, C, H, W]
    // with strides [H W Ct, 1, W Ct, Ct], is a [N H W, C] matrix with row stride Ct: 1 division, not 3).
    std::vector<size_t> order(shape.size());
    for (size_t d = 0; d < order.size(); ++d) order[d] = d;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return (*strides[0])[a] > (*strides[0])[b]; });
    Shape ps;
    std::array<Strides, N> pst;
    for (size_t d : order) {
      ps.push_back(shape[d]);
      for (int k = 0; k < N; ++k) pst[k].push_back((*strides[k])[d]);
    }
    std::array<const Strides*, N> pp;
    for (int k = 0; k < N; ++k) pp[k] = &pst[k];
    calc = make_offset_calc<N>(ps, pp);
  }
  elementwise_kernel<N><<<grid_for(n), kBlock, 0, current_stream()>>>(n, calc, contiguous, f);
  NABLA_CUDA_LAUNCH_CHECK();
}

template <class T>
inline T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// Device-side value conversion through float (f32 compute for the 16-bit types).
template <class T>
struct Compute {
  using type = T;
};

}  // namespace nabla::cuda

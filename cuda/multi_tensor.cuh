// Device helpers shared by the multi-tensor kernels (cuda/optim_kernels.cu: the fused optimizers and norms;
// cuda/gsnr_kernels.cu: the fused GSNR statistics). One launch covers many tensors: each tensor's slot
// records the index of its first block, and a block finds its tensor by binary search over the slots.
#pragma once
#include <cstdint>

namespace nabla::cuda {

// The index of block b's slot: the last slot whose first_block <= b, among the first `count` (slots with
// no elements are never added, so first_block is strictly increasing).
template <class Slot>
__device__ __forceinline__ int multi_tensor_slot(const Slot* slots, int count, int64_t b) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (slots[mid].first_block <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// The f64 sum of v over a block of Threads threads, valid in thread 0, in a fixed order (shuffle tree, then
// the warps' sums in warp order): deterministic. Safe to call several times in one kernel (it waits for the
// previous call's reads of the shared sums before writing them).
template <int Threads>
__device__ __forceinline__ double block_sum(double v) {
  static_assert(Threads % 32 == 0, "whole warps");
  __shared__ double warp_sums[Threads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < Threads / 32; ++w) total += warp_sums[w];
  return total;
}

}  // namespace nabla::cuda

// Device-side grouping of positions by key, for the deterministic accumulating kernels of the index and
// embedding families (index_add, scatter_add, embedding_bag backward). Host declarations only; the
// kernels live in cuda/index.cu.
//
// sort_positions_by_key(keys, m, key_bits) returns the positions 0..m-1 stably sorted by keys[position]
// (an LSD radix sort, 8 bits per pass, written without CUB): positions with equal keys stay in increasing
// order, so a thread that walks one run of equal keys adds its contributions in the same order as the CPU
// kernels (which group by a counting sort), and the result does not depend on thread scheduling. The
// passes run on the current stream; the returned tensors own the buffers (the caching allocator recycles
// them in stream order).
//
// exclusive_scan_i32(data, n) replaces data[0..n) by its exclusive prefix sum, in place, on the stream.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace nabla::cuda {

struct SortedByKey {
  Tensor keys;       // i64 [m]: the keys in non-decreasing order
  Tensor positions;  // i32 [m]: positions[j] is the original position of keys[j]; ties in increasing order
};

// keys: device array of m values in [0, 2^key_bits) (non-negative); m < 2^31.
SortedByKey sort_positions_by_key(const int64_t* keys, int64_t m, int key_bits, Device device);

void exclusive_scan_i32(int32_t* data, int64_t n, Device device);

// The runs of equal keys in sorted keys (sort_positions_by_key's), found in parallel: starts[r] is the first
// slot of run r for r < R, starts[R] one past the last slot whose key is below `skip` (keys equal to `skip`,
// sorted last, belong to no run), and count[0] = R (0 when every key is `skip`). R stays on the device: the
// kernels that use it read count[0] and stride over the runs, so nothing is read back. A kernel that gives
// each run a warp (or more) no longer has one thread walk a run of thousands of equal keys alone (a table
// of 3 rows at batch 65,536).
struct SortedRuns {
  Tensor starts;  // i32 [m + 1]
  Tensor count;   // i32 [1]
};
SortedRuns runs_of_sorted_keys(const int64_t* sorted_keys, int64_t m, int64_t skip, Device device);

#ifdef __CUDACC__
// For the kernels that give each run a warp: the lanes that share one position of a run, the smallest
// power of two >= `cols` (the row's columns, or column groups), at most 32; the other 32 / that lanes take
// further positions of the same run.
__device__ __forceinline__ int lanes_per_position(int64_t cols) {
  int g = 1;
  while (g < 32 && g < cols) g <<= 1;
  return g;
}
#endif

}  // namespace nabla::cuda

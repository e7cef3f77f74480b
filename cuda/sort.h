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

}  // namespace nabla::cuda

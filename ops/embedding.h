// Embedding lookups.
//
//   embedding(W [V, D], idx [...]) = W[idx]  -> [..., D]; backward scatters-adds rows of the gradient into
//   dW (rows equal to padding_idx get no gradient).
//   embedding_bag(W, idx [L], offsets [B]) -> [B, D]: bag b is idx[offsets[b] .. offsets[b+1]) (the last bag
//   runs to L) and its row is the sum (or mean) of those embeddings; an empty bag gives zeros. Indices are
//   i64 (or i32).
//
// Backward saves only the indices (and offsets): dW is dense [V, D],
//   embedding      dW[v] = sum_{l : idx[l] = v, v != padding_idx} g[l]
//   embedding_bag  dW[v] = sum_{l : idx[l] = v} g[bag(l)] * (mean ? 1 / |bag(l)| : 1)
// Both sums run in increasing l for each row, one thread per row: the result is deterministic.
#pragma once
#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

// padding_idx < 0 means none (unlike PyTorch, -1 does not count from the end). The padding row is looked up
// as stored; only its gradient is suppressed.
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);

enum class BagMode { sum, mean };
// indices 1-D [L]; offsets 1-D [B], B >= 1, starting with 0, non-decreasing, each <= L.
Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& offsets,
                     BagMode mode = BagMode::mean);

}  // namespace nabla

namespace nabla::ops {

// embedding itself runs on the index family's index_select / index_add kernels (ops/index.h).

// weight: contiguous [V, D]; indices: contiguous i64 [L] in [0, V); offsets: contiguous i64 [B] (checked);
// out: contiguous [B, D].
using EmbeddingBagKernelFn = void (*)(const Tensor& weight, const Tensor& indices, const Tensor& offsets,
                                      BagMode mode, Tensor& out);
// grad: contiguous [B, D]; dweight: contiguous zeros [V, D], accumulated into.
using EmbeddingBagBackwardKernelFn = void (*)(const Tensor& grad, const Tensor& indices,
                                              const Tensor& offsets, BagMode mode, Tensor& dweight);

inline Kernel<EmbeddingBagKernelFn> embedding_bag_kernel{"embedding_bag"};
inline Kernel<EmbeddingBagBackwardKernelFn> embedding_bag_backward_kernel{"embedding_bag_backward"};

}  // namespace nabla::ops

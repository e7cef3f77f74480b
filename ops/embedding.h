// Embedding lookups.
//
//   embedding(W [V, D], idx [...]) = W[idx]  -> [..., D]; backward scatters-adds rows of the gradient into
//   dW (rows equal to padding_idx get no gradient).
//   embedding_bag(W, idx [L], offsets [B]) -> [B, D]: bag b is idx[offsets[b] .. offsets[b+1]) and its row
//   is the sum (or mean) of those embeddings; an empty bag gives zeros. Indices are i64 (or i32).
#pragma once
#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);

enum class BagMode { sum, mean };
Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& offsets,
                     BagMode mode = BagMode::mean);

}  // namespace nabla

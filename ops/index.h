// Joining, splitting and indexing.
//
//   cat(ts, d): sizes agree except along d.   stack(ts, d) = cat of ts each unsqueezed at d.
//   split(x, size, d): views of `size` along d (the last may be smaller); chunk(x, n, d): n near-equal views.
//   index_select(x, d, idx[k]): out[..., i, ...] = x[..., idx[i], ...]
//   gather(x, d, idx): out[i][j][k] = x[i][idx[i][j][k]][k] (d = 1); idx has x's rank
//   scatter_add(x, d, idx, src): out = x; out[i][idx[i][j][k]][k] += src[i][j][k] (d = 1)
//   masked_fill(x, mask, v): v where mask (bool, broadcast to x) else x
//   one_hot(idx, n): i64 [..., n]
// Index tensors are i64 (i32 accepted); an index out of range throws naming the op, the index and the size.
#pragma once
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor one_hot(const Tensor& indices, int64_t num_classes);

}  // namespace nabla

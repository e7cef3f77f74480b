// Joining, splitting and indexing.
//
//   cat(ts, d): sizes agree except along d; 4-D inputs of which one is channels-last (the others row-major
//              or channels-last) give a channels-last result.   stack(ts, d) = cat of ts each unsqueezed at
//              d.
//   split(x, size, d): views of `size` along d (the last may be smaller); chunk(x, n, d): n near-equal views.
//   index_select(x, d, idx[k]): out[..., i, ...] = x[..., idx[i], ...]
//   gather(x, d, idx): out[i][j][k] = x[i][idx[i][j][k]][k] (d = 1); idx has x's rank
//   scatter_add(x, d, idx, src): out = x; out[i][idx[i][j][k]][k] += src[i][j][k] (d = 1)
//   masked_fill(x, mask, v): v where mask (bool, broadcast to x) else x
//   one_hot(idx, n): i64 [..., n]
// Index tensors are i64 (i32 accepted); an index out of range throws naming the op, the index and the size.
//
// Backwards (all use the gradient g of the output; nothing but indices and shapes is saved):
//   cat          dx_i = g narrowed to x_i's slice along d (a view)
//   stack        through unsqueeze + cat;  split/chunk through narrow (each piece is a narrow view)
//   index_select dx = zeros(x), dx[..., idx[i], ...] += g[..., i, ...]      (index_add kernel)
//   gather       dx = zeros(x), scatter_add of g at idx                    (scatter_add kernel)
//   scatter_add  dx = g,  dsrc = gather(g, d, idx) (zero where src is larger than idx)
//   masked_fill  dx = masked_fill(g, mask, 0)
// The add kernels are deterministic: every output element is summed by one thread in index order, so the
// result does not depend on the thread count (no atomic float adds).
#pragma once

#include "engine/async_check.h"
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// split_size > 0 (0 is allowed only when the dim is empty); the pieces are views of x.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
// sizes must be >= 0 and sum to x.size(dim).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
// As PyTorch: pieces of ceil(len / chunks), so there may be fewer than `chunks` pieces.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
// index is 1-D (or 0-D, treated as one index).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// index has x's rank and index.size(k) <= x.size(k) for k != dim; the output has index's shape.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// x, index, src of one rank; index.size(k) <= src.size(k) for all k and <= x.size(k) for k != dim.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// num_classes = -1 uses max(indices) + 1. Not differentiable.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);

}  // namespace nabla

namespace nabla::ops {

// x: contiguous [outer, n, inner]; index: contiguous i64 [k], values in [0, n); out: contiguous
// [outer, k, inner].  out[o, i, :] = x[o, index[i], :]. Any dtype.
using IndexSelectKernelFn = void (*)(const Tensor& x, const Tensor& index, Tensor& out, int64_t outer,
                                     int64_t n, int64_t inner);
// src: contiguous [outer, k, inner]; index: contiguous i64 [k]; dst: contiguous [outer, n, inner].
// dst[o, index[i], :] += src[o, i, :], summed in increasing i for each destination row.
using IndexAddKernelFn = void (*)(const Tensor& src, const Tensor& index, Tensor& dst, int64_t outer,
                                  int64_t n, int64_t inner);
// out (index's shape) = x[... index[...] along dim ...]; x, index (i64) and out may have any strides.
using GatherKernelFn = void (*)(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out);
// dst[... index[...] along dim ...] += src[...]; src has index's shape; any strides; each destination
// element is summed by one thread in increasing position along dim.
using ScatterAddKernelFn = void (*)(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);

inline Kernel<IndexSelectKernelFn> index_select_kernel{"index_select"};
inline Kernel<IndexAddKernelFn> index_add_kernel{"index_add"};
inline Kernel<GatherKernelFn> gather_kernel{"gather"};
inline Kernel<ScatterAddKernelFn> scatter_add_kernel{"scatter_add"};

// out (i64, contiguous, index's shape) = index (i32 or i64, contiguous) with every value outside
// [0, size) other than `allowed` replaced by 0, so that the kernels reading it stay inside their tensors;
// the first replaced value is reported through asynchronous check `check_id` (engine/async_check.h).
// A device-only slot: on the CPU values are checked on the spot.
using IndexCheckKernelFn = void (*)(const Tensor& index, Tensor& out, int64_t size, int64_t allowed,
                                    uint32_t check_id);
inline Kernel<IndexCheckKernelFn> index_check_kernel{"index_check"};
inline constexpr int64_t kNoAllowedValue = INT64_MIN;

// A contiguous i64 version of `index` on its device whose values all lie in [0, size) or equal `allowed`.
// On the CPU a bad value throws now, with message(position, value); on a GPU it is checked by a kernel and
// reported at the next synchronisation (engine/async_check.h), with the same message, which avoids
// a host round trip per indexing op.
Tensor checked_values(const Tensor& index, int64_t size, int64_t allowed, AsyncCheckMessage message);

// checked_values for op inputs: the error names `op`, the bad value, its position, the dim and its size.
// Shared with ops/embedding.cpp.
Tensor checked_index(const char* op, const Tensor& index, int64_t size, int64_t dim, const Shape& x_shape);

}  // namespace nabla::ops

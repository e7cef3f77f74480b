// Embedding lookups.
//
//   embedding(W [V, D], idx [...]) = W[idx]  -> [..., D]; backward scatters-adds rows of the gradient into
//   dW (rows equal to padding_idx get no gradient).
//   embedding_bag(W, idx [L], offsets [B]) -> [B, D]: bag b is idx[offsets[b] .. offsets[b+1]) (the last bag
//   runs to L) and its row is the sum (or mean) of those embeddings; an empty bag gives zeros. Indices are
//   i64 (or i32).
//   embedding_bag(W, idx [B, n]) -> [B, D]: fixed bags of n (DLRM's one id per table and row: n = 1); the
//   offsets 0, n, 2n, .. are made on the device, so nothing is read back to the host (no sync on a GPU).
//   per_sample_weights p [L] (sum mode only, as PyTorch): out[b] = sum_{l in bag b} p[l] W[idx[l]].
//
// Backward saves only the indices (and offsets): dW is dense [V, D],
//   embedding      dW[v] = sum_{l : idx[l] = v, v != padding_idx} g[l]
//   embedding_bag  dW[v] = sum_{l : idx[l] = v} g[bag(l)] * (mean ? 1 / |bag(l)| : p ? p[l] : 1)
//                  dp[l] = <g[bag(l)], W[idx[l]]>   (composed from index_select, mul and sum)
// Both sums run in increasing l for each row, one thread per row: the result is deterministic. The CUDA
// backward is sort-based, not atomic: positions are radix-sorted by row and the first position of each run
// of equal rows adds the whole run (cuda/embedding.cu), so repeated rows (power-law ids) cost no contention
// and the result is bit-identical run to run.
//
// embedding_bag_sparse_sgd_ (the sparse path, DLRM's --sparse): W[v] -= lr * dW[v] for the rows touched by
// the bags only, with dW as above from a given g, in one kernel (the backward kernel accumulating with scale
// -lr straight into W). No dense [V, D] gradient exists; the cost is O(L D) instead of O(V D). It is plain
// SGD (no momentum, no weight decay), applied at once, as the reference's sparse SGD and TorchRec's fused
// optimizer do.
//
// embedding_bag_sparse_rowwise_adagrad_ (TorchRec's / FBGEMM's EXACT_ROWWISE_ADAGRAD, the reference's
// rwsadagrad): one accumulator per row, state [V]. For every row v the batch touches (its positions'
// gradients summed first, as a coalesced sparse gradient):
//   G_v       = sum_{l : idx[l] = v} s(l) g[bag(l)]          (the rows of dW above; duplicates summed)
//   state[v] += mean_c G_v[c]^2                              (the mean over the D columns)
//   W[v]     -= lr * G_v / (sqrt(state[v]) + eps)
// Untouched rows and their accumulators stay as they are. state has the weight's dtype and device, starts
// at 0 (the reference's initial_accumulator_value) and belongs in checkpoints with the table.
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
                     BagMode mode = BagMode::mean, const Tensor& per_sample_weights = Tensor());
// indices 2-D [B, n], n >= 1: bag b is row b.
Tensor embedding_bag(const Tensor& weight, const Tensor& indices, BagMode mode = BagMode::mean,
                     const Tensor& per_sample_weights = Tensor());

// In place, no autograd: weight[v] -= lr * sum_{l : idx[l] = v} s(l) g[bag(l)] (s as the backward's).
// grad [B, D] is the gradient of the loss with respect to embedding_bag(weight, indices, offsets, mode, p).
void embedding_bag_sparse_sgd_(Tensor& weight, const Tensor& indices, const Tensor& offsets, BagMode mode,
                               const Tensor& grad, double lr, const Tensor& per_sample_weights = Tensor());

// In place, no autograd: row-wise Adagrad on the rows the bags touch (the file comment). offsets undefined:
// fixed bags, indices [B, n]. state: contiguous [V] of weight's dtype and device.
void embedding_bag_sparse_rowwise_adagrad_(Tensor& weight, Tensor& state, const Tensor& indices,
                                           const Tensor& offsets, BagMode mode, const Tensor& grad, double lr,
                                           double eps = 1e-10, const Tensor& per_sample_weights = Tensor());

}  // namespace nabla

namespace nabla::ops {

// embedding itself runs on the index family's index_select / index_add kernels (ops/index.h).

// weight: contiguous [V, D]; indices: contiguous i64 [L] in [0, V); offsets: contiguous i64 [B] (checked);
// per_sample_weights: undefined, or contiguous [L] of weight's dtype (sum mode); out: contiguous [B, D].
using EmbeddingBagKernelFn = void (*)(const Tensor& weight, const Tensor& indices, const Tensor& offsets,
                                      BagMode mode, const Tensor& per_sample_weights, Tensor& out);
// grad: contiguous [B, D]; dweight: contiguous [V, D], accumulated into: dweight[v] += scale * (the sum of
// the file comment). The backward passes zeros and scale 1; the sparse SGD passes the weight and -lr.
using EmbeddingBagBackwardKernelFn = void (*)(const Tensor& grad, const Tensor& indices,
                                              const Tensor& offsets, BagMode mode,
                                              const Tensor& per_sample_weights, double scale,
                                              Tensor& dweight);

// Row-wise Adagrad (the file comment) with G from grad [B, D] as the backward's dW: weight [V, D] and state
// [V] contiguous, updated in place on the touched rows only.
using BagAdagradFn = void (*)(const Tensor& grad, const Tensor& indices, const Tensor& offsets, BagMode mode,
                              const Tensor& per_sample_weights, double lr, double eps, Tensor& weight,
                              Tensor& state);

inline Kernel<EmbeddingBagKernelFn> embedding_bag_kernel{"embedding_bag"};
inline Kernel<EmbeddingBagBackwardKernelFn> embedding_bag_backward_kernel{"embedding_bag_backward"};
inline Kernel<BagAdagradFn> embedding_bag_rowwise_adagrad_kernel{"embedding_bag_rowwise_adagrad"};

}  // namespace nabla::ops

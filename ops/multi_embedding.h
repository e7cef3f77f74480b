// Many embedding tables looked up at once: DLRM's F lookups (one id per table and row) in one kernel launch
// for the forward, one for the backward, with the index check folded into the kernels.
//
//   multi_embedding_bag(W_0..W_{F-1} [V_f, D], ids [B, F] or [B, F, n], mode, prefix [B, D])
//     out[b, P + f, :] = s * sum_{k < n} W_f[ids[b, f, k], :]         s = 1 (sum) or 1 / n (mean)
//     out[b, 0, :]     = prefix[b, :]   when a prefix is given (P = 1; else P = 0)
//   -> [B, P + F, D]. ids [B, F] are bags of one (n = 1). The prefix exists for DLRM: its interaction reads
//   T = [x, e_0, .., e_{F-1}] as [B, F + 1, D], and the op writes the lookups straight into that buffer
//   beside the bottom MLP's output x: no stack of F tensors, no cat.
//
// Backward (dense gradients, as embedding_bag's):
//   dW_f[v, :] = s * sum_{(b, k) : ids[b, f, k] = v} g[b, P + f, :]     dprefix = g[:, 0, :]
// summed in increasing b (then k) for every row, on both backends: deterministic. On CUDA the positions
// l = (b F + f) n + k of all tables are radix-sorted once by the key row_offset_f + v (the tables' rows laid
// end to end), and the first slot of each run of equal keys adds its run (cuda/multi_embedding.cu).
//
// multi_embedding_bag_sparse_sgd_(tables, ids, mode, grad [B, F, D], lr): W_f[v] -= lr * dW_f[v] for the
// rows the batch touches only, with dW as above from a given g (grad may be a strided view such as
// g[:, 1:, :] of the interaction's gradient; its last dim must be contiguous). The backward kernel run with
// scale -lr straight into the tables: one sort, one launch for all F tables, no [V, D] gradient. Plain SGD
// applied at once (the reference's sparse SGD, TorchRec's fused optimizer). Deterministic, like the backward.
//
// multi_embedding_bag_sparse_rowwise_adagrad_(tables, states, ids, mode, grad, lr, eps): row-wise Adagrad
// (ops/embedding.h; TorchRec's EXACT_ROWWISE_ADAGRAD) on the rows the batch touches, one accumulator per
// row (states[f] [V_f]): G = the rows of dW_f above (duplicates summed first), state += mean_c G[c]^2,
// W -= lr G / (sqrt(state) + eps). One sort for all tables as the SGD; on CUDA one warp per touched row.
//
// Index check: every id must lie in [0, V_f) of its table. On the CPU the ids are checked on the host
// before anything runs; on a GPU the forward and backward kernels check each id as they read it (no
// separate launch, nothing read back): a bad id reads row 0 (forward) or is skipped (backward) and is
// reported at the next synchronisation (engine/async_check.h), naming the table, the position and V_f.
//
// Limits: all tables share D, dtype and device, are contiguous; ids are i64 or i32; no per-sample weights
// (embedding_bag has them); B F n < 2^31 on CUDA (the sort's positions are 32-bit).
#pragma once
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"
#include "ops/embedding.h"

namespace nabla {

Tensor multi_embedding_bag(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode = BagMode::sum,
                           const Tensor& prefix = Tensor());

// In place, no autograd. grad: [B, F, D] on the tables' device and dtype, last dim contiguous.
void multi_embedding_bag_sparse_sgd_(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode,
                                     const Tensor& grad, double lr);

// In place, no autograd. states: F contiguous [V_f] of the tables' dtype and device; grad as the SGD's.
void multi_embedding_bag_sparse_rowwise_adagrad_(const std::vector<Tensor>& tables,
                                                 const std::vector<Tensor>& states, const Tensor& ids,
                                                 BagMode mode, const Tensor& grad, double lr,
                                                 double eps = 1e-10);

}  // namespace nabla

namespace nabla::ops {

// tables: F contiguous [V_f, D] of one dtype; ids: contiguous i64 [B, F, n] (CPU: already checked);
// out: [B, F, D] with strides (s, D, 1) (a slice of the [B, P + F, D] output); check_id: the async check to
// report a bad id to (GPU; 0 on the CPU).
using MultiBagFn = void (*)(const std::vector<Tensor>& tables, const Tensor& ids, BagMode mode,
                            uint32_t check_id, Tensor& out);
// grad: [B, F, D] with strides (s0, s1, 1); dst: F contiguous [V_f, D] (the gradients, zeroed, with scale 1;
// or the tables themselves with scale -lr), accumulated into: dst_f[v] += scale * s * sum g.
using MultiBagBackwardFn = void (*)(const Tensor& grad, const Tensor& ids, BagMode mode, double scale,
                                    uint32_t check_id, std::vector<Tensor>& dst);

// Row-wise Adagrad: grad [B, F, D] (strides (s0, s1, 1)); tables and states updated in place.
using MultiAdagradFn = void (*)(const Tensor& grad, const Tensor& ids, BagMode mode, double lr, double eps,
                                uint32_t check_id, std::vector<Tensor>& tables, std::vector<Tensor>& states);

inline Kernel<MultiBagFn> multi_embedding_bag_kernel{"multi_embedding_bag"};
inline Kernel<MultiBagBackwardFn> multi_embedding_bag_backward_kernel{"multi_embedding_bag_backward"};
// (on one line: tests/ops/test_kernel_slots.cpp reads the declarations line by line)
// clang-format off
inline Kernel<MultiAdagradFn> multi_embedding_bag_rowwise_adagrad_kernel{"multi_embedding_bag_rowwise_adagrad"};
// clang-format on

}  // namespace nabla::ops

// Fused scaled-dot-product attention (flash-attention style: the [Tq, Tk] score matrix is never stored).
//
//   q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, D]   ->   out [B, H, Tq, D]
//   s_ij   = scale * q_i . k_j                 scale = 1/sqrt(D) unless given
//   allowed(i, j) = key_padding_mask[b, j] (true = keep) and, when causal, j <= i + (Tk - Tq)
//   lse_i  = log sum_{allowed j} exp(s_ij)      (saved per row, f32; f64 for f64 inputs)
//   P_ij   = exp(s_ij - lse_i) on allowed pairs, 0 elsewhere
//   M_ij   = philox_uniform(seed, offset, ((b H + h) Tq + i) Tk + j) >= p   (dropout, training only)
//   out_i  = sum_j P_ij M_ij / (1 - p) v_j
//
// Causal alignment is bottom-right: the last query row sees every key, so with a KV cache (Tq new tokens
// after Tk - Tq cached ones) query i is token Tk - Tq + i. For Tq == Tk this is the usual lower triangle
// (PyTorch's is_causal); for Tq < Tk PyTorch aligns top-left, we do not. A query row with no allowed key
// (every key padded, or Tq > Tk under causal) gives out = 0, lse = -inf and zero gradients.
//
// Dropout draws the same Philox numbers, at the same element index, as dropout() on the [B, H, Tq, Tk]
// probability tensor of the unfused composition with the same Generator: the fused op equals
// matmul(dropout(softmax(scores + mask)), v) mask for mask (tests/ops/test_attention.cpp checks it).
//
// Backward (recomputes P from q, k and the saved lse; the dropout mask from (seed, offset)):
//   Dr_i   = sum_d dout_id out_id  (= sum_j P_ij dP_ij)
//   dv_j   = sum_i P_ij M_ij / (1 - p) dout_i
//   dP_ij  = (dout_i . v_j) M_ij / (1 - p)
//   dS_ij  = P_ij (dP_ij - Dr_i)
//   dq_i   = scale sum_j dS_ij k_j,      dk_j = scale sum_i dS_ij q_i
// Saves q, k, v, out, lse and (seed, offset, p).
//
// dtypes: f32 and f64 on the CPU; f32, bf16 and f16 on CUDA (scores, softmax and sums in f32). Under
// autocast, f32 CUDA inputs run in the autocast dtype. Head size D <= 128 on CUDA.
#pragma once
#include <optional>

#include "engine/random.h"
#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

// key_padding_mask: undefined, or [B, Tk] bool/u8 on q's device, nonzero = attend to this key (the
// convention of BERT's attention_mask; PyTorch's key_padding_mask in nn.MultiheadAttention is the opposite).
// dropout_p applies only when training. gen: the generator for dropout (the default one when null).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& key_padding_mask = Tensor(), bool causal = false,
                                    double dropout_p = 0.0, bool training = false,
                                    std::optional<double> scale = std::nullopt, Generator* gen = nullptr);

}  // namespace nabla

namespace nabla::ops {

// What the kernels get: contiguous q, k, v of one dtype; mask contiguous u8 [B, Tk] or undefined.
struct AttentionParams {
  int64_t b = 0, h = 0, tq = 0, tk = 0, d = 0;
  double scale = 1.0;
  bool causal = false;
  double dropout_p = 0.0;  // 0 when not training
  uint64_t seed = 0, offset = 0;
};

// Writes out [B, H, Tq, D] (q's dtype) and lse [B, H, Tq] (f32, f64 for f64).
using AttentionForwardKernelFn = void (*)(const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& mask, const AttentionParams& p, Tensor& out,
                                          Tensor& lse);
// From dout (contiguous, q's dtype), writes dq, dk, dv (q's dtype, contiguous).
using AttentionBackwardKernelFn = void (*)(const Tensor& dout, const Tensor& q, const Tensor& k,
                                           const Tensor& v, const Tensor& mask, const Tensor& out,
                                           const Tensor& lse, const AttentionParams& p, Tensor& dq,
                                           Tensor& dk, Tensor& dv);

inline Kernel<AttentionForwardKernelFn> attention_forward_kernel{"attention_forward"};
inline Kernel<AttentionBackwardKernelFn> attention_backward_kernel{"attention_backward"};

}  // namespace nabla::ops

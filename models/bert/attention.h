// Scaled dot-product attention with a key-padding mask, composed from existing ops: the reference that a
// fused kernel (issue 16, item 3) must match and can replace behind this one function.
//
//   q, k, v   [B, A, S, D]  (batch, heads, sequence, head size); k and v may have their own length Sk
//   mask      additive, broadcastable to [B, A, S, Sk]: 0 where a key is attended, a large negative number
//             where it is not (BERT's key-padding mask is [B, 1, 1, Sk]); undefined means no mask
//   scores = q @ k^T / sqrt(D) + mask             [B, A, S, Sk]
//   p      = dropout(softmax(scores, -1), dropout_p, training)
//   out    = p @ v                                [B, A, S, D]
// Backward is autograd's through matmul, softmax and dropout (dropout saves only its seed and offset).
// A query row whose keys are all masked gets the uniform average of v (as Hugging Face's eager BERT), not
// NaN: the mask is large but finite.
#pragma once
#include "engine/tensor.h"

namespace nabla::models {

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double dropout_p,
                 bool training);

// BERT's additive key-padding mask from attention_mask ([B, S], integer or bool: nonzero = a real token,
// 0 = padding): (1 - m) * lowest, shape [B, 1, 1, S], in `dtype` (lowest = the most negative finite value
// of f32 for f32/f64, of bf16 or f16 for those), as transformers' get_extended_attention_mask.
Tensor additive_key_padding_mask(const Tensor& attention_mask, DType dtype);

}  // namespace nabla::models

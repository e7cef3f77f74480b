// Tensor-core (mma.sync) kernels of scaled_dot_product_attention for bf16 and f16 with head size 64 or 128
// on sm_80 and newer (cuda/attention_mma.cu has the design), and for f32 on TF32 when the engine's TF32
// switch (cuda::tf32_enabled()) is on (cuda/attention_tf32.cu). cuda/attention.cu's slot functions call these
// when attention_mma_takes() says so and keep their scalar kernels for every other case.
//
// NABLA_ATTENTION_KERNEL in the environment picks the path (read at each call, so a test or an A/B run can
// switch it): unset, "auto" or "mma" = the tensor-core path where it applies; "scalar" = always the scalar
// kernels. Any other value is an error naming the accepted ones.
#pragma once
#include "engine/tensor.h"
#include "ops/attention.h"

namespace nabla::cuda {

// True when the environment allows the tensor-core path ("scalar" forces it off).
bool attention_mma_enabled();

// True when the tensor-core kernels handle this dtype and head size on device `device` (bf16/f16, or f32
// while TF32 is on; D 64 or 128; compute capability >= 8.0), ignoring the environment switch and alignment.
bool attention_mma_supports(DType dtype, int64_t d, int device);

// The dispatch decision for one call: enabled, supported, and every pointer 16-byte aligned (cp.async).
bool attention_mma_takes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out);

void attention_forward_mma(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           const ops::AttentionParams& a, Tensor& out, Tensor& lse);
void attention_backward_mma(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& mask, const Tensor& out, const Tensor& lse,
                            const ops::AttentionParams& a, Tensor& dq, Tensor& dk, Tensor& dv);

}  // namespace nabla::cuda

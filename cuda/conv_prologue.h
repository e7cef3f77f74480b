// conv2d with batch norm's apply and a ReLU folded into its input, through one cuDNN operation graph
// (issue 27, experimental; cuda/cudnn_graph.h, make_prologue_conv_plan):
//
//   y = conv2d(relu(x * scale[c] + bias[c]), w)          (stride, padding; no dilation, no groups)
//
// the "BN-ReLU-Conv" pattern: in a ResNet, scale = gamma * rstd and bias = beta - mean * scale of the batch
// norm before the convolution, so the normalised activation is never written to memory. Behind a switch,
// default OFF: unless NABLA_CONV_PROLOGUE=1 (read at each call) the function declines and the caller runs
// the ops one by one. Forward only (no autograd); not used by the models yet.
#pragma once
#include <array>
#include <string>

#include "engine/tensor.h"

namespace nabla::cuda {

// x [N, C, H, W] and w [K, C, kh, kw] channels-last CUDA tensors of one dtype (bf16, f16 or f32); scale and
// bias f32 [C] on x's device. Returns y [N, K, OH, OW] channels-last, or an undefined tensor with the reason
// in *why (the switch is off, or cuDNN has no engine for this shape: the caller composes the ops).
// Throws nabla::Error for arguments that do not fit (naming what was expected and what came).
Tensor conv2d_scale_bias_relu(const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& w,
                              std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                              std::string* why = nullptr);

}  // namespace nabla::cuda

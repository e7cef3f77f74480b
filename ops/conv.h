// Convolution and pooling on NCHW tensors.
//
//   conv2d: y[n, o, i, j] = b[o] + sum_{c in group(o), p, q} w[o, c, p, q] * x[n, c, i*s + p*d - pad, j*s +
//   q*d - pad] out size = floor((in + 2 pad - d (k - 1) - 1) / s) + 1 CPU: im2col + GEMM per group; backward:
//   dW = dY @ cols^T, dX = col2im(W^T @ dY). max_pool2d: padding counts as -inf; backward routes each
//   gradient to the argmax. avg_pool2d: count_include_pad as PyTorch's default (true). adaptive_avg_pool2d:
//   output cell (i, j) averages rows [floor(i H/oh), ceil((i+1) H/oh)). upsample_nearest2d: y[i, j] =
//   x[floor(i / sh), floor(j / sw)] for integer scales.
#pragma once
#include <array>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

using Pair = std::array<int64_t, 2>;

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Pair stride = {1, 1},
              Pair padding = {0, 0}, Pair dilation = {1, 1}, int64_t groups = 1);
Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride = {0, 0} /* 0: = kernel */,
                  Pair padding = {0, 0});
Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride = {0, 0}, Pair padding = {0, 0},
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size);
Tensor upsample_nearest2d(const Tensor& x, Pair scale);

}  // namespace nabla

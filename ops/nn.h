// Normalisation and layer ops.
//
//   softmax(x, d)_i = exp(x_i - m) / sum_j exp(x_j - m)      m = max_j x_j along dim d
//   log_softmax(x, d)_i = x_i - m - log sum_j exp(x_j - m)
//   layer_norm: y = (x - mean) * rstd * w + b over the last len(normalized_shape) dims,
//               rstd = 1 / sqrt(var + eps) (biased variance)
//   batch_norm: x is [N, C, ...]; statistics per channel over N and the spatial dims.
//               training: normalise with the batch mean and biased variance, and update
//               running = (1 - momentum) * running + momentum * batch (unbiased variance, as PyTorch);
//               evaluation: normalise with the running statistics.
//   dropout: zero each element with probability p and scale the kept ones by 1/(1-p) (training only);
//            the mask comes from the Philox generator, so it is reproducible across backends.
#pragma once
#include "engine/random.h"
#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// weight/bias may be undefined (no affine).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// weight/bias/running stats may be undefined. running_mean/var are updated in place when training.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

}  // namespace nabla

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
//   batch_norm_add_relu: y = relu(batch_norm(x) + residual) in one pass (residual optional), the
//               training/evaluation rules of batch_norm; a ResNet block's last three ops. With
//               negative_slope a > 0 the ReLU is a leaky one, v > 0 ? v : a v (Darknet's conv + BN + leaky).
//   dropout: zero each element with probability p and scale the kept ones by 1/(1-p) (training only);
//            the mask comes from the Philox generator, so it is reproducible across backends.
//
// Backwards (each a fused kernel; the saved tensors are detached):
//   softmax       dx = y * (g - sum(g * y))            saves y
//   log_softmax   dx = g - exp(y) * sum(g)             saves y
//   layer_norm    xhat = (x - mean) * rstd, gh = g * w
//                 dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)),  dw = sum_rows g * xhat,
//                 db = sum_rows g                      saves x, mean and rstd per row
//   batch_norm    training: dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)) over each channel,
//                 evaluation: dx = gh * rstd (the running statistics are constants);
//                 dw = sum g * xhat, db = sum g         saves x and the mean/variance it normalised with
//   batch_norm_add_relu  gm = g where y > 0, else a g (0 for ReLU; the mask from the saved output y, which
//                 is > 0 exactly where the pre-activation is, since a >= 0);
//                 dresidual = gm, and dx, dw, db are batch_norm's backward of gm, in one fused kernel
//                                                       saves x, y and the mean/variance, as batch_norm
//   dropout       dx = g * mask / (1 - p)               saves only (seed, offset): the mask is redrawn
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
// relu(batch_norm(x, ...) + residual), with batch_norm's arguments and rules; residual (x's shape, dtype
// and device) may be undefined: then relu(batch_norm(x, ...)). One forward kernel and one backward kernel
// (batch-norm backward with the ReLU mask formed from the saved output), for NCHW and channels-last.
// negative_slope (>= 0, finite) makes the ReLU leaky: y = v > 0 ? v : negative_slope * v.
Tensor batch_norm_add_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                           const Tensor& running_mean, const Tensor& running_var, bool training,
                           const Tensor& residual = Tensor(), double momentum = 0.1, double eps = 1e-5,
                           double negative_slope = 0.0);
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

}  // namespace nabla

namespace nabla::ops {

// Kernels see contiguous tensors of the input's dtype; the op layer has checked shapes, dtypes and devices.

// x viewed as [outer, r, inner]: y[o, :, i] = (log_)softmax over the r entries. `log` picks log_softmax.
using SoftmaxKernelFn = void (*)(const Tensor& x, int64_t outer, int64_t r, int64_t inner, bool log,
                                 Tensor& y);
// dx from the output y and the incoming gradient g, both [outer, r, inner].
using SoftmaxBackwardKernelFn = void (*)(const Tensor& g, const Tensor& y, int64_t outer, int64_t r,
                                         int64_t inner, bool log, Tensor& dx);

// x viewed as [rows, cols]; weight/bias [cols] or undefined. Writes y and, per row, mean and rstd ([rows]).
using LayerNormKernelFn = void (*)(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t rows,
                                   int64_t cols, double eps, Tensor& y, Tensor& mean, Tensor& rstd);
// Fills whichever of dx [rows, cols], dweight [cols], dbias [cols] are defined.
using LayerNormBackwardKernelFn = void (*)(const Tensor& g, const Tensor& x, const Tensor& mean,
                                           const Tensor& rstd, const Tensor& weight, int64_t rows,
                                           int64_t cols, Tensor& dx, Tensor& dweight, Tensor& dbias);

// x viewed as [n, c, s]; weight/bias [c] or undefined; mean/var [c].
// training: mean and var are outputs, receiving the batch mean and biased variance per channel;
// evaluation: they are inputs (the running statistics). Then y = (x - mean) / sqrt(var + eps) * w + b.
// Training with running_mean/running_var defined: the kernel also updates them in place,
//   running_mean = (1 - momentum) running_mean + momentum mean,
//   running_var  = (1 - momentum) running_var + momentum var * count / (count - 1)   (count = n s),
// so a step's batch norm is one kernel call, not five more launches for the running statistics.
// Fused epilogue (batch_norm_add_relu): residual, when defined, has x's dtype and layout and is added to y;
// relu then maps v to v > 0 ? v : slope * v (slope 0: exactly 0, also for NaN, as before the slope came).
// batch_norm passes an undefined residual and relu = false.
// On CUDA under autocast, a 16-bit x may come with f32 weight/bias/mean/var/running statistics (the
// gradients of weight and bias then come back f32, as torch.autocast's batch norm); otherwise every tensor
// has x's dtype.
using BatchNormKernelFn = void (*)(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   const Tensor& residual, bool relu, double slope, bool training, int64_t n,
                                   int64_t c, int64_t s, double eps, double momentum, Tensor& mean,
                                   Tensor& var, Tensor& running_mean, Tensor& running_var, Tensor& y);
// mean/var: what the forward normalised with. Fills whichever of dx, dweight, dbias are defined.
// relu_out, when defined, is the forward's output of batch_norm_add_relu (x's layout): the incoming g is
// replaced by gm = (relu_out > 0 ? g : slope * g) everywhere (sums and dx; slope 0 gives exactly 0), and
// dresidual, when defined, receives gm.
using BatchNormBackwardKernelFn = void (*)(const Tensor& g, const Tensor& x, const Tensor& relu_out,
                                           double slope, const Tensor& weight, const Tensor& mean,
                                           const Tensor& var, bool training, int64_t n, int64_t c, int64_t s,
                                           double eps, Tensor& dx, Tensor& dweight, Tensor& dbias,
                                           Tensor& dresidual);

// out[i] = philox_uniform(seed, offset, i) >= p ? in[i] * scale : 0, for the row-major index i.
// The forward (in = x) and the backward (in = g) redraw the same mask from the same (seed, offset).
using DropoutKernelFn = void (*)(const Tensor& in, double p, double scale, uint64_t seed, uint64_t offset,
                                 Tensor& out);

inline Kernel<SoftmaxKernelFn> softmax_kernel{"softmax"};
inline Kernel<SoftmaxBackwardKernelFn> softmax_backward_kernel{"softmax_backward"};
inline Kernel<LayerNormKernelFn> layer_norm_kernel{"layer_norm"};
inline Kernel<LayerNormBackwardKernelFn> layer_norm_backward_kernel{"layer_norm_backward"};
inline Kernel<BatchNormKernelFn> batch_norm_kernel{"batch_norm"};
inline Kernel<BatchNormBackwardKernelFn> batch_norm_backward_kernel{"batch_norm_backward"};
inline Kernel<DropoutKernelFn> dropout_kernel{"dropout"};

}  // namespace nabla::ops

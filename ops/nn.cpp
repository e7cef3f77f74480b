// The nn op family: softmax, log_softmax, layer_norm, batch_norm, dropout. Shape/dtype checks, autograd
// wiring and dispatch; the math lives in the fused kernels (ops/cpu/softmax.cpp, layer_norm.cpp,
// batch_norm.cpp, dropout.cpp) and is summarised in ops/nn.h.
//
// Every op hands its kernels contiguous tensors (copied here when the input is a strided view), except that
// batch_norm and dropout keep a channels-last input's layout (see there), and each backward is one fused
// kernel call:
//   softmax / log_softmax  saves y (detached)
//   layer_norm             saves x, the per-row mean and rstd, the weight
//   batch_norm             saves x, the weight and the per-channel mean/variance it normalised with (the
//                          batch statistics in training, a copy of the running ones in evaluation)
//   dropout                saves (seed, offset, p): the backward redraws the same Philox mask
#include "ops/nn.h"

#include <algorithm>
#include <cmath>

#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/util.h"

namespace nabla {
namespace ops {
namespace {

Tensor empty_or_undefined(bool want, const Shape& shape, const Tensor& like) {
  return want ? Tensor::empty(shape, like.dtype(), like.device()) : Tensor();
}

bool wants_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

// weight/bias/running stats of a normalisation: undefined, or the input's dtype/device with `shape`.
void check_param(const char* op, const char* what, const Tensor& p, const Tensor& x, const Shape& shape,
                 const char* expected_what) {
  if (!p.defined()) return;
  NABLA_CHECK(p.device() == x.device(), op, ": ", what, " is on ", p.device(), ", input ", x.shape(), " on ",
              x.device());
  NABLA_CHECK(p.dtype() == x.dtype(), op, ": ", what, " has dtype ", p.dtype(), ", input ", x.shape(),
              " has ", x.dtype(), " (cast one with .to(dtype))");
  NABLA_CHECK(p.shape() == shape, op, ": ", what, " has shape ", p.shape(), ", expected ", shape, " (",
              expected_what, " of input ", x.shape(), ")");
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_defined(op, x);
  check_floating(op, x);
  // A 0-d tensor is one row of one element, as in PyTorch.
  const int64_t nd = std::max<int64_t>(1, x.dim());
  const int64_t d = wrap_dim(dim, nd, op);
  int64_t outer = 1, r = 1, inner = 1;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < d)
      outer *= x.shape()[i];
    else if (i == d)
      r = x.shape()[i];
    else
      inner *= x.shape()[i];
  }
  Tensor xc = contiguous_raw(x, op);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  softmax_kernel.get(x.device(), op)(xc, outer, r, inner, log, y);
  autograd::record(op, y, {x},
                   [ys = y.detach(), outer, r, inner, log, op](const Tensor& g) -> std::vector<Tensor> {
                     Tensor gc = contiguous_raw(g, op);
                     Tensor dx = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
                     softmax_backward_kernel.get(ys.device(), op)(gc, ys, outer, r, inner, log, dx);
                     return {dx};
                   });
  return y;
}

}  // namespace
}  // namespace ops

using namespace ops;

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(autocast_input(x, AutocastKind::f32), dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(autocast_input(x, AutocastKind::f32), dim, true);
}

Tensor layer_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight_in,
                  const Tensor& bias_in, double eps) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32);
  const Tensor weight = autocast_input(weight_in, AutocastKind::f32),
               bias = autocast_input(bias_in, AutocastKind::f32);
  const char* op = "layer_norm";
  check_defined(op, x);
  check_floating(op, x);
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  NABLA_CHECK(k >= 1, op, ": normalized_shape must name at least one dim, got ", normalized_shape,
              " for input ", x.shape());
  bool trailing = x.dim() >= k;
  for (int64_t i = 0; trailing && i < k; ++i) trailing = x.shape()[x.dim() - k + i] == normalized_shape[i];
  NABLA_CHECK(trailing, op, ": normalized_shape ", normalized_shape,
              " does not match the trailing dims of input ", x.shape());
  NABLA_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  check_param(op, "weight", weight, x, normalized_shape, "normalized_shape");
  check_param(op, "bias", bias, x, normalized_shape, "normalized_shape");

  const int64_t cols = numel_of(normalized_shape);
  int64_t rows = 1;
  for (int64_t i = 0; i < x.dim() - k; ++i) rows *= x.shape()[i];
  Tensor xc = contiguous_raw(x, op);
  Tensor wc = weight.defined() ? contiguous_raw(weight, op) : Tensor();
  Tensor bc = bias.defined() ? contiguous_raw(bias, op) : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({rows}, x.dtype(), x.device());
  Tensor rstd = Tensor::empty({rows}, x.dtype(), x.device());
  layer_norm_kernel.get(x.device(), op)(xc, wc, bc, rows, cols, eps, y, mean, rstd);

  autograd::record(
      op, y, {x, weight, bias},
      [xc, wc, mean, rstd, rows, cols, nshape = normalized_shape, want_x = wants_grad(x),
       want_w = wants_grad(weight), want_b = wants_grad(bias)](const Tensor& g) -> std::vector<Tensor> {
        Tensor gc = contiguous_raw(g, "layer_norm");
        Tensor dx = empty_or_undefined(want_x, xc.shape(), xc);
        Tensor dw = empty_or_undefined(want_w, nshape, xc);
        Tensor db = empty_or_undefined(want_b, nshape, xc);
        layer_norm_backward_kernel.get(xc.device(), "layer_norm")(gc, xc, mean, rstd, wc, rows, cols, dx, dw,
                                                                  db);
        return {dx, dw, db};
      });
  return y;
}

namespace ops {
namespace {

// batch_norm, and with fuse_relu batch_norm_add_relu: relu(batch_norm(x) + residual), residual optional.
Tensor batch_norm_impl(const char* op, const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in,
                       const Tensor& running_mean, const Tensor& running_var, bool training, double momentum,
                       double eps, const Tensor& residual, bool fuse_relu, double slope = 0.0) {
  // Autocast: batch_norm runs in its input's dtype, as under torch.autocast (where it is on neither list).
  // A bf16 activation from a bf16 convolution stays bf16, so no cast kernel goes over every activation of a
  // ResNet twice (those casts and the f32 traffic behind them made bf16 ResNet-50 slower than TF32). The
  // CUDA kernels read an f32 weight and bias as they are and write their gradients in f32, as PyTorch's
  // mixed-dtype batch norm does (casting them to bf16 and the gradients back cost ResNet-50 212 small
  // launches a step); the batch statistics are kept in f32 (the kernels accumulate in f32 or f64 anyway),
  // and the running statistics, updated in place by the kernel, stay f32 and are never cast.
  const Tensor& x = x_in;
  const bool low = autocast_enabled() && x.defined() && x.device().is_cuda() &&
                   (x.dtype() == DType::bf16 || x.dtype() == DType::f16);
  const Tensor &weight = weight_in, &bias = bias_in;
  const DType stat_dtype = low ? DType::f32 : x.defined() ? x.dtype() : DType::f32;
  check_defined(op, x);
  check_floating(op, x);
  NABLA_CHECK(x.dim() >= 2, op, ": expected an input [N, C] or [N, C, *], got ", x.shape());
  const int64_t n = x.shape()[0], c = x.shape()[1];
  const int64_t s = numel_of(Shape(x.shape().begin() + 2, x.shape().end()));
  const Shape per_channel{c};
  for (auto [what, p] : {std::pair{"weight", &weight}, std::pair{"bias", &bias}}) {
    if (low && p->defined() && p->dtype() == DType::f32)  // under autocast: f32 or the input's dtype
      NABLA_CHECK(p->device() == x.device() && p->shape() == per_channel, op, ": ", what, " must be a ",
                  per_channel, " tensor on ", x.device(), ", got ", p->shape(), " on ", p->device());
    else
      check_param(op, what, *p, x, per_channel, "C channels");
  }
  for (auto [what, r] : {std::pair{"running_mean", &running_mean}, std::pair{"running_var", &running_var}}) {
    if (!low) {
      check_param(op, what, *r, x, per_channel, "C channels");
    } else if (r->defined()) {  // under autocast the running statistics are f32 whatever the input
      NABLA_CHECK(r->device() == x.device() && r->dtype() == DType::f32 && r->shape() == per_channel, op,
                  ": ", what, " must be an f32 ", per_channel, " tensor on ", x.device(),
                  " under autocast, got ", r->dtype(), " ", r->shape(), " on ", r->device());
    }
  }
  NABLA_CHECK(running_mean.defined() == running_var.defined(), op,
              ": pass both running_mean and running_var or neither (input ", x.shape(), ")");
  NABLA_CHECK(training || running_mean.defined(), op,
              ": evaluation mode needs running_mean and running_var (input ", x.shape(), ")");
  NABLA_CHECK(!training || n * s > 1, op,
              ": expected more than 1 value per channel when training, got input ", x.shape());
  NABLA_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  // The backward tells the two sides of the (leaky) ReLU apart by the sign of the saved output, which is
  // the pre-activation's sign only for a slope >= 0.
  NABLA_CHECK(slope >= 0 && std::isfinite(slope), op, ": negative_slope must be finite and >= 0, got ",
              slope);
  if (residual.defined()) {
    NABLA_CHECK(
        residual.shape() == x.shape() && residual.dtype() == x.dtype() && residual.device() == x.device(), op,
        ": residual must match the input ", x.dtype(), " ", x.shape(), " on ", x.device(), ", got ",
        residual.dtype(), " ", residual.shape(), " on ", residual.device());
  }

  // A channels-last [N, C, H, W] input is, in memory, [N H W, C]: the same statistics per channel with
  // n = N H W rows and s = 1, which the kernels already handle (and on CUDA, coalesced over channels). So
  // it is normalised in place in its layout, and y and dx are channels-last too.
  const MemoryFormat f = x.suggest_memory_format();
  const int64_t kn = f == MemoryFormat::ChannelsLast ? n * s : n,
                ks = f == MemoryFormat::ChannelsLast ? 1 : s;
  Tensor xc = contiguous_raw(x, op, f);
  Tensor wc = weight.defined() ? contiguous_raw(weight, op) : Tensor();
  Tensor bc = bias.defined() ? contiguous_raw(bias, op) : Tensor();
  Tensor rc = residual.defined() ? contiguous_raw(residual, op, f) : Tensor();  // in x's layout
  Tensor mean, var;
  if (training) {
    mean = Tensor::empty(per_channel, stat_dtype, x.device());
    var = Tensor::empty(per_channel, stat_dtype, x.device());
  } else if (autograd::needs_grad({&x, &weight, &bias, &residual})) {
    // Copies: a later training step updates the running statistics in place before this backward runs.
    mean = running_mean.detach().clone();
    var = running_var.detach().clone();
  } else {
    // No backward will read them (inference, no_grad): the running statistics as they are, no copy
    // kernels (two a layer of a YOLOv3 forward).
    mean = running_mean.detach();
    var = running_var.detach();
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), f);
  // Training updates the running statistics in the kernel (ops/nn.h): running = (1 - momentum) running +
  // momentum batch, with the unbiased batch variance.
  Tensor rm = training ? running_mean : Tensor(), rv = training ? running_var : Tensor();
  batch_norm_kernel.get(x.device(), op)(xc, wc, bc, rc, fuse_relu, slope, training, kn, c, ks, eps, momentum,
                                        mean, var, rm, rv, y);

  // The fused op saves its output (detached) for the ReLU mask: y > 0 exactly where the pre-activation was.
  autograd::record(op, y, {x, weight, bias, residual},
                   [op, xc, wc, mean, var, training, f, kn, c, ks, eps, slope, want_x = wants_grad(x),
                    want_w = wants_grad(weight), want_b = wants_grad(bias), want_r = wants_grad(residual), bc,
                    ys = fuse_relu ? y.detach() : Tensor()](const Tensor& g) -> std::vector<Tensor> {
                     Tensor gc = contiguous_raw(g, op, f);
                     Tensor dx = want_x ? Tensor::empty(xc.shape(), xc.dtype(), xc.device(), f) : Tensor();
                     Tensor dw = want_w ? Tensor::empty({c}, wc.dtype(), xc.device())
                                        : Tensor();  // f32 under autocast
                     Tensor db = want_b ? Tensor::empty({c}, bc.dtype(), xc.device()) : Tensor();
                     Tensor dr = want_r ? Tensor::empty(xc.shape(), xc.dtype(), xc.device(), f) : Tensor();
                     batch_norm_backward_kernel.get(xc.device(), op)(
                         gc, xc, ys, slope, wc, mean, var, training, kn, c, ks, eps, dx, dw, db, dr);
                     return {dx, dw, db, dr};
                   });
  return y;
}

}  // namespace
}  // namespace ops

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  return batch_norm_impl("batch_norm", x, weight, bias, running_mean, running_var, training, momentum, eps,
                         Tensor(), false);
}

Tensor batch_norm_add_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                           const Tensor& running_mean, const Tensor& running_var, bool training,
                           const Tensor& residual, double momentum, double eps, double negative_slope) {
  return batch_norm_impl("batch_norm_add_relu", x, weight, bias, running_mean, running_var, training,
                         momentum, eps, residual, true, negative_slope);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  const char* op = "dropout";
  check_defined(op, x);
  NABLA_CHECK(p >= 0.0 && p <= 1.0, op, ": probability p must be in [0, 1], got ", p, " (input ", x.shape(),
              ")");
  if (!training || p == 0.0) return x;
  check_floating(op, x);
  check_random_not_captured(op);
  Generator& g = gen ? *gen : default_generator();
  const uint64_t seed = g.seed, offset = g.advance(x.numel());
  // p = 1 drops everything; a zero scale keeps 0 * inf out of it.
  const double scale = p == 1.0 ? 0.0 : 1.0 / (1.0 - p);
  // A dense non-row-major input (channels-last) keeps its layout: the kernel walks the storage flat, so the
  // mask index is the memory position (for row-major inputs, the row-major index, as before). The
  // backward brings the gradient to the same layout so that it meets the same mask.
  const bool keep = !x.is_contiguous() && x.is_non_overlapping_and_dense();
  Tensor xc = keep ? x.detach() : contiguous_raw(x, op);
  Tensor y = empty_preserving(xc);
  Tensor xf = flat_view(xc), yf = flat_view(y);
  dropout_kernel.get(x.device(), op)(xf, p, scale, seed, offset, yf);
  autograd::record(
      op, y, {x},
      [p, scale, seed, offset, strides = xc.strides()](const Tensor& grad) -> std::vector<Tensor> {
        Tensor gc = grad;
        if (gc.strides() != strides || !gc.is_non_overlapping_and_dense()) {
          gc = Tensor::empty_strided(grad.shape(), strides, grad.dtype(), grad.device());
          copy_kernel.get(grad.device(), "dropout")(grad, gc);
        }
        Tensor dx = empty_preserving(gc);
        Tensor gf = flat_view(gc), df = flat_view(dx);
        dropout_kernel.get(gc.device(), "dropout")(gf, p, scale, seed, offset, df);
        return {dx};
      });
  return y;
}

}  // namespace nabla

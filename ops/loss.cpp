// Losses, written as compositions of ops that each have a CPU (and CUDA) kernel and a backward, so their
// gradients come from the chain rule through those ops (and are checked in tests/ops/test_loss.cpp).
//
// cross_entropy moves the class dim last ([N, C, d...] -> [N*d..., C]). With class-index targets it is one
// fused kernel pair (cross_entropy_kernel / cross_entropy_backward_kernel, ops/loss.h) recorded as one
// autograd node that saves the logits, the targets and the per-row log-sum-exp; ignored targets are masked
// out of the sum and of the mean's count (divided on the device). Soft targets and nll_loss compose
// log_softmax, gather and reductions.
#include "ops/loss.h"

#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/nn.h"
#include "ops/reduce.h"
#include "ops/util.h"

namespace nabla {
using namespace ops;

namespace {

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::none:
      return "none";
    case Reduction::mean:
      return "mean";
    case Reduction::sum:
      return "sum";
    case Reduction::batchmean:
      return "batchmean";
  }
  return "?";
}

Tensor reduce_loss(const Tensor& per_element, Reduction r, const char* op) {
  switch (r) {
    case Reduction::none:
      return per_element;
    case Reduction::sum:
      return sum(per_element);
    case Reduction::mean:
      return mean(per_element);
    case Reduction::batchmean:
      NABLA_CHECK(per_element.dim() >= 1, op, ": batchmean needs a batch dim");
      return sum(per_element) / static_cast<double>(per_element.size(0));
  }
  fail(op, ": bad reduction");
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  check_same(op, a, b);
  NABLA_CHECK(a.shape() == b.shape(), op, ": input ", a.shape(), " and target ", b.shape(),
              " must have the same shape");
}

// [N, C, d...] -> [N*d..., C] (class dim last).
Tensor classes_last(const Tensor& x) {
  if (x.dim() == 2) return x;
  std::vector<int64_t> perm{0};
  for (int64_t d = 2; d < x.dim(); ++d) perm.push_back(d);
  perm.push_back(1);
  return x.permute(perm).reshape({-1, x.size(1)});
}

// Class-index targets as contiguous i64 [M], each in [0, C) or equal to ignore_index: checked now on the
// CPU, by an asynchronous device check on a GPU (ops/index.h checked_values), with the same message.
Tensor checked_targets(const Tensor& target, int64_t C, int64_t ignore_index, const char* op) {
  return checked_values(target.reshape({-1}), C, ignore_index, [op = std::string(op), C](int64_t, int64_t v) {
    return str_cat(op, ": target ", v, " is out of range for ", C, " classes");
  });
}

// Per-sample negative log-likelihood of class-index targets, with ignore_index; returns (loss [M], valid
// [M]).
std::pair<Tensor, Tensor> nll_rows(const Tensor& logp, const Tensor& target, int64_t ignore_index,
                                   const char* op) {
  check_index_dtype(op, target);
  NABLA_CHECK(target.numel() == logp.size(0), op, ": ", logp.size(0), " predictions but ", target.numel(),
              " targets");
  Tensor t = checked_targets(target, logp.size(1), ignore_index, op);
  Tensor valid =
      ne(t, full({}, static_cast<double>(ignore_index), {.dtype = DType::i64, .device = t.device()}));
  Tensor safe = where(valid, t, zeros_like(t));
  Tensor picked = gather(logp, 1, safe.unsqueeze(1)).squeeze(1);
  Tensor validf = valid.to(logp.dtype());
  return {neg(picked) * validf, validf};
}

// The fused class-index path: per-row losses [M] of logits x [M, C] (differentiable) and targets i64 [M]
// (contiguous, range-checked), 0 for ignored rows.
Tensor cross_entropy_rows(const Tensor& x, const Tensor& t, int64_t ignore_index, double s, const char* op) {
  Tensor xc = contiguous_raw(x, op);
  const DType lse_dtype = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor loss = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  Tensor lse = Tensor::empty({x.size(0)}, lse_dtype, x.device());
  cross_entropy_kernel.get(x.device(), op)(xc, t, ignore_index, s, loss, lse);
  autograd::record(op, loss, {x}, [xc, t, lse, ignore_index, s](const Tensor& g) -> std::vector<Tensor> {
    const char* name = "cross_entropy";
    Tensor gc = contiguous_raw(g.dtype() == xc.dtype() ? g : g.to(xc.dtype()), name);
    Tensor dx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
    cross_entropy_backward_kernel.get(xc.device(), name)(xc, t, lse, gc, ignore_index, s, dx);
    return {dx};
  });
  return loss;
}

Tensor reduce_masked(const Tensor& loss, const Tensor& validf, Reduction r, const Shape& none_shape,
                     const char* op) {
  switch (r) {
    case Reduction::none:
      return loss.reshape(none_shape);
    case Reduction::sum:
      return sum(loss);
    // Divided on the device (no host sync); 0/0 = nan when every target is ignored, as PyTorch.
    case Reduction::mean:
      return sum(loss) / sum(validf);
    default:
      fail(op, ": reduction ", reduction_name(r), " is not supported");
  }
}

}  // namespace

Tensor nll_loss(const Tensor& log_probs_in, const Tensor& target, Reduction reduction, int64_t ignore_index) {
  const Tensor log_probs = autocast_input(log_probs_in, AutocastKind::f32);
  check_defined("nll_loss", log_probs);
  check_floating("nll_loss", log_probs);
  NABLA_CHECK(log_probs.dim() >= 2, "nll_loss: expected log-probabilities [N, C, ...], got ",
              log_probs.shape());
  Shape none_shape = target.shape();
  auto [loss, valid] = nll_rows(classes_last(log_probs), target, ignore_index, "nll_loss");
  return reduce_masked(loss, valid, reduction, none_shape, "nll_loss");
}

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target_in, const CrossEntropyOptions& o) {
  const char* op = "cross_entropy";
  const Tensor logits = autocast_input(logits_in, AutocastKind::f32),
               target = autocast_input(target_in, AutocastKind::f32);
  check_defined(op, logits);
  check_defined(op, target, "target");
  check_floating(op, logits);
  NABLA_CHECK(logits.dim() >= 2, op, ": expected logits [N, C] or [N, C, d...], got ", logits.shape());
  NABLA_CHECK(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0, op,
              ": label_smoothing must be in [0, 1], got ", o.label_smoothing);
  const double s = o.label_smoothing;
  const int64_t C = logits.size(1);
  if (is_floating(target.dtype())) {
    Tensor logp = log_softmax(classes_last(logits), 1);
    // Soft targets: probabilities with the logits' shape.
    check_same_shape(op, logits, target);
    Tensor t = classes_last(target);
    if (s > 0) t = t * (1.0 - s) + s / static_cast<double>(C);
    Tensor per = neg(sum(t * logp, {1}));
    Shape none_shape = logits.shape();
    none_shape.erase(none_shape.begin() + 1);
    if (o.reduction == Reduction::none) return per.reshape(none_shape);
    return reduce_loss(per, o.reduction, op);
  }
  Shape expect = logits.shape();
  expect.erase(expect.begin() + 1);
  NABLA_CHECK(target.shape() == expect, op, ": logits ", logits.shape(),
              " need class-index targets of shape ", expect, ", got ", target.shape());
  const DType dt = logits.dtype();
  const bool fused = (dt == DType::f32 || dt == DType::f64 || dt == DType::bf16 || dt == DType::f16) &&
                     (target.dtype() == DType::i64 || target.dtype() == DType::i32);
  if (fused) {
    Tensor t = checked_targets(target, C, o.ignore_index, op);
    Tensor loss = cross_entropy_rows(classes_last(logits), t, o.ignore_index, s, op);
    Tensor ignore =
        full({}, static_cast<double>(o.ignore_index), {.dtype = DType::i64, .device = t.device()});
    Tensor valid = ne(t, ignore).to(dt);
    return reduce_masked(loss, valid, o.reduction, target.shape(), op);
  }
  Tensor logp = log_softmax(classes_last(logits), 1);
  auto [nll, valid] = nll_rows(logp, target, o.ignore_index, op);
  Tensor loss = nll;
  if (s > 0) loss = nll * (1.0 - s) + neg(mean(logp, {1})) * valid * s;
  return reduce_masked(loss, valid, o.reduction, target.shape(), op);
}

Tensor mse_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const Tensor input = autocast_input(input_in, AutocastKind::f32),
               target = autocast_input(target_in, AutocastKind::f32);
  check_same_shape("mse_loss", input, target);
  Tensor d = input - target;
  return reduce_loss(d * d, reduction, "mse_loss");
}

Tensor l1_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const Tensor input = autocast_input(input_in, AutocastKind::f32),
               target = autocast_input(target_in, AutocastKind::f32);
  check_same_shape("l1_loss", input, target);
  return reduce_loss(abs(input - target), reduction, "l1_loss");
}

Tensor smooth_l1_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction, double beta) {
  const Tensor input = autocast_input(input_in, AutocastKind::f32),
               target = autocast_input(target_in, AutocastKind::f32);
  check_same_shape("smooth_l1_loss", input, target);
  NABLA_CHECK(beta >= 0, "smooth_l1_loss: beta must be >= 0, got ", beta);
  Tensor d = input - target;
  Tensor ad = abs(d);
  if (beta == 0) return reduce_loss(ad, reduction, "smooth_l1_loss");
  Tensor quad = d * d * (0.5 / beta);
  Tensor lin = ad - 0.5 * beta;
  return reduce_loss(where(lt(ad, scalar_like(beta, ad)), quad, lin), reduction, "smooth_l1_loss");
}

Tensor binary_cross_entropy_with_logits(const Tensor& x_in, const Tensor& y_in, Reduction reduction,
                                        const Tensor& pos_weight_in) {
  const Tensor x = autocast_input(x_in, AutocastKind::f32), y = autocast_input(y_in, AutocastKind::f32);
  const Tensor pos_weight = autocast_input(pos_weight_in, AutocastKind::f32);
  check_same_shape("binary_cross_entropy_with_logits", x, y);
  // log(1 + exp(-|x|)) + max(-x, 0) = -log sigmoid(x), computed without overflow.
  Tensor log_sig_neg = log1p(exp(neg(abs(x)))) + relu(neg(x));
  Tensor loss;
  if (pos_weight.defined()) {
    check_same("binary_cross_entropy_with_logits", x, pos_weight);
    Tensor w = (pos_weight - 1.0) * y + 1.0;
    loss = (1.0 - y) * x + w * log_sig_neg;
  } else {
    loss = (1.0 - y) * x + log_sig_neg;
  }
  return reduce_loss(loss, reduction, "binary_cross_entropy_with_logits");
}

Tensor kl_div(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const Tensor input = autocast_input(input_in, AutocastKind::f32),
               target = autocast_input(target_in, AutocastKind::f32);
  check_same_shape("kl_div", input, target);
  Tensor zero = scalar_like(0.0, target);
  Tensor positive = gt(target, zero);
  // log(target) only where target > 0; elsewhere the term is 0 (and its gradient must not become NaN).
  Tensor safe = where(positive, target, ones_like(target));
  Tensor per = where(positive, target * (log(safe) - input), zeros_like(target));
  return reduce_loss(per, reduction, "kl_div");
}

}  // namespace nabla

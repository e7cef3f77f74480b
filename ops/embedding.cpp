// The embedding family's op layer: checks, autograd wiring, dispatch.
//
//   embedding:      out[l, :] = W[idx[l], :] with idx flattened to [L], viewed back as [..., D]. Forward and
//                   backward reuse the index family's index_select and index_add kernels (a lookup is
//                   index_select along dim 0); the padding row of dW is zeroed afterwards.
//   embedding_bag:  its own kernels (ops/cpu/embedding.cpp); offsets are checked on the host.
#include "ops/embedding.h"

#include <cmath>
#include <functional>

#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/util.h"

namespace nabla {
namespace ops {
namespace {

Tensor contiguous_copy_raw(const Tensor& t, const char* op) {
  if (t.is_contiguous()) return t.detach();
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_kernel.get(t.device(), op)(t, c);
  return c;
}

void check_weight(const char* op, const Tensor& weight, const Tensor& indices) {
  check_defined(op, weight, "weight");
  check_defined(op, indices, "indices");
  NABLA_CHECK(weight.dim() == 2, op, ": weight must be 2-D [num_embeddings, embedding_dim], got ",
              weight.shape());
  check_floating(op, weight);
  NABLA_CHECK(indices.device() == weight.device(), op, ": indices on ", indices.device(), " ",
              indices.shape(), ", weight on ", weight.device(), " ", weight.shape());
}

// bag[l] = l / n for fixed bags of n, on `device`.
Tensor div_floor_positions(int64_t L, int64_t n, Device device) {
  Tensor bag = Tensor::empty({L}, DType::i64, Device::cpu());
  int64_t* p = bag.data<int64_t>();
  for (int64_t l = 0; l < L; ++l) p[l] = l / n;
  return bag.to(device);
}

}  // namespace
}  // namespace ops

using namespace ops;

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  check_weight("embedding", weight, indices);
  const int64_t V = weight.shape()[0], D = weight.shape()[1];
  NABLA_CHECK(padding_idx < V, "embedding: padding_idx ", padding_idx, " is out of range for weight ",
              weight.shape(), " (", V, " embeddings)");
  Tensor idx = contiguous_copy_raw(checked_index("embedding", indices, V, 0, weight.shape()), "embedding");
  const int64_t L = idx.numel();
  idx = raw_view(idx, {L}, {1}, idx.offset());
  Tensor out = Tensor::empty({L, D}, weight.dtype(), weight.device());
  index_select_kernel.get(weight.device(), "embedding")(contiguous_copy_raw(weight, "embedding"), idx, out, 1,
                                                        V, D);
  Shape out_shape = indices.shape();
  out_shape.push_back(D);
  out = raw_view(out, out_shape, contiguous_strides(out_shape), 0);
  autograd::record("embedding", out, {weight},
                   [V, D, L, idx, padding_idx](const Tensor& g) -> std::vector<Tensor> {
                     Tensor dw = zeros({V, D}, {.dtype = g.dtype(), .device = g.device()});
                     Tensor gc = contiguous_copy_raw(g, "embedding backward");
                     index_add_kernel.get(g.device(), "embedding backward")(
                         raw_view(gc, {L, D}, {D, 1}, gc.offset()), idx, dw, 1, V, D);
                     if (padding_idx >= 0) dw.select(0, padding_idx).zero_();
                     return {dw};
                   });
  return out;
}

namespace {

// The bag of every position, on the host then moved to `device` (only the per_sample_weights gradient
// needs it).
Tensor bag_of_positions(const std::vector<int64_t>& off_host, int64_t L, Device device) {
  Tensor bag = Tensor::empty({L}, DType::i64, Device::cpu());
  int64_t* p = bag.data<int64_t>();
  const int64_t B = static_cast<int64_t>(off_host.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = off_host[b], end = b + 1 < B ? off_host[b + 1] : L; l < end; ++l) p[l] = b;
  return bag.to(device);
}

Tensor checked_per_sample_weights(const Tensor& psw, const Tensor& weight, int64_t L, BagMode mode) {
  if (!psw.defined()) return psw;
  NABLA_CHECK(mode == BagMode::sum, "embedding_bag: per_sample_weights need mode sum (as PyTorch), got mean");
  NABLA_CHECK(psw.dim() == 1 && psw.shape()[0] == L, "embedding_bag: per_sample_weights must be ", Shape({L}),
              " (one per index), got ", psw.shape());
  NABLA_CHECK(psw.dtype() == weight.dtype() && psw.device() == weight.device(),
              "embedding_bag: per_sample_weights are ", psw.dtype(), " on ", psw.device(), ", weight is ",
              weight.dtype(), " on ", weight.device());
  return psw;
}

// The op after the checks: idx i64 [L] contiguous in range, off i64 [B] on the device. `bag_fn` makes the
// bag of every position (called only when the per-sample weights need a gradient).
Tensor embedding_bag_impl(const Tensor& weight, const Tensor& idx, const Tensor& off, BagMode mode,
                          const Tensor& psw, std::function<Tensor()> bag_fn) {
  const int64_t V = weight.shape()[0], D = weight.shape()[1], B = off.shape()[0];
  Tensor p = psw.defined() ? contiguous_copy_raw(psw, "embedding_bag") : Tensor();
  Tensor w = contiguous_copy_raw(weight, "embedding_bag");
  Tensor out = Tensor::empty({B, D}, weight.dtype(), weight.device());
  embedding_bag_kernel.get(weight.device(), "embedding_bag")(w, idx, off, mode, p, out);
  if (!autograd::needs_grad({&weight, &psw})) return out;
  const bool psw_grad = psw.defined() && psw.requires_grad();
  Tensor bag = psw_grad ? bag_fn() : Tensor();
  Tensor w_saved = psw_grad ? w : Tensor();
  const bool weight_grad = weight.requires_grad();
  autograd::record(
      "embedding_bag", out, {weight, psw},
      [V, D, idx, off, mode, p, bag, w_saved, weight_grad](const Tensor& g) -> std::vector<Tensor> {
        Tensor gc = contiguous_copy_raw(g, "embedding_bag backward");
        Tensor dw;
        if (weight_grad) {
          dw = zeros({V, D}, {.dtype = g.dtype(), .device = g.device()});
          embedding_bag_backward_kernel.get(g.device(), "embedding_bag backward")(gc, idx, off, mode, p, 1.0,
                                                                                  dw);
        }
        Tensor dp;
        if (bag.defined())  // dp[l] = <g[bag(l)], W[idx[l]]>
          dp = sum(mul(index_select(gc, 0, bag), index_select(w_saved, 0, idx)), {1});
        return {dw, dp};
      });
  return out;
}

struct CheckedBags {
  Tensor idx, off;
  std::vector<int64_t> off_host;
};

CheckedBags check_bags(const Tensor& weight, const Tensor& indices, const Tensor& offsets) {
  check_weight("embedding_bag", weight, indices);
  check_defined("embedding_bag", offsets, "offsets");
  NABLA_CHECK(indices.dim() == 1, "embedding_bag: indices must be 1-D [L], got ", indices.shape());
  NABLA_CHECK(offsets.dim() == 1, "embedding_bag: offsets must be 1-D [B], got ", offsets.shape());
  check_index_dtype("embedding_bag", offsets);
  NABLA_CHECK(offsets.device() == weight.device(), "embedding_bag: offsets on ", offsets.device(),
              ", weight on ", weight.device());
  const int64_t V = weight.shape()[0], L = indices.shape()[0], B = offsets.shape()[0];
  CheckedBags c;
  c.off = contiguous_copy_raw(offsets.detach().to(DType::i64), "embedding_bag");
  Tensor host = contiguous_copy_raw(c.off.to(Device::cpu()), "embedding_bag");
  const int64_t* p = host.data<int64_t>();
  NABLA_CHECK(B > 0 && p[0] == 0, "embedding_bag: offsets must start with 0, got ",
              B > 0 ? str_cat(p[0]) : std::string("an empty tensor"), " (offsets ", offsets.shape(), ")");
  for (int64_t b = 1; b < B; ++b)
    NABLA_CHECK(p[b] >= p[b - 1], "embedding_bag: offsets must be non-decreasing, but offsets[", b,
                "] = ", p[b], " < offsets[", b - 1, "] = ", p[b - 1]);
  NABLA_CHECK(p[B - 1] <= L, "embedding_bag: offsets[", B - 1, "] = ", p[B - 1], " is beyond the ", L,
              " indices");
  c.off_host.assign(p, p + B);
  c.idx = contiguous_copy_raw(checked_index("embedding_bag", indices, V, 0, weight.shape()), "embedding_bag");
  return c;
}

struct FixedBags {
  Tensor idx, off;
  int64_t B = 0, n = 0;
};

FixedBags check_fixed_bags(const Tensor& weight, const Tensor& indices) {
  check_weight("embedding_bag", weight, indices);
  NABLA_CHECK(indices.dim() == 2 && indices.shape()[0] >= 1 && indices.shape()[1] >= 1,
              "embedding_bag: fixed-size bags need indices [B, n] with B, n >= 1, got ", indices.shape());
  FixedBags f;
  f.B = indices.shape()[0];
  f.n = indices.shape()[1];
  const int64_t V = weight.shape()[0], L = f.B * f.n;
  Tensor idx =
      contiguous_copy_raw(checked_index("embedding_bag", indices, V, 0, weight.shape()), "embedding_bag");
  f.idx = raw_view(idx, {L}, {1}, idx.offset());
  f.off = arange(0.0, static_cast<double>(L), static_cast<double>(f.n),
                 {.dtype = DType::i64, .device = weight.device()});
  return f;
}

}  // namespace

Tensor embedding_bag(const Tensor& weight, const Tensor& indices, const Tensor& offsets, BagMode mode,
                     const Tensor& per_sample_weights) {
  CheckedBags c = check_bags(weight, indices, offsets);
  const int64_t L = indices.shape()[0];
  Tensor psw = checked_per_sample_weights(per_sample_weights, weight, L, mode);
  Device device = weight.device();
  return embedding_bag_impl(weight, c.idx, c.off, mode, psw,
                            [&] { return bag_of_positions(c.off_host, L, device); });
}

Tensor embedding_bag(const Tensor& weight, const Tensor& indices, BagMode mode,
                     const Tensor& per_sample_weights) {
  FixedBags f = check_fixed_bags(weight, indices);
  Tensor psw = checked_per_sample_weights(per_sample_weights, weight, f.B * f.n, mode);
  const int64_t n = f.n;
  Device device = weight.device();
  return embedding_bag_impl(weight, f.idx, f.off, mode, psw,
                            [&] { return div_floor_positions(f.B * n, n, device); });
}

namespace {

// The sparse updates' shared checks: weight [V, D] contiguous (updated in place), the bags, the per-sample
// weights and grad [B, D]; returns what the backward kernels take (grad and weights as contiguous copies).
struct SparseUpdate {
  Tensor grad, idx, off, psw;
};
SparseUpdate check_sparse_update(const char* op, const Tensor& weight, const Tensor& indices,
                                 const Tensor& offsets, BagMode mode, const Tensor& grad, double lr,
                                 const Tensor& per_sample_weights) {
  NABLA_CHECK(weight.defined() && weight.dim() == 2 && weight.is_contiguous(), op,
              ": weight must be a contiguous [V, D] tensor, got ",
              weight.defined() ? str_cat(weight.shape()) : std::string("an undefined tensor"));
  NABLA_CHECK(std::isfinite(lr), op, ": lr must be finite, got ", lr);
  SparseUpdate u;
  int64_t B = 0, L = 0;
  if (offsets.defined()) {
    CheckedBags c = check_bags(weight, indices, offsets);
    u.idx = c.idx;
    u.off = c.off;
    B = offsets.shape()[0];
    L = indices.shape()[0];
  } else {
    FixedBags f = check_fixed_bags(weight, indices);
    u.idx = f.idx;
    u.off = f.off;
    B = f.B;
    L = f.B * f.n;
  }
  Tensor psw = checked_per_sample_weights(per_sample_weights, weight, L, mode);
  check_defined(op, grad, "grad");
  NABLA_CHECK(grad.shape() == Shape({B, weight.shape()[1]}) && grad.dtype() == weight.dtype() &&
                  grad.device() == weight.device(),
              op, ": grad must be ", weight.dtype(), " ", Shape({B, weight.shape()[1]}), " on ",
              weight.device(), ", got ", grad.dtype(), " ", grad.shape(), " on ", grad.device());
  NoGradGuard ng;
  u.psw = psw.defined() ? contiguous_copy_raw(psw.detach(), op) : Tensor();
  u.grad = contiguous_copy_raw(grad, op);
  return u;
}

}  // namespace

void embedding_bag_sparse_sgd_(Tensor& weight, const Tensor& indices, const Tensor& offsets, BagMode mode,
                               const Tensor& grad, double lr, const Tensor& per_sample_weights) {
  const char* op = "embedding_bag_sparse_sgd_";
  SparseUpdate u = check_sparse_update(op, weight, indices, offsets, mode, grad, lr, per_sample_weights);
  NoGradGuard ng;
  embedding_bag_backward_kernel.get(weight.device(), op)(u.grad, u.idx, u.off, mode, u.psw, -lr, weight);
}

void embedding_bag_sparse_rowwise_adagrad_(Tensor& weight, Tensor& state, const Tensor& indices,
                                           const Tensor& offsets, BagMode mode, const Tensor& grad, double lr,
                                           double eps, const Tensor& per_sample_weights) {
  const char* op = "embedding_bag_sparse_rowwise_adagrad_";
  SparseUpdate u = check_sparse_update(op, weight, indices, offsets, mode, grad, lr, per_sample_weights);
  NABLA_CHECK(state.defined() && state.shape() == Shape({weight.shape()[0]}) && state.is_contiguous() &&
                  state.dtype() == weight.dtype() && state.device() == weight.device(),
              op, ": state must be a contiguous ", weight.dtype(), " ", Shape({weight.shape()[0]}), " on ",
              weight.device(), " (one accumulator per row), got ",
              state.defined() ? str_cat(state.dtype(), " ", state.shape(), " on ", state.device())
                              : std::string("an undefined tensor"));
  NABLA_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
  NoGradGuard ng;
  embedding_bag_rowwise_adagrad_kernel.get(weight.device(), op)(u.grad, u.idx, u.off, mode, u.psw, lr, eps,
                                                                weight, state);
}

}  // namespace nabla

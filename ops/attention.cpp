// scaled_dot_product_attention: shape/dtype checks, autograd wiring and dispatch to the fused kernels
// (ops/cpu/attention.cpp, cuda/attention.cu). The maths and what is saved are in ops/attention.h.
#include "ops/attention.h"

#include <cmath>

#include "ops/autocast.h"
#include "ops/util.h"

namespace nabla {

using namespace ops;

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                    const Tensor& key_padding_mask, bool causal, double dropout_p,
                                    bool training, std::optional<double> scale, Generator* gen) {
  const char* op = "scaled_dot_product_attention";
  check_defined(op, q_in, "q");
  check_defined(op, k_in, "k");
  check_defined(op, v_in, "v");
  const Tensor q = autocast_input(q_in, AutocastKind::lower_precision);
  const Tensor k = autocast_input(k_in, AutocastKind::lower_precision);
  const Tensor v = autocast_input(v_in, AutocastKind::lower_precision);
  check_floating(op, q);
  NABLA_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
              ": expected q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, D], got q ", q.shape(), ", k ",
              k.shape(), ", v ", v.shape());
  const int64_t b = q.size(0), h = q.size(1), tq = q.size(2), d = q.size(3), tk = k.size(2);
  NABLA_CHECK(k.size(0) == b && k.size(1) == h && k.size(3) == d && v.shape() == k.shape(), op, ": q ",
              q.shape(), ", k ", k.shape(), " and v ", v.shape(),
              " disagree (expected q [B, H, Tq, D], k and v [B, H, Tk, D] with the same B, H, D)");
  for (const Tensor* t : {&k, &v}) {
    NABLA_CHECK(t->device() == q.device(), op, ": q is on ", q.device(), ", k/v ", t->shape(), " on ",
                t->device());
    NABLA_CHECK(t->dtype() == q.dtype(), op, ": q has dtype ", q.dtype(), ", k/v ", t->shape(), " has ",
                t->dtype(), " (cast one with .to(dtype))");
  }
  NABLA_CHECK(d >= 1, op, ": head size D must be >= 1, got q ", q.shape());
  NABLA_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, op, ": dropout_p must be in [0, 1], got ", dropout_p);
  if (scale) NABLA_CHECK(std::isfinite(*scale), op, ": scale must be finite, got ", *scale);
  Tensor mask;
  if (key_padding_mask.defined()) {
    const Tensor& m = key_padding_mask;
    NABLA_CHECK(m.dtype() == DType::b8 || m.dtype() == DType::u8, op,
                ": key_padding_mask must be bool or u8 (nonzero = attend), got ", m.dtype(), " ", m.shape());
    NABLA_CHECK(m.dim() == 2 && m.size(0) == b && m.size(1) == tk, op,
                ": key_padding_mask must be [B, Tk] = ", Shape{b, tk}, ", got ", m.shape());
    NABLA_CHECK(m.device() == q.device(), op, ": key_padding_mask is on ", m.device(), ", q on ", q.device());
    mask = contiguous_raw(m, op);
  }

  AttentionParams p;
  p.b = b, p.h = h, p.tq = tq, p.tk = tk, p.d = d;
  p.scale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(d));
  p.causal = causal;
  p.dropout_p = training ? dropout_p : 0.0;
  if (p.dropout_p > 0.0) {
    check_random_not_captured(op);
    Generator& g = gen ? *gen : default_generator();
    p.seed = g.seed;
    p.offset = g.advance(b * h * tq * tk);
  }

  Tensor qc = contiguous_raw(q, op), kc = contiguous_raw(k, op), vc = contiguous_raw(v, op);
  Tensor out = Tensor::empty({b, h, tq, d}, q.dtype(), q.device());
  const DType lse_dtype = q.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor lse = Tensor::empty({b, h, tq}, lse_dtype, q.device());
  if (out.numel() > 0) attention_forward_kernel.get(q.device(), op)(qc, kc, vc, mask, p, out, lse);

  autograd::record(op, out, {q, k, v},
                   [qc, kc, vc, mask, p, outs = out.detach(), lse](const Tensor& g) -> std::vector<Tensor> {
                     const char* name = "scaled_dot_product_attention";
                     Tensor gc = contiguous_raw(g, name);
                     if (gc.dtype() != qc.dtype()) gc = contiguous_raw(gc.to(qc.dtype()), name);
                     Tensor dq = Tensor::empty(qc.shape(), qc.dtype(), qc.device());
                     Tensor dk = Tensor::empty(kc.shape(), kc.dtype(), kc.device());
                     Tensor dv = Tensor::empty(vc.shape(), vc.dtype(), vc.device());
                     attention_backward_kernel.get(qc.device(), name)(gc, qc, kc, vc, mask, outs, lse, p, dq,
                                                                      dk, dv);
                     return {dq, dk, dv};
                   });
  return out;
}

}  // namespace nabla

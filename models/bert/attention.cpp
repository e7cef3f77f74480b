// Scaled dot-product attention from matmul, softmax and dropout (see attention.h).
#include "models/bert/attention.h"

#include <cmath>
#include <limits>

#include "engine/dtype_limits.h"
#include "engine/error.h"
#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/nn.h"

namespace nabla::models {
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double dropout_p,
                 bool training) {
  NABLA_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention: expected q, k, v of shape [B, A, S, D], got ", q.shape(), ", ", k.shape(), ", ",
              v.shape());
  NABLA_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3) &&
                  k.size(0) == v.size(0) && k.size(1) == v.size(1) && k.size(2) == v.size(2),
              "attention: q ", q.shape(), ", k ", k.shape(), " and v ", v.shape(),
              " disagree (expected q [B, A, S, D], k [B, A, Sk, D], v [B, A, Sk, Dv])");
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor scores = matmul(q, k.transpose(-1, -2)) * scale;
  if (mask.defined()) {
    Tensor m = mask;
    // Under autocast the add promotes 16-bit scores to the f32 mask; otherwise the mask joins the scores'
    // dtype, clamped first so that an f32 "lowest" does not become -inf in f16.
    if (m.dtype() != scores.dtype() && !autocast_enabled())
      m = clamp(m, lowest_finite(scores.dtype())).to(scores.dtype());
    scores = scores + m;
  }
  Tensor p = softmax(scores, -1);
  if (training && dropout_p > 0) p = dropout(p, dropout_p, true);
  return matmul(p, v);
}

Tensor additive_key_padding_mask(const Tensor& attention_mask, DType dtype) {
  NABLA_CHECK(attention_mask.dim() == 2, "attention mask: expected [batch, sequence], got ",
              attention_mask.shape());
  NABLA_CHECK(dtype == DType::f32 || dtype == DType::f64 || dtype == DType::bf16 || dtype == DType::f16,
              "attention mask: expected a floating dtype, got ", dtype);
  const int64_t b = attention_mask.size(0), s = attention_mask.size(1);
  Tensor keep = attention_mask.dtype() == dtype ? attention_mask : attention_mask.to(dtype);
  Tensor pad = ne(keep, scalar_like(0.0, keep)).to(dtype);  // 1 real token, 0 padding (any nonzero counts)
  return ((1.0 - pad) * lowest_finite(dtype)).reshape({b, 1, 1, s});
}

}  // namespace nabla::models

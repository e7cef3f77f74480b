// Logit distillation loss: the composition of kd_loss.h (softmax, soft-target cross-entropy, scaling).
#include "algorithms/distill/kd_loss.h"

#include <cmath>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/nn.h"

namespace nabla::distill {

namespace {
// f32 for the half types (bf16 autocast), f64 kept (gradient checks).
Tensor to_float(const Tensor& t) { return t.dtype() == DType::f64 ? t : t.to(DType::f32); }
}  // namespace

void KdLossOptions::validate() const {
  NABLA_CHECK(std::isfinite(temperature) && temperature > 0, "kd_loss: temperature ", temperature,
              ", expected a finite number > 0");
  NABLA_CHECK(hard_weight >= 0 && hard_weight <= 1, "kd_loss: hard_weight ", hard_weight,
              ", expected a number in [0, 1]");
}

Tensor soft_labels(const Tensor& teacher_logits, double temperature) {
  NABLA_CHECK(teacher_logits.dim() == 2, "soft_labels: teacher logits ", teacher_logits.shape(),
              ", expected [batch, classes]");
  NoGradGuard ng;
  return softmax(to_float(teacher_logits.detach()) * (1.0 / temperature), -1);
}

Tensor kd_loss_from_soft_labels(const Tensor& student_logits, const Tensor& teacher_probs,
                                const Tensor& labels, const KdLossOptions& o) {
  o.validate();
  NABLA_CHECK(student_logits.dim() == 2 && teacher_probs.shape() == student_logits.shape(),
              "kd_loss: student logits ", student_logits.shape(), " and teacher soft labels ",
              teacher_probs.shape(), ", expected the same [batch, classes]");
  const Tensor z = to_float(student_logits);
  const Tensor p = teacher_probs.detach().to(z.dtype());
  Tensor loss;
  if (o.hard_weight < 1) {
    const double scale = (1 - o.hard_weight) * (o.t2_scaling ? o.temperature * o.temperature : 1.0);
    loss = cross_entropy(z * (1.0 / o.temperature), p) * scale;
  }
  if (o.hard_weight > 0) {
    NABLA_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == z.size(0), "kd_loss: hard_weight ",
                o.hard_weight, " needs class labels [", z.size(0), "], got ",
                labels.defined() ? str_cat(labels.shape()) : std::string("none"));
    Tensor hard = cross_entropy(z, labels) * o.hard_weight;
    loss = loss.defined() ? loss + hard : hard;
  }
  return loss;
}

Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& labels,
               const KdLossOptions& o) {
  o.validate();
  return kd_loss_from_soft_labels(student_logits, soft_labels(teacher_logits, o.temperature), labels, o);
}

}  // namespace nabla::distill

// Logit knowledge distillation (Hinton et al. 2015): the student matches the teacher's temperature-scaled
// class distribution, optionally alongside the true labels. SKD (docs/skd.md) distils one drawn teacher per
// step with this loss; WKD passes a weighted average of the teachers' soft labels instead.
//
//   p      = softmax(z_t / T)                                   the teacher's soft labels (no gradient)
//   soft   = mean_i ( -sum_c p_ic log softmax(z_s / T)_ic )     soft cross-entropy, CE(z_t/T, z_s/T)
//   hard   = mean_i ( -log softmax(z_s)_i[y_i] )                the ordinary cross-entropy
//   L      = (1 - a) * s * soft + a * hard,   s = T^2 with t2_scaling, else 1
//
//   dL/dz_s,ic = (1 - a) * s / T * (softmax(z_s/T)_ic - p_ic) / B  +  a * (softmax(z_s)_ic - [c = y_i]) / B
//
// T^2 keeps the soft term's gradient at the same scale as T changes (its gradient carries 1/T). Defaults,
// since the SKDBERT paper is silent on all three (docs/skd.md): T = 1, T^2 scaling on (a no-op at T = 1), a =
// 0 (logit distillation only, as a third-party review of the paper says SKD uses).
//
// Composed from ops with autograd (softmax, cross_entropy with soft targets, scalar multiplications), so
// forward and backward run on every backend the ops do; half-precision logits (bf16 autocast) are taken to
// f32 first, f64 stays f64.
#pragma once
#include "engine/tensor.h"

namespace nabla::distill {

struct KdLossOptions {
  double temperature = 1.0;  // T > 0
  bool t2_scaling = true;    // multiply the soft term by T^2
  double hard_weight = 0.0;  // a in [0, 1]: weight of the hard-label cross-entropy
  void validate() const;     // throws naming the field and the value
};

// softmax(z_t / T) in f32, detached: the teacher's soft labels [B, C].
Tensor soft_labels(const Tensor& teacher_logits, double temperature);

// L above from soft labels already made (a single teacher's, or WKD's weighted average). `labels` (i64 [B])
// may be undefined when hard_weight is 0.
Tensor kd_loss_from_soft_labels(const Tensor& student_logits, const Tensor& teacher_probs,
                                const Tensor& labels, const KdLossOptions& options = {});

// L above from a teacher's logits.
Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& labels,
               const KdLossOptions& options = {});

}  // namespace nabla::distill

// Gradient clipping by global L2 norm (the maths is in clip.h).
#include "algorithms/optim/clip.h"

#include <cmath>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace nabla::optim {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NABLA_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  double sum_sq = 0.0;
  for (const Tensor& p : params) {
    NABLA_CHECK(p.defined(), "clip_grad_norm: undefined parameter");
    Tensor g = p.grad();
    if (!g.defined()) continue;
    // Accumulate in f64 so that many f32 grads do not lose the small ones.
    const double n = norm(g.to(DType::f64)).item();
    sum_sq += n * n;
    grads.push_back(g);
  }
  const double total = std::sqrt(sum_sq);
  const double coef = max_norm / (total + 1e-6);
  // A non-finite norm leaves the grads alone (PyTorch would turn them into nan); the caller skips the step.
  if (std::isfinite(total) && coef < 1.0)
    for (Tensor& g : grads) mul_(g, coef);
  return total;
}

}  // namespace nabla::optim

// Gradient clipping by global L2 norm (the maths is in clip.h).
#include "algorithms/optim/clip.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/optim_kernels.h"
#include "ops/reduce.h"

namespace nabla::optim {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NABLA_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  // Dense floating grads of one device and dtype form a bucket: one multi-tensor norm launch per bucket
  // (ops/optim_kernels.h: each tensor's squares summed in f64, no copies), the squared norms summed on the
  // device, and one host read per bucket. A grad that fits no bucket (strided, or a backend without the
  // kernel) takes norm() of an f64 copy, one host read each. (Norms one by one with a host read each cost
  // GPT-2 a quarter of its training step.)
  struct Bucket {
    Device device;
    DType dtype;
    std::vector<Tensor> grads;
  };
  std::vector<Bucket> buckets;
  double sum_sq = 0.0;
  for (const Tensor& p : params) {
    NABLA_CHECK(p.defined(), "clip_grad_norm: undefined parameter");
    Tensor g = p.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    if (g.numel() > 0 && is_floating(g.dtype()) && g.is_contiguous() &&
        ops::multi_tensor_norm_kernel.has(g.device())) {
      auto b = std::find_if(buckets.begin(), buckets.end(),
                            [&](const Bucket& x) { return x.device == g.device() && x.dtype == g.dtype(); });
      if (b == buckets.end()) b = buckets.insert(buckets.end(), Bucket{g.device(), g.dtype(), {}});
      b->grads.push_back(g);
      continue;
    }
    // Accumulate in f64 so that many f32 grads do not lose the small ones.
    const double n = norm(g.to(DType::f64)).item();
    sum_sq += n * n;
  }
  for (const Bucket& b : buckets) {
    Tensor norms =
        Tensor::empty(Shape{static_cast<int64_t>(b.grads.size())}, ops::norm_dtype(b.dtype), b.device);
    ops::multi_tensor_norm_kernel.get(b.device, "clip_grad_norm")(b.grads, norms);
    Tensor n64 = norms.to(DType::f64);
    sum_sq += sum(n64 * n64).item();
  }
  const double total = std::sqrt(sum_sq);
  const double coef = max_norm / (total + 1e-6);
  // A non-finite norm leaves the grads alone (PyTorch would turn them into nan); the caller skips the step.
  if (std::isfinite(total) && coef < 1.0)
    for (Tensor& g : grads) mul_(g, coef);
  return total;
}

}  // namespace nabla::optim

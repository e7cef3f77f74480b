// Gradient checking by central finite differences (gradcheck.h).
#include "ops/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/reduce.h"

namespace nabla {

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& o) {
  for (const Tensor& t : inputs) {
    if (!t.defined() || !t.requires_grad()) continue;
    NABLA_CHECK(t.dtype() == DType::f64 && t.is_contiguous() && t.is_leaf(),
                "gradcheck: inputs that require grad must be contiguous f64 leaves, got ", t.dtype(), " ",
                t.shape());
  }
  Tensor out = f(inputs);
  NABLA_CHECK(out.requires_grad(), "gradcheck: the output does not require grad (no input reaches it)");
  Generator gen{o.seed, 0};
  Tensor r = randn(out.shape(), {.dtype = out.dtype(), .device = out.device()}, &gen);
  for (const Tensor& t : inputs)
    if (t.defined()) t.zero_grad();
  out.backward(r);

  auto probe = [&]() {
    autograd::NoGradGuard ng;
    return sum(f(inputs).to(DType::f64) * r.to(DType::f64)).item();
  };
  GradcheckResult res;
  std::ostringstream report;
  for (size_t idx = 0; idx < inputs.size(); ++idx) {
    const Tensor& t = inputs[idx];
    if (!t.defined() || !t.requires_grad()) continue;
    Tensor g = t.grad();
    std::vector<double> analytic = g.defined() ? g.to_double_vector() : std::vector<double>(t.numel(), 0.0);
    double* p = t.data<double>();
    double worst = -1, worst_a = 0, worst_n = 0;
    int64_t worst_j = -1;
    bool input_ok = true;
    for (int64_t j = 0; j < t.numel(); ++j) {
      const double saved = p[j];
      p[j] = saved + o.eps;
      const double up = probe();
      p[j] = saved - o.eps;
      const double down = probe();
      p[j] = saved;
      const double numeric = (up - down) / (2 * o.eps);
      const double err = std::abs(analytic[j] - numeric);
      const bool ok = err <= o.atol + o.rtol * std::abs(numeric) && std::isfinite(analytic[j]);
      if (!ok) input_ok = false;
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (err > worst) {
        worst = err;
        worst_j = j;
        worst_a = analytic[j];
        worst_n = numeric;
      }
    }
    if (!input_ok) {
      res.ok = false;
      report << "input " << idx << " " << t.shape() << ": worst element " << worst_j << " analytic "
             << worst_a << " numeric " << worst_n << " (|diff| " << worst << ")\n";
    }
  }
  res.report = report.str();
  return res;
}

}  // namespace nabla

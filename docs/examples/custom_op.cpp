// A custom differentiable op written outside the library, against the installed headers: the forward
// with existing ops, the backward by hand, recorded with autograd::record, then checked against central
// finite differences with gradcheck (ops/gradcheck.h). Exits 1 if the check fails, or if it fails to catch
// a deliberately wrong backward.
//
//   swish(x) = x * sigmoid(x)      d swish / dx = s + x s (1 - s),  s = sigmoid(x)
//   saved for backward: x (detached); s is recomputed
#include <cstdio>

#include "autograd/autograd.h"
#include "engine/random.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/gradcheck.h"
#include "ops/reduce.h"

using namespace nabla;

// `wrong` drops the x s (1 - s) term, to show that the check notices.
static Tensor swish(const Tensor& x, bool wrong = false) {
  Tensor out;
  {
    NoGradGuard no_grad;  // the forward's own ops record nothing: the op is one node
    out = x * sigmoid(x);
  }
  autograd::record("swish", out, {x}, [xs = x.detach(), wrong](const Tensor& g) -> std::vector<Tensor> {
    Tensor s = sigmoid(xs);
    Tensor d = wrong ? s : s + xs * s * (1.0 - s);
    return {g * d};
  });
  return out;
}

int main() {
  manual_seed(7);
  // f64 inputs: finite differences need the precision.
  Tensor x = randn({5, 3}, {.dtype = DType::f64, .requires_grad = true});
  Tensor w = randn({5, 3}, {.dtype = DType::f64, .requires_grad = true});

  // The op inside a small expression, so the check also sees the gradient flow through it to w.
  GradcheckResult ok =
      gradcheck([](const std::vector<Tensor>& in) { return sum(swish(in[0] * in[1])); }, {x, w});
  std::printf("swish: gradient check %s (max |error| %.2e)\n", ok.ok ? "passed" : "FAILED", ok.max_abs_error);
  if (!ok.ok) std::printf("%s", ok.report.c_str());

  GradcheckResult bad = gradcheck([](const std::vector<Tensor>& in) { return sum(swish(in[0], true)); }, {x});
  std::printf("wrong backward: gradient check %s\n",
              bad.ok ? "passed (it should not)" : "failed, as it should");

  Tensor y = swish(x);
  y.sum().backward();
  std::printf("swish(x)[0,0] = %.6f for x = %.6f\n", y.select(0, 0).select(0, 0).item(),
              x.select(0, 0).select(0, 0).item());
  return ok.ok && !bad.ok ? 0 : 1;
}

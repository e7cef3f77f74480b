// Gradient checking by central finite differences, in f64.
//
// For f: inputs -> output, draw a fixed random cotangent r of the output's shape and compare, for every
// element x_j of every input that requires grad,
//   analytic   d<r, f(x)>/dx_j        from backward(r)
//   numeric    (<r, f(x + eps e_j)> - <r, f(x - eps e_j)>) / (2 eps)
// and require |analytic - numeric| <= atol + rtol * |numeric|. Checking the vector-Jacobian product with a
// random r finds any wrong entry of the Jacobian with probability 1, at the cost of one backward.
// Inputs must be f64 and contiguous (the check perturbs their storage in place).
//
// It lives in ops/, not autograd/: it runs ops (randn, mul, sum) around the engine, and autograd/ includes
// nothing from ops/ (autograd/autograd.h says what it borrows from ops/ instead).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace nabla {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 1234;  // for the cotangent r
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::string report;  // the worst element of each failing input, or empty
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& o = {});

// The spelling of the checker before it moved out of autograd/ (tests and older code use it).
namespace autograd {
using nabla::gradcheck;
using nabla::GradcheckFn;
using nabla::GradcheckOptions;
using nabla::GradcheckResult;
}  // namespace autograd

}  // namespace nabla

// The paper's linear-regression experiment; see linear_regression.h.
#include "algorithms/vrgd/linear_regression.h"

#include "algorithms/optim/optimizer.h"
#include "algorithms/vrgd/vr_optimizer.h"
#include "autograd/autograd.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/loss.h"

namespace nabla::vrgd {

namespace {
Tensor draw_x(int64_t n, int64_t dim, bool uniform_x, Generator& gen, Device dev) {
  return uniform_x ? uniform({n, dim}, 0.0, 1.0, {.dtype = DType::f64, .device = dev}, &gen)
                   : randn({n, dim}, {.dtype = DType::f64, .device = dev}, &gen);
}
}  // namespace

std::vector<double> run_linear_regression(const LinRegConfig& c) {
  NABLA_CHECK(c.dim > 0 && c.batch > 0 && c.steps >= 0 && c.test_size > 0, "linear regression: dim ", c.dim,
              ", batch ", c.batch, ", steps ", c.steps, " and test_size ", c.test_size, " must be positive");
  std::vector<double> w_true(static_cast<size_t>(c.dim));
  for (int64_t i = 0; i < c.dim; ++i) w_true[static_cast<size_t>(i)] = static_cast<double>(i + 1);
  const Tensor W = from_vector(w_true, {c.dim, 1}, {.dtype = DType::f64}).to(c.device);
  Tensor w = zeros({c.dim, 1}, {.dtype = DType::f64, .device = c.device, .requires_grad = true});

  Generator test_gen{c.seed ^ 0x7e57ull, 0}, train_gen{c.seed, 0};
  const Tensor x_test = draw_x(c.test_size, c.dim, c.uniform_x, test_gen, c.device);
  const Tensor y_test = matmul(x_test, W);
  auto test_loss = [&] {
    NoGradGuard no_grad;
    return mse_loss(matmul(x_test, w), y_test).item();
  };

  std::unique_ptr<optim::Optimizer> opt;
  optim::ParamGroup group;
  group.params = {w};
  group.names = {"w"};
  if (c.vr)
    opt = std::make_unique<VrSgd>(std::vector<optim::ParamGroup>{group}, optim::SgdOptions{.lr = c.lr},
                                  GsnrOptions{.gamma = c.gamma});
  else
    opt = std::make_unique<optim::Sgd>(std::vector<optim::ParamGroup>{group}, optim::SgdOptions{.lr = c.lr});

  std::vector<double> curve{test_loss()};
  for (int64_t step = 0; step < c.steps; ++step) {
    const Tensor x = draw_x(c.batch, c.dim, c.uniform_x, train_gen, c.device);
    const Tensor y = matmul(x, W);
    if (c.vr) {
      Gsnr& gsnr = dynamic_cast<VrOptimizer&>(*opt).gsnr();
      accumulate_micro_batches(gsnr, c.batch, c.partitions, [&](int64_t start, int64_t n) {
        return mse_loss(matmul(x.narrow(0, start, n), w), y.narrow(0, start, n));
      });
    } else {
      opt->zero_grad();
      mse_loss(matmul(x, w), y).backward();
    }
    opt->step();
    curve.push_back(test_loss());
  }
  return curve;
}

int64_t first_step_below(const std::vector<double>& curve, double target) {
  for (size_t i = 1; i < curve.size(); ++i)
    if (curve[i] <= target) return static_cast<int64_t>(i);
  return -1;
}

}  // namespace nabla::vrgd

// apps::TrainStep (apps/common/train_step.h): a step without host reads (read_results = false) is the same
// step, its loss left on the device. run_accumulated: k micro-batches with the loss scaled by 1/k
// take the same step as one batch of all their rows (the mean of equal-sized means is the mean), report the
// gradient norm before clipping, and refuse zero micro-batches and the VR optimizers' partitions.
#include <cmath>

#include "algorithms/optim/optimizer.h"
#include "apps/common/train_step.h"
#include "models/nn/layers.h"
#include "ops/loss.h"
#include "testing.h"

namespace nabla {
namespace {

apps::ForwardFn mse_forward() {
  return [](nn::Module& m, const Tensor& x, const Tensor& y) {
    apps::ForwardOutput f;
    f.loss = mse_loss(m.forward(x), y);
    return f;
  };
}

void copy_parameters(nn::Linear& to, const nn::Linear& from) {
  NoGradGuard ng;
  to.weight.copy_(from.weight);
  to.bias.copy_(from.bias);
}

TEST(TrainStepAccumulated, MicroBatchesTakeTheStepOfTheirConcatenation) {
  for (int64_t k : {1, 2, 3}) {
    const int64_t rows = 2 * k;
    nn::Linear one(5, 3), acc(5, 3);
    copy_parameters(acc, one);
    Tensor x = test::randn32({rows * k, 5}), y = test::randn32({rows * k, 3});
    optim::Sgd sgd_one(one.parameters(), {.lr = 0.1, .momentum = 0.9}),
        sgd_acc(acc.parameters(), {.lr = 0.1, .momentum = 0.9});
    dist::Session single;
    apps::TrainStep step_one(one, sgd_one, single, mse_forward(), {.clip = 1e9});
    apps::TrainStep step_acc(acc, sgd_acc, single, mse_forward(), {.clip = 1e9});
    for (int s = 0; s < 3; ++s) {
      const double lr = 0.1 / (s + 1);
      apps::StepResult a = step_one.run(x, y, lr);
      apps::StepResult b = step_acc.run_accumulated(
          k,
          [&](int64_t m) {
            return std::pair{x.narrow(0, m * rows, rows), y.narrow(0, m * rows, rows)};
          },
          lr);
      EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::abs(a.loss)) << "k " << k << " step " << s;
      EXPECT_GT(a.grad_norm, 0);
      EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-5 * a.grad_norm) << "k " << k << " step " << s;
      EXPECT_EQ(sgd_acc.lr(), lr);
    }
    test::expect_close(acc.weight, one.weight, 1e-5);
    test::expect_close(acc.bias, one.bias, 1e-5);
  }
}

TEST(TrainStep, WithoutHostReadsTheStepIsTheSameAndTheLossStaysOnTheDevice) {
  nn::Linear read(5, 3), lazy(5, 3);
  copy_parameters(lazy, read);
  optim::Adam adam_read(read.parameters(), {.lr = 0.01}), adam_lazy(lazy.parameters(), {.lr = 0.01});
  dist::Session single;
  apps::TrainStep step_read(read, adam_read, single, mse_forward(), {});
  apps::TrainStep step_lazy(lazy, adam_lazy, single, mse_forward(), {.read_results = false});
  for (int s = 0; s < 3; ++s) {
    Tensor x = test::randn32({6, 5}), y = test::randn32({6, 3});
    apps::StepResult a = step_read.run(x, y, 0.01), b = step_lazy.run(x, y, 0.01);
    EXPECT_TRUE(std::isnan(b.loss));
    EXPECT_EQ(b.correct, -1);
    ASSERT_TRUE(b.loss_device.defined());
    EXPECT_EQ(b.loss_device.numel(), 1);
    EXPECT_EQ(b.loss_device.item(), a.loss) << "step " << s;  // the same step, bit for bit
    EXPECT_EQ(a.loss_device.item(), a.loss);
  }
  test::expect_close(lazy.weight, read.weight, 0);
  test::expect_close(lazy.bias, read.bias, 0);
}

TEST(TrainStepAccumulated, GradNormIsTheNormBeforeClipping) {
  nn::Linear model(4, 2), ref(4, 2);
  copy_parameters(ref, model);
  Tensor x = test::randn32({6, 4}), y = test::randn32({6, 2});
  mse_loss(ref.forward(x), y).backward();
  double sq = 0;
  for (const Tensor& p : ref.parameters())
    for (float g : p.grad().contiguous().to_vector<float>()) sq += static_cast<double>(g) * g;
  optim::Sgd sgd(model.parameters(), {.lr = 0.1});
  dist::Session single;
  apps::TrainStep step(model, sgd, single, mse_forward(), {.clip = 1e-3});
  apps::StepResult r = step.run_accumulated(
      1,
      [&](int64_t) {
        return std::pair{x, y};
      },
      0.1);
  EXPECT_NEAR(r.grad_norm, std::sqrt(sq), 1e-5 * std::sqrt(sq));
  // Clipped to 1e-3: the step moved the parameters by lr * 1e-3 in L2 at most.
  double moved = 0;
  for (size_t i = 0; i < 2; ++i) {
    Tensor d = model.parameters()[i] - ref.parameters()[i];
    for (float v : d.contiguous().to_vector<float>()) moved += static_cast<double>(v) * v;
  }
  EXPECT_NEAR(std::sqrt(moved), 0.1 * 1e-3, 1e-7);
}

TEST(TrainStepAccumulated, ZeroMicroBatchesAreRefused) {
  nn::Linear model(2, 2);
  optim::Sgd sgd(model.parameters());
  dist::Session single;
  apps::TrainStep step(model, sgd, single, mse_forward(), {});
  test::expect_error(
      [&] {
        step.run_accumulated(
            0, [](int64_t) { return std::pair<Tensor, Tensor>{}; }, 0.1);
      },
      {"0 micro-batches", "at least 1"});
}

}  // namespace
}  // namespace nabla

// The paper's toy experiment (arXiv 2309.13681 sections 7.2-7.3): noiseless linear regression with true
// weights W_i = i (i = 1..dim), estimates starting at 0, MSE loss, a fresh random batch every step, SGD
// against VR-SGD with the same learning rate. The paper reports that VR-SGD reaches SGD's step-100 test
// loss in about 50 steps (batch 2048, k in [32, 256], gamma about 0.04-0.2).
//
//   x ~ N(0, I_dim) (the paper says only "random X"), y = W . x, loss = mean over the batch of (w . x - y)^2
//   test loss: the same loss on a fixed held-out set of `test_size` examples (its own seed)
//
// The VR run goes through the real micro-batch path (vrgd::accumulate_micro_batches, VrSgd), so this is
// also an end-to-end check of the library; the SGD run is optim::Sgd on the full batch. Runs in f64 (the
// noiseless problem converges to the f32 rounding floor, about 1e-12, within 100 steps) on any device.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/device.h"

namespace nabla::vrgd {

struct LinRegConfig {
  int64_t dim = 10;
  int64_t batch = 2048;
  int64_t partitions = 32;  // k (VR only)
  int64_t steps = 100;
  int64_t test_size = 8192;
  double lr = 0.1;
  double gamma = 0.1;
  bool vr = true;          // false: plain SGD
  bool uniform_x = false;  // x ~ U(0, 1) instead of N(0, 1) (correlated features: an ill-conditioned problem)
  uint64_t seed = 1;
  Device device = Device::cpu();
};

// Test loss before training and after each step: steps + 1 values.
std::vector<double> run_linear_regression(const LinRegConfig& config);

// The first step (1-based) whose test loss is <= target, or -1.
int64_t first_step_below(const std::vector<double>& curve, double target);

}  // namespace nabla::vrgd

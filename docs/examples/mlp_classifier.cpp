// A program built against an installed Nabla (docs/examples/CMakeLists.txt, find_package(nabla)): an MLP
// learns the XOR of the signs of two coordinates (a problem no linear model solves) with nn::Sequential,
// cross-entropy and Adam, on the GPU when there is one (asked through engine/device_runtime.h, never cuda/).
// Exits 1 unless the loss fell by 5x and the accuracy on fresh points is above 90%.
//
//   x ~ U[-1, 1]^2,  label = [x0 * x1 > 0];  logits = W2 relu(W1 x + b1) + b2;  loss = cross_entropy
#include <cstdio>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/device_runtime.h"
#include "engine/random.h"
#include "models/nn/layers.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/loss.h"
#include "ops/reduce.h"

using namespace nabla;

// n points and their labels on `dev`.
static std::pair<Tensor, Tensor> xor_points(int64_t n, Device dev) {
  Tensor x = uniform({n, 2}, -1.0, 1.0);
  Tensor y = gt(x.select(1, 0) * x.select(1, 1), zeros({n})).to(DType::i64);
  return {x.to(dev), y.to(dev)};
}

int main() {
  manual_seed(0);
  const Device dev = runtime::available(DeviceType::cuda) ? Device::cuda(0) : Device::cpu();
  std::printf("device %s\n", dev.str().c_str());

  nn::Sequential model(
      {std::make_shared<nn::Linear>(2, 64), nn::ReLU(), std::make_shared<nn::Linear>(64, 2)});
  model.to(dev);
  optim::Adam opt(model.parameters(), {.lr = 0.01});
  auto [x, y] = xor_points(512, dev);

  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model(x), y);
    loss.backward();
    opt.step();
    last = loss.item();
    if (step == 0) first = last;
    if (step % 100 == 0) std::printf("step %3d | loss %.4f\n", step, last);
  }

  auto [xt, yt] = xor_points(2048, dev);
  double accuracy;
  {
    NoGradGuard no_grad;
    accuracy = mean(eq(argmax(model(xt), 1), yt).to(DType::f64)).item();
  }
  std::printf("loss %.4f -> %.4f | accuracy on 2048 fresh points %.1f%%\n", first, last, 100 * accuracy);
  if (dev.is_cuda())
    std::printf("peak device memory %.2f MiB\n", runtime::memory_stats(dev).peak_allocated / 1048576.0);
  if (!(last < first / 5) || !(accuracy > 0.9)) {
    std::fprintf(stderr, "mlp_classifier: FAILED (expected the loss to fall 5x and accuracy > 90%%)\n");
    return 1;
  }
  return 0;
}

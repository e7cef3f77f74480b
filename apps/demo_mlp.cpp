// The main job until the training binary lands (issue 3): fit a 2-layer MLP to y = tanh(3x) + x^2 with
// autograd and plain SGD written out by hand, printing the loss as it falls.
//
//   h = relu(x W1 + b1);  p = h W2 + b2;  loss = mean((p - y)^2)
//
//   ./build/demo_mlp [--steps 2000] [--lr 0.05] [--hidden 64] [--seed 0]   (--help: apps/common/options.h)
#include <cstdio>

#include "apps/common/options.h"
#include "nabla.h"

using namespace nabla;

int main(int argc, char** argv) {
  int64_t steps, hidden;
  double lr;
  uint64_t seed;
  apps::OptionSet cli("demo_mlp",
                      "Fits a 2-layer MLP to y = tanh(3x) + x^2 with autograd and hand-written SGD.");
  cli.add("steps", &steps, 2000, "SGD steps").in_range(1, 10'000'000);
  cli.add("lr", &lr, 0.05, "learning rate").positive();
  cli.add("hidden", &hidden, 64, "hidden units").in_range(1, 1 << 16);
  cli.add("seed", &seed, 0, "seed of the data and the initial weights");
  cli.example("--steps 500 --lr 0.1", "a shorter run at a higher rate");
  if (auto code = cli.parse(argc, argv)) return *code;
  manual_seed(seed);
  const int64_t n = 256;
  Tensor x = uniform({n, 1}, -1.0, 1.0);
  Tensor y = tanh(x * 3.0) + x * x;

  Tensor w1 = normal({1, hidden}, 0.0, 1.0, {.requires_grad = true});
  Tensor b1 = zeros({hidden}, {.requires_grad = true});
  Tensor w2 = normal({hidden, 1}, 0.0, 1.0 / 8, {.requires_grad = true});
  Tensor b2 = zeros({1}, {.requires_grad = true});
  std::vector<Tensor> params{w1, b1, w2, b2};

  double first = 0, last = 0;
  for (int64_t step = 0; step <= steps; ++step) {
    Tensor p = matmul(relu(matmul(x, w1) + b1), w2) + b2;
    Tensor loss = mean((p - y) * (p - y));
    for (auto& t : params) t.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (auto& t : params) add_(t, t.grad(), -lr);
    }
    last = loss.item();
    if (step == 0) first = last;
    if (step % 200 == 0) std::printf("step %4lld | loss %.6f\n", static_cast<long long>(step), last);
  }
  std::printf("loss fell from %.4f to %.4f (%.0fx)\n", first, last, first / last);
  return last < first / 10 ? 0 : 1;
}

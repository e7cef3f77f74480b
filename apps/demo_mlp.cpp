// The main job until the training binary lands (issue 3): fit a 2-layer MLP to y = tanh(3x) + x^2 with
// autograd and plain SGD written out by hand, printing the loss as it falls.
//
//   h = relu(x W1 + b1);  p = h W2 + b2;  loss = mean((p - y)^2)
#include <cstdio>

#include "nabla.h"

using namespace nabla;

int main() {
  manual_seed(0);
  const int64_t n = 256, hidden = 64;
  Tensor x = uniform({n, 1}, -1.0, 1.0);
  Tensor y = tanh(x * 3.0) + x * x;

  Tensor w1 = normal({1, hidden}, 0.0, 1.0, {.requires_grad = true});
  Tensor b1 = zeros({hidden}, {.requires_grad = true});
  Tensor w2 = normal({hidden, 1}, 0.0, 1.0 / 8, {.requires_grad = true});
  Tensor b2 = zeros({1}, {.requires_grad = true});
  std::vector<Tensor> params{w1, b1, w2, b2};

  const double lr = 0.05;
  double first = 0, last = 0;
  for (int step = 0; step <= 2000; ++step) {
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
    if (step % 200 == 0) std::printf("step %4d | loss %.6f\n", step, last);
  }
  std::printf("loss fell from %.4f to %.4f (%.0fx)\n", first, last, first / last);
  return last < first / 10 ? 0 : 1;
}

// An MLP from tensors up (docs/examples/README.md): no nn::Module, no optimizer class. The parameters are
// plain tensors that require grad, the forward is four ops, autograd gives the gradients, and the update
// is one line per parameter under NoGradGuard. It learns which of three rings around the origin a point
// lies in, which no linear model can. Exits 1 unless the loss fell 4x and the accuracy on the training
// points is above 90%.
//
//   h = relu(x W1 + b1)        x: [n, 2], W1: [2, 64]
//   logits = h W2 + b2         W2: [64, 3]
//   loss = cross_entropy(logits, y)
//   W <- W - lr * dloss/dW     for W in (W1, b1, W2, b2)
#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/autograd.h"
#include "engine/random.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/reduce.h"

using namespace nabla;

// n points uniform in the square [-1, 1]^2, labelled by the ring they fall in: 0 inside radius 0.45,
// 1 between 0.45 and 0.8, 2 outside. x [n, 2], y [n] (i64 class ids).
static std::pair<Tensor, Tensor> rings(int64_t n) {
  Tensor x = uniform({n, 2}, -1.0, 1.0);
  Tensor r = sqrt(sum(x * x, {1}));
  Tensor y = gt(r, full({n}, 0.45)).to(DType::i64) + gt(r, full({n}, 0.8)).to(DType::i64);
  return {x, y};
}

int main() {
  manual_seed(0);
  auto [x, y] = rings(600);

  // Parameters: leaves of the graph. Kaiming-style scale for W1, small for W2.
  Tensor w1 = (randn({2, 64}) * std::sqrt(2.0 / 2)).requires_grad_();
  Tensor b1 = zeros({64}).requires_grad_();
  Tensor w2 = (randn({64, 3}) * 0.1).requires_grad_();
  Tensor b2 = zeros({3}).requires_grad_();
  std::vector<Tensor> params = {w1, b1, w2, b2};

  const double lr = 0.5;
  double first = 0, last = 0;
  for (int step = 0; step < 1000; ++step) {
    Tensor h = relu(matmul(x, w1) + b1);
    Tensor logits = matmul(h, w2) + b2;
    Tensor loss = cross_entropy(logits, y);
    for (Tensor& p : params) p.zero_grad();  // .grad() accumulates across backward calls
    loss.backward();
    {
      NoGradGuard no_grad;  // the update is not part of any graph
      for (Tensor& p : params) add_(p, p.grad(), -lr);
    }
    last = loss.item();
    if (step == 0) first = last;
    if (step % 200 == 0) std::printf("step %4d | loss %.4f\n", step, last);
  }

  double accuracy;
  {
    NoGradGuard no_grad;
    Tensor logits = matmul(relu(matmul(x, w1) + b1), w2) + b2;
    accuracy = mean(eq(argmax(logits, 1), y).to(DType::f64)).item();
  }
  std::printf("loss %.4f -> %.4f | training accuracy %.1f%%\n", first, last, 100 * accuracy);
  if (!(last < first / 4) || !(accuracy > 0.9)) {
    std::fprintf(stderr, "mlp_from_tensors: FAILED (expected the loss to fall 4x and accuracy > 90%%)\n");
    return 1;
  }
  return 0;
}

// A training loop with gradient hooks (docs/examples/README.md). A tensor hook runs inside backward() the
// moment that tensor's gradient is known: it can read the gradient (logging, statistics, starting an
// all-reduce, as data-parallel training does) or return a replacement for it. Here:
//   - a reading hook on each layer's weight logs the gradient norm of every step;
//   - a rewriting hook on the first layer's weight returns zeros, freezing that layer (its weight must
//     come out of training bit-for-bit unchanged, while the layers after it learn);
//   - a post-accumulate hook counts the steps in which .grad() was written.
// The task: the XOR of the signs of two coordinates. Exits 1 unless the hooks ran once per step, the
// logged norm equals the norm of .grad(), the frozen weight did not move, and the loss fell 3x.
#include <cmath>
#include <cstdio>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/random.h"
#include "models/nn/layers.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/loss.h"
#include "ops/reduce.h"

using namespace nabla;


int main() {
  manual_seed(1);
  auto l1 = std::make_shared<nn::Linear>(2, 32), l2 = std::make_shared<nn::Linear>(32, 32),
       l3 = std::make_shared<nn::Linear>(32, 2);
  nn::Sequential model({l1, nn::ReLU(), l2, nn::ReLU(), l3});
  optim::Sgd opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});

  // Reading hooks: the gradient norm of each weight, per step. Returning an undefined Tensor keeps the
  // gradient as it is.
  std::vector<std::vector<double>> grad_norms(3);
  std::vector<std::shared_ptr<nn::Linear>> layers = {l1, l2, l3};
  for (size_t i = 0; i < layers.size(); ++i)
    layers[i]->weight.register_hook([&grad_norms, i](const Tensor& g) {
      grad_norms[i].push_back(norm(g).item());
      return Tensor();
    });
  // A rewriting hook: the first layer's weight gets a zero gradient (registered after the reading hook,
  // so the log still sees the true gradient).
  layers[0]->weight.register_hook([](const Tensor& g) { return zeros_like(g); });
  // A post-accumulate hook: runs after .grad() of l3's weight has been written.
  int accumulated = 0;
  l3->weight.register_post_accumulate_hook([&accumulated](const Tensor&) { ++accumulated; });

  const Tensor frozen_before = l1->weight.detach().clone();
  const int steps = 300;
  double first = 0, last = 0, last_grad_norm_l2 = 0;
  for (int step = 0; step < steps; ++step) {
    Tensor x = uniform({128, 2}, -1.0, 1.0);
    Tensor y = gt(x.select(1, 0) * x.select(1, 1), zeros({128})).to(DType::i64);
    opt.zero_grad();
    Tensor loss = cross_entropy(model(x), y);
    loss.backward();  // the hooks run in here
    last_grad_norm_l2 = norm(l2->weight.grad()).item();
    opt.step();
    last = loss.item();
    if (step == 0) first = last;
    if (step % 100 == 0)
      std::printf("step %3d | loss %.4f | grad norms %.4f %.4f %.4f\n", step, last, grad_norms[0].back(),
                  grad_norms[1].back(), grad_norms[2].back());
  }

  const bool once_per_step = grad_norms[0].size() == steps && grad_norms[1].size() == steps &&
                             grad_norms[2].size() == steps && accumulated == steps;
  const bool norm_matches = std::abs(grad_norms[1].back() - last_grad_norm_l2) <= 1e-6 * last_grad_norm_l2;
  const bool frozen = amax(abs(l1->weight.detach() - frozen_before)).item() == 0.0;
  std::printf(
      "loss %.4f -> %.4f | hooks per step: %s | logged norm = |grad|: %s | frozen layer unchanged: %s\n",
      first, last, once_per_step ? "yes" : "NO", norm_matches ? "yes" : "NO", frozen ? "yes" : "NO");
  if (!once_per_step || !norm_matches || !frozen || !(last < first / 3)) {
    std::fprintf(stderr, "training_hook: FAILED\n");
    return 1;
  }
  return 0;
}

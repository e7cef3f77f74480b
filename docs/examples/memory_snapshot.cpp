// Where the memory of a training step goes, from the live-tensor snapshot (engine/memory.h; docs/inspect.md).
// With live tracking on, every tensor storage is registered with its size, dtype, shape, device and the op
// that created it. An MLP's training step, looked at three times:
//   1. after the model is built: its parameters (created by the initialisers' kernels);
//   2. after forward and loss: the activations the autograd graph keeps for backward, by creating op;
//   3. after backward, with the graph gone: the activations are freed, one gradient per parameter is new.
// Exits 1 (printing FAILED) unless the hidden activation [batch, hidden] appears after forward, created by
// an op, is gone after backward, and the gradients add exactly the parameters' bytes.
#include <cstdio>

#include "engine/memory.h"
#include "engine/random.h"
#include "models/nn/layers.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/loss.h"

using namespace nabla;

namespace {
size_t bytes_of_shape(const memory::Snapshot& s, const Shape& shape, int64_t* count = nullptr) {
  size_t b = 0;
  for (const auto& t : s.tensors)
    if (t.shape == shape) {
      b += t.nbytes;
      if (count) ++*count;
    }
  return b;
}
}  // namespace

int main() {
  manual_seed(7);
  const int64_t batch = 64, in = 100, hidden = 300, classes = 10;
  memory::set_live_tracking(true);  // from here on, every new storage is registered

  auto l1 = std::make_shared<nn::Linear>(in, hidden), l2 = std::make_shared<nn::Linear>(hidden, classes);
  nn::Sequential model({l1, nn::ReLU(), l2});
  size_t param_bytes = 0;
  for (const Tensor& p : model.parameters()) param_bytes += p.nbytes();
  const memory::Snapshot built = memory::snapshot();
  std::printf("1. the model (%zu bytes of parameters):\n%s\n", param_bytes,
              memory::snapshot_text(built, 6).c_str());

  Tensor x = randn({batch, in});
  Tensor y = randint(0, classes, {batch});
  memory::Snapshot after_forward, after_backward;
  {
    Tensor loss = cross_entropy(model(x), y);
    after_forward = memory::snapshot();
    std::printf("2. after forward and loss: what the graph keeps for backward\n%s\n",
                memory::snapshot_text(after_forward, 12).c_str());
    loss.backward();
  }  // the loss and with it the graph and its saved activations go here
  after_backward = memory::snapshot();
  std::printf("3. after backward (graph freed):\n%s\n", memory::snapshot_text(after_backward, 8).c_str());

  bool ok = true;
  // The hidden activation [batch, hidden], made by an op during forward (linear, relu), not by hand.
  int64_t hidden_count = 0;
  bytes_of_shape(after_forward, {batch, hidden}, &hidden_count);
  bool by_op = false;
  for (const auto& t : after_forward.tensors)
    if (t.shape == Shape{batch, hidden}) by_op |= t.creator != "user";
  if (hidden_count < 1 || !by_op) {
    std::printf("FAILED: no [%lld, %lld] activation created by an op after forward\n",
                static_cast<long long>(batch), static_cast<long long>(hidden));
    ok = false;
  }
  if (bytes_of_shape(after_backward, {batch, hidden}) != 0) {
    std::printf("FAILED: a [batch, hidden] activation is still alive after backward\n");
    ok = false;
  }
  // After backward: the model, the batch, and one gradient per parameter.
  const size_t batch_bytes = x.nbytes() + y.nbytes();
  const size_t grads = after_backward.total_bytes - built.total_bytes - batch_bytes;
  std::printf("gradients: %zu bytes, parameters: %zu bytes\n", grads, param_bytes);
  if (grads != param_bytes) {
    std::printf("FAILED: the gradients should take exactly the parameters' bytes\n");
    ok = false;
  }
  memory::set_live_tracking(false);
  return ok ? 0 : 1;
}

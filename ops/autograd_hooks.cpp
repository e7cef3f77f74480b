// Registers the ops the backward engine runs (autograd/autograd.h, OpHooks): autograd/ sits below ops/
// and includes none of it, so ops/ hands it an add (gradient accumulation), ones_like (backward()'s
// implicit seed) and the autocast switch when the library loads.
#include "autograd/autograd.h"
#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

namespace nabla::ops {
namespace {

Tensor add_grads(const Tensor& a, const Tensor& b) { return a + b; }

[[maybe_unused]] const bool g_registered = autograd::set_op_hooks({
    .add = &add_grads,
    .ones_like = [](const Tensor& t) { return nabla::ones_like(t); },
    .autocast_enabled = [] { return nabla::autocast_enabled(); },
    .set_autocast_enabled = [](bool on) { nabla::set_autocast_enabled(on); },
});

}  // namespace
}  // namespace nabla::ops

// Reverse-mode automatic differentiation: a tape of Nodes.
//
// Each differentiable op that runs while grad mode is on and sees an input that requires grad records a
// Node on its output:  y = f(a, b)  ->  y.grad_fn = Node{"f", inputs = [a.meta, b.meta], backward}.
// `backward` is a closure that maps dL/dy to (dL/da, dL/db) and captures what it needs, nothing more
// (detached tensors, so that saving a tensor never keeps a graph alive). Backward formulas are written with
// ops, so they run on any backend.
//
// Tensor::backward() (autograd/engine.cpp) sorts the graph reachable from the root topologically and walks
// it in reverse, summing the gradient that arrives at each tensor before passing it on, so a tensor used
// twice gets the sum of both paths. At a leaf (requires_grad and no grad_fn) the sum is added to .grad().
// Unless retain_graph is set, each Node frees its closure after use; a second backward through it throws.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace nabla::autograd {

struct Node;

struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  Tensor grad;                    // accumulated gradient (leaves, or tensors with retain_grad)
  std::shared_ptr<Node> grad_fn;  // null for leaves
  std::vector<std::pair<int, std::function<Tensor(const Tensor&)>>> hooks;
  std::vector<std::pair<int, std::function<void(const Tensor&)>>> post_accumulate_hooks;
  Shape shape;  // the shape the gradient must have
  DType dtype = DType::f32;
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string name;                                   // op name, e.g. "mul"
  std::vector<std::shared_ptr<AutogradMeta>> inputs;  // one per input; null where no gradient is needed
  std::vector<Shape> input_shapes;                    // for graph export
  BackwardFn backward;                                // null once released
  uint64_t sequence = 0;                              // creation order (ties in the topological sort)

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Releases the graph behind this node iteratively: the default would recurse once per op and overflow
  // the stack on deep graphs (a 20,000-step chain).
  ~Node();
};

// ---- grad mode --------------------------------------------------------------------------------------
bool grad_enabled();
void set_grad_enabled(bool on);

// RAII: no graph is recorded inside the scope (thread-local, like PyTorch's torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// ---- what ops call -------------------------------------------------------------------------------------
// True when grad mode is on and any of the inputs requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `out = name(inputs)` with its backward. `backward` returns one gradient per input, in order
// (an undefined Tensor for an input that gets none). Does nothing when no input needs grad.
void record(const char* name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward);

// Runs backward from `roots` with `grads` (same count); accumulates into leaves' .grad().
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph);

// ---- the ops autograd itself runs ----------------------------------------------------------------------
// autograd/ sits below ops/ and includes none of it, yet the engine needs three things that are ops: an
// element-wise add to sum the gradients arriving at a tensor, ones_like for backward()'s implicit seed of a
// scalar, and the autocast switch (backward formulas run with autocast off, as in PyTorch). ops/ registers
// them when the library loads (ops/autograd_hooks.cpp), the way kernels register into ops' slots. This is
// the one dependency of autograd/ on ops/ that remains, and it is a link-time one: both are in libnabla,
// so the hooks are set before any code can call backward(). Without them backward() throws, naming the
// missing hook.
struct OpHooks {
  Tensor (*add)(const Tensor& a, const Tensor& b) = nullptr;  // gradient accumulation
  Tensor (*ones_like)(const Tensor& t) = nullptr;             // the implicit seed of backward()
  bool (*autocast_enabled)() = nullptr;                       // ops/autocast.h
  void (*set_autocast_enabled)(bool on) = nullptr;
};
bool set_op_hooks(const OpHooks& hooks);  // returns true, for use in a static initialiser
const OpHooks& op_hooks();                // throws when a hook is missing

}  // namespace nabla::autograd

namespace nabla {
using autograd::NoGradGuard;
}

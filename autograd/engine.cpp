// The backward engine and the autograd methods of Tensor.
//
// run_backward:
//   1. Depth-first search from the roots over grad_fn -> inputs collects every AutogradMeta reachable,
//      in post-order (inputs before the tensors computed from them).
//   2. Walking that order backwards visits each tensor after every tensor computed from it, so the
//      gradient waiting for it in `pending` is complete: run its hooks, store it if it is a leaf (or
//      retains grad), else call its Node's backward and add the results to the inputs' pending sums.
#include "autograd/autograd.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "autograd/graph_dot.h"
#include "engine/error.h"
#include "engine/trace.h"

namespace nabla::autograd {
namespace {
OpHooks g_op_hooks;  // constant-initialised; set by ops/autograd_hooks.cpp when the library loads

const OpHooks& hooks() { return op_hooks(); }
Tensor add(const Tensor& a, const Tensor& b) { return hooks().add(a, b); }
thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_sequence{0};
std::atomic<int> g_hook_id{0};

std::shared_ptr<AutogradMeta>& meta_of(const Tensor& t) { return t.impl()->autograd; }

std::shared_ptr<AutogradMeta> ensure_meta(const Tensor& t) {
  auto& m = meta_of(t);
  if (!m) {
    m = std::make_shared<AutogradMeta>();
    m->shape = t.shape();
    m->dtype = t.dtype();
  }
  return m;
}
}  // namespace

Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  auto detach_inputs = [&pending](std::vector<std::shared_ptr<AutogradMeta>>& ins) {
    for (auto& m : ins)
      // Only nodes that would die with this one are taken over; shared ones stay with their other owners.
      if (m && m.use_count() == 1 && m->grad_fn && m->grad_fn.use_count() == 1)
        pending.push_back(std::move(m->grad_fn));
    ins.clear();
  };
  detach_inputs(inputs);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    detach_inputs(n->inputs);
  }  // each n is destroyed here with no inputs left, so its destructor does not recurse
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }

bool set_op_hooks(const OpHooks& h) {
  g_op_hooks = h;
  return true;
}
// The hooks, checked: a build without ops/ linked in cannot differentiate.
const OpHooks& op_hooks() {
  NABLA_CHECK(g_op_hooks.add && g_op_hooks.ones_like && g_op_hooks.autocast_enabled &&
                  g_op_hooks.set_autocast_enabled,
              "autograd: the ops backward needs (add, ones_like, autocast) were not registered; link "
              "libnabla's ops/ (ops/autograd_hooks.cpp registers them)");
  return g_op_hooks;
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->sequence = g_sequence++;
  for (const Tensor& in : inputs) {
    node->inputs.push_back(in.defined() && in.requires_grad() ? meta_of(in) : nullptr);
    node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
  }
  node->backward = std::move(backward);
  // `out` may be a view sharing another tensor's impl only if the op returned its input unchanged; ops
  // always return fresh impls, so setting the meta here never rewires someone else's history.
  auto m = std::make_shared<AutogradMeta>();
  m->requires_grad = true;
  m->grad_fn = std::move(node);
  m->shape = out.shape();
  m->dtype = out.dtype();
  out.impl()->autograd = std::move(m);
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  NABLA_CHECK(roots.size() == grads.size(), "backward: ", roots.size(), " roots but ", grads.size(),
              " grads");
  trace::Scope backward_range;  // the whole backward, with one range per node inside (engine/trace.h)
  if (trace::enabled()) backward_range.begin("backward", "autograd");
  // 1. post-order DFS (iterative: graphs of deep nets are deep).
  std::vector<AutogradMeta*> order;
  std::unordered_set<AutogradMeta*> seen;
  for (const Tensor& r : roots) {
    AutogradMeta* rm = meta_of(r).get();
    NABLA_CHECK(rm && rm->requires_grad, "backward: the tensor does not require grad and has no grad_fn");
    if (!seen.insert(rm).second) continue;
    std::vector<std::pair<AutogradMeta*, size_t>> stack{{rm, 0}};
    while (!stack.empty()) {
      auto& [m, next] = stack.back();
      Node* fn = m->grad_fn.get();
      if (fn && next < fn->inputs.size()) {
        AutogradMeta* child = fn->inputs[next++].get();
        if (child && seen.insert(child).second) stack.push_back({child, 0});
      } else {
        order.push_back(m);
        stack.pop_back();
      }
    }
  }
  // 2. reverse walk.
  std::unordered_map<AutogradMeta*, Tensor> pending;
  for (size_t i = 0; i < roots.size(); ++i) {
    AutogradMeta* rm = meta_of(roots[i]).get();
    auto it = pending.find(rm);
    if (it == pending.end())
      pending.emplace(rm, grads[i]);
    else
      it->second = add(it->second, grads[i]);
  }
  NoGradGuard no_grad;
  // Backward formulas run with autocast off (as in PyTorch): the casts forward recorded already bring each
  // gradient back to its input's dtype, and a formula built from ops (sum_to, ...) must keep its dtypes.
  struct AutocastOff {
    bool prev = hooks().autocast_enabled();
    AutocastOff() { hooks().set_autocast_enabled(false); }
    ~AutocastOff() { hooks().set_autocast_enabled(prev); }
  } autocast_off;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    AutogradMeta* m = *it;
    auto p = pending.find(m);
    if (p == pending.end()) continue;  // no gradient reached this tensor
    Tensor g = std::move(p->second);
    pending.erase(p);
    for (auto& [id, hook] : m->hooks) {
      Tensor r = hook(g);
      if (r.defined()) g = r;
    }
    if (!m->grad_fn || m->retains_grad) {
      // Accumulate (a fresh tensor, so a hook's or a caller's handle to the old gradient stays valid).
      // A gradient that shares storage with another tensor (e.g. add's backward hands the same g to both
      // inputs) is copied, so that in-place updates of one leaf's .grad() (clipping, unscaling) never
      // change another's.
      if (m->grad.defined())
        m->grad = add(m->grad, g);
      else
        m->grad = (g.impl_ptr().use_count() > 1 || g.storage().use_count() > 1) ? g.clone() : g;
      for (auto& [id, hook] : m->post_accumulate_hooks) hook(m->grad);
    }
    Node* fn = m->grad_fn.get();
    if (!fn) continue;
    NABLA_CHECK(fn->backward, "backward: trying to backward through the graph a second time (op ", fn->name,
                "); pass retain_graph=true the first time");
    std::vector<Tensor> in_grads;
    {
      trace::Scope node_range;
      if (trace::enabled())
        node_range.begin(fn->name, "autograd",
                         trace::shape_args(shape_str(g.shape()), dtype_name(g.dtype())));
      in_grads = fn->backward(g);
    }
    NABLA_CHECK(in_grads.size() == fn->inputs.size(), "backward of ", fn->name, " returned ", in_grads.size(),
                " gradients for ", fn->inputs.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      AutogradMeta* im = fn->inputs[i].get();
      if (!im || !in_grads[i].defined()) continue;
      NABLA_CHECK(in_grads[i].shape() == im->shape, "backward of ", fn->name, ": gradient for input ", i,
                  " has shape ", in_grads[i].shape(), ", expected ", im->shape);
      auto q = pending.find(im);
      if (q == pending.end())
        pending.emplace(im, std::move(in_grads[i]));
      else
        q->second = add(q->second, in_grads[i]);
    }
    if (!retain_graph) fn->backward = nullptr;  // frees the saved tensors
  }
}

}  // namespace nabla::autograd

// ---- Tensor's autograd methods ------------------------------------------------------------------------
namespace nabla {
using autograd::ensure_meta;
using autograd::meta_of;

bool Tensor::requires_grad() const {
  auto& m = meta_of(*this);
  return m && m->requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  NABLA_CHECK(!on || is_floating(dtype()),
              "requires_grad_: only floating-point tensors can require grad, got ", dtype());
  auto& m = meta_of(*this);
  NABLA_CHECK(!m || !m->grad_fn || on, "requires_grad_(false): only leaves can be changed; use detach()");
  if (on)
    ensure_meta(*this)->requires_grad = true;
  else if (m)
    m->requires_grad = false;
  return *this;
}

Tensor Tensor::grad() const {
  auto& m = meta_of(*this);
  return m ? m->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  NABLA_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient of shape ",
              g.defined() ? g.shape() : Shape{}, " for a tensor of shape ", shape());
  ensure_meta(*this)->grad = g;
}

void Tensor::zero_grad() const {
  if (auto& m = meta_of(*this)) m->grad = Tensor();
}

bool Tensor::is_leaf() const {
  auto& m = meta_of(*this);
  return !m || !m->grad_fn;
}

std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  auto& m = meta_of(*this);
  return m ? m->grad_fn : nullptr;
}

void Tensor::retain_grad() const {
  NABLA_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  meta_of(*this)->retains_grad = true;
}

int Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) const {
  NABLA_CHECK(requires_grad(), "register_hook: the tensor does not require grad");
  int id = autograd::g_hook_id++;
  meta_of(*this)->hooks.emplace_back(id, std::move(hook));
  return id;
}

int Tensor::register_post_accumulate_hook(std::function<void(const Tensor&)> hook) const {
  NABLA_CHECK(requires_grad() && is_leaf(),
              "register_post_accumulate_hook: expected a leaf that requires grad");
  int id = autograd::g_hook_id++;
  meta_of(*this)->post_accumulate_hooks.emplace_back(id, std::move(hook));
  return id;
}

void Tensor::remove_hook(int handle) const {
  auto& m = meta_of(*this);
  if (!m) return;
  std::erase_if(m->hooks, [&](auto& h) { return h.first == handle; });
  std::erase_if(m->post_accumulate_hooks, [&](auto& h) { return h.first == handle; });
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  Tensor g = grad;
  if (!g.defined()) {
    NABLA_CHECK(numel() == 1, "backward: grad can be implicit only for a one-element output, got shape ",
                shape(), "; pass a gradient of that shape");
    g = autograd::op_hooks().ones_like(*this);
  }
  NABLA_CHECK(g.shape() == shape(), "backward: gradient of shape ", g.shape(), " for an output of shape ",
              shape());
  NABLA_CHECK(g.dtype() == dtype(), "backward: gradient dtype ", g.dtype(), " for an output of dtype ",
              dtype());
  autograd::maybe_dump_graph(*this);
  autograd::run_backward({*this}, {g}, retain_graph);
}

Tensor Tensor::detach() const {
  return Tensor::make_view(impl_->storage, impl_->sizes, impl_->strides, impl_->offset, impl_->dtype);
}

}  // namespace nabla

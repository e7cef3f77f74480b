// Optimizers: the shared bookkeeping (groups, per-parameter state, checkpoints) and each optimizer's step.
// The maths of every step is written out in optimizer.h.
#include "algorithms/optim/optimizer.h"

#include "ops/util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "autograd/autograd.h"
#include "engine/memory.h"
#include "engine/trace.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/optim_kernels.h"
#include "ops/reduce.h"

namespace nabla::optim {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// LARS, LAMB: biases and norm scales keep their plain update (no decay, ratio 1) by default.
bool excluded_by_dim(const Tensor& p, bool exclude_1d) { return exclude_1d && p.dim() <= 1; }

std::vector<ParamGroup> one_group(std::vector<Tensor> params) {
  ParamGroup g;
  g.params = std::move(params);
  return {std::move(g)};
}

// A parameter goes to a fused kernel when its device has one and it, its gradient and its existing buffers
// lie densely in one element order (the kernels index them flat): row-major, or channels-last for the
// convolution weights of a model converted with Module::to(MemoryFormat::ChannelsLast).
template <class Slot>
bool can_fuse(const Slot& slot, const Tensor& p, const Tensor& grad,
              std::initializer_list<const Tensor*> buffers) {
  if (!slot.has(p.device()) || !ops::same_dense_layout(p, grad)) return false;
  for (const Tensor* b : buffers)
    if (b && !ops::same_dense_layout(p, *b)) return false;
  return true;
}

// Calls run(bucket) once per (device, dtype) among the items' parameters, in order of first appearance.
template <class Item, class Run>
void for_each_bucket(const std::vector<Item>& items, Run run) {
  std::vector<std::vector<Item>> buckets;
  for (const Item& it : items) {
    auto b = std::find_if(buckets.begin(), buckets.end(), [&](const std::vector<Item>& v) {
      return v.front().param.device() == it.param.device() && v.front().param.dtype() == it.param.dtype();
    });
    if (b == buckets.end())
      buckets.push_back({it});
    else
      b->push_back(it);
  }
  for (const auto& b : buckets) run(b);
}

}  // namespace

std::vector<ParamGroup> split_decay_groups(const NamedTensors& named, double weight_decay, double lr) {
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = lr;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  no_decay.exclude_from_adaptation = true;
  for (const auto& [name, p] : named) {
    NABLA_CHECK(p.defined(), "split_decay_groups: parameter '", name, "' is undefined");
    ParamGroup& g = p.dim() <= 1 ? no_decay : decay;
    g.params.push_back(p);
    g.names.push_back(name);
  }
  std::vector<ParamGroup> groups;
  for (ParamGroup* g : {&decay, &no_decay})
    if (!g->params.empty()) groups.push_back(std::move(*g));
  return groups;
}

// ---- Optimizer ------------------------------------------------------------------------------------------

Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups, double default_lr,
                     double default_weight_decay)
    : name_(std::move(name)), groups_(std::move(groups)) {
  NABLA_CHECK(!groups_.empty(), name_, ": no parameter groups");
  std::set<const TensorImpl*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (std::isnan(g.lr)) g.lr = default_lr * g.lr_scale;
    if (std::isnan(g.weight_decay)) g.weight_decay = default_weight_decay;
    NABLA_CHECK(g.lr >= 0, name_, ": group ", gi, ": lr must be >= 0, got ", g.lr);
    NABLA_CHECK(g.weight_decay >= 0, name_, ": group ", gi, ": weight_decay must be >= 0, got ",
                g.weight_decay);
    NABLA_CHECK(g.lr_scale > 0, name_, ": group ", gi, ": lr_scale must be > 0, got ", g.lr_scale);
    NABLA_CHECK(g.names.empty() || g.names.size() == g.params.size(), name_, ": group ", gi, " has ",
                g.names.size(), " names for ", g.params.size(), " parameters");
    for (size_t pi = 0; pi < g.params.size(); ++pi) {
      const Tensor& p = g.params[pi];
      NABLA_CHECK(p.defined(), name_, ": ", param_label(gi, pi), " is undefined");
      NABLA_CHECK(is_floating(p.dtype()), name_, ": ", param_label(gi, pi), " has dtype ", p.dtype(),
                  ", expected a floating type");
      NABLA_CHECK(seen.insert(p.impl()).second, name_, ": ", param_label(gi, pi),
                  " appears more than once in the parameter groups");
    }
  }
}

std::string Optimizer::param_label(size_t group, size_t param) const {
  const ParamGroup& g = groups_[group];
  std::string s = str_cat("group ", group, " param ", param);
  if (param < g.names.size()) s += " (" + g.names[param] + ")";
  return s;
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

double Optimizer::lr() const { return groups_.front().lr / groups_.front().lr_scale; }

void Optimizer::set_lr(double lr) {
  NABLA_CHECK(lr >= 0, name_, ": set_lr: lr must be >= 0, got ", lr);
  for (auto& g : groups_) g.lr = lr * g.lr_scale;
}

Optimizer::ParamState& Optimizer::state_of(size_t group, size_t param) {
  if (state_.size() < groups_.size()) state_.resize(groups_.size());
  auto& s = state_[group];
  if (s.size() < groups_[group].params.size()) s.resize(groups_[group].params.size());
  return s[param];
}

Tensor& Optimizer::buffer(ParamState& state, const std::string& name, const Tensor& param) {
  auto it = state.buffers.find(name);
  if (it == state.buffers.end()) it = state.buffers.emplace(name, zeros_like(param)).first;
  return it->second;
}

void Optimizer::for_each_param(const UpdateFn& update) {
  NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    for (size_t pi = 0; pi < g.params.size(); ++pi) {
      Tensor p = g.params[pi];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      NABLA_CHECK(grad.shape() == p.shape() && grad.dtype() == p.dtype() && grad.device() == p.device(),
                  name_, ": ", param_label(gi, pi), " is ", p.shape(), " ", p.dtype(), " but its grad is ",
                  grad.shape(), " ", grad.dtype());
      ParamState& st = state_of(gi, pi);
      ++st.step;
      update(g, p, grad, st);
    }
  }
  ++step_count_;
}

// ---- checkpoints ----------------------------------------------------------------------------------------

namespace {
Tensor count_tensor(int64_t n) { return from_vector({static_cast<double>(n)}, {}, {.dtype = DType::i64}); }
}  // namespace

NamedTensors Optimizer::state_tensors() const {
  NoGradGuard no_grad;
  NamedTensors out{{"step", count_tensor(step_count_)}};
  for (size_t gi = 0; gi < state_.size(); ++gi)
    for (size_t pi = 0; pi < state_[gi].size(); ++pi) {
      const ParamState& st = state_[gi][pi];
      if (st.step == 0) continue;
      const std::string prefix = str_cat("group", gi, ".param", pi, ".");
      out.emplace_back(prefix + "step", count_tensor(st.step));
      for (const auto& [name, t] : st.buffers) out.emplace_back(prefix + name, t.clone());
    }
  return out;
}

void Optimizer::load_state_tensors(const NamedTensors& state) {
  NoGradGuard no_grad;
  const std::vector<std::string> buffers = buffer_names();
  std::vector<std::string> missing, unexpected, mismatched;
  std::map<std::pair<size_t, size_t>, ParamState> loaded;
  std::set<std::string> seen;
  int64_t step_count = 0;

  auto is_count = [](const Tensor& t) { return t.numel() == 1; };
  for (const auto& [name, t] : state) {
    if (!seen.insert(name).second || !t.defined()) {
      unexpected.push_back(name + (t.defined() ? " (repeated)" : " (undefined)"));
      continue;
    }
    if (name == "step") {
      if (!is_count(t))
        mismatched.push_back(str_cat("step (expected one element, got ", t.shape(), ")"));
      else
        step_count = t.item<int64_t>();
      continue;
    }
    size_t gi = 0, pi = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "group%zu.param%zu.%n", &gi, &pi, &used) != 2 || used == 0 ||
        gi >= groups_.size() || pi >= groups_[gi].params.size()) {
      unexpected.push_back(name);
      continue;
    }
    const std::string key = name.substr(used);
    const Tensor& p = groups_[gi].params[pi];
    ParamState& st = loaded[{gi, pi}];
    if (key == "step") {
      if (!is_count(t) || t.item<int64_t>() < 1)
        mismatched.push_back(str_cat(name, " (expected one element >= 1, got ", t.shape(), ")"));
      else
        st.step = t.item<int64_t>();
    } else if (std::find(buffers.begin(), buffers.end(), key) == buffers.end()) {
      unexpected.push_back(name);
    } else if (t.shape() != p.shape() || t.dtype() != p.dtype()) {
      mismatched.push_back(
          str_cat(name, " (expected ", p.shape(), " ", p.dtype(), ", got ", t.shape(), " ", t.dtype(), ")"));
    } else {
      Tensor copy = empty_like(p);
      copy.copy_(t);
      st.buffers[key] = copy;
    }
  }
  if (!seen.count("step")) missing.push_back("step");
  // A parameter with any saved state must have all of it.
  for (const auto& [where, st] : loaded) {
    const std::string prefix = str_cat("group", where.first, ".param", where.second, ".");
    if (!seen.count(prefix + "step")) missing.push_back(prefix + "step");
    for (const auto& b : buffers)
      if (!seen.count(prefix + b)) missing.push_back(prefix + b);
  }
  NABLA_CHECK(missing.empty() && unexpected.empty() && mismatched.empty(), name_,
              ": load_state_tensors: missing [", join(missing), "], unexpected [", join(unexpected),
              "], mismatched [", join(mismatched), "]");

  state_.assign(groups_.size(), {});
  for (auto& [where, st] : loaded) {
    state_of(where.first, where.second) = std::move(st);
  }
  step_count_ = step_count;
}

// ---- SGD ------------------------------------------------------------------------------------------------

Sgd::Sgd(std::vector<ParamGroup> groups, SgdOptions o)
    : Optimizer("SGD", std::move(groups), o.lr, o.weight_decay), o_(o) {
  NABLA_CHECK(o.momentum >= 0, "SGD: momentum must be >= 0, got ", o.momentum);
  NABLA_CHECK(o.dampening >= 0 && o.dampening <= 1, "SGD: dampening must be in [0, 1], got ", o.dampening);
  NABLA_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
              "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", o.momentum, ", dampening ",
              o.dampening);
}
Sgd::Sgd(std::vector<Tensor> params, SgdOptions o) : Sgd(one_group(std::move(params)), o) {}

std::vector<std::string> Sgd::buffer_names() const {
  if (o_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void Sgd::step() {
  trace::Scope range;  // engine/trace.h
  if (trace::enabled()) range.begin(name() + " step", "optim");
  memory::CreatorScope state_label("optimizer state");  // live-tensor snapshots (engine/memory.h)
  // The fused kernel (ops/optim_kernels.h) does the maths below in one multi-tensor call per device and
  // dtype, bit-for-bit; a parameter it cannot take (a strided view, a backend without the kernel) runs the
  // op-by-op version.
  std::vector<ops::SgdTensor> fused;
  const ops::SgdConfig config{.momentum = o_.momentum, .dampening = o_.dampening, .nesterov = o_.nesterov};
  for_each_param([&](const ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    auto it = st.buffers.find("momentum_buffer");
    const bool has_buffer = o_.momentum != 0 && it != st.buffers.end();
    // The first step copies the gradient into the new buffer; a graph would replay that copy every step.
    NABLA_CHECK(o_.momentum == 0 || has_buffer || !capturing_cuda_graph(), name(),
                ": the first step (which creates the momentum buffers) inside a CUDA graph capture would be "
                "replayed as a first step every time; take one eager step before capturing");
    if (can_fuse(ops::fused_sgd_kernel, p, grad, {has_buffer ? &it->second : nullptr})) {
      Tensor buf;
      if (o_.momentum != 0)
        buf = has_buffer ? it->second : st.buffers.emplace("momentum_buffer", empty_like(p)).first->second;
      fused.push_back({p, grad, buf, group.lr, group.weight_decay, o_.momentum != 0 && !has_buffer});
      return;
    }
    Tensor d = group.weight_decay != 0 ? add(grad, p, group.weight_decay) : grad;
    if (o_.momentum != 0) {
      if (it == st.buffers.end()) {
        it = st.buffers.emplace("momentum_buffer", d.clone()).first;
      } else {
        mul_(it->second, o_.momentum);
        add_(it->second, d, 1.0 - o_.dampening);
      }
      d = o_.nesterov ? add(d, it->second, o_.momentum) : it->second;
    }
    add_(p, d, -group.lr);
  });
  for_each_bucket(fused, [&](const std::vector<ops::SgdTensor>& bucket) {
    ops::fused_sgd_kernel.get(bucket.front().param.device(), "SGD")(config, bucket);
  });
}

// ---- Adam, AdamW ----------------------------------------------------------------------------------------

namespace {
void check_adam_options(const char* name, double beta1, double beta2, double eps) {
  NABLA_CHECK(beta1 >= 0 && beta1 < 1, name, ": beta1 must be in [0, 1), got ", beta1);
  NABLA_CHECK(beta2 >= 0 && beta2 < 1, name, ": beta2 must be in [0, 1), got ", beta2);
  NABLA_CHECK(eps >= 0, name, ": eps must be >= 0, got ", eps);
}
AdamOptions as_adam(const AdamWOptions& o) {
  return {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay};
}
}  // namespace

Adam::Adam(const char* name, std::vector<ParamGroup> groups, AdamOptions o, bool decoupled)
    : Optimizer(name, std::move(groups), o.lr, o.weight_decay), o_(o), decoupled_(decoupled) {
  check_adam_options(name, o.beta1, o.beta2, o.eps);
}
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o) : Adam("Adam", std::move(groups), o, false) {}
Adam::Adam(std::vector<Tensor> params, AdamOptions o)
    : Adam("Adam", one_group(std::move(params)), o, false) {}
AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions o)
    : Adam("AdamW", std::move(groups), as_adam(o), true) {}
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam("AdamW", one_group(std::move(params)), as_adam(o), true) {}

void Adam::step() {
  trace::Scope range;  // engine/trace.h
  if (trace::enabled()) range.begin(name() + " step", "optim");
  memory::CreatorScope state_label("optimizer state");  // live-tensor snapshots (engine/memory.h)
  NABLA_CHECK(
      !capturing_cuda_graph(), name(),
      ": cannot be captured in a CUDA graph: its bias correction is computed on the host from the step "
      "count, which a replay would not advance (cuda/graph.h); use SGD or LARS, or run it eagerly");
  // Fused as SGD's step is (see there); the op-by-op version below is the same maths.
  std::vector<ops::AdamTensor> fused;
  const ops::AdamConfig config{.beta1 = o_.beta1, .beta2 = o_.beta2, .eps = o_.eps, .decoupled = decoupled_};
  for_each_param([&](const ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = group.lr, wd = group.weight_decay, b1 = o_.beta1, b2 = o_.beta2;
    Tensor& m = buffer(st, "exp_avg", p);
    Tensor& v = buffer(st, "exp_avg_sq", p);
    if (can_fuse(ops::fused_adam_kernel, p, grad, {&m, &v})) {
      fused.push_back({p, grad, m, v, lr, wd, st.step});
      return;
    }
    Tensor g = grad;
    if (decoupled_ && wd != 0) mul_(p, 1.0 - lr * wd);
    if (!decoupled_ && wd != 0) g = add(grad, p, wd);
    add_(mul_(m, b1), g, 1.0 - b1);
    add_(mul_(v, b2), g * g, 1.0 - b2);
    const double bias1 = 1.0 - std::pow(b1, static_cast<double>(st.step));
    const double bias2 = 1.0 - std::pow(b2, static_cast<double>(st.step));
    Tensor denom = sqrt(v) / std::sqrt(bias2) + o_.eps;
    add_(p, m / denom, -lr / bias1);
  });
  for_each_bucket(fused, [&](const std::vector<ops::AdamTensor>& bucket) {
    ops::fused_adam_kernel.get(bucket.front().param.device(), name().c_str())(config, bucket);
  });
}

// ---- LARS -----------------------------------------------------------------------------------------------

Lars::Lars(std::vector<ParamGroup> groups, LarsOptions o)
    : Optimizer("LARS", std::move(groups), o.lr, o.weight_decay), o_(o) {
  NABLA_CHECK(o.momentum >= 0, "LARS: momentum must be >= 0, got ", o.momentum);
  NABLA_CHECK(o.eta > 0, "LARS: eta must be > 0, got ", o.eta);
  NABLA_CHECK(o.eps >= 0, "LARS: eps must be >= 0, got ", o.eps);
}
Lars::Lars(std::vector<Tensor> params, LarsOptions o) : Lars(one_group(std::move(params)), o) {}

void Lars::step() {
  trace::Scope range;  // engine/trace.h
  if (trace::enabled()) range.begin(name() + " step", "optim");
  memory::CreatorScope state_label("optimizer state");  // live-tensor snapshots (engine/memory.h)
  // Fused (ops/optim_kernels.h): one multi-tensor norm call for ||p|| and ||grad|| of every adapting
  // parameter, then one LARS call that reads those norms from device memory (no host read, no sync). The
  // op-by-op version below is the same maths, for parameters the kernels cannot take.
  std::vector<ops::LarsTensor> fused;
  const ops::LarsConfig config{.momentum = o_.momentum, .eta = o_.eta, .eps = o_.eps};
  for_each_param([&](const ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    const bool by_dim = excluded_by_dim(p, o_.exclude_1d);
    const bool adapt = !by_dim && !group.exclude_from_adaptation;
    const double wd = by_dim ? 0.0 : group.weight_decay;
    auto it = st.buffers.find("momentum_buffer");
    const bool has_buffer = it != st.buffers.end();
    NABLA_CHECK(has_buffer || !capturing_cuda_graph(), name(),
                ": the first step (which creates the momentum buffers) inside a CUDA graph capture would be "
                "replayed as a first step every time; take one eager step before capturing");
    if (can_fuse(ops::fused_lars_kernel, p, grad, {has_buffer ? &it->second : nullptr}) &&
        ops::multi_tensor_norm_kernel.has(p.device())) {
      Tensor buf =
          has_buffer ? it->second : st.buffers.emplace("momentum_buffer", empty_like(p)).first->second;
      // Norm indices are assigned per bucket below; 0 marks "adapts".
      fused.push_back({p, grad, buf, group.lr, wd, !has_buffer, adapt ? 0 : -1, adapt ? 0 : -1});
      return;
    }
    double local_lr = 1.0;
    if (adapt) {
      const double w_norm = norm(p).item(), g_norm = norm(grad).item();
      if (w_norm > 0 && g_norm > 0) local_lr = o_.eta * w_norm / (g_norm + wd * w_norm + o_.eps);
    }
    Tensor d = (wd != 0 ? add(grad, p, wd) : grad) * local_lr;
    if (!has_buffer) {
      it = st.buffers.emplace("momentum_buffer", d.clone()).first;
    } else {
      add_(mul_(it->second, o_.momentum), d);
    }
    add_(p, it->second, -group.lr);
  });
  for_each_bucket(fused, [&](const std::vector<ops::LarsTensor>& in) {
    std::vector<ops::LarsTensor> bucket = in;
    std::vector<Tensor> to_norm;
    for (ops::LarsTensor& t : bucket) {
      if (t.w_norm < 0) continue;
      t.w_norm = static_cast<int64_t>(to_norm.size());
      to_norm.push_back(t.param);
      t.g_norm = static_cast<int64_t>(to_norm.size());
      to_norm.push_back(t.grad);
    }
    const Tensor& first = bucket.front().param;
    Tensor norms;
    if (!to_norm.empty()) {
      norms = Tensor::empty(Shape{static_cast<int64_t>(to_norm.size())}, ops::norm_dtype(first.dtype()),
                            first.device());
      ops::multi_tensor_norm_kernel.get(first.device(), "LARS")(to_norm, norms);
    }
    ops::fused_lars_kernel.get(first.device(), "LARS")(config, bucket, norms);
  });
}

// ---- LAMB -----------------------------------------------------------------------------------------------

Lamb::Lamb(std::vector<ParamGroup> groups, LambOptions o)
    : Optimizer("LAMB", std::move(groups), o.lr, o.weight_decay), o_(o) {
  check_adam_options("LAMB", o.beta1, o.beta2, o.eps);
}
Lamb::Lamb(std::vector<Tensor> params, LambOptions o) : Lamb(one_group(std::move(params)), o) {}

void Lamb::step() {
  trace::Scope range;  // engine/trace.h
  if (trace::enabled()) range.begin(name() + " step", "optim");
  memory::CreatorScope state_label("optimizer state");  // live-tensor snapshots (engine/memory.h)
  NABLA_CHECK(
      !capturing_cuda_graph(), name(),
      ": cannot be captured in a CUDA graph: its bias correction is computed on the host from the step "
      "count, which a replay would not advance (cuda/graph.h); use SGD or LARS, or run it eagerly");
  // Fused: lamb_moments updates m, v and writes the direction u into a scratch tensor, one multi-tensor
  // norm call takes ||p|| and ||u|| of every adapting parameter, and lamb_apply reads them from device
  // memory (no host read, no sync). The op-by-op version below is the same maths.
  std::vector<ops::LambTensor> fused;
  const ops::LambConfig config{.beta1 = o_.beta1, .beta2 = o_.beta2, .eps = o_.eps};
  for_each_param([&](const ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    const bool by_dim = excluded_by_dim(p, o_.exclude_1d);
    const bool adapt = !by_dim && !group.exclude_from_adaptation;
    const double wd = by_dim ? 0.0 : group.weight_decay, b1 = o_.beta1, b2 = o_.beta2;
    Tensor& m = buffer(st, "exp_avg", p);
    Tensor& v = buffer(st, "exp_avg_sq", p);
    if (can_fuse(ops::lamb_moments_kernel, p, grad, {&m, &v}) && ops::lamb_apply_kernel.has(p.device()) &&
        ops::multi_tensor_norm_kernel.has(p.device())) {
      fused.push_back({p, grad, m, v, Tensor(), group.lr, wd, st.step, adapt ? 0 : -1, adapt ? 0 : -1});
      return;
    }
    add_(mul_(m, b1), grad, 1.0 - b1);
    add_(mul_(v, b2), grad * grad, 1.0 - b2);
    const double bias1 = 1.0 - std::pow(b1, static_cast<double>(st.step));
    const double bias2 = 1.0 - std::pow(b2, static_cast<double>(st.step));
    Tensor r = (m / bias1) / (sqrt(v / bias2) + o_.eps);
    if (wd != 0) r = add(r, p, wd);
    double ratio = 1.0;
    if (adapt) {
      const double w_norm = norm(p).item(), r_norm = norm(r).item();
      if (w_norm > 0 && r_norm > 0) ratio = w_norm / r_norm;
    }
    add_(p, r, -group.lr * ratio);
  });
  for_each_bucket(fused, [&](const std::vector<ops::LambTensor>& in) {
    std::vector<ops::LambTensor> bucket = in;
    const Tensor& first = bucket.front().param;
    for (ops::LambTensor& t : bucket) t.update = empty_like(t.param);
    ops::lamb_moments_kernel.get(first.device(), "LAMB")(config, bucket);
    std::vector<Tensor> to_norm;
    for (ops::LambTensor& t : bucket) {
      if (t.w_norm < 0) continue;
      t.w_norm = static_cast<int64_t>(to_norm.size());
      to_norm.push_back(t.param);
      t.u_norm = static_cast<int64_t>(to_norm.size());
      to_norm.push_back(t.update);
    }
    Tensor norms;
    if (!to_norm.empty()) {
      norms = Tensor::empty(Shape{static_cast<int64_t>(to_norm.size())}, ops::norm_dtype(first.dtype()),
                            first.device());
      ops::multi_tensor_norm_kernel.get(first.device(), "LAMB")(to_norm, norms);
    }
    ops::lamb_apply_kernel.get(first.device(), "LAMB")(bucket, norms);
  });
}

}  // namespace nabla::optim

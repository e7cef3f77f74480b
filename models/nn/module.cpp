#include "models/nn/module.h"

#include <map>
#include <sstream>

#include "autograd/autograd.h"
#include "engine/error.h"

namespace nabla::nn {

Tensor Module::forward(const Tensor&) {
  fail(type_name_, ": this module has no single-input forward(x); call its own methods");
}

void Module::check_new_name(const std::string& name) const {
  NABLA_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": bad member name '", name,
              "' (must be non-empty, without dots)");
  auto taken = [&](const auto& list) {
    for (const auto& [n, v] : list)
      if (n == name) return true;
    return false;
  };
  NABLA_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), type_name_, ": name '", name,
              "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name);
  NABLA_CHECK(t.defined(), type_name_, ": parameter '", name, "' is undefined");
  if (!t.requires_grad()) t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name);
  NABLA_CHECK(m != nullptr, type_name_, ": submodule '", name, "' is null");
  m->train(training_);
  children_.emplace_back(name, std::move(m));
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out = params_;
  if (recurse)
    for (const auto& [cname, child] : children_)
      for (auto& [n, t] : child->named_parameters(true)) out.emplace_back(cname + "." + n, t);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out = buffers_;
  if (recurse)
    for (const auto& [cname, child] : children_)
      for (auto& [n, t] : child->named_buffers(true)) out.emplace_back(cname + "." + n, t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [cname, child] : children_) {
    out.emplace_back(cname, child);
    for (auto& [n, m] : child->named_modules()) out.emplace_back(cname + "." + n, m);
  }
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (auto& [n, t] : state_dict()) {
    if (t.device() == device) continue;
    t.zero_grad();
    t.set_data(t.detach().to(device));
  }
}

void Module::to(MemoryFormat format) {
  NoGradGuard no_grad;
  for (auto& [n, t] : state_dict()) {
    if (t.dim() != 4 || t.is_contiguous(format)) continue;
    t.zero_grad();
    t.set_data(t.detach().contiguous(format));
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  for (auto& b : named_buffers()) out.push_back(b);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::map<std::string, Tensor> given(state.begin(), state.end());
  std::vector<std::string> missing, mismatched;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source), checked before anything is written
  for (auto& [name, dst] : state_dict()) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (src.shape() != dst.shape() || src.dtype() != dst.dtype())
      mismatched.push_back(name + " (expected " + dtype_name(dst.dtype()) + " " + shape_str(dst.shape()) + ", got " +
                           dtype_name(src.dtype()) + " " + shape_str(src.shape()) + ")");
    else copies.emplace_back(dst, src);
    given.erase(it);
  }
  std::vector<std::string> unexpected;
  for (auto& [name, t] : given) unexpected.push_back(name);
  bool bad = !mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (bad) {
    std::ostringstream os;
    os << type_name_ << ".load_state_dict: state does not match the module";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "\n  " << what << " (" << v.size() << "):";
      for (const auto& s : v) os << " " << s << ";";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mismatched", mismatched);
    throw Error(os.str());
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src.device() == dst.device() ? src : src.to(dst.device()));
}

void Module::summary_rec(std::string& out, const std::string& name, int depth) const {
  std::string pad(2 * depth, ' ');
  int64_t own = 0;
  for (auto& [n, t] : params_) own += t.numel();
  out += pad + (name.empty() ? "" : name + ": ") + type_name_;
  std::string extra = extra_repr();
  if (!extra.empty()) out += "(" + extra + ")";
  if (!children_.empty()) out += "  [" + std::to_string(num_parameters()) + " params]";
  else if (own) out += "  [" + std::to_string(own) + " params]";
  out += "\n";
  for (const auto& [cname, child] : children_) child->summary_rec(out, cname, depth + 1);
}

std::string Module::summary() const {
  std::string out;
  summary_rec(out, "", 0);
  return out;
}

}  // namespace nabla::nn

// GradScaler: dynamic loss scaling (the rules are in grad_scaler.h).
#include "algorithms/optim/grad_scaler.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/optim_kernels.h"

namespace nabla::optim {

GradScaler::GradScaler(GradScalerOptions o) : o_(o), scale_(o.init_scale) {
  NABLA_CHECK(std::isfinite(o.init_scale) && o.init_scale > 0,
              "GradScaler: init_scale must be finite and > 0, got ", o.init_scale);
  NABLA_CHECK(o.growth_factor > 1.0, "GradScaler: growth_factor must be > 1, got ", o.growth_factor);
  NABLA_CHECK(o.backoff_factor > 0.0 && o.backoff_factor < 1.0,
              "GradScaler: backoff_factor must be in (0, 1), got ", o.backoff_factor);
  NABLA_CHECK(o.growth_interval > 0, "GradScaler: growth_interval must be > 0, got ", o.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const {
  if (!o_.enabled) return loss;
  NABLA_CHECK(loss.defined() && is_floating(loss.dtype()),
              "GradScaler::scale: expected a floating loss, got ",
              loss.defined() ? dtype_name(loss.dtype()) : "an undefined tensor");
  const bool half = loss.dtype() == DType::bf16 || loss.dtype() == DType::f16;
  return (half ? loss.to(DType::f32) : loss) * scale_;
}

void GradScaler::unscale(Optimizer& opt) {
  if (!o_.enabled) return;
  PerOptimizer& st = per_optimizer_[&opt];
  NABLA_CHECK(!st.stepped, "GradScaler::unscale: called after step() on this optimizer (", opt.name(),
              "); call it before step(), or not at all");
  NABLA_CHECK(!st.unscaled, "GradScaler::unscale: already called on this optimizer (", opt.name(),
              ") since the last update()");
  NoGradGuard no_grad;
  // One list per device; a gradient tensor reachable from two parameters is unscaled once.
  std::vector<std::pair<Device, std::vector<Tensor>>> by_device;
  std::set<const void*> seen;
  for (const ParamGroup& g : opt.groups())
    for (const Tensor& p : g.params) {
      Tensor grad = p.grad();
      if (!grad.defined() || grad.numel() == 0 || !seen.insert(grad.data_ptr()).second) continue;
      // The unscale kernel works on flat element arrays: row-major or channels-last, both dense.
      NABLA_CHECK(grad.is_contiguous() || grad.is_contiguous(MemoryFormat::ChannelsLast),
                  "GradScaler::unscale: a gradient of ", opt.name(), " is not dense (", grad.shape(), ", strides ",
                  grad.strides(), ")");
      auto it = std::find_if(by_device.begin(), by_device.end(),
                             [&](const auto& e) { return e.first == grad.device(); });
      if (it == by_device.end()) {
        by_device.push_back({grad.device(), {}});
        it = by_device.end() - 1;
      }
      it->second.push_back(grad);
    }
  const double inv_scale = 1.0 / scale_;
  bool found = false;
  for (auto& [device, grads] : by_device) {
    Tensor flag = zeros({1}, {.dtype = DType::f32, .device = device});
    ops::amp_unscale_kernel.get(device, "GradScaler::unscale")(grads, inv_scale, flag);
    found = found || flag.item() != 0.0;  // the one read-back per device
  }
  st.unscaled = true;
  st.found_inf = found;
}

bool GradScaler::step(Optimizer& opt) {
  if (!o_.enabled) {
    opt.step();
    return true;
  }
  PerOptimizer& st = per_optimizer_[&opt];
  NABLA_CHECK(!st.stepped, "GradScaler::step: already called on this optimizer (", opt.name(),
              ") since the last update()");
  if (!st.unscaled) unscale(opt);  // (fills st: map references stay valid)
  st.stepped = true;
  if (st.found_inf) return false;
  opt.step();
  return true;
}

void GradScaler::check_inf_records(const char* what) const {
  bool any = false;
  for (const auto& [opt, st] : per_optimizer_) any = any || st.unscaled;
  NABLA_CHECK(
      any, "GradScaler::", what,
      ": no inf checks were recorded since the last update(); call step(opt) (or unscale(opt)) first");
}

void GradScaler::update() {
  if (!o_.enabled) return;
  check_inf_records("update");
  bool found = false;
  for (const auto& [opt, st] : per_optimizer_) found = found || st.found_inf;
  if (found) {
    scale_ *= o_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == o_.growth_interval) {
    const double grown = scale_ * o_.growth_factor;
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  }
  per_optimizer_.clear();
}

void GradScaler::update(double new_scale) {
  if (!o_.enabled) return;
  NABLA_CHECK(std::isfinite(new_scale) && new_scale > 0,
              "GradScaler::update: new_scale must be finite and > 0, got ", new_scale);
  scale_ = new_scale;
  per_optimizer_.clear();
}

bool GradScaler::found_inf(const Optimizer& opt) const {
  auto it = per_optimizer_.find(&opt);
  return it != per_optimizer_.end() && it->second.found_inf;
}

// ---- checkpoints ----------------------------------------------------------------------------------------

namespace {
Tensor f64_scalar(double v) { return from_vector({v}, {}, {.dtype = DType::f64}); }
Tensor i64_scalar(int64_t v) { return from_vector({static_cast<double>(v)}, {}, {.dtype = DType::i64}); }
}  // namespace

NamedTensors GradScaler::state_tensors() const {
  return {{"scale", f64_scalar(scale_)},
          {"growth_factor", f64_scalar(o_.growth_factor)},
          {"backoff_factor", f64_scalar(o_.backoff_factor)},
          {"growth_interval", i64_scalar(o_.growth_interval)},
          {"growth_tracker", i64_scalar(growth_tracker_)}};
}

void GradScaler::load_state_tensors(const NamedTensors& state) {
  const std::vector<std::string> names{"scale", "growth_factor", "backoff_factor", "growth_interval",
                                       "growth_tracker"};
  std::map<std::string, double> v;
  std::string unexpected, bad;
  for (const auto& [name, t] : state) {
    if (std::find(names.begin(), names.end(), name) == names.end() || v.count(name)) {
      unexpected += (unexpected.empty() ? "" : ", ") + name;
    } else if (!t.defined() || t.numel() != 1) {
      bad += (bad.empty() ? "" : ", ") + name;
    } else {
      v[name] = t.item();
    }
  }
  std::string missing;
  for (const auto& n : names)
    if (!v.count(n) && bad.find(n) == std::string::npos) missing += (missing.empty() ? "" : ", ") + n;
  NABLA_CHECK(missing.empty() && unexpected.empty() && bad.empty(),
              "GradScaler: load_state_tensors: missing [", missing, "], unexpected [", unexpected,
              "], not one element [", bad, "]");
  GradScalerOptions o = o_;
  o.init_scale = v["scale"];
  o.growth_factor = v["growth_factor"];
  o.backoff_factor = v["backoff_factor"];
  o.growth_interval = static_cast<int64_t>(v["growth_interval"]);
  GradScaler checked(o);  // validates the loaded values
  NABLA_CHECK(v["growth_tracker"] >= 0, "GradScaler: load_state_tensors: growth_tracker must be >= 0, got ",
              v["growth_tracker"]);
  o_ = o;
  scale_ = o.init_scale;
  growth_tracker_ = static_cast<int64_t>(v["growth_tracker"]);
  per_optimizer_.clear();
}

}  // namespace nabla::optim

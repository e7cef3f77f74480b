// VR optimizers: constructors, the factory used by the training binaries and the checkpoint plumbing. The
// maths is in vr_optimizer.h and gsnr.h.
#include "algorithms/vrgd/vr_optimizer.h"

namespace nabla::vrgd {

namespace detail {

std::vector<Tensor> params_of(const std::vector<optim::ParamGroup>& groups) {
  std::vector<Tensor> out;
  for (const auto& g : groups) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

std::vector<std::string> names_of(const std::vector<optim::ParamGroup>& groups) {
  std::vector<std::string> out;
  for (const auto& g : groups) {
    if (g.names.size() != g.params.size()) return {};
    out.insert(out.end(), g.names.begin(), g.names.end());
  }
  return out;
}

GsnrOptions resolve(GsnrOptions o, double default_beta3) {
  if (!o.beta3) o.beta3 = default_beta3;
  return o;
}

constexpr const char* kPrefix = "gsnr.";

NamedTensors join_state(NamedTensors base, const NamedTensors& gsnr) {
  for (const auto& [name, t] : gsnr) base.emplace_back(kPrefix + name, t);
  return base;
}

std::pair<NamedTensors, NamedTensors> split_state(const NamedTensors& state) {
  NamedTensors base, gsnr;
  const std::string prefix = kPrefix;
  for (const auto& [name, t] : state) {
    if (name.rfind(prefix, 0) == 0)
      gsnr.emplace_back(name.substr(prefix.size()), t);
    else
      base.emplace_back(name, t);
  }
  return {std::move(base), std::move(gsnr)};
}

}  // namespace detail

VrSgd::VrSgd(std::vector<optim::ParamGroup> groups, optim::SgdOptions o, GsnrOptions g)
    : Vr(o.momentum == 0 ? "VR-SGD" : "VR-Momentum", std::move(groups), o, g, 0.0) {}
VrAdam::VrAdam(std::vector<optim::ParamGroup> groups, optim::AdamOptions o, GsnrOptions g)
    : Vr("VR-Adam", std::move(groups), o, g, 0.9) {}
VrAdamW::VrAdamW(std::vector<optim::ParamGroup> groups, optim::AdamWOptions o, GsnrOptions g)
    : Vr("VR-AdamW", std::move(groups), o, g, 0.9) {}
VrLars::VrLars(std::vector<optim::ParamGroup> groups, optim::LarsOptions o, GsnrOptions g)
    : Vr("VR-LARS", std::move(groups), o, g, 0.0) {}
VrLamb::VrLamb(std::vector<optim::ParamGroup> groups, optim::LambOptions o, GsnrOptions g)
    : Vr("VR-LAMB", std::move(groups), o, g, 0.9) {}

bool is_vr_optimizer_kind(const std::string& kind) { return kind.rfind("vr-", 0) == 0; }

std::unique_ptr<optim::Optimizer> make_vr_optimizer(const std::string& kind,
                                                    std::vector<optim::ParamGroup> groups,
                                                    const VrConfig& c) {
  if (kind == "vr-sgd")
    return std::make_unique<VrSgd>(std::move(groups),
                                   optim::SgdOptions{.lr = c.lr, .weight_decay = c.weight_decay}, c.gsnr);
  if (kind == "vr-momentum") {
    NABLA_CHECK(c.momentum > 0, "vr-momentum: momentum must be > 0, got ", c.momentum);
    return std::make_unique<VrSgd>(
        std::move(groups),
        optim::SgdOptions{
            .lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay, .nesterov = c.nesterov},
        c.gsnr);
  }
  if (kind == "vr-adam")
    return std::make_unique<VrAdam>(std::move(groups),
                                    optim::AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay}, c.gsnr);
  if (kind == "vr-adamw")
    return std::make_unique<VrAdamW>(std::move(groups),
                                     optim::AdamWOptions{.lr = c.lr, .weight_decay = c.weight_decay}, c.gsnr);
  if (kind == "vr-lars")
    return std::make_unique<VrLars>(
        std::move(groups),
        optim::LarsOptions{.lr = c.lr, .momentum = c.momentum, .weight_decay = c.weight_decay}, c.gsnr);
  if (kind == "vr-lamb")
    return std::make_unique<VrLamb>(std::move(groups),
                                    optim::LambOptions{.lr = c.lr, .weight_decay = c.weight_decay}, c.gsnr);
  fail("unknown VR optimizer '", kind,
       "' (expected vr-sgd, vr-momentum, vr-adam, vr-adamw, vr-lars or vr-lamb)");
}

}  // namespace nabla::vrgd

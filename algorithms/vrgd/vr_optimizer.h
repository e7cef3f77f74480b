// VR optimizers (VRGD, arXiv 2309.13681 section 4): VR-SGD, VR-Momentum, VR-Adam, VR-AdamW, VR-LARS,
// VR-LAMB. Each is its base optimizer (algorithms/optim) whose gradient is first adapted by the GSNR:
//
//   VR-SGD / VR-Momentum / VR-LARS:  g' = r (.) g~          then SGD / SGD with momentum / LARS on g'
//   VR-Adam / VR-AdamW / VR-LAMB:    p = b3 p + (1 - b3) r ; p^ = p / (1 - b3^t) ; g' = p^ (.) g~
//                                    then Adam / AdamW / LAMB on g' (the moments see the adapted gradient)
//
// with g~ the global-batch mean gradient and r the normalised, clamped GSNR of vrgd/gsnr.h. The paper states
// VR-Adam's order ("used to adapt the gradient mean before gradients' momentum estimation", GSNR momentum
// b3 = 0.9, and rejects scaling the final update because it would bias m and v); the others are "similar to
// VR-SGD". Its appendix with the exact VR-Adam/VR-LAMB pseudo-code was not reachable; the open choices are
// options (GsnrOptions) with these defaults:
//   - GSNR momentum: b3 = 0.9 for the Adam family (paper), 0 (none) for SGD, Momentum, LARS (the paper
//     describes it for VR-Adam only); bias-corrected p^ (Adam's convention for zero-initialised averages).
//   - momentum of the clamped r (so p^ is a mean of multipliers in [gamma, 1]), not of the raw r.
//   - "layer" = one parameter tensor (LARS/LAMB's layers).
//   - weight decay: the base optimizer's, applied to the weights as usual, NOT scaled by r: eq. 10 has no
//     decay term, and scaling the regulariser by gradient noise would weaken it exactly where the data
//     signal is weakest. Likewise LARS/LAMB's trust ratio is computed from g' (what the base sees).
// With gamma = 1 every multiplier is exactly 1.0, so a VR optimizer performs its base optimizer's step bit
// for bit on g~.
//
// Use (micro-batch mode; rank mode is the same with gsnr().all_reduce() after one accumulate()):
//   auto opt = vrgd::make_vr_optimizer("vr-lamb", groups, {.lr = 1e-3, .gsnr = {.gamma = 0.1}});
//   auto& gsnr = dynamic_cast<vrgd::VrOptimizer&>(*opt).gsnr();
//   vrgd::accumulate_micro_batches(gsnr, batch, k, [&](int64_t s, int64_t n) { return loss_on(s, n); });
//   opt->step();   // reduce() (unless called already, e.g. before clipping), multiply, base step
//
// Checkpoints: state_tensors() is the base's plus "gsnr.param<i>.gsnr_momentum"/"gsnr.param<i>.gsnr_step".
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "algorithms/vrgd/gsnr.h"

namespace nabla::vrgd {

// The part of every VR optimizer that the training loop needs, whatever its base.
class VrOptimizer {
 public:
  virtual ~VrOptimizer() = default;
  virtual Gsnr& gsnr() = 0;
};

namespace detail {
std::vector<Tensor> params_of(const std::vector<optim::ParamGroup>& groups);
std::vector<std::string> names_of(const std::vector<optim::ParamGroup>& groups);  // empty if any unnamed
GsnrOptions resolve(GsnrOptions o, double default_beta3);
NamedTensors join_state(NamedTensors base, const NamedTensors& gsnr);
std::pair<NamedTensors, NamedTensors> split_state(const NamedTensors& state);  // {base, gsnr}
}  // namespace detail

template <class Base>
class Vr : public Base, public VrOptimizer {
 public:
  template <class BaseOptions>
  Vr(std::string name, std::vector<optim::ParamGroup> groups, BaseOptions base_options,
     GsnrOptions gsnr_options, double default_beta3)
      : Base(std::move(groups), base_options),
        gsnr_(detail::params_of(this->groups()), detail::names_of(this->groups()),
              detail::resolve(gsnr_options, default_beta3)) {
    this->set_name(std::move(name));
  }

  void step() override {
    if (!gsnr_.reduced()) gsnr_.reduce();
    gsnr_.apply();
    Base::step();
  }
  Gsnr& gsnr() override { return gsnr_; }

  NamedTensors state_tensors() const override {
    return detail::join_state(Base::state_tensors(), gsnr_.state_tensors());
  }
  void load_state_tensors(const NamedTensors& state) override {
    auto [base, gsnr] = detail::split_state(state);
    gsnr_.load_state_tensors(gsnr);  // checked first: it changes nothing when it throws
    Base::load_state_tensors(base);
  }

 private:
  Gsnr gsnr_;
};

// VR-SGD is VrSgd with momentum 0, VR-Momentum with momentum > 0.
struct VrSgd : Vr<optim::Sgd> {
  VrSgd(std::vector<optim::ParamGroup> groups, optim::SgdOptions o = {}, GsnrOptions g = {});
};
struct VrAdam : Vr<optim::Adam> {
  VrAdam(std::vector<optim::ParamGroup> groups, optim::AdamOptions o = {}, GsnrOptions g = {});
};
struct VrAdamW : Vr<optim::AdamW> {
  VrAdamW(std::vector<optim::ParamGroup> groups, optim::AdamWOptions o = {}, GsnrOptions g = {});
};
struct VrLars : Vr<optim::Lars> {
  VrLars(std::vector<optim::ParamGroup> groups, optim::LarsOptions o = {}, GsnrOptions g = {});
};
struct VrLamb : Vr<optim::Lamb> {
  VrLamb(std::vector<optim::ParamGroup> groups, optim::LambOptions o = {}, GsnrOptions g = {});
};

// The common knobs of the training binaries; the rest of each base optimizer keeps its defaults.
struct VrConfig {
  double lr = 0.1;
  double momentum = 0.9;  // VR-Momentum, VR-LARS
  double weight_decay = 0.0;
  bool nesterov = false;  // VR-Momentum
  GsnrOptions gsnr = {};
};

// kind: vr-sgd | vr-momentum | vr-adam | vr-adamw | vr-lars | vr-lamb. Throws naming the kinds otherwise.
std::unique_ptr<optim::Optimizer> make_vr_optimizer(const std::string& kind,
                                                    std::vector<optim::ParamGroup> groups,
                                                    const VrConfig& config);
bool is_vr_optimizer_kind(const std::string& kind);  // "vr-" prefix

}  // namespace nabla::vrgd

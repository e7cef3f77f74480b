// Optimizers: SGD, Adam, AdamW, LARS, LAMB, matching torch.optim step for step.
//
// Notation for one parameter w with gradient g at its t-th update (t = 1, 2, ...), learning rate lr and
// weight decay wd of its group; buffers start at zero unless said otherwise.
//
// SGD (torch.optim.SGD):
//   d = g + wd w
//   momentum mu != 0:  b = d on the first update (a copy, no dampening), else b = mu b + (1 - dampening) d
//                      d = d + mu b  (Nesterov)   or   d = b
//   w -= lr d
//
// Adam (torch.optim.Adam, L2 decay folded into the gradient, eps outside the square root):
//   g = g + wd w
//   m = b1 m + (1 - b1) g                 v = b2 v + (1 - b2) g^2
//   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
// AdamW (torch.optim.AdamW, decoupled decay, Loshchilov & Hutter 2019):
//   w -= lr wd w, then the Adam update above with the raw gradient g.
//
// LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"), in the variant of kakaobrain's
// torchlars and NVIDIA's LARC-with-SGD recipes: the trust ratio uses ||g|| + wd ||w|| (the paper's eq. 6),
// NOT ||g + wd w|| (the Barlow Twins / SimCLR variant), it scales the decayed gradient before momentum, and
// momentum is torch SGD's (no dampening, no Nesterov):
//   local_lr = eta ||w|| / (||g|| + wd ||w|| + eps)   when ||w|| > 0 and ||g|| > 0, else 1
//   d = local_lr (g + wd w)
//   b = d on the first update, else b = mu b + d
//   w -= lr b
// (eps defaults to 0 as in the paper; torchlars uses 1e-8.)
//
// LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning", Algorithm 2 with phi = identity):
//   m = b1 m + (1 - b1) g                 v = b2 v + (1 - b2) g^2
//   r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd w
//   ratio = ||w|| / ||r||   (1 when either norm is 0)
//   w -= lr ratio r
//
// Exclusions (LARS, LAMB): a parameter with dim <= 1 (bias, norm scale) gets no weight decay and ratio 1
// (local_lr 1 for LARS) unless the option exclude_1d is turned off; a group with exclude_from_adaptation set
// gets ratio 1 but keeps its weight_decay. split_decay_groups() builds such groups for any optimizer.
//
// Parameters without a gradient are skipped (their buffers and step count do not advance, as in PyTorch).
// Updates run under NoGradGuard and write in place (add_, mul_) into the very tensors the model holds.
// SGD and Adam/AdamW run their element-wise update as fused multi-tensor kernels (ops/optim_kernels.h: one
// call per device and dtype for the whole step), bit-for-bit the op-by-op maths above on the CPU; a
// parameter, gradient or buffer that is not contiguous takes the op-by-op path.
// The trust ratios read two norms back to the host per parameter (one sync each on an accelerator).
//
// Checkpoints: state_tensors() lists "step" (calls to step()) and, for each parameter updated at least once,
// "group<G>.param<P>.step" (its own update count t) and its buffers, e.g. "group0.param3.exp_avg".
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace nabla::optim {


// In a ParamGroup, lr or weight_decay equal to kFromOptions is replaced by the optimizer's option.
inline constexpr double kFromOptions = std::numeric_limits<double>::quiet_NaN();

struct ParamGroup {
  std::vector<Tensor> params{};
  std::vector<std::string> names{};  // empty, or one per parameter (used in messages)
  double lr = kFromOptions;
  double weight_decay = kFromOptions;
  double lr_scale = 1.0;  // set_lr(x) sets lr = x * lr_scale (e.g. a smaller lr for a backbone)
  bool exclude_from_adaptation = false;  // LARS, LAMB: trust ratio 1 for the whole group
};

// Splits named parameters by the LARS/LAMB rule: {params with dim >= 2, weight_decay} and {params with
// dim <= 1, weight_decay 0, exclude_from_adaptation}. Empty groups are left out. Works for any optimizer
// (e.g. AdamW without decay on biases and norm scales).
std::vector<ParamGroup> split_decay_groups(const NamedTensors& named, double weight_decay = kFromOptions,
                                           double lr = kFromOptions);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  void zero_grad();  // drops the gradients (PyTorch's set_to_none)

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  double lr() const;  // the base lr: the first group's lr / lr_scale
  void set_lr(double lr);
  int64_t step_count() const { return step_count_; }
  const std::string& name() const { return name_; }

  // Copies of the state (safe to keep while training goes on), named as in the file comment.
  // Virtual so that a wrapping optimizer (algorithms/vrgd: VR-*) can add its own state.
  virtual NamedTensors state_tensors() const;
  // Replaces the whole state. Throws one Error listing missing, unexpected and mismatched names.
  virtual void load_state_tensors(const NamedTensors& state);

 protected:
  struct ParamState {
    int64_t step = 0;                       // updates applied to this parameter
    std::map<std::string, Tensor> buffers;  // e.g. "exp_avg", "exp_avg_sq", "momentum_buffer"
  };
  using UpdateFn =
      std::function<void(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state)>;

  // Fills kFromOptions in the groups and validates them.
  Optimizer(std::string name, std::vector<ParamGroup> groups, double default_lr, double default_weight_decay);
  // Every buffer each parameter has once it was updated (for checkpoint loading).
  virtual std::vector<std::string> buffer_names() const = 0;
  // Runs update for every parameter that has a gradient, under NoGradGuard, with state.step already
  // counting this update; then counts the step.
  void for_each_param(const UpdateFn& update);
  // The named buffer of a state, created as zeros like `param` on first use.
  static Tensor& buffer(ParamState& state, const std::string& name, const Tensor& param);
  // For a derived optimizer that keeps a base's step under its own name (VR-SGD over SGD).
  void set_name(std::string name) { name_ = std::move(name); }

 private:
  ParamState& state_of(size_t group, size_t param);
  std::string param_label(size_t group, size_t param) const;

  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param], grown as groups grow
  int64_t step_count_ = 0;
};

// ---- SGD ----------------------------------------------------------------------------------------------
struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, SgdOptions o = {});
  Sgd(std::vector<Tensor> params, SgdOptions o = {});
  void step() override;

 protected:
  std::vector<std::string> buffer_names() const override;

 private:
  SgdOptions o_;
};

// ---- Adam, AdamW ----------------------------------------------------------------------------------------
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions o = {});
  Adam(std::vector<Tensor> params, AdamOptions o = {});
  void step() override;

 protected:
  Adam(const char* name, std::vector<ParamGroup> groups, AdamOptions o, bool decoupled);
  std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  AdamOptions o_;
  bool decoupled_;
};

// AdamOptions with PyTorch's AdamW default weight decay (a separate type, so that AdamWOptions{.lr = ...}
// keeps the 1e-2 default).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions o = {});
  AdamW(std::vector<Tensor> params, AdamWOptions o = {});
};

// ---- LARS ----------------------------------------------------------------------------------------------
struct LarsOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double eta = 1e-3;  // trust coefficient
  double eps = 0.0;
  bool exclude_1d = true;  // dim <= 1: no weight decay, local_lr 1
};

class Lars : public Optimizer {
 public:
  Lars(std::vector<ParamGroup> groups, LarsOptions o = {});
  Lars(std::vector<Tensor> params, LarsOptions o = {});
  void step() override;

 protected:
  std::vector<std::string> buffer_names() const override { return {"momentum_buffer"}; }

 private:
  LarsOptions o_;
};

// ---- LAMB ----------------------------------------------------------------------------------------------
struct LambOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-6;
  double weight_decay = 0.01;
  bool exclude_1d = true;  // dim <= 1: no weight decay, ratio 1
};

class Lamb : public Optimizer {
 public:
  Lamb(std::vector<ParamGroup> groups, LambOptions o = {});
  Lamb(std::vector<Tensor> params, LambOptions o = {});
  void step() override;

 protected:
  std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  LambOptions o_;
};

}  // namespace nabla::optim

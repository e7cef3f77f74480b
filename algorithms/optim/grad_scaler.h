// Dynamic loss scaling for f16 mixed precision, as torch.cuda.amp.GradScaler.
//
// f16 has 5 exponent bits: gradients below ~6e-8 flush to zero. Scaling the loss by s (a power of two)
// scales every gradient of the backward by s, lifting them into range; the optimizer must then see the
// gradients divided by s again, and a step whose gradients overflowed (inf/NaN) must be skipped:
//
//   GradScaler scaler;
//   for (...) {
//     { AutocastGuard ac(DType::f16); loss = criterion(model.forward(x), y); }
//     opt.zero_grad();
//     scaler.scale(loss).backward();
//     scaler.unscale(opt);          // optional: only to look at / clip the true gradients before step
//     scaler.step(opt);             // unscales (if not done yet), skips opt.step() on inf/NaN
//     scaler.update();              // adjusts s
//   }
//
//   scale(loss) = loss * s (an f16/bf16 loss is cast to f32 first: s = 65536 does not fit in f16)
//   unscale(opt): every gradient of opt's parameters g *= 1/s in place (in the gradient's dtype, 1/s cast
//     to it), and one fused check over all of them for inf/NaN: one kernel call per device
//     (ops::amp_unscale_kernel) that raises a flag on the device, and one read-back of that flag.
//     A gradient tensor shared by two parameters (autograd may hand the same tensor to both inputs of an
//     add) is unscaled once.
//   step(opt): unscale(opt) unless done since the last update(); then opt.step() only if no gradient was
//     inf/NaN. Returns whether it stepped.
//   update(): if any optimizer's gradients were non-finite since the last update, s *= backoff_factor and
//     the count of clean steps restarts at 0; else the count grows by one and, on reaching growth_interval,
//     s *= growth_factor (kept only if finite) and the count restarts. At least one optimizer must have
//     been unscaled since the last update.
//
// A disabled scaler (enabled = false) passes everything through: scale returns the loss, step calls
// opt.step(), update does nothing (so one training loop serves f32 and f16 runs).
// Works on CPU tensors too (the check is the CPU kernel); bf16 training usually needs no scaler.
//
// Checkpoints: state_tensors() holds "scale" (f64), "growth_factor", "backoff_factor" (f64),
// "growth_interval" and "growth_tracker" (i64), all 0-d; load_state_tensors() needs all five.
#pragma once
#include <cstdint>
#include <map>

#include "algorithms/optim/optimizer.h"

namespace nabla::optim {

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions o = {});

  Tensor scale(const Tensor& loss) const;
  void unscale(Optimizer& opt);
  bool step(Optimizer& opt);
  void update();
  // update() that sets s to new_scale instead of growing or backing off (the clean-step count is kept).
  void update(double new_scale);

  double get_scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool enabled() const { return o_.enabled; }
  // Whether the last unscale of `opt` since the last update() found an inf/NaN (false if none yet).
  bool found_inf(const Optimizer& opt) const;

  NamedTensors state_tensors() const;
  void load_state_tensors(const NamedTensors& state);

 private:
  struct PerOptimizer {
    bool unscaled = false;
    bool stepped = false;
    bool found_inf = false;
  };
  void check_inf_records(const char* what) const;

  GradScalerOptions o_;
  double scale_;
  int64_t growth_tracker_ = 0;
  std::map<const Optimizer*, PerOptimizer> per_optimizer_;  // since the last update()
};

}  // namespace nabla::optim

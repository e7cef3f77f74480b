// Learning-rate schedules: pure functions of the step (0-based: the lr for the update number step + 1).
//
//   constant     lr = base
//   step         lr = base gamma^floor(step / step_size)
//   multi_step   lr = base gamma^(number of milestones <= step)
//   cosine       lr = end + (base - end) (1 + cos(pi p)) / 2          p = progress, below
//   polynomial   lr = end + (base - end) (1 - p)^power
//   progress     p = clamp((step - W) / (T - W), 0, 1)  with T = total_steps, W = warmup_steps
//   warm-up      lr *= f0 + (1 - f0) step / W  for step < W         f0 = warmup_start_factor
//
// Warm-up composes with every kind by multiplying it (as torch's ChainedScheduler with LinearLR). step and
// multi_step count from step 0 (milestones are absolute, as in Goyal et al.'s 5-epoch warm-up then decay at
// 30/60/80), while cosine and polynomial decay over the steps after warm-up and stay at `end` after T.
//
// Spec strings: "kind[:key=value,...]", e.g. "cosine", "cosine:total=1000,end=1e-5,warmup=50",
// "step:every=30,gamma=0.1", "multistep:milestones=30/60/80", "poly:power=2,total=500,warmup_start=0.1".
// Keys: lr, every, gamma, milestones (separated by '/'), total, end (alias min_lr), power, warmup,
// warmup_start. A key that the kind does not use is an error. Values not in the string come from the
// defaults passed to Schedule::parse (e.g. the lr and the run's total steps).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nabla::optim {

enum class ScheduleKind { constant, step, multi_step, cosine, polynomial };

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::constant;
  double base_lr = 1e-3;
  int64_t step_size = 0;              // step
  std::vector<int64_t> milestones{};  // multi_step: strictly increasing
  double gamma = 0.1;                 // step, multi_step
  int64_t total_steps = 0;            // cosine, polynomial: T, including the warm-up
  double end_lr = 0.0;                // cosine (the minimum), polynomial
  double power = 1.0;                 // polynomial
  int64_t warmup_steps = 0;           // W, any kind
  double warmup_start_factor = 0.0;
};

// The pieces, each a pure function.
double step_decay(double base_lr, double gamma, int64_t step_size, int64_t step);
double multi_step_decay(double base_lr, double gamma, const std::vector<int64_t>& milestones, int64_t step);
double cosine_decay(double base_lr, double end_lr, double progress);
double polynomial_decay(double base_lr, double end_lr, double power, double progress);
double warmup_factor(int64_t warmup_steps, double start_factor, int64_t step);

class Schedule {
 public:
  Schedule() = default;                  // constant 1e-3
  explicit Schedule(ScheduleOptions o);  // validates
  static Schedule parse(const std::string& spec, ScheduleOptions defaults = {});

  double lr_at(int64_t step) const;
  const ScheduleOptions& options() const { return o_; }
  std::string str() const;  // a spec that parses back to this schedule

 private:
  ScheduleOptions o_;
};

const char* schedule_kind_name(ScheduleKind kind);

}  // namespace nabla::optim

// Learning-rate schedules (the formulas are in schedule.h): the pure pieces, validation and spec parsing.
#include "algorithms/optim/schedule.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <sstream>

#include "engine/error.h"

namespace nabla::optim {

double step_decay(double base_lr, double gamma, int64_t step_size, int64_t step) {
  return base_lr * std::pow(gamma, static_cast<double>(step / step_size));
}

double multi_step_decay(double base_lr, double gamma, const std::vector<int64_t>& milestones, int64_t step) {
  auto passed = std::upper_bound(milestones.begin(), milestones.end(), step) - milestones.begin();
  return base_lr * std::pow(gamma, static_cast<double>(passed));
}

double cosine_decay(double base_lr, double end_lr, double progress) {
  return end_lr + (base_lr - end_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

double polynomial_decay(double base_lr, double end_lr, double power, double progress) {
  return end_lr + (base_lr - end_lr) * std::pow(1.0 - progress, power);
}

double warmup_factor(int64_t warmup_steps, double start_factor, int64_t step) {
  if (step >= warmup_steps) return 1.0;
  return start_factor + (1.0 - start_factor) * static_cast<double>(step) / static_cast<double>(warmup_steps);
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::constant:
      return "constant";
    case ScheduleKind::step:
      return "step";
    case ScheduleKind::multi_step:
      return "multistep";
    case ScheduleKind::cosine:
      return "cosine";
    case ScheduleKind::polynomial:
      return "poly";
  }
  return "?";
}

Schedule::Schedule(ScheduleOptions o) : o_(std::move(o)) {
  const char* kind = schedule_kind_name(o_.kind);
  NABLA_CHECK(std::isfinite(o_.base_lr) && o_.base_lr >= 0, "schedule ", kind, ": lr must be >= 0, got ",
              o_.base_lr);
  NABLA_CHECK(o_.warmup_steps >= 0, "schedule ", kind, ": warmup must be >= 0, got ", o_.warmup_steps);
  NABLA_CHECK(o_.warmup_start_factor >= 0 && o_.warmup_start_factor <= 1, "schedule ", kind,
              ": warmup_start must be in [0, 1], got ", o_.warmup_start_factor);
  switch (o_.kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::step:
      NABLA_CHECK(o_.step_size > 0, "schedule step: every must be > 0, got ", o_.step_size);
      NABLA_CHECK(o_.gamma > 0, "schedule step: gamma must be > 0, got ", o_.gamma);
      break;
    case ScheduleKind::multi_step:
      NABLA_CHECK(!o_.milestones.empty(), "schedule multistep: no milestones");
      NABLA_CHECK(o_.milestones.front() > 0, "schedule multistep: milestones must be > 0, got ",
                  o_.milestones.front());
      for (size_t i = 1; i < o_.milestones.size(); ++i)
        NABLA_CHECK(o_.milestones[i] > o_.milestones[i - 1],
                    "schedule multistep: milestones must be strictly increasing, got ", o_.milestones[i - 1],
                    " then ", o_.milestones[i]);
      NABLA_CHECK(o_.gamma > 0, "schedule multistep: gamma must be > 0, got ", o_.gamma);
      break;
    case ScheduleKind::cosine:
    case ScheduleKind::polynomial:
      NABLA_CHECK(o_.total_steps > o_.warmup_steps, "schedule ", kind, ": total (", o_.total_steps,
                  ") must be > warmup (", o_.warmup_steps, ")");
      NABLA_CHECK(o_.end_lr >= 0, "schedule ", kind, ": end must be >= 0, got ", o_.end_lr);
      NABLA_CHECK(o_.power > 0, "schedule ", kind, ": power must be > 0, got ", o_.power);
      break;
  }
}

double Schedule::lr_at(int64_t step) const {
  NABLA_CHECK(step >= 0, "schedule ", schedule_kind_name(o_.kind), ": step must be >= 0, got ", step);
  auto progress = [&] {
    const double done = static_cast<double>(step - o_.warmup_steps);
    return std::clamp(done / static_cast<double>(o_.total_steps - o_.warmup_steps), 0.0, 1.0);
  };
  double lr = o_.base_lr;
  switch (o_.kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::step:
      lr = step_decay(o_.base_lr, o_.gamma, o_.step_size, step);
      break;
    case ScheduleKind::multi_step:
      lr = multi_step_decay(o_.base_lr, o_.gamma, o_.milestones, step);
      break;
    case ScheduleKind::cosine:
      lr = cosine_decay(o_.base_lr, o_.end_lr, progress());
      break;
    case ScheduleKind::polynomial:
      lr = polynomial_decay(o_.base_lr, o_.end_lr, o_.power, progress());
      break;
  }
  return lr * warmup_factor(o_.warmup_steps, o_.warmup_start_factor, step);
}

// ---- spec strings ----------------------------------------------------------------------------------------

namespace {

template <class T>
T parse_number(const std::string& spec, const std::string& key, const std::string& text) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  NABLA_CHECK(ec == std::errc() && end == text.data() + text.size(), "schedule '", spec, "': ", key, "=",
              text, " is not a valid ", std::is_integral_v<T> ? "integer" : "number");
  if constexpr (std::is_floating_point_v<T>)
    NABLA_CHECK(std::isfinite(v), "schedule '", spec, "': ", key, "=", text, " is not a finite number");
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) parts.push_back(part);
  return parts;
}

// The keys each kind accepts.
std::vector<std::string> keys_of(ScheduleKind kind) {
  std::vector<std::string> keys{"lr", "warmup", "warmup_start"};
  switch (kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::step:
      keys.insert(keys.end(), {"every", "gamma"});
      break;
    case ScheduleKind::multi_step:
      keys.insert(keys.end(), {"milestones", "gamma"});
      break;
    case ScheduleKind::cosine:
      keys.insert(keys.end(), {"total", "end", "min_lr"});
      break;
    case ScheduleKind::polynomial:
      keys.insert(keys.end(), {"total", "end", "power"});
      break;
  }
  return keys;
}

}  // namespace

Schedule Schedule::parse(const std::string& spec, ScheduleOptions defaults) {
  ScheduleOptions o = std::move(defaults);
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  if (kind == "constant")
    o.kind = ScheduleKind::constant;
  else if (kind == "step")
    o.kind = ScheduleKind::step;
  else if (kind == "multistep" || kind == "multi_step")
    o.kind = ScheduleKind::multi_step;
  else if (kind == "cosine")
    o.kind = ScheduleKind::cosine;
  else if (kind == "poly" || kind == "polynomial")
    o.kind = ScheduleKind::polynomial;
  else
    fail("schedule '", spec, "': unknown kind '", kind, "' (constant, step, multistep, cosine, poly)");

  const std::vector<std::string> allowed = keys_of(o.kind);
  const std::string args = colon == std::string::npos ? "" : spec.substr(colon + 1);
  for (const std::string& item : split(args, ',')) {
    const size_t eq = item.find('=');
    NABLA_CHECK(eq != std::string::npos && eq > 0, "schedule '", spec, "': expected key=value, got '", item,
                "'");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (const auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
      fail("schedule '", spec, "': unknown key '", key, "' for ", kind, " (keys: ", list, ")");
    }
    if (key == "lr")
      o.base_lr = parse_number<double>(spec, key, value);
    else if (key == "warmup")
      o.warmup_steps = parse_number<int64_t>(spec, key, value);
    else if (key == "warmup_start")
      o.warmup_start_factor = parse_number<double>(spec, key, value);
    else if (key == "every")
      o.step_size = parse_number<int64_t>(spec, key, value);
    else if (key == "gamma")
      o.gamma = parse_number<double>(spec, key, value);
    else if (key == "total")
      o.total_steps = parse_number<int64_t>(spec, key, value);
    else if (key == "end" || key == "min_lr")
      o.end_lr = parse_number<double>(spec, key, value);
    else if (key == "power")
      o.power = parse_number<double>(spec, key, value);
    else if (key == "milestones") {
      o.milestones.clear();
      for (const std::string& m : split(value, '/'))
        o.milestones.push_back(parse_number<int64_t>(spec, key, m));
    }
  }
  return Schedule(std::move(o));
}

// The shortest text that reads back as the same double (0.05, not 0.050000000000000003).
static std::string shortest(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string Schedule::str() const {
  std::ostringstream s;
  s << schedule_kind_name(o_.kind) << ":lr=" << shortest(o_.base_lr);
  switch (o_.kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::step:
      s << ",every=" << o_.step_size << ",gamma=" << shortest(o_.gamma);
      break;
    case ScheduleKind::multi_step:
      s << ",milestones=";
      for (size_t i = 0; i < o_.milestones.size(); ++i) s << (i ? "/" : "") << o_.milestones[i];
      s << ",gamma=" << shortest(o_.gamma);
      break;
    case ScheduleKind::cosine:
      s << ",total=" << o_.total_steps << ",end=" << shortest(o_.end_lr);
      break;
    case ScheduleKind::polynomial:
      s << ",total=" << o_.total_steps << ",end=" << shortest(o_.end_lr) << ",power=" << shortest(o_.power);
      break;
  }
  if (o_.warmup_steps > 0)
    s << ",warmup=" << o_.warmup_steps << ",warmup_start=" << shortest(o_.warmup_start_factor);
  return s.str();
}

}  // namespace nabla::optim

// libFuzzer target: learning-rate schedule specs ("cosine:total=1000,warmup=50", algorithms/optim/
// schedule.h), the string parser that command lines reach. A spec that parses must give an lr at any step
// and print back (str()) to a spec that parses.
#include <string>

#include "algorithms/optim/schedule.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  nabla::optim::ScheduleOptions defaults;
  defaults.base_lr = 0.1;
  defaults.total_steps = 1000;
  try {
    nabla::optim::Schedule s = nabla::optim::Schedule::parse(spec, defaults);
    for (int64_t step : {int64_t{0}, int64_t{1}, int64_t{499}, int64_t{999}, int64_t{5000}})
      (void)s.lr_at(step);
    nabla::optim::Schedule::parse(s.str(), defaults);
  } catch (const nabla::Error&) {
  }
  return 0;
}

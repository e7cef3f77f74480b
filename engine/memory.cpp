// Memory statistics (engine/memory.h): the CPU allocator's counters or the backend's, and the peak's op.
#include "engine/memory.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "engine/device_runtime.h"
#include "engine/profile.h"
#include "engine/trace.h"

namespace nabla::memory {
namespace {

struct PeakOp {
  size_t peak = 0;  // the device's peak when last looked at
  std::string op;
};

struct State {
  std::mutex mu;
  PeakOp peaks[kNumDeviceTypes][16];
  bool turned_profile_on = false;
};

State& state() {
  static State s;
  return s;
}

std::atomic<bool> g_tracking{false};

PeakOp& peak_of(State& s, Device d) {
  const int i = d.index < 0 ? 0 : (d.index > 15 ? 15 : d.index);
  return s.peaks[static_cast<int>(d.type)][i];
}

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

void print_at_exit() { std::fprintf(stderr, "\n%s", report().c_str()); }

const bool g_from_env = [] {
  const char* v = std::getenv("NABLA_MEMORY");
  if (v && *v && std::string(v) != "0") {
    state();  // constructed before the handler is registered, so destroyed after it has run
    set_tracking(true);
    std::atexit(print_at_exit);
  }
  return true;
}();

}  // namespace

Stats stats(Device device) {
  if (device.is_cpu()) return detail::cpu_stats();
  const runtime::MemoryStats r = runtime::memory_stats(device);
  return {r.allocated, r.reserved, r.peak_allocated, r.allocations, r.device_mallocs};
}

void reset_peak(Device device) {
  if (device.is_cpu())
    detail::cpu_reset_peak();
  else
    runtime::reset_peak_memory_stats(device);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  peak_of(s, device) = {};
}

std::string peak_op(Device device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return peak_of(s, device).op;
}

std::string report() {
  std::ostringstream os;
  os << "memory (NABLA_MEMORY; engine/memory.h):\n";
  std::vector<Device> devices{Device::cpu()};
  if (runtime::available(DeviceType::cuda))
    for (int i = 0; i < runtime::device_count(DeviceType::cuda); ++i) devices.push_back(Device::cuda(i));
  for (Device d : devices) {
    const Stats st = stats(d);
    const std::string op = peak_op(d);
    os << "  " << device_type_name(d.type) << ":" << d.index << "  allocated " << mib(st.allocated)
       << "  reserved " << mib(st.reserved) << "  peak " << mib(st.peak_allocated)
       << (op.empty() ? std::string() : " (reached in '" + op + "')") << "  allocations " << st.allocations
       << "  mallocs " << st.device_mallocs << "\n";
  }
  return os.str();
}

void set_tracking(bool on) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (on && !profile::enabled()) {  // the per-kernel hook is the profiler's (host mode: no syncs)
    profile::set_enabled(true, true);
    s.turned_profile_on = true;
  }
  if (!on && s.turned_profile_on) {
    if (!trace::enabled()) profile::set_enabled(false);
    s.turned_profile_on = false;
  }
  g_tracking = on;
}

bool tracking() { return g_tracking.load(std::memory_order_relaxed); }

namespace detail {
void after_kernel(const char* op, Device device) {
  const size_t peak = stats(device).peak_allocated;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  PeakOp& p = peak_of(s, device);
  if (peak > p.peak) {
    p.peak = peak;
    p.op = op ? op : "?";
  }
}
}  // namespace detail

}  // namespace nabla::memory

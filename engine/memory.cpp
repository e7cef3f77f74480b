// Memory statistics (engine/memory.h): the CPU allocator's counters or the backend's, the peak's op, and
// the registry of live storages behind memory::snapshot().
#include "engine/memory.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <iomanip>
#include <sstream>
#include <unordered_map>

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

// The live storages (never destroyed: storages of static tensors are freed after every static object).
struct LiveEntry {
  size_t nbytes = 0;
  Device device;
  DType dtype = DType::u8;
  Shape shape;
  std::string creator = "user";
  bool provisional = true;  // "user" until a kernel claims it as an output
  bool described = false;
  uint64_t order = 0;
};
struct Live {
  std::mutex mu;
  std::unordered_map<const void*, LiveEntry> entries;
  uint64_t next = 0;
  bool turned_profile_on = false;
};
Live& live() {
  static Live* l = new Live;
  return *l;
}

bool g_print_live = false;    // NABLA_MEMORY=live
std::string g_snapshot_path;  // NABLA_MEMORY_SNAPSHOT

void print_at_exit() {
  std::string text = "\n" + report();
  if (g_print_live) text += snapshot_text(snapshot());
  std::fputs(text.c_str(), stderr);
}

void snapshot_at_exit() {
  std::ofstream f(g_snapshot_path);
  if (f) f << snapshot_json(snapshot()) << "\n";
  std::fprintf(stderr, "nabla: %s the live-tensor snapshot to %s (NABLA_MEMORY_SNAPSHOT)\n",
               f.good() ? "wrote" : "could not write", g_snapshot_path.c_str());
}

const bool g_from_env = [] {
  const char* v = std::getenv("NABLA_MEMORY");
  if (v && *v && std::string(v) != "0") {
    state();  // constructed before the handler is registered, so destroyed after it has run
    set_tracking(true);
    if (std::string(v) == "live") {
      g_print_live = true;
      set_live_tracking(true);
    }
    std::atexit(print_at_exit);
  }
  const char* p = std::getenv("NABLA_MEMORY_SNAPSHOT");
  if (p && *p) {
    g_snapshot_path = p;
    set_live_tracking(true);
    std::atexit(snapshot_at_exit);
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
       << "  reserved " << mib(st.reserved) << " (" << std::fixed << std::setprecision(1)
       << 100.0 * st.fragmentation() << "% free)" << std::defaultfloat << "  peak " << mib(st.peak_allocated)
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
    if (!trace::enabled() && !live_tracking()) profile::set_enabled(false);
    s.turned_profile_on = false;
  }
  g_tracking = on;
}

bool tracking() { return g_tracking.load(std::memory_order_relaxed); }

void set_live_tracking(bool on) {
  Live& l = live();
  std::lock_guard<std::mutex> lock(l.mu);
  // The creators of outputs come from the kernel hook, which is the profiler's (host mode: no syncs).
  if (on && !profile::enabled()) {
    profile::set_enabled(true, true);
    l.turned_profile_on = true;
  }
  if (!on && l.turned_profile_on) {
    if (!trace::enabled() && !tracking()) profile::set_enabled(false);
    l.turned_profile_on = false;
  }
  detail::g_live = on;
}

Snapshot snapshot() {
  Snapshot s;
  {
    Live& l = live();
    std::lock_guard<std::mutex> lock(l.mu);
    s.tensors.reserve(l.entries.size());
    for (const auto& [ptr, e] : l.entries) {
      (void)ptr;
      s.tensors.push_back({e.nbytes, e.dtype, e.shape, e.device, e.creator, e.order});
    }
  }
  std::sort(s.tensors.begin(), s.tensors.end(), [](const LiveTensor& a, const LiveTensor& b) {
    return a.nbytes != b.nbytes ? a.nbytes > b.nbytes : a.order < b.order;
  });
  std::map<std::string, CreatorTotal> by;
  for (const LiveTensor& t : s.tensors) {
    CreatorTotal& c = by[t.creator];
    c.creator = t.creator;
    c.nbytes += t.nbytes;
    ++c.count;
    s.total_bytes += t.nbytes;
  }
  for (auto& [name, c] : by) s.creators.push_back(std::move(c));
  std::stable_sort(s.creators.begin(), s.creators.end(),
                   [](const CreatorTotal& a, const CreatorTotal& b) { return a.nbytes > b.nbytes; });
  return s;
}

std::string snapshot_text(const Snapshot& s, size_t max_rows) {
  std::ostringstream os;
  os << "live tensors (engine/memory.h): " << s.tensors.size() << " storages, " << mib(s.total_bytes) << " ("
     << s.total_bytes << " bytes)\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %14s  %-5s  %-24s %-8s %s\n", "bytes", "dtype", "shape", "device",
                "created by");
  os << line;
  const size_t n = max_rows == 0 ? s.tensors.size() : std::min(max_rows, s.tensors.size());
  for (size_t i = 0; i < n; ++i) {
    const LiveTensor& t = s.tensors[i];
    std::snprintf(line, sizeof line, "  %14zu  %-5s  %-24s %-8s %s\n", t.nbytes, dtype_name(t.dtype),
                  shape_str(t.shape).c_str(), t.device.str().c_str(), t.creator.c_str());
    os << line;
  }
  if (n < s.tensors.size()) os << "  ... " << s.tensors.size() - n << " smaller storages\n";
  os << "by creator:\n";
  for (const CreatorTotal& c : s.creators) {
    std::snprintf(line, sizeof line, "  %-28s %6lld storages  %12zu bytes  %s\n", c.creator.c_str(),
                  static_cast<long long>(c.count), c.nbytes, mib(c.nbytes).c_str());
    os << line;
  }
  return os.str();
}

std::string snapshot_json(const Snapshot& s) {
  nlohmann::json tensors = nlohmann::json::array(), creators = nlohmann::json::array();
  for (const LiveTensor& t : s.tensors)
    tensors.push_back({{"bytes", t.nbytes},
                       {"dtype", dtype_name(t.dtype)},
                       {"shape", t.shape},
                       {"device", t.device.str()},
                       {"creator", t.creator},
                       {"order", t.order}});
  for (const CreatorTotal& c : s.creators)
    creators.push_back({{"creator", c.creator}, {"count", c.count}, {"bytes", c.nbytes}});
  return nlohmann::json{{"total_bytes", s.total_bytes},
                        {"count", s.tensors.size()},
                        {"tensors", std::move(tensors)},
                        {"by_creator", std::move(creators)}}
      .dump();
}

namespace detail {
void on_alloc(const void* storage, size_t nbytes, Device device) {
  LiveEntry e;
  e.nbytes = nbytes;
  e.device = device;
  if (t_kernel_op) {
    e.creator = t_kernel_op;
    e.provisional = false;
  } else if (t_label) {
    e.creator = t_label;
    e.provisional = false;
  }
  Live& l = live();
  std::lock_guard<std::mutex> lock(l.mu);
  e.order = l.next++;
  l.entries[storage] = std::move(e);
}

void on_free(const void* storage) {
  Live& l = live();
  std::lock_guard<std::mutex> lock(l.mu);
  l.entries.erase(storage);
}

void describe(const void* storage, const Shape& shape, DType dtype) {
  Live& l = live();
  std::lock_guard<std::mutex> lock(l.mu);
  auto it = l.entries.find(storage);
  if (it == l.entries.end() || it->second.described) return;
  it->second.shape = shape;
  it->second.dtype = dtype;
  it->second.described = true;
}

void claim(const void* storage, const char* op) {
  Live& l = live();
  std::lock_guard<std::mutex> lock(l.mu);
  auto it = l.entries.find(storage);
  if (it == l.entries.end() || !it->second.provisional) return;
  it->second.creator = op ? op : "?";
  it->second.provisional = false;
}

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

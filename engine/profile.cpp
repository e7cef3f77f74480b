// The kernel profiler's table (engine/profile.h): per (op, device type) call counts and times, printed at
// exit when NABLA_PROFILE is set.
#include "engine/profile.h"

#include "engine/memory.h"
#include "engine/trace.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

namespace nabla::profile {
namespace {

struct Row {
  int64_t calls = 0;
  double seconds = 0;
};

struct Table {
  std::mutex mu;
  std::map<std::pair<std::string, int>, Row> rows;  // (op, device type)
  SyncHook sync[kNumDeviceTypes] = {};
};

Table& table() {
  static Table t;
  return t;
}

void print_at_exit() {
  const std::string r = report();
  if (!r.empty()) std::fprintf(stderr, "\n%s", r.c_str());
}

// NABLA_PROFILE=1 (anything but "" or "0") turns profiling on when the library loads, with the table
// printed at exit.
const bool g_from_env = [] {
  const char* v = std::getenv("NABLA_PROFILE");
  if (v && *v && std::string(v) != "0") {
    detail::g_enabled = true;
    detail::g_host = std::string(v) == "host";
    table();  // constructed before the handler is registered, so destroyed after it has run
    std::atexit(print_at_exit);
  }
  return true;
}();

}  // namespace

void set_enabled(bool on, bool host_only) {
  detail::g_enabled = on;
  detail::g_host = host_only;
}

void set_sync_hook(DeviceType type, SyncHook hook) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.sync[static_cast<int>(type)] = hook;
}

void synchronize(Device d) {
  SyncHook h;
  {
    Table& t = table();
    std::lock_guard<std::mutex> lock(t.mu);
    h = t.sync[static_cast<int>(d.type)];
  }
  if (h) h(d);
}

void record(const char* op, Device d, double seconds, const std::string& trace_args) {
  if (trace::enabled() && !trace_args.empty()) {
    trace::complete(op, "kernel", seconds, trace_args);
  } else if (trace::enabled()) {
    static const std::string kArgs[kNumDeviceTypes] = {
        std::string("{\"device\":\"") + device_type_name(DeviceType::cpu) + "\"}",
        std::string("{\"device\":\"") + device_type_name(DeviceType::cuda) + "\"}"};
    trace::complete(op, "kernel", seconds, kArgs[static_cast<int>(d.type)]);
  }
  if (memory::tracking()) memory::detail::after_kernel(op, d);
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  Row& r = t.rows[{op ? op : "?", static_cast<int>(d.type)}];
  ++r.calls;
  r.seconds += seconds;
}

std::string report() {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.rows.empty()) return "";
  std::vector<std::pair<std::pair<std::string, int>, Row>> rows(t.rows.begin(), t.rows.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  int64_t calls = 0;
  for (const auto& [k, r] : rows) {
    total += r.seconds;
    calls += r.calls;
  }
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-36s %-6s %10s %12s %11s %7s\n",
                detail::g_host ? "op (NABLA_PROFILE=host: host time)" : "op (NABLA_PROFILE)", "device",
                "calls", "total ms", "mean us", "share");
  os << line;
  for (const auto& [k, r] : rows) {
    std::snprintf(line, sizeof line, "%-36.36s %-6s %10lld %12.3f %11.2f %6.1f%%\n", k.first.c_str(),
                  device_type_name(static_cast<DeviceType>(k.second)), static_cast<long long>(r.calls),
                  r.seconds * 1e3, r.calls ? r.seconds * 1e6 / static_cast<double>(r.calls) : 0.0,
                  total > 0 ? 100.0 * r.seconds / total : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-36s %-6s %10lld %12.3f\n", "total (kernels only)", "",
                static_cast<long long>(calls), total * 1e3);
  os << line;
  return os.str();
}

void reset() {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.rows.clear();
}

}  // namespace nabla::profile

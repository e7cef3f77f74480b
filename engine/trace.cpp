// The tracer (engine/trace.h): events kept in memory under a mutex, written as Chrome trace JSON.
#include "engine/trace.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/error.h"
#include "engine/memory.h"
#include "engine/profile.h"

namespace nabla::trace {
namespace {

using Clock = std::chrono::steady_clock;

struct Event {
  std::string name;
  const char* cat;
  char ph;
  double ts_us;
  double dur_us;
  int tid;
  std::string args;
  int pid = 0;  // 0: this process (the host); kDevicePid + i: device i
};

struct State {
  std::mutex mu;
  std::vector<Event> events;
  Clock::time_point t0 = Clock::now();
  std::string path;
  bool turned_profile_on = false;
  PushHook push = nullptr;
  PopHook pop = nullptr;
  std::vector<bool> lanes;  // lanes in use (this session)
};

std::atomic<const DeviceTimer*> g_timers[kNumDeviceTypes] = {};

State& state() {
  static State s;
  return s;
}

int thread_id() {
  static std::atomic<int> next{1};
  thread_local int id = next++;
  return id;
}

std::atomic<uint64_t> g_session{0};  // start() counts up: a range opened in an earlier session is not closed
                                     // in this one (its E would have no B)
struct Open {
  std::string name;
  uint64_t session;
};
thread_local std::vector<Open> t_open;  // this thread's open ranges

double us_since_start(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(t - state().t0).count();
}

std::string to_json_locked(State& s) {
  nlohmann::json events = nlohmann::json::array();
  const int pid = static_cast<int>(getpid());
  // Names for the tracks (ph "M"): the host process, and each device's process with its stream tracks.
  auto meta = [&](const char* what, int p, int tid, const std::string& name) {
    events.push_back({{"name", what}, {"ph", "M"}, {"pid", p}, {"tid", tid}, {"args", {{"name", name}}}});
  };
  meta("process_name", pid, 0, "host");
  std::vector<std::pair<int, int>> tracks;
  std::vector<int> lanes;  // host tids of collective lanes that have events
  for (const Event& e : s.events)
    if (e.pid == 0 && e.tid >= kCollectiveTrack &&
        std::find(lanes.begin(), lanes.end(), e.tid) == lanes.end())
      lanes.push_back(e.tid);
  std::sort(lanes.begin(), lanes.end());
  for (int tid : lanes) {
    meta("thread_name", pid, tid,
         tid == kCollectiveTrack ? std::string("collectives")
                                 : "collectives " + std::to_string(tid - kCollectiveTrack + 1));
    events.push_back({{"name", "thread_sort_index"},
                      {"ph", "M"},
                      {"pid", pid},
                      {"tid", tid},
                      {"args", {{"sort_index", tid}}}});
  }
  for (const Event& e : s.events)
    if (e.pid != 0 && std::find(tracks.begin(), tracks.end(), std::make_pair(e.pid, e.tid)) == tracks.end())
      tracks.emplace_back(e.pid, e.tid);
  std::sort(tracks.begin(), tracks.end());
  for (size_t i = 0; i < tracks.size(); ++i) {
    const auto [p, tid] = tracks[i];
    if (i == 0 || tracks[i - 1].first != p)
      meta("process_name", p, 0, "GPU " + std::to_string(p - kDevicePid));
    meta("thread_name", p, tid,
         tid == kComputeTrack ? "compute stream"
         : tid == kCopyTrack  ? "copy stream"
                              : "comm stream (NCCL)");
  }
  for (const Event& e : s.events) {
    nlohmann::json j{{"name", e.name},
                     {"cat", e.cat},
                     {"ph", std::string(1, e.ph)},
                     {"ts", e.ts_us},
                     {"pid", e.pid ? e.pid : pid},
                     {"tid", e.tid}};
    if (e.ph == 'X') j["dur"] = e.dur_us;
    if (!e.args.empty()) j["args"] = nlohmann::json::parse(e.args, nullptr, false);
    events.push_back(std::move(j));
  }
  return nlohmann::json{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}}.dump();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  NABLA_CHECK(f.good(), "trace: cannot open '", path, "' for writing");
  f << text;
  NABLA_CHECK(f.good(), "trace: writing '", path, "' failed");
}

void write_at_exit() {
  if (!enabled()) return;
  State& s = state();
  const std::string path = s.path;
  const std::string text = stop();
  std::fprintf(
      stderr,
      "nabla: trace written to %s (picture: python3 scripts/trace_to_svg.py %s out.svg; or open it in "
      "https://ui.perfetto.dev)\n",
      path.c_str(), path.c_str());
  (void)text;
}

const bool g_from_env = [] {
  const char* v = std::getenv("NABLA_TRACE");
  if (v && *v) {
    state();  // constructed before the handler is registered, so destroyed after it has run
    start(v);
    std::atexit(write_at_exit);
  }
  return true;
}();

}  // namespace

void start(const std::string& path) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.events.clear();
    s.lanes.clear();
    ++g_session;
    s.path = path;
    s.t0 = Clock::now();
    if (!profile::enabled()) {  // the kernel events come from the profiler's hook; host mode: no syncs
      profile::set_enabled(true, true);
      s.turned_profile_on = true;
    }
  }
  detail::g_on = true;
}

static void flush_device_timers() {
  for (auto& t : g_timers)
    if (const DeviceTimer* timer = t.load()) timer->flush();
}

std::string stop(const std::string& path) {
  State& s = state();
  flush_device_timers();  // while recording is on: the marks of this session become events
  detail::g_on = false;
  std::string text;
  std::string out;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.turned_profile_on) {
      if (!memory::tracking() && !memory::live_tracking()) profile::set_enabled(false);
      s.turned_profile_on = false;
    }
    text = to_json_locked(s);
    out = path.empty() ? s.path : path;
  }
  if (!out.empty()) write_file(out, text);
  return text;
}

std::string json() {
  State& s = state();
  flush_device_timers();
  std::lock_guard<std::mutex> lock(s.mu);
  return to_json_locked(s);
}

void begin(const std::string& name, const char* cat, const std::string& args) {
  State& s = state();
  const double ts = us_since_start(Clock::now());
  t_open.push_back({name, g_session.load()});
  std::lock_guard<std::mutex> lock(s.mu);
  s.events.push_back({name, cat, 'B', ts, 0, thread_id(), args});
  if (s.push) s.push(name.c_str());
}

void end() {
  State& s = state();
  const double ts = us_since_start(Clock::now());
  if (t_open.empty()) return;
  Open o = std::move(t_open.back());
  t_open.pop_back();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.pop) s.pop();                                       // its push happened, whatever the session
  if (!enabled() || o.session != g_session.load()) return;  // opened in an earlier session: no E
  s.events.push_back({std::move(o.name), "", 'E', ts, 0, thread_id(), ""});
}

void complete(const char* name, const char* cat, double seconds, const std::string& args) {
  State& s = state();
  const double end_us = us_since_start(Clock::now());
  const double dur = seconds * 1e6;
  std::lock_guard<std::mutex> lock(s.mu);
  s.events.push_back({name ? name : "?", cat, 'X', end_us - dur, dur, thread_id(), args});
}

std::string shape_args(const std::string& shape, const char* dtype) {
  return nlohmann::json{{"shape", shape}, {"dtype", dtype}}.dump();
}

void set_device_timer(DeviceType type, const DeviceTimer* timer) { g_timers[static_cast<int>(type)] = timer; }

int device_begin(Device d) {
  const DeviceTimer* t = g_timers[static_cast<int>(d.type)].load();
  return t ? t->begin(d) : -1;
}

void device_end(Device d, int token, const char* name, const std::string& args) {
  if (token < 0) return;
  if (const DeviceTimer* t = g_timers[static_cast<int>(d.type)].load()) t->end(token, name, args);
}

double now_us() { return us_since_start(Clock::now()); }

uint64_t session() { return g_session.load(); }

void device_event(int device_index, int stream_track, std::string name, const char* cat, double ts_us,
                  double dur_us, std::string args) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.events.push_back(
      {std::move(name), cat, 'X', ts_us, dur_us, stream_track, std::move(args), kDevicePid + device_index});
}

LaneMark lane_begin() {
  if (!enabled()) return {};
  State& s = state();
  const double ts = us_since_start(Clock::now());
  std::lock_guard<std::mutex> lock(s.mu);
  size_t lane = 0;
  while (lane < s.lanes.size() && s.lanes[lane]) ++lane;
  if (lane == s.lanes.size()) s.lanes.push_back(true);
  s.lanes[lane] = true;
  return {static_cast<int>(lane), g_session.load(), ts};
}

void lane_end(const LaneMark& mark, std::string name, std::string args) {
  if (mark.lane < 0) return;
  State& s = state();
  const double end_us = us_since_start(Clock::now());
  std::lock_guard<std::mutex> lock(s.mu);
  if (mark.session != g_session.load()) return;  // start() has cleared the lanes since
  s.lanes[static_cast<size_t>(mark.lane)] = false;
  if (!enabled()) return;
  s.events.push_back({std::move(name), "collective", 'X', mark.start_us, end_us - mark.start_us,
                      kCollectiveTrack + mark.lane, std::move(args)});
}

void set_range_hooks(PushHook push, PopHook pop) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.push = push;
  s.pop = pop;
}

}  // namespace nabla::trace

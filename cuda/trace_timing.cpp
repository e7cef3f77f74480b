// The tracer's CUDA device timer (trace_timing.h): CUDA events around kernels and copies, read back into
// the trace's "GPU <i>" tracks.
//
// Clock: the first mark of a trace session on a device records a base event on its compute stream and
// waits for it (the one synchronisation tracing adds), so the base happened at the host time read just
// after; every later mark is placed at base + cudaEventElapsedTime(base, mark). Marks are read back
// without blocking once more than kDrainAfter are pending (cudaEventQuery on the oldest), and all of them,
// waiting, at trace::json() / stop() and at exit (before the CUDA runtime's teardown). Events are pooled per
// device and reused; they are never destroyed (the pool lives until the process exits, when the driver tears
// the context down).
#include "cuda/trace_timing.h"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/runtime.h"
#include "engine/capture.h"
#include "engine/trace.h"

namespace nabla::cuda::trace_timing {
namespace {

constexpr size_t kDrainAfter = 512;
constexpr int kDevices = 64;

struct Mark {
  int device = 0;
  int track = trace::kComputeTrack;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, end = nullptr;
  uint64_t session = 0;
  std::string name, args;
};

struct Base {
  uint64_t session = 0;  // 0: not set (trace sessions count from 1)
  cudaEvent_t event = nullptr;
  double host_us = 0;
};

struct Timing {
  std::mutex mu;
  std::vector<cudaEvent_t> pool[kDevices];
  Base base[kDevices];
  std::unordered_map<int, Mark> open;
  std::deque<Mark> pending;
  int next_token = 0;
};

Timing& timing() {
  static Timing* t = new Timing;  // never destroyed: marks may arrive from other threads during exit
  return *t;
}

// An event of `device` (the caller holds the lock and has made `device` current); null on failure.
cudaEvent_t take_event(Timing& t, int device) {
  auto& pool = t.pool[device];
  if (!pool.empty()) {
    cudaEvent_t e = pool.back();
    pool.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  if (cudaEventCreate(&e) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return e;
}

void recycle(Timing& t, Mark& m) {
  if (m.start) t.pool[m.device].push_back(m.start);
  if (m.end) t.pool[m.device].push_back(m.end);
  m.start = m.end = nullptr;
}

// The mark's event in the trace (its end event has completed), then its events back to the pool.
void emit(Timing& t, Mark& m) {
  const Base& b = t.base[m.device];
  float from_base = 0, dur = 0;
  if (m.session == trace::session() && b.session == m.session &&
      cudaEventElapsedTime(&from_base, b.event, m.start) == cudaSuccess &&
      cudaEventElapsedTime(&dur, m.start, m.end) == cudaSuccess)
    trace::device_event(m.device, m.track, std::move(m.name),
                        m.track == trace::kComputeTrack ? "kernel"
                        : m.track == trace::kCopyTrack  ? "copy"
                                                        : "collective",
                        b.host_us + 1e3 * from_base, 1e3 * dur, std::move(m.args));
  recycle(t, m);
}

// Emits the oldest pending marks whose end has happened, without waiting.
void drain_ready(Timing& t) {
  while (!t.pending.empty()) {
    const cudaError_t e = cudaEventQuery(t.pending.front().end);
    if (e == cudaErrorNotReady) return;
    if (e != cudaSuccess) (void)cudaGetLastError();  // the mark is lost; the op that failed reports it
    emit(t, t.pending.front());
    t.pending.pop_front();
  }
}

int begin_kernel(Device d) { return begin_on_stream(d.index, stream(d.index)); }
void end_kernel(int token, const char* name, const std::string& args) { end(token, name, args); }

const trace::DeviceTimer g_timer{&begin_kernel, &end_kernel, &flush};

[[maybe_unused]] const bool g_registered = [] {
  trace::set_device_timer(DeviceType::cuda, &g_timer);
  return true;
}();

}  // namespace

int begin_on_stream(int device, cudaStream_t s, int track) {
  if (!trace::enabled() || capturing_cuda_graph() || device < 0 || device >= kDevices) return -1;
  // NABLA_TRACE writes the file from an atexit handler registered when the library loaded, so it runs
  // after the CUDA runtime's own exit teardown (registered later, at its first call), when events can no
  // longer be read. This handler, registered now (the runtime is up), runs before that teardown and turns
  // the pending marks into events while it still can.
  [[maybe_unused]] static const bool flush_at_exit = [] {
    std::atexit([] { flush(); });
    return true;
  }();
  Timing& t = timing();
  std::lock_guard<std::mutex> lock(t.mu);
  DeviceGuard g(device);
  const uint64_t session = trace::session();
  Base& b = t.base[device];
  if (b.session != session) {  // the session's first mark on this device: place its clock on the host's
    if (!b.event && cudaEventCreate(&b.event) != cudaSuccess) {
      (void)cudaGetLastError();
      return -1;
    }
    NABLA_CUDA_CHECK(cudaEventRecord(b.event, stream(device)));
    NABLA_CUDA_CHECK(cudaEventSynchronize(b.event));
    b.host_us = trace::now_us();
    b.session = session;
  }
  Mark m;
  m.device = device;
  m.stream = s;
  m.track = track != 0 ? track : s == stream(device) ? trace::kComputeTrack : trace::kCopyTrack;
  m.session = session;
  m.start = take_event(t, device);
  if (!m.start) return -1;
  if (cudaEventRecord(m.start, s) != cudaSuccess) {
    (void)cudaGetLastError();
    recycle(t, m);
    return -1;
  }
  const int token = t.next_token++;
  t.open.emplace(token, std::move(m));
  return token;
}

void end(int token, const char* name, const std::string& args) {
  if (token < 0) return;
  Timing& t = timing();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.open.find(token);
  if (it == t.open.end()) return;
  Mark m = std::move(it->second);
  t.open.erase(it);
  DeviceGuard g(m.device);
  m.end = take_event(t, m.device);
  if (!m.end || cudaEventRecord(m.end, m.stream) != cudaSuccess) {
    (void)cudaGetLastError();
    recycle(t, m);
    return;
  }
  m.name = name ? name : "?";
  m.args = args;
  t.pending.push_back(std::move(m));
  if (t.pending.size() > kDrainAfter) drain_ready(t);
}

void flush() {
  Timing& t = timing();
  std::lock_guard<std::mutex> lock(t.mu);
  for (Mark& m : t.pending) {
    if (cudaEventSynchronize(m.end) != cudaSuccess) (void)cudaGetLastError();
    emit(t, m);
  }
  t.pending.clear();
}

}  // namespace nabla::cuda::trace_timing

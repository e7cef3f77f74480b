// The tracer: a Chrome trace / Perfetto timeline of a run (chrome://tracing, https://ui.perfetto.dev).
//
//   NABLA_TRACE=run.json ./build/train_classifier ...      # the whole run, written at exit
//   trace::start();  step();  std::string json = trace::stop();            // from code (or stop("f.json"))
//   { trace::Scope s;  if (trace::enabled()) s.begin("my phase", "user"); ... }  // a range of your own
//
// What is in it (one "traceEvents" array; ts and dur in microseconds since start; pid = the process, tid =
// a small number per thread):
//   - every kernel call through ops/dispatch.h (cat "kernel", ph "X"), named as NABLA_PROFILE names it
//     ("conv2d", "batch_norm backward", "add", ...), args {"device", "shapes", "dtypes"}: the shape and
//     dtype of each tensor the kernel is given, inputs and outputs in the slot's argument order (a list
//     of tensors counts as "N tensors"). The times come from the profiler's
//     hook (engine/profile.h): tracing turns the profiler's recording on in its host mode (no device
//     synchronisation), so on a GPU an event is the host's time to launch the kernel. Run with
//     NABLA_PROFILE=1 as well to get each kernel's device time instead (synchronised around each kernel).
//   - the autograd backward (cat "autograd", ph B/E "backward") and inside it one range per backward node
//     (the op's name, args: the incoming gradient's shape and dtype), with its kernels inside;
//   - optimizer steps (cat "optim": "SGD step", "Adam step", ...) and data-loader waits (cat "data",
//     "data wait": the consumer waiting for a batch).
//   - on a GPU, the device's own time of each kernel and copy: a "GPU <i>" process in the trace (pid
//     kDevicePid + i) with a "compute stream" track (tid 1: every kernel, measured with a pair of CUDA
//     events around it on the compute stream) and a "copy stream" track (tid 2: runtime::copy_async on a
//     side stream, the input pipeline's host-to-device copies). The events are read back without
//     blocking while the run goes on and waited for at stop() / json(); the one synchronisation is at the
//     first GPU event of a session, to place the device's clock on the host's (cuda/trace_timing.cpp).
//     Nothing is recorded inside a CUDA graph capture.
//   - collectives (dist/communicator.cpp, cat "collective"): every all_reduce, all_reduce_async, broadcast,
//     all_gather, reduce_scatter, all_to_all and barrier of a dist::Communicator, whatever its backend (MPI,
//     NCCL, a world of one), as a complete event on host tracks of their own ("collectives", tid
//     kCollectiveTrack + lane: collectives in flight together, as the data-parallel buckets' async
//     all-reduces are, take separate lanes so no two events of a track overlap), args {"bytes", "dtype",
//     "shape", "world_size", "rank", "backend", ...}; a sync call's event is the call, an async one's runs
//     from the call to its Work's wait() (or a test() that finds it done). With NCCL the collective's device
//     time is on the GPU process's "comm stream" track (tid 3), from CUDA events on NCCL's stream.
// Under the CUDA build with NVTX headers, every B/E range is also an NVTX range (cuda/nvtx.cpp registers
// the hooks), so Nsight Systems shows the same names.
//
// A picture without a browser: python3 scripts/trace_to_svg.py run.json run.svg (--step K: one training
// step). Cost when off: each hook is one relaxed atomic load and a branch. Cost when on: docs/inspect.md
// (nabla_inspect trace-cost measures it).
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "engine/device.h"

namespace nabla::trace {

namespace detail {
inline std::atomic<bool> g_on{false};
}  // namespace detail

inline bool enabled() { return detail::g_on.load(std::memory_order_relaxed); }

// Clears the events and starts recording. `path`: where stop() (or the exit, for NABLA_TRACE) writes the
// JSON; empty keeps it in memory only.
void start(const std::string& path = "");
// Stops recording; writes the file named at start (or `path` when given); returns the JSON text.
std::string stop(const std::string& path = "");
// The events so far as JSON text (recording goes on).
std::string json();

// Ranges on the calling thread. `args`: a JSON object's text ("" for none). end() closes the innermost.
void begin(const std::string& name, const char* cat, const std::string& args = "");
void end();
// A complete event that started `seconds` ago and ends now (the kernel hook).
void complete(const char* name, const char* cat, double seconds, const std::string& args = "");

// An RAII range: default-constructed it does nothing; begin() opens it, the destructor closes it.
class Scope {
 public:
  Scope() = default;
  ~Scope() {
    if (open_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  void begin(const std::string& name, const char* cat, const std::string& args = "") {
    trace::begin(name, cat, args);
    open_ = true;
  }

 private:
  bool open_ = false;
};

// Args text for a tensor: {"shape": "[2, 3]", "dtype": "float32"} (the shape as shape_str prints it).
std::string shape_args(const std::string& shape, const char* dtype);

// Ranges mirrored to an external tool (NVTX); null to remove.
using PushHook = void (*)(const char* name);
using PopHook = void (*)();
void set_range_hooks(PushHook push, PopHook pop);

// ---- lanes: host tracks for events that may overlap (the collectives) ------------------------------------
// lane_begin() takes the lowest lane free in this session and notes the time; lane_end() adds the complete
// event (ph X, cat "collective") on tid kCollectiveTrack + lane of the host process and frees the lane.
// A mark from an earlier session (or taken while not tracing: lane -1) adds nothing.
inline constexpr int kCollectiveTrack = 1000;
struct LaneMark {
  int lane = -1;
  uint64_t session = 0;
  double start_us = 0;
};
LaneMark lane_begin();
void lane_end(const LaneMark& mark, std::string name, std::string args);

// ---- device time (a backend's timer; the CUDA backend registers one in cuda/trace_timing.cpp) ---------
// The op layer calls device_begin() before a kernel on a non-CPU device while tracing and device_end()
// after it; without a registered timer they do nothing. flush() is called by json() and stop() to wait
// for the marks recorded so far and turn them into events.
struct DeviceTimer {
  int (*begin)(Device d);  // a start mark on d's compute stream; a token (-1: not timed)
  void (*end)(int token, const char* name, const std::string& args);
  void (*flush)();
};
void set_device_timer(DeviceType type, const DeviceTimer* timer);  // null removes it
int device_begin(Device d);
void device_end(Device d, int token, const char* name, const std::string& args);

// For a backend's timer: the host's clock in the trace's microseconds, the session (start() counts up),
// and a complete event on track `stream_track` (1 compute, 2 copy) of device `device_index`.
inline constexpr int kDevicePid = 1000000;
inline constexpr int kComputeTrack = 1;
inline constexpr int kCopyTrack = 2;
inline constexpr int kCommTrack = 3;  // NCCL's stream (dist/nccl_backend.cpp)
double now_us();
uint64_t session();
void device_event(int device_index, int stream_track, std::string name, const char* cat, double ts_us,
                  double dur_us, std::string args);

}  // namespace nabla::trace

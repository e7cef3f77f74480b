// The tracer: a Chrome trace / Perfetto timeline of a run (chrome://tracing, https://ui.perfetto.dev).
//
//   NABLA_TRACE=run.json ./build/train_classifier ...      # the whole run, written at exit
//   trace::start();  step();  std::string json = trace::stop();            // from code (or stop("f.json"))
//   { trace::Scope s;  if (trace::enabled()) s.begin("my phase", "user"); ... }  // a range of your own
//
// What is in it (one "traceEvents" array; ts and dur in microseconds since start; pid = the process, tid =
// a small number per thread):
//   - every kernel call through ops/dispatch.h (cat "kernel", ph "X"), named as NABLA_PROFILE names it
//     ("conv2d", "batch_norm backward", "add", ...), args {"device"}. The times come from the profiler's
//     hook (engine/profile.h): tracing turns the profiler's recording on in its host mode (no device
//     synchronisation), so on a GPU an event is the host's time to launch the kernel. Run with
//     NABLA_PROFILE=1 as well to get each kernel's device time instead (synchronised around each kernel).
//   - the autograd backward (cat "autograd", ph B/E "backward") and inside it one range per backward node
//     (the op's name, args: the incoming gradient's shape and dtype), with its kernels inside;
//   - optimizer steps (cat "optim": "SGD step", "Adam step", ...) and data-loader waits (cat "data",
//     "data wait": the consumer waiting for a batch).
// Under the CUDA build with NVTX headers, every B/E range is also an NVTX range (cuda/nvtx.cpp registers
// the hooks), so Nsight Systems shows the same names.
//
// Cost when off: each hook is one relaxed atomic load and a branch. Cost when on: docs/inspect.md.
#pragma once
#include <atomic>
#include <string>

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

}  // namespace nabla::trace

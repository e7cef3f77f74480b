// The kernel profiler: where the time of a run goes, op by op.
//
//   NABLA_PROFILE=1 ./build/train_classifier --model resnet20 --device cuda ...
//   # at exit, on stderr: one row per op (the name the op layer gives its kernel call: "conv2d",
//   # "batch_norm backward", "add", ...) with calls, total and mean time and its share of the total
//
// Every kernel runs through a slot of ops/dispatch.h; when profiling is on, the slot's call wrapper times
// it. On a GPU the device is synchronised before and after each kernel, so a row is that kernel's own
// device time (plus a synchronisation, some microseconds): this slows the run down and hides the overlap of
// host and device, so read the rows as "where the device time goes", not as the run's speed. On the CPU
// the rows are the kernels' wall time. Host work outside kernels (the op layer's checks, allocation,
// autograd bookkeeping) is not in the table; the difference between the run's time and the table's total
// is that overhead.
//
// A kernel that calls another slot (a channels-last CPU pool copying its result into place, the CUDA 1x1
// convolution running the GEMM slot) is one row: only the outermost call on a thread is timed, so the rows
// add up to the kernel time without counting anything twice.
//
// NABLA_PROFILE=host times the host's side of each kernel call instead, without synchronising (see
// host_only() below). profile::set_enabled() turns it on or off from code; profile::report() returns the
// table so far and profile::reset() clears it.
#pragma once
#include <atomic>
#include <string>

#include "engine/device.h"

namespace nabla::profile {

namespace detail {
inline std::atomic<bool> g_enabled{false};  // set from NABLA_PROFILE when the library loads
inline std::atomic<bool> g_host{false};     // NABLA_PROFILE=host: time the host's side only (no syncs)
inline thread_local int g_depth = 0;        // kernel calls in progress on this thread (see below)
}  // namespace detail

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
// NABLA_PROFILE=host: no synchronisation around the kernels; a row is the host's time inside the kernel
// call (checks, descriptors, library calls, launches), which is where a small step's time goes when the
// host, not the GPU, is the bottleneck. The step's host time minus the table's total is the time outside
// kernel calls (autograd bookkeeping, allocation, op-layer checks).
inline bool host_only() { return detail::g_host.load(std::memory_order_relaxed); }
void set_enabled(bool on, bool host_only = false);

// Waits for everything queued on device `d` (the CUDA backend registers its own; the CPU needs none).
using SyncHook = void (*)(Device d);
void set_sync_hook(DeviceType type, SyncHook hook);
void synchronize(Device d);

// Adds one call of `op` on `d` that took `seconds`. While tracing, the kernel's trace event gets
// `trace_args` (a JSON object's text; empty: just the device).
void record(const char* op, Device d, double seconds, const std::string& trace_args = {});

// The table so far, sorted by total time (empty string when nothing was recorded), and a reset.
std::string report();
void reset();

}  // namespace nabla::profile

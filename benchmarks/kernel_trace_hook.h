// The two calls a benchmark makes around its timed steps for benchmarks/kernel_trace.cpp (loaded with
// LD_PRELOAD): found with dlsym, so they do nothing when the tracer is not loaded. The caller synchronises
// the device first, so that every kernel before the mark has finished.
#pragma once
#include <dlfcn.h>

namespace nabla::bench {

inline void kernel_trace_begin(int timed_steps) {
  using Fn = void (*)(int);
  if (auto f = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "nabla_kernel_trace_begin"))) f(timed_steps);
}

inline void kernel_trace_end() {
  using Fn = void (*)();
  if (auto f = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "nabla_kernel_trace_end"))) f();
}

}  // namespace nabla::bench

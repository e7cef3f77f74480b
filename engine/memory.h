// Memory statistics of a device's allocator, and the op that reached the peak.
//
//   memory::Stats s = memory::stats(Device::cpu());   // allocated, reserved, peak, allocations, mallocs
//   memory::reset_peak(Device::cpu());
//   std::cerr << memory::report();                     // every device with a backend, and the peak's op
//   NABLA_MEMORY=1 ./build/train_classifier ...        # the report on stderr at exit
//
// CUDA: the caching allocator's own figures (runtime::memory_stats): `allocated` what tensors hold now,
// `reserved` what is held from cudaMalloc (allocated + cached), `device_mallocs` the cudaMalloc calls.
// CPU: the CPU allocator (engine/storage.cpp) counts too: `allocated` the bytes tensors asked for and hold
// now, `reserved` the same rounded up to the 64-byte blocks aligned_alloc hands out (there is no cache: a
// freed block goes back to the C library), `allocations` = `device_mallocs` = aligned_alloc calls.
//
// The peak's op: while tracking is on (NABLA_MEMORY=1 or set_tracking(true)), after every kernel call the
// device's peak is compared with the last one seen; when it grew, the kernel's op (its NABLA_PROFILE name)
// is the peak's op. An op allocates its outputs just before its kernel runs, so this names the op whose
// outputs (or scratch) made the high-water mark. Tracking turns the profiler's host-mode recording on
// (engine/profile.h), so it costs what NABLA_PROFILE=host costs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/device.h"

namespace nabla::memory {

struct Stats {
  size_t allocated = 0;
  size_t reserved = 0;
  size_t peak_allocated = 0;
  uint64_t allocations = 0;
  uint64_t device_mallocs = 0;
};

Stats stats(Device device);
void reset_peak(Device device);
// The op that reached the peak since the last reset_peak ("" when none was seen while tracking).
std::string peak_op(Device device);
// One line per device: allocated, reserved, peak and its op, allocations, mallocs.
std::string report();

void set_tracking(bool on);
bool tracking();

namespace detail {
// The CPU allocator's counters (engine/storage.cpp).
Stats cpu_stats();
void cpu_reset_peak();
// Called by the profiler after each kernel while tracking.
void after_kernel(const char* op, Device device);
}  // namespace detail

}  // namespace nabla::memory

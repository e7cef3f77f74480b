// Memory statistics of a device's allocator, the op that reached the peak, and a snapshot of live tensors.
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
//
// Live tensors: while live tracking is on (set_live_tracking(true), NABLA_MEMORY=live, or
// NABLA_MEMORY_SNAPSHOT=file.json), every Storage allocated (engine/storage.cpp) is registered with its
// bytes, device, the dtype and shape of the tensor it was made for (Tensor::empty), and its creator, and
// unregistered when freed; snapshot() lists those alive, largest first, with totals per creator.
//   memory::Snapshot s = memory::snapshot();  std::cout << memory::snapshot_text(s);  // or snapshot_json
//   NABLA_MEMORY=live ./build/train_classifier ...            # report + snapshot on stderr at exit
//   NABLA_MEMORY_SNAPSHOT=live.json ./build/...              # the snapshot as JSON at exit
// The creator: a storage allocated while a kernel runs (scratch) belongs to that kernel's op (its
// NABLA_PROFILE name: "conv2d", "matmul backward", ...). One allocated outside any kernel (an op's output,
// allocated just before its kernel runs) starts as "user" and is claimed by the first kernel that is handed
// it as an output: a `Tensor&` (or `Tensor*`) parameter of the kernel slot's signature (ops/dispatch.h;
// inputs are `const Tensor&`). Factories therefore show as their kernel's op ("full" for zeros/ones, "randn",
// "arange"); a storage no kernel ever wrote (Tensor::empty filled by hand, a data loader's batch) stays
// "user". CreatorScope names the storages allocated in a scope outside kernels ("from_vector").
// Only storages allocated while tracking is on are listed, and only non-empty ones; a view shares its
// storage and is not listed again. Off, the cost is one relaxed load and a branch per Storage (and the
// profiler's unchanged check per kernel); on, a mutex and a hash-map update per allocation and free, and
// the profiler's host-mode hook per kernel (as NABLA_PROFILE=host).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/shape.h"

namespace nabla::memory {

struct Stats {
  size_t allocated = 0;
  size_t reserved = 0;
  size_t peak_allocated = 0;
  uint64_t allocations = 0;
  uint64_t device_mallocs = 0;
  // The share of `reserved` that no tensor uses: (reserved - allocated) / reserved, 0 when nothing is
  // reserved. On CUDA it is the caching allocator's free cached blocks (what PyTorch's memory_summary shows
  // as reserved minus allocated); on the CPU only the 64-byte rounding.
  double fragmentation() const {
    return reserved == 0 ? 0.0 : static_cast<double>(reserved - allocated) / static_cast<double>(reserved);
  }
};

Stats stats(Device device);
void reset_peak(Device device);
// The op that reached the peak since the last reset_peak ("" when none was seen while tracking).
std::string peak_op(Device device);
// One line per device: allocated, reserved, fragmentation, peak and its op, allocations, mallocs.
std::string report();

void set_tracking(bool on);
bool tracking();

// ---- live tensors ------------------------------------------------------------------------------------
namespace detail {
inline std::atomic<bool> g_live{false};
inline thread_local const char* t_kernel_op = nullptr;  // the op whose kernel runs on this thread (dispatch)
inline thread_local const char* t_label = nullptr;      // CreatorScope
}  // namespace detail

inline bool live_tracking() { return detail::g_live.load(std::memory_order_relaxed); }
// On: storages allocated from now on are registered (those already alive are not). Off: the registry is
// kept for the storages still alive, and emptied as they are freed; nothing new is registered.
void set_live_tracking(bool on);

struct LiveTensor {
  size_t nbytes = 0;
  DType dtype = DType::u8;  // of the tensor the storage was made for
  Shape shape;
  Device device;
  std::string creator;  // an op's name, a CreatorScope's label, or "user"
  uint64_t order = 0;   // allocation order among the registered storages
};
struct CreatorTotal {
  std::string creator;
  size_t nbytes = 0;
  int64_t count = 0;
};
struct Snapshot {
  std::vector<LiveTensor> tensors;     // largest first (then in allocation order)
  std::vector<CreatorTotal> creators;  // largest total first
  size_t total_bytes = 0;
};
Snapshot snapshot();
// A table (the `max_rows` largest storages, 0: all) and the totals per creator.
std::string snapshot_text(const Snapshot& s, size_t max_rows = 30);
// {"total_bytes", "count", "tensors": [{"bytes","dtype","shape","device","creator","order"}], "by_creator":
// [...]}
std::string snapshot_json(const Snapshot& s);

// Names the storages allocated on this thread outside kernels while it lives (nested: the innermost).
class CreatorScope {
 public:
  explicit CreatorScope(const char* label) : prev_(detail::t_label) { detail::t_label = label; }
  ~CreatorScope() { detail::t_label = prev_; }
  CreatorScope(const CreatorScope&) = delete;
  CreatorScope& operator=(const CreatorScope&) = delete;

 private:
  const char* prev_;
};

namespace detail {
// engine/storage.cpp and engine/tensor.cpp (only while live_tracking()):
void on_alloc(const void* storage, size_t nbytes, Device device);
void on_free(const void* storage);
void describe(const void* storage, const Shape& shape, DType dtype);
// ops/dispatch.h: a kernel of `op` is handed `storage` as an output.
void claim(const void* storage, const char* op);
}  // namespace detail

namespace detail {
// The CPU allocator's counters (engine/storage.cpp).
Stats cpu_stats();
void cpu_reset_peak();
// Called by the profiler after each kernel while tracking.
void after_kernel(const char* op, Device device);
}  // namespace detail

}  // namespace nabla::memory

#include "engine/storage.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "engine/error.h"
#include "engine/memory.h"

namespace nabla {
namespace {

// The CPU allocator's counters (engine/memory.h): requested bytes held now, their 64-byte rounding, the
// high-water mark of the first, and aligned_alloc calls.
std::atomic<size_t> g_cpu_allocated{0}, g_cpu_reserved{0}, g_cpu_peak{0};
std::atomic<uint64_t> g_cpu_allocations{0};

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device) override {
    if (nbytes == 0) return nullptr;
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    NABLA_CHECK(p != nullptr, "cpu allocator: out of memory asking for ", nbytes, " bytes");
    const size_t now = g_cpu_allocated.fetch_add(nbytes, std::memory_order_relaxed) + nbytes;
    g_cpu_reserved.fetch_add(rounded, std::memory_order_relaxed);
    g_cpu_allocations.fetch_add(1, std::memory_order_relaxed);
    size_t peak = g_cpu_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_cpu_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return p;
  }
  void deallocate(void* ptr, size_t nbytes, Device) override {
    if (!ptr) return;
    std::free(ptr);
    g_cpu_allocated.fetch_sub(nbytes, std::memory_order_relaxed);
    g_cpu_reserved.fetch_sub((nbytes + 63) / 64 * 64, std::memory_order_relaxed);
  }
};

Allocator* g_allocators[kNumDeviceTypes] = {nullptr, nullptr};

}  // namespace

Allocator& allocator_for(DeviceType type) {
  static CpuAllocator cpu;
  if (type == DeviceType::cpu && g_allocators[0] == nullptr) g_allocators[0] = &cpu;
  Allocator* a = g_allocators[static_cast<int>(type)];
  NABLA_CHECK(a != nullptr, "no allocator for device type ", device_type_name(type), ": this build has no ",
              device_type_name(type), " backend");
  return *a;
}

void set_allocator(DeviceType type, Allocator* allocator) {
  g_allocators[static_cast<int>(type)] = allocator;
}

memory::Stats memory::detail::cpu_stats() {
  memory::Stats s;
  s.allocated = g_cpu_allocated.load(std::memory_order_relaxed);
  s.reserved = g_cpu_reserved.load(std::memory_order_relaxed);
  s.peak_allocated = g_cpu_peak.load(std::memory_order_relaxed);
  s.allocations = g_cpu_allocations.load(std::memory_order_relaxed);
  s.device_mallocs = s.allocations;
  return s;
}

void memory::detail::cpu_reset_peak() { g_cpu_peak = g_cpu_allocated.load(); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  allocator_ = &allocator_for(device.type);
  data_ = allocator_->allocate(nbytes, device);
  if (memory::live_tracking() && nbytes > 0) {
    memory::detail::on_alloc(this, nbytes, device);
    live_ = true;
  }
}

Storage::~Storage() {
  if (live_) memory::detail::on_free(this);
  if (data_) allocator_->deallocate(data_, nbytes_, device_);
}

}  // namespace nabla

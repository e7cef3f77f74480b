#include "engine/storage.h"

#include <cstdlib>
#include <new>

#include "engine/error.h"

namespace nabla {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device) override {
    if (nbytes == 0) return nullptr;
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    NABLA_CHECK(p != nullptr, "cpu allocator: out of memory asking for ", nbytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t, Device) override { std::free(ptr); }
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

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  allocator_ = &allocator_for(device.type);
  data_ = allocator_->allocate(nbytes, device);
}

Storage::~Storage() {
  if (data_) allocator_->deallocate(data_, nbytes_, device_);
}

}  // namespace nabla

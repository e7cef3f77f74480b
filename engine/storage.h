// Storage: one block of memory on one device, shared by every tensor that views it.
//
// Memory comes from an Allocator, one per device type. The CPU allocator hands out 64-byte aligned
// blocks (cache lines, AVX-512). The CUDA backend installs a caching allocator of its own.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/device.h"

namespace nabla {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes, Device device) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, Device device) = 0;
};

// The allocator for a device type; throws nabla::Error when no backend installed one.
Allocator& allocator_for(DeviceType type);
void set_allocator(DeviceType type, Allocator* allocator);

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
  bool live_ = false;  // registered with memory::snapshot() (engine/memory.h)
};

}  // namespace nabla

// Dispatch: each kernel an op needs is a slot with one function pointer per device type.
//
//   // ops/elementwise.h (the op layer) declares the slot and its signature:
//   inline Kernel<UnaryKernelFn> unary_kernel{"unary"};
//   // ops/cpu/elementwise.cpp registers the CPU kernel; cuda/elementwise.cu the CUDA one:
//   NABLA_REGISTER_KERNEL(unary_kernel, cpu, unary_cpu);
//   // the op calls the kernel for its tensors' device; a missing one is an error naming op and backend:
//   unary_kernel.get(x.device(), "exp")(...);
//
// Slots are constant-initialised, so registration from static initialisers in any order is safe (the
// library is shared, so every backend's registrations run when it loads).
#pragma once
#include "engine/device.h"
#include "engine/error.h"

namespace nabla::ops {

template <class Fn>
struct Kernel {
  const char* name;
  Fn fns[kNumDeviceTypes] = {};

  constexpr explicit Kernel(const char* n) : name(n) {}
  bool set(DeviceType d, Fn f) {
    fns[static_cast<int>(d)] = f;
    return true;
  }
  bool has(Device d) const { return fns[static_cast<int>(d.type)] != nullptr; }
  // `op` is the user-facing op name for the error (defaults to the slot name).
  Fn get(Device d, const char* op = nullptr) const {
    Fn f = fns[static_cast<int>(d.type)];
    NABLA_CHECK(f != nullptr, op ? op : name, ": no ", device_type_name(d.type), " kernel (kernel slot '",
                name, "'); this build's ", device_type_name(d.type), " backend does not implement it");
    return f;
  }
};

}  // namespace nabla::ops

#define NABLA_REGISTER_KERNEL_CAT2(a, b) a##b
#define NABLA_REGISTER_KERNEL_CAT(a, b) NABLA_REGISTER_KERNEL_CAT2(a, b)
#define NABLA_REGISTER_KERNEL(slot, device, fn)                                               \
  [[maybe_unused]] static const bool NABLA_REGISTER_KERNEL_CAT(nabla_registered_, __LINE__) = \
      (::nabla::ops::slot).set(::nabla::DeviceType::device, &(fn))

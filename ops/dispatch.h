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
//
// Every slot has a row in the kernel-slot table (ops/kernel_table.h: its header, kernel files and whether
// each backend must register it). Each registration is also recorded (kernel_registrations(): slot, device,
// file), so tests/ops/test_kernel_slots.cpp can hold the table to what the backends register.
//
// get() returns a KernelCall: it calls the function and, when the profiler is on (NABLA_PROFILE=1,
// engine/profile.h), times it under the op's name. When it is off the cost is one relaxed atomic load.
// While tracing (engine/trace.h, which turns the profiler on) the call also gives the trace the shapes and
// dtypes of the tensors it is passed, and on a GPU brackets the kernel with the backend's device timer
// (CUDA events on the compute stream) through trace::device_begin / device_end: no cuda/ header here.
// While live tensors are tracked (engine/memory.h, which turns the profiler on too), the call names its
// outputs' storages after the op (the slot's `Tensor&` / `Tensor*` parameters: inputs are `const Tensor&`)
// and marks the op as running on this thread, so scratch allocated inside the kernel is the op's too.
#pragma once
#include <chrono>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/capture.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/memory.h"
#include "engine/profile.h"
#include "engine/tensor.h"
#include "engine/trace.h"

namespace nabla::ops {

namespace detail {
template <class T>
struct IsListOfStructs : std::false_type {};
template <class T, class A>
struct IsListOfStructs<std::vector<T, A>> : std::bool_constant<!std::is_arithmetic_v<T>> {};
template <class T>
inline constexpr bool kIsListOfStructs = IsListOfStructs<T>::value;

// The trace's args of a kernel call: {"device": "cuda", "shapes": ["[16,64]", ...], "dtypes": ["f32", ...]}
// for the Tensor arguments in order; a std::vector argument is "N tensors" (or "N items") in both.
struct KernelTraceArgs {
  std::string shapes, dtypes;
  void add(const std::string& shape, const char* dtype) {
    if (!shapes.empty()) {
      shapes += ',';
      dtypes += ',';
    }
    shapes += '"' + shape + '"';
    dtypes += '"' + std::string(dtype) + '"';
  }
  template <class A>
  void visit(const A& a) {
    using T = std::decay_t<A>;
    if constexpr (std::is_same_v<T, Tensor>) {
      if (a.defined())
        add(shape_str(a.shape()), dtype_name(a.dtype()));
      else
        add("undefined", "-");
    } else if constexpr (std::is_same_v<T, std::vector<Tensor>>) {
      add(std::to_string(a.size()) + " tensors", "list");
    } else if constexpr (kIsListOfStructs<T>) {
      add(std::to_string(a.size()) + " items", "list");
    }
  }
  std::string json(Device d) const {
    return std::string("{\"device\":\"") + device_type_name(d.type) + "\",\"shapes\":[" + shapes +
           "],\"dtypes\":[" + dtypes + "]}";
  }
};

// Live-tensor tracking: a kernel's output parameters (`Tensor&`, `Tensor*`) name their storage's creator.
template <class Param, class A>
void claim_output(const char* op, const A& a) {
  if constexpr (std::is_same_v<Param, Tensor&>) {
    if (a.defined()) memory::detail::claim(a.storage().get(), op);
  } else if constexpr (std::is_same_v<Param, Tensor*>) {
    if (a && a->defined()) memory::detail::claim(a->storage().get(), op);
  }
}
}  // namespace detail

template <class Fn>
struct KernelCall;

// A kernel function bound to the op name and device it is called for.
template <class R, class... Args>
struct KernelCall<R (*)(Args...)> {
  using Fn = R (*)(Args...);
  Fn fn;
  const char* op;
  Device device;

  R operator()(Args... args) const {
    // Nested calls (a kernel calling another slot) belong to the outer call's row.
    if (!profile::enabled() || profile::detail::g_depth > 0) return fn(std::forward<Args>(args)...);
    const bool sync = !profile::host_only();  // NABLA_PROFILE=host: the host's time only
    if (sync) profile::synchronize(device);   // earlier queued work is not this kernel's
    std::string trace_args;                   // read before the call: fn may move from its arguments
    int device_mark = -1;
    if (trace::enabled()) {
      detail::KernelTraceArgs ta;
      (ta.visit(args), ...);
      trace_args = ta.json(device);
      if (device.type != DeviceType::cpu && !capturing_cuda_graph())
        device_mark = trace::device_begin(device);
    }
    const bool live = memory::live_tracking();
    const char* outer_op = memory::detail::t_kernel_op;
    if (live) {
      (detail::claim_output<Args>(op, args), ...);
      memory::detail::t_kernel_op = op;
    }
    const auto t0 = std::chrono::steady_clock::now();
    ++profile::detail::g_depth;
    struct Done {  // records on the way out (also when R is void, or fn throws)
      const KernelCall& k;
      std::chrono::steady_clock::time_point t0;
      bool sync;
      const std::string& trace_args;
      int device_mark;
      bool live;
      const char* outer_op;
      ~Done() {
        if (live) memory::detail::t_kernel_op = outer_op;
        --profile::detail::g_depth;
        if (device_mark >= 0) trace::device_end(k.device, device_mark, k.op, trace_args);
        if (sync) profile::synchronize(k.device);
        profile::record(k.op, k.device,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                        trace_args);
      }
    } done{*this, t0, sync, trace_args, device_mark, live, outer_op};
    return fn(std::forward<Args>(args)...);
  }
  operator Fn() const { return fn; }  // NOLINT: call sites may keep the plain function pointer
};

// One NABLA_REGISTER_KERNEL: which slot (its name and address), for which device, from which source file.
struct KernelRegistration {
  const char* slot;
  const void* address;  // two slots that share a name are two addresses
  DeviceType device;
  const char* file;  // __FILE__ of the registration
};

// Every registration so far, in the order the static initialisers ran.
inline std::vector<KernelRegistration>& kernel_registrations() {
  static std::vector<KernelRegistration> registrations;
  return registrations;
}

template <class Fn>
struct Kernel {
  const char* name;
  Fn fns[kNumDeviceTypes] = {};

  constexpr explicit Kernel(const char* n) : name(n) {}
  bool set(DeviceType d, Fn f, const char* file = "") {
    fns[static_cast<int>(d)] = f;
    kernel_registrations().push_back({name, this, d, file});
    return true;
  }
  bool has(Device d) const { return fns[static_cast<int>(d.type)] != nullptr; }
  // `op` is the user-facing op name for the error (defaults to the slot name).
  KernelCall<Fn> get(Device d, const char* op = nullptr) const {
    Fn f = fns[static_cast<int>(d.type)];
    NABLA_CHECK(f != nullptr, op ? op : name, ": no ", device_type_name(d.type), " kernel (kernel slot '",
                name, "'); this build's ", device_type_name(d.type), " backend does not implement it");
    // A CPU kernel inside a CUDA graph capture would run once, now, and never on replay (engine/capture.h).
    NABLA_CHECK(d.type != DeviceType::cpu || !capturing_cuda_graph(), op ? op : name,
                ": a CPU kernel inside a CUDA graph capture (it would run once, at capture, and not on "
                "replay); keep the captured function's tensors on the GPU");
    return {f, op ? op : name, d};
  }
};

}  // namespace nabla::ops

#define NABLA_REGISTER_KERNEL_CAT2(a, b) a##b
#define NABLA_REGISTER_KERNEL_CAT(a, b) NABLA_REGISTER_KERNEL_CAT2(a, b)
#define NABLA_REGISTER_KERNEL(slot, device, fn)                                               \
  [[maybe_unused]] static const bool NABLA_REGISTER_KERNEL_CAT(nabla_registered_, __LINE__) = \
      (::nabla::ops::slot).set(::nabla::DeviceType::device, &(fn), __FILE__)

// The device runtime: what code above ops/ may ask of a device without knowing which backend runs it.
//
//   runtime::require_device(dev, "--device");          // "no CUDA backend in this build" / "2 devices found"
//   runtime::SideStream copies(dev);                    // a second stream, beside the compute stream
//   runtime::Event done(dev);
//   runtime::copy_async(dst, dev, pinned.data(), Device::cpu(), n, copies.get());
//   done.record(copies.get());
//   done.wait(runtime::compute_stream(dev));            // the device waits for the copy, not the host
//   runtime::Graph g(dev);  g.capture([&] { step(); });  for (...) g.replay();
//   runtime::memory_stats(dev).peak_allocated;
//
// Layering: data/, dist/, apps/ and benchmarks include this header, never cuda/ (the design's rule that
// nothing above ops/ knows the backend). A backend implements `Backend` and registers it at static-init
// time, as kernels register into ops' slots (ops/dispatch.h):
//
//   // cuda/device_runtime.cpp
//   NABLA_REGISTER_RUNTIME(cuda, g_cuda_runtime);
//
// The table of backends is constant-initialised (null pointers), so registration order does not matter.
// What each device type answers:
//   - cpu: always there, one device. Streams are null handles, events record a host time stamp, copies are
//     memcpy, a "pinned" buffer is ordinary aligned host memory, synchronize() returns at once, memory
//     statistics are zero (the CPU allocator keeps none) and graphs are refused.
//   - cuda: the registered backend (cuda/device_runtime.cpp): one compute stream per device (the stream
//     every kernel runs on), non-blocking side streams, CUDA events, cudaHostAlloc'd page-locked buffers,
//     CUDA graphs (cuda/graph.h has the rules of capture), the caching allocator's statistics. In a build
//     without CUDA, available() is false, device_count() is 0 and everything else throws nabla::Error
//     "... no cuda backend in this build (configure with -DNABLA_CUDA=ON)".
//
// Opaque handles: a Stream carries the backend's own handle (a cudaStream_t for CUDA) as a void*; code
// above ops/ only passes it back to this interface.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "engine/device.h"

namespace nabla::runtime {

// ---- devices ------------------------------------------------------------------------------------------
bool has_backend(DeviceType type);  // this build registered a runtime for the type (cpu: always)
bool available(DeviceType type);    // a device of the type can be used now (a GPU and a working driver)
int device_count(DeviceType type);  // cpu: 1; without a backend or device: 0
int current_device(DeviceType type);
void set_device(Device device);  // the calling thread's current device of its type
// Throws unless `device` exists, naming `who` (an option, a class): "--device cuda:3: 2 cuda devices
// found" or "--device cuda: no cuda backend in this build (configure with -DNABLA_CUDA=ON)".
void require_device(Device device, const char* who);

// Makes `device` current for the scope, then restores the previous one. Nothing for the CPU.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  Device device_;
  int prev_ = -1;
};

// Waits (on the host) for everything queued on the device's compute stream; refuses inside a graph capture.
void synchronize(Device device);

// ---- streams -------------------------------------------------------------------------------------------
struct Stream {
  Device device;
  void* handle = nullptr;  // the backend's stream (cudaStream_t); null on the CPU
};
// The stream every kernel of `device` runs on.
Stream compute_stream(Device device);

// A stream of its own on `device` for copies beside the compute (non-blocking: it does not wait for the
// compute stream unless told to with an Event). Drained and destroyed with the object.
class SideStream {
 public:
  explicit SideStream(Device device);
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;
  Stream get() const { return {device_, handle_}; }
  void synchronize() const;  // the host waits for the stream's work

 private:
  Device device_;
  void* handle_ = nullptr;
};

// ---- events --------------------------------------------------------------------------------------------
// A marker in a stream: record() it, then make another stream wait() for it (no host wait), synchronize()
// the host with it, or time the work between two events (elapsed_ms, timing enabled).
class Event {
 public:
  explicit Event(Device device);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record();                               // on the device's compute stream
  void record(Stream stream);                  // on `stream` (of the same device)
  void wait(Stream stream) const;              // `stream` waits for the recorded work
  void synchronize() const;                    // the host waits for the recorded work
  bool done() const;                           // non-blocking: the recorded work has completed
  float elapsed_ms(const Event& later) const;  // both recorded and completed
  Device device() const { return device_; }

 private:
  Device device_;
  void* handle_ = nullptr;  // the backend's event; null on the CPU
  double host_ms_ = 0;      // the CPU's time stamp
};

// ---- copies --------------------------------------------------------------------------------------------
// Queues a copy of `nbytes` on `stream` (asynchronous from page-locked host memory; from pageable memory
// the backend may wait). Host to device, device to host or device to device; on the CPU, memcpy now.
void copy_async(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                Stream stream);

// ---- page-locked host memory ---------------------------------------------------------------------------
// A host block the device's DMA engine reads directly (cudaHostAlloc for CUDA), so copies from it run
// asynchronously; slow to allocate, so kept and reused: reserve() grows it (rounded up to 1 MiB; contents
// are lost when it grows). For DeviceType::cpu, plain aligned host memory. Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;  // for the CUDA backend, allocated on the first reserve()
  explicit PinnedBuffer(DeviceType type, size_t nbytes = 0);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& o) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void reserve(size_t nbytes);  // the caller knows no copy still reads the old block
  void* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  void release();
  DeviceType type_ = DeviceType::cuda;
  void* data_ = nullptr;
  size_t capacity_ = 0;
};
// Whether `p` is page-locked memory a registered backend knows (false without one).
bool is_pinned(const void* p);

// ---- graphs --------------------------------------------------------------------------------------------
// Record the device work of a function once, replay it for the cost of one launch (the rules of what may
// be captured: cuda/graph.h and docs/cuda_graphs.md). Graph() captures on the CUDA device that is current
// when capture() is called; Graph(dev) on `dev`. The CPU has no graphs: capture() throws.
class Graph {
 public:
  struct Impl {  // what a backend provides (cuda/device_runtime.cpp)
    virtual ~Impl() = default;
    virtual void capture(const std::function<void()>& fn) = 0;
    virtual void replay() = 0;
    virtual void reset() = 0;
    virtual bool captured() const = 0;
    virtual size_t num_nodes() const = 0;
  };
  Graph();
  explicit Graph(Device device);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  void capture(const std::function<void()>& fn);  // throws if it already holds a capture
  void replay();                                  // queues one run on the compute stream
  void reset();                                   // drops the capture and its memory pool
  bool captured() const;
  size_t num_nodes() const;  // kernels, copies and memsets in the graph

 private:
  DeviceType type_ = DeviceType::cuda;
  int index_ = -1;  // -1: the device current at capture()
  std::unique_ptr<Impl> impl_;
};

// ---- memory --------------------------------------------------------------------------------------------
struct MemoryStats {
  size_t allocated = 0;         // bytes handed out to tensors now
  size_t reserved = 0;          // bytes held from the device (allocated + cached)
  size_t peak_allocated = 0;    // high-water mark of `allocated` since the last reset_peak_memory_stats
  uint64_t allocations = 0;     // requests served
  uint64_t device_mallocs = 0;  // requests that needed the device's own allocator (cudaMalloc)
};
MemoryStats memory_stats(Device device);  // all zero on the CPU
void reset_peak_memory_stats(Device device);
void empty_cache(DeviceType type);  // cached blocks go back to the driver

// ---- math settings -------------------------------------------------------------------------------------
// TF32 tensor-core math for f32 GEMM and convolution (the CUDA backend's default; NABLA_TF32=0 turns it
// off). Without a CUDA backend tf32_enabled() is false and set_tf32_enabled() does nothing.
bool tf32_enabled();
void set_tf32_enabled(bool on);

// ---- what a backend implements -------------------------------------------------------------------------
// Device indices are already checked by the caller (0 <= index < device_count). Handles are the backend's
// own objects as void*. None of these is called for DeviceType::cpu.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual bool available() = 0;
  virtual int device_count() = 0;
  virtual int current_device() = 0;
  virtual void set_device(int index) = 0;
  virtual void synchronize(int index) = 0;

  virtual void* compute_stream(int index) = 0;
  virtual void* create_stream(int index) = 0;
  virtual void destroy_stream(int index, void* stream) noexcept = 0;  // after the stream drained
  virtual void synchronize_stream(int index, void* stream) = 0;

  virtual void* create_event(int index) = 0;
  virtual void destroy_event(int index, void* event) noexcept = 0;
  virtual void record_event(int index, void* event, void* stream) = 0;
  virtual void wait_event(int index, void* event, void* stream) = 0;
  virtual void synchronize_event(int index, void* event) = 0;
  virtual bool event_done(int index, void* event) = 0;
  virtual float elapsed_ms(void* start, void* end) = 0;

  virtual void copy_async(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                          Stream stream) = 0;
  virtual void* allocate_pinned(size_t nbytes) = 0;
  virtual void free_pinned(void* p) noexcept = 0;
  virtual bool is_pinned(const void* p) = 0;

  virtual std::unique_ptr<Graph::Impl> make_graph(int index) = 0;  // index -1: the current device's

  virtual MemoryStats memory_stats(int index) = 0;
  virtual void reset_peak_memory_stats(int index) = 0;
  virtual void empty_cache() = 0;

  virtual bool tf32_enabled() = 0;
  virtual void set_tf32_enabled(bool on) = 0;
};

// Installs `backend` for `type` (from a static initialiser; the object must live as long as the process).
bool register_backend(DeviceType type, Backend* backend);

}  // namespace nabla::runtime

#define NABLA_REGISTER_RUNTIME_CAT2(a, b) a##b
#define NABLA_REGISTER_RUNTIME_CAT(a, b) NABLA_REGISTER_RUNTIME_CAT2(a, b)
#define NABLA_REGISTER_RUNTIME(device, backend)                                                        \
  [[maybe_unused]] static const bool NABLA_REGISTER_RUNTIME_CAT(nabla_runtime_registered_, __LINE__) = \
      ::nabla::runtime::register_backend(::nabla::DeviceType::device, &(backend))

// The CUDA backend's implementation of the device runtime (engine/device_runtime.h), registered when the
// library loads. Each call sets the device it is about and then uses the backend's own pieces: the compute
// stream and caching allocator (runtime.h), events (runtime.h), side streams and page-locked memory
// (pinned.h), graphs (graph.h). Handles handed out as void*: events are cuda::Event*, streams (the compute
// stream and side streams alike) are the raw cudaStream_t, so that any stream handle can be passed to
// record_event, wait_event and copy_async.
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "cuda/graph.h"
#include "cuda/pinned.h"
#include "cuda/runtime.h"
#include "cuda/trace_timing.h"
#include "engine/capture.h"
#include "engine/device_runtime.h"
#include "engine/error.h"
#include "engine/trace.h"

namespace nabla::cuda {
namespace {

class CudaGraph final : public runtime::Graph::Impl {
 public:
  explicit CudaGraph(int index) : index_(index) {}
  void capture(const std::function<void()>& fn) override {
    if (index_ < 0) return graph_.capture(fn);
    DeviceGuard g(index_);
    graph_.capture(fn);
  }
  void replay() override { graph_.replay(); }  // on the device it captured on
  void reset() override { graph_.reset(); }
  bool captured() const override { return graph_.captured(); }
  size_t num_nodes() const override { return graph_.num_nodes(); }

 private:
  int index_;
  Graph graph_;
};

Event* event(void* e) { return static_cast<Event*>(e); }

class CudaRuntime final : public runtime::Backend {
 public:
  bool available() override { return cuda::available(); }
  int device_count() override { return cuda::device_count(); }
  int current_device() override { return cuda::current_device(); }
  void set_device(int index) override { cuda::set_device(index); }
  void synchronize(int index) override {
    DeviceGuard g(index);
    cuda::synchronize();
  }

  void* compute_stream(int index) override { return stream(index); }
  void* create_stream(int index) override {  // non-blocking: it does not wait for the legacy default stream
    DeviceGuard g(index);
    cudaStream_t s = nullptr;
    NABLA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }
  void destroy_stream(int index, void* s) noexcept override {  // drains it first; raw calls: must not throw
    int prev = 0;
    cudaGetDevice(&prev);
    if (prev != index) cudaSetDevice(index);
    cudaStreamSynchronize(static_cast<cudaStream_t>(s));
    cudaStreamDestroy(static_cast<cudaStream_t>(s));
    if (prev != index) cudaSetDevice(prev);
  }
  void synchronize_stream(int, void* s) override {
    NABLA_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(s)));
  }

  void* create_event(int index) override {
    DeviceGuard g(index);
    return new Event();
  }
  void destroy_event(int, void* e) noexcept override { delete event(e); }
  void record_event(int, void* e, void* s) override { event(e)->record(static_cast<cudaStream_t>(s)); }
  void wait_event(int, void* e, void* s) override { event(e)->wait(static_cast<cudaStream_t>(s)); }
  void synchronize_event(int, void* e) override { event(e)->synchronize(); }
  bool event_done(int, void* e) override { return event(e)->done(); }
  float elapsed_ms(void* start, void* end) override { return event(start)->elapsed_ms(*event(end)); }

  void copy_async(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                  runtime::Stream s) override {
    NABLA_CHECK(!capturing_cuda_graph() || (dst_device.is_cuda() && src_device.is_cuda()),
                "runtime::copy_async ", src_device, " -> ", dst_device,
                " inside a CUDA graph capture: the host buffer would be read or written once, at capture");
    DeviceGuard g(s.device.index);
    const auto stream = static_cast<cudaStream_t>(s.handle);
    // While tracing: the copy's device time on its stream's track (trace_timing.h); -1 otherwise.
    const int mark = trace::enabled() ? trace_timing::begin_on_stream(s.device.index, stream) : -1;
    NABLA_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream));
    if (mark >= 0)
      trace_timing::end(mark,
                        src_device.is_cuda() ? (dst_device.is_cuda() ? "copy d2d" : "copy d2h") : "copy h2d",
                        "{\"bytes\":" + std::to_string(nbytes) + "}");
  }
  void* allocate_pinned(size_t nbytes) override {
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, nbytes, cudaHostAllocPortable);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail("pinned memory: cudaHostAlloc of ", nbytes, " bytes failed: ", cudaGetErrorString(e));
    }
    return p;
  }
  void free_pinned(void* p) noexcept override { cudaFreeHost(p); }
  bool is_pinned(const void* p) override { return cuda::is_pinned(p); }

  std::unique_ptr<runtime::Graph::Impl> make_graph(int index) override {
    return std::make_unique<CudaGraph>(index);
  }

  runtime::MemoryStats memory_stats(int index) override {
    const AllocatorStats s = allocator_stats(index);
    return {.allocated = s.allocated,
            .reserved = s.reserved,
            .peak_allocated = s.peak_allocated,
            .allocations = s.allocations,
            .device_mallocs = s.cuda_mallocs};
  }
  void reset_peak_memory_stats(int index) override { reset_peak_stats(index); }
  void empty_cache() override { cuda::empty_cache(); }

  bool tf32_enabled() override { return cuda::tf32_enabled(); }
  void set_tf32_enabled(bool on) override { cuda::set_tf32_enabled(on); }
};

CudaRuntime g_cuda_runtime;  // constant-initialised (no state): usable before this file's initialisers
NABLA_REGISTER_RUNTIME(cuda, g_cuda_runtime);

}  // namespace
}  // namespace nabla::cuda

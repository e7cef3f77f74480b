#include "cuda/graph.h"

#include "cuda/runtime.h"
#include "engine/capture.h"
#include "engine/error.h"
#include "engine/profile.h"

namespace nabla::cuda {

Graph::~Graph() {
  try {
    reset();
  } catch (...) {  // a destructor must not throw; the driver's teardown frees what is left
  }
}

void Graph::reset() {
  if (device_ < 0) return;
  DeviceGuard g(device_);
  // A replay may still be running: let it finish before its graph and memory go.
  cudaStreamSynchronize(current_stream());
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
  exec_ = nullptr;
  graph_ = nullptr;
  nodes_ = 0;
  if (pool_) graph_detail::release_graph_pool(device_, pool_);
  pool_ = 0;
  device_ = -1;
}

void Graph::capture(const std::function<void()>& fn) {
  NABLA_CHECK(!captured(), "cuda graph: capture() on a Graph that already holds a capture; reset() it first");
  NABLA_CHECK(!capturing_cuda_graph(), "cuda graph: capture() inside another capture (captures do not nest)");
  NABLA_CHECK(!profile::enabled() || profile::host_only(),
              "cuda graph: capture() with the profiler on (NABLA_PROFILE=1 synchronises around every kernel, "
              "which a capture cannot do); profile the eager step instead, or use NABLA_PROFILE=host");
  const int device = current_device();
  // Work queued earlier (and its asynchronous checks) is settled before recording starts.
  synchronize();
  const cudaStream_t stream = current_stream();
  device_ = device;
  pool_ = graph_detail::begin_allocator_capture(device);
  // Undo everything the capture set up: the error (from fn or from CUDA) propagates to the caller.
  auto abandon = [&] {
    set_capturing_cuda_graph(false);
    graph_detail::end_allocator_capture(device);
    cudaGraph_t partial = nullptr;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone)
      cudaStreamEndCapture(stream, &partial);
    if (partial) cudaGraphDestroy(partial);
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last one for the next launch
    graph_detail::release_graph_pool(device, pool_);
    pool_ = 0;
    device_ = -1;
  };
  const cudaError_t begin = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
  if (begin != cudaSuccess) {
    abandon();
    fail("cuda graph: cudaStreamBeginCapture failed: ", cudaGetErrorString(begin));
  }
  set_capturing_cuda_graph(true);
  try {
    fn();
  } catch (...) {
    abandon();
    throw;
  }
  set_capturing_cuda_graph(false);
  graph_detail::end_allocator_capture(device);
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (end != cudaSuccess || !graph) {
    if (graph) cudaGraphDestroy(graph);
    abandon();
    fail("cuda graph: the capture was invalidated (", cudaGetErrorString(end),
         "): the captured function did something a graph cannot record, such as work on another stream "
         "or a synchronisation by a library");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  if (inst != cudaSuccess) {
    cudaGraphDestroy(graph);
    abandon();
    fail("cuda graph: cudaGraphInstantiate failed: ", cudaGetErrorString(inst));
  }
  size_t nodes = 0;
  NABLA_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
  graph_ = graph;
  exec_ = exec;
  nodes_ = nodes;
  // Upload now, so that the first replay costs what the others do.
  NABLA_CUDA_CHECK(cudaGraphUpload(exec_, stream));
}

void Graph::replay() {
  NABLA_CHECK(captured(), "cuda graph: replay() before capture()");
  NABLA_CHECK(!capturing_cuda_graph(), "cuda graph: replay() inside a capture");
  DeviceGuard g(device_);
  NABLA_CUDA_CHECK(cudaGraphLaunch(exec_, current_stream()));
  // The graph may hold asynchronous check kernels (index ranges): look at their record at the next wait.
  async_check_record(device_);
  if (sync_every_op()) synchronize();
}

}  // namespace nabla::cuda

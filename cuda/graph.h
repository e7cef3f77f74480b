// CUDA graphs: record the kernels of a function once, then replay them with one launch.
//
//   cuda::Graph graph;
//   for (int i = 0; i < 3; ++i) step();        // eager warm-up: cuDNN's algorithm search, optimizer state,
//                                              // the allocator's first cudaMallocs
//   graph.capture([&] { step(); });            // records one step; nothing runs yet
//   for (...) { graph.replay(); }              // each replay = one step, for the cost of one launch
//
// Why: a small step (ResNet-18 at 32², batch 512) queues about 600 kernels of a few microseconds each, and
// the host's time to issue them (autograd bookkeeping, dispatch, descriptor set-up) is longer than the
// device's time to run them. A replay skips the host side entirely: the launches are one graph launch and
// the device runs the kernels back to back.
//
// What a replay does: the same kernels, with the same arguments, on the same addresses as at capture. So:
//   - inputs read by the graph are the tensors it read at capture: write new data into them in place
//     (copy_ into the captured input batch) and keep them alive as long as the graph is replayed;
//   - outputs are the tensors made during the capture (the loss, the parameters' gradients): each replay
//     rewrites their memory, so read them after replay() (item() synchronises, as always);
//   - host values given to kernels are frozen: a learning rate changed after capture is not seen (capture
//     again), and optimizers whose maths use a host-side per-step count (Adam, AdamW, LAMB: the bias
//     correction) refuse to be captured. SGD and LARS can be, after one eager step (momentum buffers);
//   - the host-side state of the captured code (an optimizer's step count) advances once, at capture.
// Work that cannot be replayed is refused during the capture with an error naming it (engine/capture.h):
// CPU kernels, copies between host and device, item(), synchronisation, random numbers on the device.
// A failed capture leaves the engine usable (the error propagates; the partial graph is discarded).
//
// Memory: the capture allocates from a private pool of the caching allocator that nothing else uses, and
// keeps it until the Graph is destroyed (cuda/runtime.cpp explains the rules); the pool's size is about one
// step's peak memory. Capture runs on the current device's compute stream, in relaxed capture mode (the
// allocator may cudaMalloc during the capture); other threads' work is not captured.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace nabla::cuda {

class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records the CUDA work `fn` queues on the current device's compute stream. Throws (and keeps no graph)
  // if `fn` throws or does something a graph cannot replay; throws if this Graph already holds a capture.
  void capture(const std::function<void()>& fn);
  // Queues one run of the recorded work on the compute stream (asynchronous, like any kernel launch).
  void replay();
  // Drops the recorded graph and gives its memory pool back to the shared cache.
  void reset();

  bool captured() const { return exec_ != nullptr; }
  size_t num_nodes() const { return nodes_; }  // kernels, copies and memsets in the graph
  int device() const { return device_; }

 private:
  int device_ = -1;
  uint64_t pool_ = 0;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  size_t nodes_ = 0;
};

}  // namespace nabla::cuda

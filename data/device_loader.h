// DevicePrefetcher: a DataLoader's batches delivered on a device, the host-to-device copy hidden behind
// the compute of the previous step.
//
// For a CUDA device the batches flow through a ring of `depth` page-locked host slots
// (runtime::PinnedBuffer, engine/device_runtime.h):
//
//   stager thread:  slot free (its last copy's event has completed) -> loader.next() -> memcpy the batch
//                   into the slot's pinned buffers -> staged queue
//   next():         for the staged slot of batch k: allocate the device tensors, let the copy stream wait
//                   for the compute stream's work queued so far (the caching allocator may have handed out
//                   blocks that this work still reads), cudaMemcpyAsync on the copy stream, record the
//                   slot's `copied` event; then the same for batch k + 1 when it is already staged (the
//                   look-ahead: its copy runs while step k computes); make the compute stream wait for
//                   batch k's event (the GPU waits, not the host) and hand the slot back to the stager.
//
// So a pinned buffer is rewritten only after the copy that read it has completed (the stager waits on the
// event), a device buffer is written only after the compute work that may still use its block, and the
// compute stream reads a batch only after its copy. The host never waits for a copy except when the
// stager reuses a slot, long after that copy was queued.
//
// Batches and their order are exactly the loader's (a pure function of seed, epoch and batch index), so a
// run with the prefetcher and one without see the same data. position() is the position after the last
// batch handed out (not the loader's, which runs ahead); set_position() restarts the pipeline there, so
// checkpoints resume exactly. An exception in the loader reaches next() for the batch it belongs to.
//
// For the CPU device it is a pass-through: next() is loader.next() (there is nothing to copy).
//
//   data::DevicePrefetcher batches(loader, Device::cuda(0));
//   while (auto b = batches.next()) { Tensor logits = model.forward(b->inputs); ... }
#pragma once
#include <memory>
#include <optional>

#include "data/loader.h"
#include "engine/device.h"

namespace nabla::data {

class DevicePrefetcher {
 public:
  // `loader` must outlive the prefetcher; while a CUDA pipeline runs, only the prefetcher may touch it.
  DevicePrefetcher(DataLoader& loader, Device device, int depth = 3);
  ~DevicePrefetcher();
  DevicePrefetcher(const DevicePrefetcher&) = delete;
  DevicePrefetcher& operator=(const DevicePrefetcher&) = delete;

  // The next batch of the current epoch, inputs and labels on the device; nullopt once at the end of an
  // epoch (as DataLoader::next).
  std::optional<Batch> next();

  LoaderPosition position() const;
  void set_position(LoaderPosition p);
  int64_t num_batches() const { return loader_.num_batches(); }
  Device device() const { return device_; }
  // Whether batches go through the pinned-memory pipeline (a CUDA device) rather than straight through.
  bool pipelined() const { return pipeline_ != nullptr; }

 private:
  struct Pipeline;  // the CUDA pipeline (device_loader.cpp)
  DataLoader& loader_;
  Device device_;
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace nabla::data

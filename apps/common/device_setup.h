// Device setup for the binaries, and the one file pair of apps/ that reaches the CUDA backend (the design
// keeps cuda/ out of everything above ops/; device_setup.cpp goes through engine/device_runtime.h once that
// interface is in, and no other file of apps/ changes).
//
//   apps::require_device(dev, "--device cuda:1");  // "--device cuda:1: 1 CUDA devices found"
//   apps::DeviceGraph g;  g.capture([&] { forward_backward(); });  g.replay();
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "engine/device.h"

namespace nabla::apps {

// Throws nabla::Error naming `who` unless `device` exists in this build and on this machine.
void require_device(Device device, const std::string& who);
// The host waits for the device's queued work (nothing on the CPU).
void synchronize_device(Device device);

// Work recorded once on the current CUDA device and replayed (a CUDA graph: cuda/graph.h has the rules of
// capture). In a build without CUDA, capture() throws.
class DeviceGraph {
 public:
  DeviceGraph();
  ~DeviceGraph();
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;
  void capture(const std::function<void()>& fn);  // throws (keeping nothing) if fn cannot be captured
  void replay();                                  // queues one run on the compute stream
  bool captured() const;
  size_t num_nodes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nabla::apps

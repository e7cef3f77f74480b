// apps/common/device_setup.h on the CUDA backend's own headers: the only cuda/ include in apps/.
#include "apps/common/device_setup.h"

#include "engine/error.h"
#ifdef NABLA_HAS_CUDA
#include "cuda/graph.h"
#include "cuda/runtime.h"
#endif

namespace nabla::apps {

void require_device(Device device, const std::string& who) {
  if (device.is_cpu()) return;
#ifdef NABLA_HAS_CUDA
  NABLA_CHECK(device.index < cuda::device_count(), who, ": ", cuda::device_count(), " CUDA devices found");
#else
  fail(who, ": this build has no CUDA backend (configure with -DNABLA_CUDA=ON)");
#endif
}

void synchronize_device(Device device) {
#ifdef NABLA_HAS_CUDA
  if (device.is_cuda()) cuda::synchronize();
#endif
  (void)device;
}

#ifdef NABLA_HAS_CUDA
struct DeviceGraph::Impl {
  cuda::Graph graph;
};
DeviceGraph::DeviceGraph() : impl_(std::make_unique<Impl>()) {}
void DeviceGraph::capture(const std::function<void()>& fn) { impl_->graph.capture(fn); }
void DeviceGraph::replay() { impl_->graph.replay(); }
bool DeviceGraph::captured() const { return impl_->graph.captured(); }
size_t DeviceGraph::num_nodes() const { return impl_->graph.num_nodes(); }
#else
struct DeviceGraph::Impl {};
DeviceGraph::DeviceGraph() = default;
void DeviceGraph::capture(const std::function<void()>&) {
  fail("device graphs need the CUDA backend (configure with -DNABLA_CUDA=ON)");
}
void DeviceGraph::replay() { fail("DeviceGraph: nothing captured"); }
bool DeviceGraph::captured() const { return false; }
size_t DeviceGraph::num_nodes() const { return 0; }
#endif
DeviceGraph::~DeviceGraph() = default;

}  // namespace nabla::apps

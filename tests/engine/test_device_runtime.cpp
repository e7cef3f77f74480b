// The device runtime (engine/device_runtime.h) as seen from any build: the CPU's trivial answers, and for
// CUDA either the registered backend (a build with CUDA and a GPU) or errors that name the missing piece.
// The CUDA backend's own behaviour (streams, events, copies, graphs) is tested in tests/cuda.
#include <cstring>
#include <vector>

#include "engine/device_runtime.h"
#include "testing.h"

namespace nabla {
namespace {

TEST(DeviceRuntime, CpuIsAlwaysThereWithOneDevice) {
  EXPECT_TRUE(runtime::has_backend(DeviceType::cpu));
  EXPECT_TRUE(runtime::available(DeviceType::cpu));
  EXPECT_EQ(runtime::device_count(DeviceType::cpu), 1);
  EXPECT_EQ(runtime::current_device(DeviceType::cpu), 0);
  runtime::require_device(Device::cpu(), "test");
  runtime::synchronize(Device::cpu());
  runtime::set_device(Device::cpu());
  runtime::DeviceGuard g(Device::cpu());
  EXPECT_EQ(runtime::compute_stream(Device::cpu()).handle, nullptr);
  test::expect_error(
      [] {
        runtime::require_device({DeviceType::cpu, 2}, "--device");
      },
      {"--device", "cpu:2", "not found"});
}

TEST(DeviceRuntime, CpuEventsTimeTheHostBetweenRecords) {
  runtime::Event a(Device::cpu()), b(Device::cpu());
  a.record();
  volatile double sink = 0;
  for (int i = 0; i < 200000; ++i) sink = sink + i * 1e-9;
  b.record();
  b.synchronize();
  EXPECT_TRUE(b.done());
  const float ms = a.elapsed_ms(b);
  EXPECT_GE(ms, 0.0f);
  EXPECT_LT(ms, 10000.0f);
  b.wait(runtime::compute_stream(Device::cpu()));  // nothing to wait for on the host
}

TEST(DeviceRuntime, CpuCopiesAndPinnedBuffersAreHostMemory) {
  runtime::PinnedBuffer buf(DeviceType::cpu, 1000);
  ASSERT_NE(buf.data(), nullptr);
  EXPECT_GE(buf.capacity(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u);
  const size_t cap = buf.capacity();
  buf.reserve(10);  // no shrink, no reallocation
  EXPECT_EQ(buf.capacity(), cap);

  Tensor src = test::randn32({37});
  runtime::SideStream side(Device::cpu());
  runtime::copy_async(buf.data(), Device::cpu(), src.data_ptr(), Device::cpu(), src.nbytes(), side.get());
  side.synchronize();
  std::vector<float> back(37);
  std::memcpy(back.data(), buf.data(), src.nbytes());
  EXPECT_EQ(back, src.to_vector<float>());

  runtime::PinnedBuffer moved = std::move(buf);
  EXPECT_EQ(buf.data(), nullptr);
  EXPECT_EQ(moved.capacity(), cap);
  const runtime::MemoryStats s = runtime::memory_stats(Device::cpu());
  EXPECT_EQ(s.allocated, 0u);
  EXPECT_EQ(s.device_mallocs, 0u);
}

TEST(DeviceRuntime, CpuHasNoGraphs) {
  runtime::Graph g(Device::cpu());
  EXPECT_FALSE(g.captured());
  test::expect_error([&] { g.capture([] {}); }, {"CPU has no graphs"});
  test::expect_error([&] { g.replay(); }, {"nothing captured"});
}

TEST(DeviceRuntime, CudaWithoutABackendOrDeviceSaysSo) {
  if (runtime::available(DeviceType::cuda)) {
    // A build with CUDA on a GPU machine: the backend answers (its behaviour is tested in tests/cuda).
    EXPECT_TRUE(runtime::has_backend(DeviceType::cuda));
    EXPECT_GE(runtime::device_count(DeviceType::cuda), 1);
    const int n = runtime::device_count(DeviceType::cuda);
    test::expect_error(
        [&] { runtime::require_device(Device::cuda(n), "--device"); },
        {"--device", "cuda:" + std::to_string(n), "not found", std::to_string(n) + " cuda devices"});
    return;
  }
  EXPECT_EQ(runtime::device_count(DeviceType::cuda), 0);
  runtime::empty_cache(DeviceType::cuda);
  int on_the_stack = 0;
  EXPECT_FALSE(runtime::is_pinned(&on_the_stack));
  if (!runtime::has_backend(DeviceType::cuda)) {
    EXPECT_FALSE(runtime::tf32_enabled());
    runtime::set_tf32_enabled(true);  // nothing to set
    EXPECT_FALSE(runtime::tf32_enabled());
    const std::string why = "no cuda backend in this build (configure with -DNABLA_CUDA=ON)";
    test::expect_error([] { runtime::require_device(Device::cuda(), "--device cuda"); },
                       {"--device cuda", why});
    test::expect_error([] { runtime::Event e(Device::cuda()); }, {"runtime::Event", why});
    test::expect_error([] { runtime::SideStream s(Device::cuda()); }, {"runtime::SideStream", why});
    test::expect_error([] { runtime::PinnedBuffer b(DeviceType::cuda, 64); }, {"runtime::PinnedBuffer", why});
    test::expect_error([] { runtime::synchronize(Device::cuda()); }, {"runtime::synchronize", why});
    test::expect_error([] { runtime::memory_stats(Device::cuda()); }, {"runtime::memory_stats", why});
    test::expect_error([] { runtime::Graph().capture([] {}); }, {"runtime::Graph", why});
  } else {  // a CUDA build on a machine without a GPU: the TF32 switch is the backend's setting
    const bool was = runtime::tf32_enabled();
    runtime::set_tf32_enabled(!was);
    EXPECT_EQ(runtime::tf32_enabled(), !was);
    runtime::set_tf32_enabled(was);
    test::expect_error([] { runtime::require_device(Device::cuda(), "--device cuda"); },
                       {"--device cuda", "not found (0 cuda devices)"});
  }
}

}  // namespace
}  // namespace nabla

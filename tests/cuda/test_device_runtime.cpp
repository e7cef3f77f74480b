// The CUDA backend behind the device runtime (engine/device_runtime.h, cuda/device_runtime.cpp): what
// data/, dist/, apps/ and benchmarks see of a GPU without including cuda/. Copies on a side stream ordered
// by events, page-locked buffers, graphs, memory statistics, TF32 and device checks. Skip without a GPU.
#include <cstring>
#include <vector>

#include "engine/device_runtime.h"
#include "testing.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!runtime::available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA device"

const Device kGpu = Device::cuda(0);

TEST(CudaDeviceRuntime, ReportsDevicesAndRefusesOnesThatAreNotThere) {
  REQUIRE_GPU();
  EXPECT_TRUE(runtime::has_backend(DeviceType::cuda));
  const int n = runtime::device_count(DeviceType::cuda);
  ASSERT_GE(n, 1);
  runtime::require_device(kGpu, "test");
  test::expect_error(
      [&] { runtime::require_device(Device::cuda(n), "--device"); },
      {"--device", "cuda:" + std::to_string(n), "not found", std::to_string(n) + " cuda devices"});
  runtime::DeviceGuard g(kGpu);
  EXPECT_EQ(runtime::current_device(DeviceType::cuda), 0);
  EXPECT_NE(runtime::compute_stream(kGpu).handle, nullptr);
}

TEST(CudaDeviceRuntime, SideStreamCopyFromPinnedMemoryIsOrderedByEvents) {
  REQUIRE_GPU();
  const Tensor src = test::randn32({1000, 33});
  runtime::PinnedBuffer pinned(DeviceType::cuda, src.nbytes());
  ASSERT_GE(pinned.capacity(), src.nbytes());
  EXPECT_TRUE(runtime::is_pinned(pinned.data()));
  std::vector<float> heap(8);
  EXPECT_FALSE(runtime::is_pinned(heap.data()));
  std::memcpy(pinned.data(), src.data_ptr(), src.nbytes());

  Tensor dst = Tensor::empty(src.shape(), DType::f32, kGpu);
  runtime::SideStream side(kGpu);
  runtime::Event before(kGpu), copied(kGpu);
  before.record();  // the compute stream's work so far (dst's allocation)
  before.wait(side.get());
  runtime::copy_async(dst.data_ptr(), kGpu, pinned.data(), Device::cpu(), src.nbytes(), side.get());
  copied.record(side.get());
  copied.wait(runtime::compute_stream(kGpu));  // the GPU waits, not the host
  const Tensor doubled = dst * 2.0;            // queued on the compute stream after the copy
  EXPECT_EQ(doubled.to(Device::cpu()).to_vector<float>(), (src * 2.0).to_vector<float>());
  copied.synchronize();
  EXPECT_TRUE(copied.done());
  side.synchronize();

  runtime::PinnedBuffer moved = std::move(pinned);
  EXPECT_EQ(pinned.data(), nullptr);
  EXPECT_TRUE(runtime::is_pinned(moved.data()));
}

TEST(CudaDeviceRuntime, EventsTimeDeviceWork) {
  REQUIRE_GPU();
  const Tensor a = test::randn32({1024, 1024}).to(kGpu);
  runtime::Event start(kGpu), stop(kGpu);
  start.record();
  Tensor c = a;
  for (int i = 0; i < 10; ++i) c = matmul(c, a) * 1e-3;
  stop.record();
  stop.synchronize();
  EXPECT_GT(start.elapsed_ms(stop), 0.0f);
  EXPECT_LT(start.elapsed_ms(stop), 60000.0f);
}

TEST(CudaDeviceRuntime, GraphReplaysWhatItCaptured) {
  REQUIRE_GPU();
  Tensor x = test::randn32({256}).to(kGpu);
  Tensor out;
  runtime::Graph graph(kGpu);
  graph.capture([&] { out = relu(x) * 3.0 + 1.0; });
  ASSERT_TRUE(graph.captured());
  EXPECT_GE(graph.num_nodes(), 1u);
  test::expect_error([&] { graph.capture([] {}); }, {"already holds a capture"});
  for (int i = 0; i < 3; ++i) {
    const Tensor fresh = test::randn32({256});
    x.copy_(fresh.to(kGpu));
    graph.replay();
    EXPECT_EQ(out.to(Device::cpu()).to_vector<float>(), (relu(fresh) * 3.0 + 1.0).to_vector<float>());
  }
  graph.reset();
  EXPECT_FALSE(graph.captured());
}

TEST(CudaDeviceRuntime, MemoryStatsFollowTheCachingAllocator) {
  REQUIRE_GPU();
  runtime::synchronize(kGpu);
  runtime::reset_peak_memory_stats(kGpu);
  const runtime::MemoryStats before = runtime::memory_stats(kGpu);
  {
    Tensor t = Tensor::empty({64 << 20}, DType::u8, kGpu);  // 64 MiB
    const runtime::MemoryStats during = runtime::memory_stats(kGpu);
    EXPECT_GE(during.allocated, before.allocated + (64u << 20));
    EXPECT_GE(during.reserved, during.allocated);
    EXPECT_GE(during.peak_allocated, during.allocated);
    EXPECT_EQ(during.allocations, before.allocations + 1);
  }
  const runtime::MemoryStats after = runtime::memory_stats(kGpu);
  EXPECT_EQ(after.allocated, before.allocated);
  EXPECT_GE(after.peak_allocated, before.allocated + (64u << 20));
  runtime::empty_cache(DeviceType::cuda);
  EXPECT_LE(runtime::memory_stats(kGpu).reserved, after.reserved);
}

TEST(CudaDeviceRuntime, Tf32SwitchReachesTheBackend) {
  REQUIRE_GPU();
  const bool was = runtime::tf32_enabled();
  runtime::set_tf32_enabled(!was);
  EXPECT_EQ(runtime::tf32_enabled(), !was);
  runtime::set_tf32_enabled(was);
  EXPECT_EQ(runtime::tf32_enabled(), was);
}

}  // namespace
}  // namespace nabla

// The tracer's device time on a GPU (engine/trace.h, cuda/trace_timing.cpp): kernels timed with CUDA
// events on the compute stream and copies on a side stream appear as "GPU 0" tracks, one GPU event per
// host kernel event, after its launch, in stream order; no marks while tracing is off; nothing while a
// CUDA graph is captured. Skip without a GPU.
#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "cuda/trace_timing.h"
#include "engine/device_runtime.h"
#include "engine/trace.h"
#include "testing.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!runtime::available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA device"

const Device kGpu = Device::cuda(0);

struct Ev {
  std::string name;
  double ts, dur;
  nlohmann::json args;
};

TEST(CudaTrace, KernelsAndCopiesGetDeviceTimeOnTheirStreamTracks) {
  REQUIRE_GPU();
  manual_seed(3);
  const int64_t n = 1024 + static_cast<int64_t>(randint(0, 64, {1}).item());  // fresh sizes per run
  Tensor a = randn({n, n}).to(kGpu), b = randn({n, n}).to(kGpu);
  std::vector<float> host(static_cast<size_t>(n) * n);
  runtime::PinnedBuffer pinned(DeviceType::cuda, host.size() * sizeof(float));
  Tensor dst = Tensor::empty({n, n}, DType::f32, kGpu);
  runtime::SideStream copies(kGpu);
  (void)matmul(a, b);  // warm-up (cuBLAS handles, workspace)
  runtime::synchronize(kGpu);

  ASSERT_FALSE(trace::enabled());
  EXPECT_EQ(cuda::trace_timing::begin_on_stream(0, nullptr), -1);  // off: no mark
  trace::start();
  Tensor c = matmul(a, b);
  Tensor d = relu(c) + a;
  runtime::copy_async(dst.data_ptr(), kGpu, pinned.data(), Device::cpu(), host.size() * sizeof(float),
                      copies.get());
  Tensor s = sum(d);
  const double total = s.item();  // a device-to-host copy on the compute stream
  copies.synchronize();
  const nlohmann::json j = nlohmann::json::parse(trace::stop());
  EXPECT_TRUE(std::isfinite(total));

  const int host_pid = j.at("traceEvents")[0].at("pid");
  std::vector<Ev> host_cuda_kernels, compute, copy;
  std::map<std::pair<int, int>, std::string> names;
  for (const auto& e : j.at("traceEvents")) {
    const int pid = e.at("pid"), tid = e.at("tid");
    if (e.at("ph") == "M") {
      names[{pid, tid}] = e.at("args").at("name");
      continue;
    }
    if (e.at("ph") != "X") continue;
    Ev ev{e.at("name"), e.at("ts"), e.at("dur"), e.value("args", nlohmann::json::object())};
    if (pid == host_pid && e.at("cat") == "kernel" && ev.args.value("device", "") == "cuda")
      host_cuda_kernels.push_back(ev);
    else if (pid == trace::kDevicePid && tid == trace::kComputeTrack)
      compute.push_back(ev);
    else if (pid == trace::kDevicePid && tid == trace::kCopyTrack)
      copy.push_back(ev);
  }
  EXPECT_EQ((names[{trace::kDevicePid, 0}]), "GPU 0");
  EXPECT_EQ((names[{trace::kDevicePid, trace::kComputeTrack}]), "compute stream");
  EXPECT_EQ((names[{trace::kDevicePid, trace::kCopyTrack}]), "copy stream");

  // One GPU event per host kernel call, same names in the same order, with the same shapes.
  ASSERT_GE(host_cuda_kernels.size(), 4u);
  ASSERT_EQ(compute.size(), host_cuda_kernels.size());
  std::sort(compute.begin(), compute.end(), [](const Ev& x, const Ev& y) { return x.ts < y.ts; });
  for (size_t i = 0; i < compute.size(); ++i) {
    EXPECT_EQ(compute[i].name, host_cuda_kernels[i].name) << i;
    EXPECT_EQ(compute[i].args.at("shapes"), host_cuda_kernels[i].args.at("shapes")) << i;
    EXPECT_GE(compute[i].dur, 0) << compute[i].name;
    // The device runs a kernel after the host launched it (within the clock alignment, some us).
    EXPECT_GE(compute[i].ts, host_cuda_kernels[i].ts - 50) << compute[i].name;
    // One stream: the kernels do not overlap.
    if (i > 0) {
      EXPECT_LE(compute[i - 1].ts + compute[i - 1].dur, compute[i].ts + 1) << compute[i].name;
    }
  }
  const auto mm =
      std::find_if(compute.begin(), compute.end(), [](const Ev& e) { return e.name == "matmul"; });
  ASSERT_NE(mm, compute.end());
  EXPECT_GT(mm->dur, 1.0);  // a 1k x 1k x 1k GEMM takes more than a microsecond on any GPU
  EXPECT_EQ(mm->args.at("shapes")[0], "[" + std::to_string(n) + "," + std::to_string(n) + "]");

  ASSERT_EQ(copy.size(), 1u);
  EXPECT_EQ(copy[0].name, "copy h2d");
  EXPECT_EQ(copy[0].args.at("bytes"), static_cast<int64_t>(host.size() * sizeof(float)));
  EXPECT_GT(copy[0].dur, 0);
}

TEST(CudaTrace, NothingIsRecordedInsideAGraphCapture) {
  REQUIRE_GPU();
  Tensor x = randn({256}).to(kGpu);
  runtime::Graph g(kGpu);
  Tensor y;
  trace::start();
  g.capture([&] { y = exp(x) * 2.0; });
  g.replay();
  runtime::synchronize(kGpu);
  const nlohmann::json j = nlohmann::json::parse(trace::stop());
  for (const auto& e : j.at("traceEvents")) EXPECT_NE(e.at("pid"), trace::kDevicePid) << e.dump();
  EXPECT_NEAR(y.to(Device::cpu()).select(0, 0).item(), 2 * std::exp(x.to(Device::cpu()).select(0, 0).item()),
              1e-4);
}

}  // namespace
}  // namespace nabla

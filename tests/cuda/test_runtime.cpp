// The CUDA runtime: allocator reuse and statistics, transfers, errors, TF32.
#include "parity.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

TEST(CudaRuntime, TransfersRoundTripEveryDTypeAndLayout) {
  REQUIRE_GPU();
  Tensor x = test::randn32({37, 53});
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::b8}) {
    Tensor h = (x * 10.0).to(t);
    Tensor d = h.to(Device::cuda(0));
    EXPECT_TRUE(d.device().is_cuda());
    EXPECT_EQ(d.to(Device::cpu()).to_vector(), h.to_vector()) << dtype_name(t);
    EXPECT_EQ(h.t().to(Device::cuda(0)).to(Device::cpu()).to_vector(), h.t().to_vector()) << dtype_name(t);
  }
}

TEST(CudaRuntime, CachingAllocatorReusesBlocksInTheSteadyState) {
  REQUIRE_GPU();
  auto step = [] {
    Tensor a = randn({512, 512}, {.device = Device::cuda(0)});
    Tensor b = matmul(a, a) + 1.0;
    return sum(b).item();
  };
  step();
  cuda::synchronize();
  auto before = cuda::allocator_stats();
  for (int i = 0; i < 5; ++i) step();
  auto after = cuda::allocator_stats();
  EXPECT_EQ(after.cuda_mallocs, before.cuda_mallocs) << "steady state must not call cudaMalloc";
  EXPECT_GT(after.allocations, before.allocations);
  EXPECT_GE(after.peak_allocated, 512u * 512 * 4);
  EXPECT_GE(after.reserved, after.allocated);
}

TEST(CudaRuntime, OutOfMemoryNamesTheBytes) {
  REQUIRE_GPU();
  test::expect_error([] { Tensor::empty({int64_t(1) << 45}, DType::f32, Device::cuda(0)); }, {"out of memory", "bytes"});
  Tensor ok = zeros({1024}, {.device = Device::cuda(0)});  // the allocator still works afterwards
  EXPECT_EQ(sum(ok).item(), 0.0);
}

TEST(CudaRuntime, MixingDevicesIsAClearError) {
  REQUIRE_GPU();
  Tensor a = test::randn32({3}), b = a.to(Device::cuda(0));
  test::expect_error([&] { add(a, b); }, {"add", "different devices", "cpu", "cuda:0"});
}

TEST(CudaRuntime, Tf32GemmIsCloseButNotExact) {
  REQUIRE_GPU();
  Tensor a = test::randn32({256, 256}), b = test::randn32({256, 256});
  Tensor ref = matmul(a, b);
  Tensor da = a.to(Device::cuda(0)), db = b.to(Device::cuda(0));
  cuda::set_tf32_enabled(true);
  Tensor t = matmul(da, db).to(Device::cpu());
  cuda::set_tf32_enabled(false);
  Tensor f = matmul(da, db).to(Device::cpu());
  double err_tf32 = amax(abs(t - ref)).item(), err_f32 = amax(abs(f - ref)).item();
  EXPECT_LT(err_f32, 1e-3);
  EXPECT_LT(err_tf32, 0.2);  // 10-bit mantissa inputs, f32 accumulation
  cuda::set_tf32_enabled(true);
}

TEST(CudaRuntime, Bf16AndF16MatmulAccumulateInF32) {
  REQUIRE_GPU();
  Tensor a = test::randn32({64, 512}), b = test::randn32({512, 32});
  Tensor ref = matmul(a, b);
  for (DType t : {DType::bf16, DType::f16}) {
    Tensor c = matmul(a.to(t).to(Device::cuda(0)), b.to(t).to(Device::cuda(0))).to(Device::cpu()).to(DType::f32);
    double rel = (norm(c - ref) / norm(ref)).item();
    EXPECT_LT(rel, t == DType::bf16 ? 1e-2 : 2e-3) << dtype_name(t);
  }
}

}  // namespace
}  // namespace nabla

namespace nabla {
namespace {
TEST(CudaRuntime, EventsOrderAndTimeWorkOnTheComputeStream) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  Tensor a = randn({2048, 2048}, {.device = Device::cuda(0)});
  cuda::Event start, stop;
  start.record();
  Tensor b = matmul(a, a);
  stop.record();
  stop.synchronize();
  EXPECT_TRUE(stop.done());
  const float ms = start.elapsed_ms(stop);
  EXPECT_GT(ms, 0.0f);
  EXPECT_LT(ms, 1000.0f);
  // A second stream waits for the event without the host synchronising.
  cudaStream_t other;
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  stop.wait(other);
  EXPECT_EQ(cudaStreamSynchronize(other), cudaSuccess);
  cudaStreamDestroy(other);
  EXPECT_NEAR(b.select(0, 0).select(0, 0).item(), matmul(a.select(0, 0), a.select(1, 0)).item(), 1.0);  // TF32 on both sides
}
}  // namespace
}  // namespace nabla

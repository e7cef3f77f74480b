// Asynchronous index checks on the GPU (engine/async_check.h): a bad index does not stop the op (no host
// round trip), its error comes at the next synchronisation with the same message as on the CPU, the faulty
// op never reads outside its input, and the process and its device stay usable afterwards.
#include "parity.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

const Device kGpu = Device::cuda(0);

// Random indices in [0, n) on the GPU with one bad value planted at `at`.
Tensor indices_with_bad(int64_t count, int64_t n, int64_t at, int64_t bad, DType dt = DType::i64) {
  Tensor idx = randint(0, n, {count}, {.dtype = DType::i64});
  idx.data<int64_t>()[at] = bad;
  return idx.to(dt).to(kGpu);
}

TEST(CudaAsyncCheck, GoodIndicesGiveTheCpuValuesWithoutError) {
  REQUIRE_GPU();
  Tensor x = test::randn32({50, 7});
  for (DType dt : {DType::i64, DType::i32}) {
    Tensor idx = randint(0, 50, {200}, {.dtype = dt});
    Tensor got = index_select(x.to(kGpu), 0, idx.to(kGpu)).to(Device::cpu());
    EXPECT_EQ(got.to_vector(), index_select(x, 0, idx).to_vector()) << dtype_name(dt);
  }
  cuda::synchronize();  // nothing pending: no throw
}

TEST(CudaAsyncCheck, AnOutOfRangeIndexIsReportedAtTheNextSyncNamingOpValueAndPosition) {
  REQUIRE_GPU();
  if (cuda::sync_every_op()) GTEST_SKIP() << "NABLA_SYNC=1 reports at the op itself";
  Tensor x = test::randn32({50, 7}).to(kGpu);
  Tensor idx = indices_with_bad(300, 50, 123, 77);
  Tensor y;
  ASSERT_NO_THROW(y = index_select(x, 0, idx));  // queued, not waited for
  test::expect_error(
      [&] { (void)y.to(Device::cpu()); },
      {"index_select", "index 77", "position [123]", "dim 0 of size 50", "[50,7]", "next synchronisation"});
  // The record was cleared: the device and the next steps work, and nothing is reported twice.
  Tensor ok = index_select(x, 0, randint(0, 50, {9}, {.dtype = DType::i64, .device = kGpu}));
  EXPECT_NO_THROW(cuda::synchronize());
  EXPECT_EQ(ok.to(Device::cpu()).shape(), (Shape{9, 7}));
}

TEST(CudaAsyncCheck, GatherAndEmbeddingAndOneHotReportTheirOwnNames) {
  REQUIRE_GPU();
  Tensor x = test::randn32({6, 11}).to(kGpu);
  Tensor gidx = randint(0, 11, {6, 4}, {.dtype = DType::i64});
  gidx.data<int64_t>()[9] = -3;
  test::expect_error([&] { (void)sum(gather(x, 1, gidx.to(kGpu))).item(); },
                     {"gather", "index -3", "position [2,1]", "dim 1 of size 11"});
  Tensor w = test::randn32({20, 5}).to(kGpu);
  test::expect_error([&] { (void)sum(embedding(w, indices_with_bad(40, 20, 39, 20, DType::i32))).item(); },
                     {"embedding", "index 20", "position [39]", "size 20"});
  test::expect_error([&] { (void)one_hot(indices_with_bad(10, 4, 0, 4), 4).to(Device::cpu()); },
                     {"one_hot", "index 4", "position [0]", "num_classes 4"});
}

TEST(CudaAsyncCheck, CrossEntropyTargetsAreCheckedAndIgnoreIndexIsAllowed) {
  REQUIRE_GPU();
  Tensor logits = test::randn32({64, 10});
  Tensor t = randint(0, 10, {64}, {.dtype = DType::i64});
  t.data<int64_t>()[5] = -100;  // the default ignore_index: allowed
  const double want = cross_entropy(logits, t).item();
  EXPECT_NEAR(cross_entropy(logits.to(kGpu), t.to(kGpu)).item(), want, 1e-5);
  t.data<int64_t>()[17] = 12;
  test::expect_error([&] { (void)cross_entropy(logits.to(kGpu), t.to(kGpu)).item(); },
                     {"cross_entropy", "target 12", "10 classes"});
  // nll_loss takes the composed path (gather) with the same check.
  test::expect_error([&] { (void)nll_loss(log_softmax(logits.to(kGpu), 1), t.to(kGpu)).item(); },
                     {"target 12", "10 classes"});
}

TEST(CudaAsyncCheck, ABadIndexNeverMakesAKernelReadOutsideItsInput) {
  REQUIRE_GPU();
  // Huge and negative values: were they used, the gather would fault and poison the CUDA context.
  Tensor x = test::randn32({4, 1000}).to(kGpu);
  Tensor idx = randint(0, 1000, {4, 1000}, {.dtype = DType::i64});
  for (int64_t i = 0; i < idx.numel(); i += 97)
    idx.data<int64_t>()[i] = (i % 2 ? 1 : -1) * (int64_t(1) << 40);
  Tensor y = gather(x, 1, idx.to(kGpu));
  EXPECT_THROW(cuda::synchronize(), Error);
  Tensor z = matmul(x, x.t());  // the context is healthy
  EXPECT_NO_THROW((void)z.to(Device::cpu()));
}

}  // namespace
}  // namespace nabla

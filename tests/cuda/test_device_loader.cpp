// The CUDA input pipeline: pinned buffers, and the device prefetcher against the plain loader (same batches,
// in order, across epochs, with slots reused many times, with resumption and with loader errors).
#include "cuda/pinned.h"
#include "data/data.h"
#include "parity.h"

namespace nabla {
namespace {

#define REQUIRE_GPU() \
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device"

TEST(PinnedBuffer, IsPageLockedAndGrowsOnlyWhenAsked) {
  REQUIRE_GPU();
  cuda::PinnedBuffer b(1000);
  EXPECT_GE(b.capacity(), 1000u);
  EXPECT_TRUE(cuda::is_pinned(b.data()));
  void* first = b.data();
  b.reserve(10);
  EXPECT_EQ(b.data(), first) << "a smaller request keeps the block";
  b.reserve(5u << 20);
  EXPECT_GE(b.capacity(), 5u << 20);
  EXPECT_TRUE(cuda::is_pinned(b.data()));
  std::vector<int> heap(16);
  EXPECT_FALSE(cuda::is_pinned(heap.data()));
  cuda::PinnedBuffer moved = std::move(b);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_TRUE(cuda::is_pinned(moved.data()));
}

std::shared_ptr<data::TensorDataset> random_set(int64_t n) {
  return std::make_shared<data::TensorDataset>(test::randn32({n, 3, 8, 8}), test::randint64(0, 10, {n}));
}

TEST(DevicePrefetcher, CudaBatchesEqualTheLoadersOverEpochs) {
  REQUIRE_GPU();
  auto set = random_set(203);
  data::LoaderOptions opts{.batch_size = 16, .shuffle = true, .seed = test::next_seed(), .num_workers = 2};
  data::DataLoader reference(set, opts), loader(set, opts);
  data::DevicePrefetcher batches(loader, Device::cuda(0), 2);  // 2 slots: each is reused ~13 times per epoch
  ASSERT_TRUE(batches.pipelined());
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    int64_t n = 0;
    while (auto b = batches.next()) {
      auto r = reference.next();
      ASSERT_TRUE(r.has_value());
      ASSERT_TRUE(b->inputs.device().is_cuda());
      ASSERT_TRUE(b->labels.device().is_cuda());
      // Work on the compute stream that reads the batch must see the copied bytes.
      Tensor doubled = b->inputs * 2.0;
      EXPECT_EQ(doubled.to(Device::cpu()).to_vector(), (r->inputs * 2.0).to_vector()) << "batch " << n;
      EXPECT_EQ(b->labels.to(Device::cpu()).to_vector(), r->labels.to_vector());
      EXPECT_EQ(b->indices, r->indices);
      EXPECT_EQ(b->epoch, epoch);
      ++n;
      EXPECT_EQ(batches.position(), (data::LoaderPosition{epoch, n}));
    }
    EXPECT_FALSE(reference.next().has_value());
    EXPECT_EQ(n, 13);  // 203 / 16, the last one short
  }
}

TEST(DevicePrefetcher, CudaResumesAtAPositionAndSurvivesALoaderError) {
  REQUIRE_GPU();
  auto set = random_set(64);
  data::LoaderOptions opts{.batch_size = 8, .shuffle = true, .seed = test::next_seed()};
  data::DataLoader loader(set, opts);
  data::DevicePrefetcher batches(loader, Device::cuda(0));
  ASSERT_TRUE(batches.next().has_value());
  batches.set_position({3, 5});
  auto b = batches.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->epoch, 3);
  EXPECT_EQ(b->index, 5);
  const std::vector<int64_t> order = loader.epoch_order(3);
  EXPECT_EQ(b->indices, std::vector<int64_t>(order.begin() + 40, order.begin() + 48));
  Tensor expected = Tensor::empty({8, 3, 8, 8});
  for (int64_t k = 0; k < 8; ++k) expected.select(0, k).copy_(set->get(order[40 + k]).input);
  EXPECT_EQ(b->inputs.to(Device::cpu()).to_vector(), expected.to_vector());
  EXPECT_TRUE(batches.next().has_value());
  EXPECT_TRUE(batches.next().has_value());
  EXPECT_FALSE(batches.next().has_value());
  EXPECT_EQ(batches.position(), (data::LoaderPosition{4, 0}));

  // A transform that throws for one example: the error comes out of next() for its batch, and the batches
  // before it arrive intact.
  data::DataLoader bad(set, {.batch_size = 8}, [&](const Tensor& x, data::Rng&) -> Tensor {
    if (x.data_ptr() == set->get(20).input.data_ptr()) fail("bad example");
    return x;
  });
  data::DevicePrefetcher bad_batches(bad, Device::cuda(0));
  EXPECT_TRUE(bad_batches.next().has_value());
  EXPECT_TRUE(bad_batches.next().has_value());
  test::expect_error([&] { bad_batches.next(); }, {"bad example", "batch 2"});
  EXPECT_EQ(bad_batches.position(), (data::LoaderPosition{0, 2}));
}

}  // namespace
}  // namespace nabla

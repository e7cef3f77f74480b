// The ResNet input pipeline's pieces: pad_images, synthetic batches, and the device prefetcher on the CPU
// (a pass-through that must yield exactly the loader's batches and keep a resumable position). The CUDA
// pipeline has its own cases in tests/cuda/test_device_loader.cpp.
#include "data_testing.h"

namespace nabla {
namespace {

TEST(PadImages, CentresTheImagesAndFillsTheBorder) {
  Tensor images = test::random_bytes({3, 28, 28}, 1, 256);  // no zeros inside, so the border is visible
  Tensor out = data::pad_images(images, 32, 32);
  ASSERT_EQ(out.shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(out.dtype(), DType::u8);
  EXPECT_EQ(test::bytes_of(out.narrow(1, 2, 28).narrow(2, 2, 28)), test::bytes_of(images));
  int64_t zeros = 0;
  for (uint8_t v : test::bytes_of(out)) zeros += v == 0;
  EXPECT_EQ(zeros, 3 * (32 * 32 - 28 * 28));
  // HWC colour images, an odd difference (the extra pixel goes bottom / right) and a fill value.
  Tensor rgb = test::random_bytes({2, 5, 6, 3});
  Tensor p = data::pad_images(rgb, 8, 7, 9);
  ASSERT_EQ(p.shape(), (Shape{2, 8, 7, 3}));
  EXPECT_EQ(test::bytes_of(p.narrow(1, 1, 5).narrow(2, 0, 6)), test::bytes_of(rgb));
  EXPECT_EQ(p.select(0, 1).select(0, 0).to_vector(), std::vector<double>(7 * 3, 9.0));
  EXPECT_EQ(p.select(0, 0).select(0, 7).to_vector(), std::vector<double>(7 * 3, 9.0));
}

TEST(PadImages, RejectsShrinkingAndBadRanks) {
  test::expect_error(
      [&] {
        data::pad_images(test::random_bytes({2, 28, 28}), 20, 32);
      },
      {"cannot pad 28 x 28"});
  test::expect_error([&] { data::pad_images(test::random_bytes({28, 28}), 32, 32); }, {"pad_images"});
}

TEST(SyntheticBatch, IsSeededStandardNormalWithLabelsInRange) {
  const uint64_t seed = test::next_seed();
  data::Batch a = data::synthetic_batch(64, 3, 16, 16, 7, Device::cpu(), seed);
  ASSERT_EQ(a.inputs.shape(), (Shape{64, 3, 16, 16}));
  EXPECT_EQ(a.inputs.dtype(), DType::f32);
  ASSERT_EQ(a.labels.shape(), (Shape{64}));
  EXPECT_EQ(a.labels.dtype(), DType::i64);
  auto x = a.inputs.to_vector();
  double m = 0, v = 0;
  for (double e : x) m += e;
  m /= static_cast<double>(x.size());
  for (double e : x) v += (e - m) * (e - m);
  v /= static_cast<double>(x.size());
  EXPECT_NEAR(m, 0.0, 0.05);
  EXPECT_NEAR(v, 1.0, 0.05);
  std::vector<int> seen(7, 0);
  for (double l : a.labels.to_vector()) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 7);
    seen[static_cast<int>(l)]++;
  }
  EXPECT_GE(*std::min_element(seen.begin(), seen.end()), 1) << "64 draws cover 7 classes";
  data::Batch again = data::synthetic_batch(64, 3, 16, 16, 7, Device::cpu(), seed);
  EXPECT_EQ(again.inputs.to_vector(), x);
  EXPECT_EQ(again.labels.to_vector(), a.labels.to_vector());
  EXPECT_NE(data::synthetic_batch(64, 3, 16, 16, 7, Device::cpu(), seed + 1).inputs.to_vector(), x);
  test::expect_error([&] { data::synthetic_batch(0, 3, 16, 16, 7, Device::cpu(), seed); },
                     {"synthetic data"});
}

std::shared_ptr<data::TensorDataset> numbered_set(int64_t n) {
  Tensor x = randn({n, 2, 3});
  return std::make_shared<data::TensorDataset>(x,
                                               arange(0, static_cast<double>(n), 1, {.dtype = DType::i64}));
}

TEST(DevicePrefetcher, OnTheCpuYieldsTheLoadersBatchesAndResumes) {
  auto set = numbered_set(37);
  data::LoaderOptions opts{.batch_size = 5, .shuffle = true, .seed = test::next_seed(), .num_workers = 2};
  data::DataLoader reference(set, opts), loader(set, opts);
  data::DevicePrefetcher batches(loader, Device::cpu());
  EXPECT_FALSE(batches.pipelined());
  EXPECT_EQ(batches.num_batches(), 8);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    int64_t n = 0;
    while (auto b = batches.next()) {
      auto r = reference.next();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(b->inputs.to_vector(), r->inputs.to_vector());
      EXPECT_EQ(b->labels.to_vector(), r->labels.to_vector());
      EXPECT_EQ(b->epoch, epoch);
      ++n;
      EXPECT_EQ(batches.position(), (data::LoaderPosition{epoch, n}));
    }
    EXPECT_FALSE(reference.next().has_value());
    EXPECT_EQ(n, 8);
  }
  batches.set_position({1, 6});
  auto b = batches.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->index, 6);
  const std::vector<int64_t> order = loader.epoch_order(1);
  EXPECT_EQ(b->indices, std::vector<int64_t>(order.begin() + 30, order.begin() + 35));
  test::expect_error([&] { data::DevicePrefetcher(loader, Device::cpu(), 1); }, {"depth"});
}

}  // namespace
}  // namespace nabla

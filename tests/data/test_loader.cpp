// DataLoader: coverage of every example once per epoch, seeded shuffling, drop_last, identical batches for
// any number of workers (under scrambled worker timing), exact continuation from a restored position,
// bounded prefetch, worker exceptions reaching the caller, and data-parallel shards.
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "data_testing.h"

namespace nabla {
namespace {

using namespace data;

// Example i: input [1] f32 holding i, label (3 i) % 5. Optionally sleeps a pseudo-random time per get()
// so that workers finish out of order, and counts the calls.
class IndexDataset final : public Dataset {
 public:
  explicit IndexDataset(int64_t n, bool jitter = false) : n_(n), jitter_(jitter) {}
  int64_t size() const override { return n_; }
  Example get(int64_t i) const override {
    check_index(i, n_, "IndexDataset");
    ++calls;
    if (jitter_) std::this_thread::sleep_for(std::chrono::microseconds((i * 7919) % 5 * 300));
    return {from_vector({static_cast<double>(i)}, {1}), (3 * i) % 5};
  }
  mutable std::atomic<int64_t> calls{0};

 private:
  int64_t n_;
  bool jitter_;
};

std::vector<Batch> drain_epoch(DataLoader& loader) {
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].index, b[k].index);
    EXPECT_EQ(a[k].epoch, b[k].epoch);
    EXPECT_EQ(a[k].indices, b[k].indices) << "batch " << k;
    EXPECT_EQ(a[k].inputs.shape(), b[k].inputs.shape());
    EXPECT_EQ(test::bytes_of(a[k].inputs), test::bytes_of(b[k].inputs)) << "batch " << k;
    EXPECT_EQ(a[k].labels.to_vector<int64_t>(), b[k].labels.to_vector<int64_t>());
  }
}

TEST(DataLoader, EveryExampleAppearsOncePerEpoch) {
  auto ds = std::make_shared<IndexDataset>(23);
  DataLoader loader(ds, {.batch_size = 5, .shuffle = true, .seed = 9});
  EXPECT_EQ(loader.num_batches(), 5);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<Batch> batches = drain_epoch(loader);
    ASSERT_EQ(batches.size(), 5u);
    std::multiset<int64_t> seen;
    for (const Batch& b : batches) {
      EXPECT_EQ(b.epoch, epoch);
      int64_t n = static_cast<int64_t>(b.indices.size());
      EXPECT_EQ(b.inputs.shape(), (Shape{n, 1}));
      EXPECT_EQ(b.labels.dtype(), DType::i64);
      std::vector<double> inputs = b.inputs.to_vector();
      std::vector<int64_t> labels = b.labels.to_vector<int64_t>();
      for (int64_t k = 0; k < n; ++k) {
        EXPECT_EQ(inputs[k], b.indices[k]);
        EXPECT_EQ(labels[k], 3 * b.indices[k] % 5);
        seen.insert(b.indices[k]);
      }
    }
    EXPECT_EQ(batches.back().indices.size(), 3u);
    EXPECT_EQ(seen.size(), 23u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 23u);
    EXPECT_EQ(loader.position(), (LoaderPosition{epoch + 1, 0}));
  }
}

TEST(DataLoader, ShufflingDiffersBetweenEpochsAndRepeatsForTheSameSeed) {
  auto ds = std::make_shared<IndexDataset>(50);
  DataLoader a(ds, {.batch_size = 4, .shuffle = true, .seed = 1});
  DataLoader b(ds, {.batch_size = 8, .shuffle = true, .seed = 1});
  DataLoader c(ds, {.batch_size = 4, .shuffle = true, .seed = 2});
  DataLoader plain(ds, {.batch_size = 4});
  EXPECT_EQ(a.epoch_order(0), b.epoch_order(0));
  EXPECT_EQ(a.epoch_order(3), b.epoch_order(3));
  EXPECT_NE(a.epoch_order(0), a.epoch_order(1));
  EXPECT_NE(a.epoch_order(0), c.epoch_order(0));
  std::vector<int64_t> identity(50);
  for (int64_t i = 0; i < 50; ++i) identity[i] = i;
  EXPECT_NE(a.epoch_order(0), identity);
  EXPECT_EQ(plain.epoch_order(0), identity);
  EXPECT_EQ(plain.epoch_order(5), identity);
  // The batches follow the order.
  std::vector<int64_t> flat;
  for (const Batch& batch : drain_epoch(a))
    flat.insert(flat.end(), batch.indices.begin(), batch.indices.end());
  EXPECT_EQ(flat, a.epoch_order(0));
}

TEST(DataLoader, DropLastDropsTheShortBatch) {
  auto ds = std::make_shared<IndexDataset>(23);
  DataLoader loader(ds, {.batch_size = 5, .shuffle = true, .drop_last = true, .seed = 3});
  EXPECT_EQ(loader.num_batches(), 4);
  std::vector<Batch> batches = drain_epoch(loader);
  ASSERT_EQ(batches.size(), 4u);
  for (const Batch& b : batches) EXPECT_EQ(b.inputs.size(0), 5);
  DataLoader exact(std::make_shared<IndexDataset>(20), {.batch_size = 5, .drop_last = true});
  EXPECT_EQ(exact.num_batches(), 4);
}

// u8 images with a random augmentation pipeline: what workers must reproduce bit for bit.
class ImageDataset final : public Dataset {
 public:
  explicit ImageDataset(int64_t n) : images_(test::random_bytes({n, 12, 10, 3})) {}
  int64_t size() const override { return images_.size(0); }
  Example get(int64_t i) const override {
    std::this_thread::sleep_for(std::chrono::microseconds((i * 7919) % 4 * 250));
    return {images_.select(0, i), i % 7};
  }

 private:
  Tensor images_;
};

Transform augment() {
  return compose({random_resized_crop(8, 8, {0.3, 1.0}), random_horizontal_flip(), to_float(),
                  normalize({0.5, 0.4, 0.3}, {0.2, 0.25, 0.3})});
}

TEST(DataLoader, WorkersGiveTheSameBatchesInTheSameOrderAsNoWorkers) {
  auto ds = std::make_shared<ImageDataset>(30);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    DataLoader loader(ds, {.batch_size = 4, .shuffle = true, .seed = 11, .num_workers = workers}, augment());
    std::vector<Batch> all = drain_epoch(loader);
    std::vector<Batch> second = drain_epoch(loader);
    all.insert(all.end(), second.begin(), second.end());
    runs.push_back(std::move(all));
  }
  ASSERT_EQ(runs[0].size(), 16u);
  EXPECT_EQ(runs[0][0].inputs.shape(), (Shape{4, 3, 8, 8}));
  EXPECT_EQ(runs[0][0].inputs.dtype(), DType::f32);
  expect_same_batches(runs[0], runs[1]);
  expect_same_batches(runs[0], runs[2]);
  // The augmentation is per epoch: the same example differs between epochs 0 and 1.
  EXPECT_NE(test::bytes_of(runs[0][0].inputs), test::bytes_of(runs[0][8].inputs));
}

TEST(DataLoader, ARestoredPositionContinuesExactly) {
  auto ds = std::make_shared<ImageDataset>(26);
  LoaderOptions options{.batch_size = 3, .shuffle = true, .seed = 5, .num_workers = 2};
  DataLoader original(ds, options, augment());
  drain_epoch(original);
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(original.next().has_value());
  LoaderPosition saved = original.position();
  EXPECT_EQ(saved, (LoaderPosition{1, 4}));
  std::vector<Batch> rest = drain_epoch(original);
  std::vector<Batch> next_epoch = drain_epoch(original);

  for (int workers : {0, 3}) {
    options.num_workers = workers;
    DataLoader resumed(ds, options, augment());
    resumed.set_position(saved);
    std::vector<Batch> got;
    for (Batch& b : resumed) got.push_back(std::move(b));  // range-for runs to the end of the epoch
    expect_same_batches(got, rest);
    expect_same_batches(drain_epoch(resumed), next_epoch);
  }
  // Moving a loader that has prefetched drops what it fetched.
  DataLoader jumping(ds, options, augment());
  ASSERT_TRUE(jumping.next().has_value());
  jumping.set_position(saved);
  expect_same_batches(drain_epoch(jumping), rest);
  test::expect_error(
      [&] {
        jumping.set_position({0, 99});
      },
      {"DataLoader: position (epoch 0, batch 99)", "9 batches"});
}

TEST(DataLoader, PrefetchIsBounded) {
  auto ds = std::make_shared<IndexDataset>(100);
  DataLoader loader(ds, {.batch_size = 1, .num_workers = 2, .prefetch_factor = 1});
  ASSERT_TRUE(loader.next().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  // One batch consumed plus at most num_workers * prefetch_factor in flight.
  EXPECT_LE(ds->calls.load(), 3);
  EXPECT_GE(ds->calls.load(), 1);
}

TEST(DataLoader, AnExceptionInATransformReachesTheCaller) {
  auto ds = std::make_shared<IndexDataset>(20);
  Transform failing = [](const Tensor& x, Rng&) {
    if (x.to_vector()[0] == 13) fail("transform: cannot handle example thirteen");
    if (x.to_vector()[0] == 17) throw std::out_of_range("plain C++ exception");
    return x;
  };
  for (int workers : {0, 2}) {
    DataLoader loader(ds, {.batch_size = 4, .num_workers = workers}, failing);
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(loader.next().has_value());  // examples 0..11
    test::expect_error([&] { loader.next(); },
                       {"data loader: epoch 0 batch 3 example 13", "cannot handle example thirteen"});
    EXPECT_EQ(loader.position(), (LoaderPosition{0, 3}));  // the failed batch was not consumed
    loader.set_position({0, 4});
    EXPECT_THROW(loader.next(), std::out_of_range);  // other exceptions keep their type
  }
}

TEST(DataLoader, CollationNeedsMatchingShapes) {
  auto ds = std::make_shared<IndexDataset>(6);
  Transform ragged = [](const Tensor& x, Rng&) { return x.to_vector()[0] == 4 ? zeros({2}) : x; };
  DataLoader loader(ds, {.batch_size = 3}, ragged);
  ASSERT_TRUE(loader.next().has_value());
  test::expect_error([&] { loader.next(); }, {"data loader: epoch 0 batch 1",
                                              "collate: example 4 is f32 [2] but example 3 is f32 [1]"});
}

TEST(DataLoader, ReplicasSplitEachEpoch) {
  auto ds = std::make_shared<IndexDataset>(10);
  std::vector<int64_t> all;
  for (int64_t rank = 0; rank < 3; ++rank) {
    DataLoader loader(ds, {.batch_size = 2, .shuffle = true, .seed = 4, .num_replicas = 3, .rank = rank});
    EXPECT_EQ(loader.num_examples(), 4);  // ceil(10 / 3), the last replica wraps around
    std::vector<int64_t> order = loader.epoch_order(2);
    all.insert(all.end(), order.begin(), order.end());
  }
  EXPECT_EQ(all.size(), 12u);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 10u);
}

TEST(DataLoader, BadOptionsAreErrors) {
  auto ds = std::make_shared<IndexDataset>(4);
  test::expect_error([&] { DataLoader l(ds, {.batch_size = 0}); },
                     {"DataLoader: batch_size must be positive, got 0"});
  test::expect_error([&] { DataLoader l(ds, {.num_replicas = 2, .rank = 2}); },
                     {"DataLoader: expected 0 <= rank < num_replicas, got rank 2 of 2"});
  test::expect_error([&] { DataLoader l(nullptr, {}); }, {"DataLoader: got no dataset"});
}

TEST(DataLoader, WithoutATransformBatchesKeepTheDatasetDtype) {
  Tensor images = test::random_bytes({5, 4, 3});
  auto ds = std::make_shared<TensorDataset>(images, from_vector({0, 1, 2, 3, 4}, {5}, {.dtype = DType::i64}));
  DataLoader loader(ds, {.batch_size = 3, .num_workers = 1});
  std::optional<Batch> b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->inputs.dtype(), DType::u8);
  EXPECT_EQ(b->inputs.shape(), (Shape{3, 4, 3}));
  EXPECT_EQ(test::bytes_of(b->inputs), test::bytes_of(images.narrow(0, 0, 3)));
  EXPECT_EQ(b->labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
}

TEST(TensorDataset, ServesRowsAndLabels) {
  Tensor images = test::random_bytes({4, 3, 2});
  TensorDataset ds(images, from_vector({3, 1, 4, 1}, {4}, {.dtype = DType::i64}));
  EXPECT_EQ(ds.size(), 4);
  Example e = ds.get(2);
  EXPECT_EQ(e.label, 4);
  EXPECT_EQ(test::bytes_of(e.input), test::bytes_of(images.select(0, 2)));
  test::expect_error([&] { ds.get(4); }, {"TensorDataset: index 4 is out of range for 4 examples"});
  test::expect_error([&] { TensorDataset bad(images, zeros({3}, {.dtype = DType::i64})); },
                     {"TensorDataset: expected labels of shape [4]", "got [3]"});
}

}  // namespace
}  // namespace nabla

// CIFAR-10/100 binary readers: exact round trips, the planar -> HWC interleave checked against the raw
// record bytes, multi-file splits, and errors naming the file and the byte.
#include <filesystem>
#include <map>
#include <set>

#include "data_testing.h"

namespace nabla {
namespace {

using data::LabeledImages;
using test::TempDir;

LabeledImages random_cifar(int64_t n, bool cifar100) {
  LabeledImages d;
  d.images = test::random_bytes({n, 32, 32, 3});
  d.labels = test::random_bytes({n}, 0, cifar100 ? 100 : 10).to(DType::i64);
  if (cifar100) d.coarse_labels = test::random_bytes({n}, 0, 20).to(DType::i64);
  return d;
}

TEST(Cifar10, RoundTripsAndInterleavesPlanesIntoHwc) {
  TempDir dir;
  LabeledImages d = random_cifar(5, false);
  std::string path = dir.file("data_batch_1.bin");
  data::write_cifar_file(path, d);
  std::vector<uint8_t> raw = test::read_bytes(path);
  ASSERT_EQ(raw.size(), 5u * 3073);
  LabeledImages got = data::read_cifar10_file(path);
  EXPECT_EQ(got.images.shape(), (Shape{5, 32, 32, 3}));
  EXPECT_EQ(test::bytes_of(got.images), test::bytes_of(d.images));
  EXPECT_EQ(got.labels.to_vector<int64_t>(), d.labels.to_vector<int64_t>());
  EXPECT_FALSE(got.coarse_labels.defined());
  // Independently of the writer: record k is [label, R plane, G plane, B plane].
  const uint8_t* img = got.images.data<uint8_t>();
  for (int64_t k : {0, 4})
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y : {0, 13, 31})
        for (int64_t x : {0, 7, 31})
          EXPECT_EQ(img[((k * 32 + y) * 32 + x) * 3 + c], raw[k * 3073 + 1 + c * 1024 + y * 32 + x]);
  for (int64_t k = 0; k < 5; ++k) EXPECT_EQ(got.labels.data<int64_t>()[k], raw[k * 3073]);
}

TEST(Cifar10, TrainSplitConcatenatesFiveBatchesFromTheArchiveFolder) {
  TempDir dir;
  std::filesystem::path sub = std::filesystem::path(dir.str()) / "cifar-10-batches-bin";
  std::filesystem::create_directories(sub);
  std::vector<LabeledImages> parts;
  for (int i = 1; i <= 5; ++i) {
    parts.push_back(random_cifar(2, false));
    data::write_cifar_file((sub / ("data_batch_" + std::to_string(i) + ".bin")).string(), parts.back());
  }
  LabeledImages test_part = random_cifar(3, false);
  data::write_cifar_file((sub / "test_batch.bin").string(), test_part);

  LabeledImages train = data::load_cifar10(dir.str(), true);
  ASSERT_EQ(train.size(), 10);
  std::vector<uint8_t> expected;
  std::vector<int64_t> expected_labels;
  for (const LabeledImages& p : parts) {
    std::vector<uint8_t> b = test::bytes_of(p.images);
    expected.insert(expected.end(), b.begin(), b.end());
    for (int64_t l : p.labels.to_vector<int64_t>()) expected_labels.push_back(l);
  }
  EXPECT_EQ(test::bytes_of(train.images), expected);
  EXPECT_EQ(train.labels.to_vector<int64_t>(), expected_labels);
  LabeledImages test_split = data::load_cifar10(sub.string(), false);
  EXPECT_EQ(test::bytes_of(test_split.images), test::bytes_of(test_part.images));

  std::filesystem::remove(sub / "data_batch_4.bin");
  test::expect_error([&] { data::load_cifar10(dir.str(), true); },
                     {"cifar10: ", "data_batch_4.bin", "no such file"});
  test::expect_error([&] { data::load_cifar100(dir.str(), true); },
                     {"cifar100: no train.bin in ", dir.str()});
}

// The JPEG/PNG re-encode layout (dir/train/<class>/*.png): every image comes back once, with its class's
// label, in an order that mixes the classes (a first-half split holds every class), and bad files are named.
TEST(Cifar10, ImageFoldersDecodeToShuffledLabeledImages) {
  TempDir dir;
  const std::vector<std::string> classes = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};
  std::map<std::vector<uint8_t>, int64_t> written;  // pixels -> label (random images are all distinct)
  for (const char* split : {"train", "test"})
    for (size_t c = 0; c < classes.size(); ++c) {
      std::filesystem::path sub = std::filesystem::path(dir.str()) / split / classes[c];
      std::filesystem::create_directories(sub);
      for (int k = 0; k < (std::string(split) == "train" ? 6 : 2); ++k) {
        Tensor img = test::random_bytes({32, 32, 3});
        data::write_png((sub / (std::to_string(k) + ".png")).string(), img);
        if (std::string(split) == "train") written[test::bytes_of(img)] = static_cast<int64_t>(c);
      }
    }
  LabeledImages train = data::load_cifar10(dir.str(), true);
  ASSERT_EQ(train.size(), 60);
  ASSERT_EQ(train.images.shape(), (Shape{60, 32, 32, 3}));
  std::set<int64_t> first_half;
  std::set<std::vector<uint8_t>> seen;
  for (int64_t i = 0; i < 60; ++i) {
    std::vector<uint8_t> px = test::bytes_of(train.images.select(0, i));
    ASSERT_TRUE(written.count(px)) << "image " << i << " is not one of the written files";
    EXPECT_EQ(train.labels.data<int64_t>()[i], written[px]);
    seen.insert(px);
    if (i < 30) first_half.insert(train.labels.data<int64_t>()[i]);
  }
  EXPECT_EQ(seen.size(), 60u);
  EXPECT_GE(first_half.size(), 7u) << "the first half should mix the classes";
  EXPECT_EQ(data::load_cifar10(dir.str(), false).size(), 20);
  // The order is fixed: a second load gives the same tensor.
  EXPECT_EQ(test::bytes_of(data::load_cifar10(dir.str(), true).images), test::bytes_of(train.images));

  std::filesystem::path bad = std::filesystem::path(dir.str()) / "train" / "cat" / "big.png";
  data::write_png(bad.string(), test::random_bytes({33, 32, 3}));
  test::expect_error([&] { data::load_cifar10(dir.str(), true); },
                     {"cifar10: ", "big.png", "expected a 32 x 32 RGB image"});
}

TEST(Cifar100, RoundTripsCoarseAndFineLabels) {
  TempDir dir;
  LabeledImages d = random_cifar(4, true);
  data::write_cifar_file(dir.file("train.bin"), d);
  LabeledImages got = data::load_cifar100(dir.str(), true);
  EXPECT_EQ(test::bytes_of(got.images), test::bytes_of(d.images));
  EXPECT_EQ(got.labels.to_vector<int64_t>(), d.labels.to_vector<int64_t>());
  EXPECT_EQ(got.coarse_labels.to_vector<int64_t>(), d.coarse_labels.to_vector<int64_t>());
  std::vector<uint8_t> raw = test::read_bytes(dir.file("train.bin"));
  EXPECT_EQ(raw.size(), 4u * 3074);
  EXPECT_EQ(raw[3074], d.coarse_labels.to_vector<int64_t>()[1]);
  EXPECT_EQ(raw[3075], d.labels.to_vector<int64_t>()[1]);
}

TEST(Cifar, PartialRecordNamesTheFileAndItsOffset) {
  TempDir dir;
  std::string path = dir.file("data_batch_1.bin");
  data::write_cifar_file(path, random_cifar(3, false));
  test::truncate_file(path, 2 * 3073 + 31);
  test::expect_error([&] { data::read_cifar10_file(path); },
                     {"cifar10: ", path, "6177 bytes is not a whole number of 3073-byte records",
                      "a partial record of 31 bytes starts at byte 6146"});
  std::string c100 = dir.file("test.bin");
  data::write_cifar_file(c100, random_cifar(2, true));
  test::truncate_file(c100, 3074 + 3073);
  test::expect_error([&] { data::read_cifar100_file(c100); },
                     {"cifar100: ", c100, "3074-byte records", "3073 bytes starts at byte 3074"});
}

TEST(Cifar, LabelOutOfRangeNamesTheByte) {
  TempDir dir;
  LabeledImages d = random_cifar(3, false);
  d.labels = from_vector({1, 10, 2}, {3}, {.dtype = DType::i64});
  std::string path = dir.file("bad.bin");
  data::write_cifar_file(path, d);
  test::expect_error([&] { data::read_cifar10_file(path); },
                     {path, "label 10 at byte 3073 is not a class in 0..9"});
}

}  // namespace
}  // namespace nabla

// IDX (MNIST) reader: exact round trips of random data, raw and gzip, errors that name the file and the
// byte, and the real Fashion-MNIST when the Debian package is installed.
#include <filesystem>

#include "data_testing.h"

namespace nabla {
namespace {

using data::load_fashion_mnist;
using data::load_mnist;
using data::read_idx_images;
using data::read_idx_labels;
using data::write_idx;
using test::TempDir;

std::vector<uint8_t> idx_header(uint32_t magic, std::vector<uint32_t> dims) {
  std::vector<uint8_t> b;
  for (uint32_t v : [&] {
         std::vector<uint32_t> all{magic};
         all.insert(all.end(), dims.begin(), dims.end());
         return all;
       }())
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  return b;
}

TEST(Idx, ImagesAndLabelsRoundTripRawAndGzip) {
  TempDir dir;
  Tensor images = test::random_bytes({7, 5, 4});
  Tensor labels = test::random_bytes({7}, 0, 10);
  for (bool gzip : {false, true}) {
    std::string ip = dir.file(gzip ? "images.gz" : "images"), lp = dir.file(gzip ? "labels.gz" : "labels");
    write_idx(ip, images, gzip);
    write_idx(lp, labels, gzip);
    std::vector<uint8_t> raw = test::read_bytes(ip);  // decompressed by read_file_bytes
    EXPECT_EQ(raw.size(), 16u + 7 * 5 * 4);
    Tensor got = read_idx_images(ip);
    EXPECT_EQ(got.dtype(), DType::u8);
    EXPECT_EQ(got.shape(), (Shape{7, 5, 4}));
    EXPECT_EQ(test::bytes_of(got), test::bytes_of(images));
    Tensor got_labels = read_idx_labels(lp);
    EXPECT_EQ(got_labels.dtype(), DType::i64);
    EXPECT_EQ(got_labels.to_vector<int64_t>(), labels.to_vector<int64_t>());
  }
}

TEST(Idx, GzipIsDetectedByMagicBytesNotByName) {
  TempDir dir;
  Tensor images = test::random_bytes({3, 2, 6});
  std::string path = dir.file("train-images-idx3-ubyte");  // no .gz, but compressed
  write_idx(path, images, /*gzip=*/true);
  std::vector<uint8_t> head(2);
  FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_EQ(std::fread(head.data(), 1, 2, f), 2u);
  std::fclose(f);
  EXPECT_EQ(head, (std::vector<uint8_t>{0x1f, 0x8b}));
  EXPECT_EQ(test::bytes_of(read_idx_images(path)), test::bytes_of(images));
}

TEST(Idx, BadMagicNamesTheFileAndByte) {
  TempDir dir;
  std::string path = dir.file("train-images-idx3-ubyte");
  std::vector<uint8_t> b = idx_header(0x00000802, {2, 3});
  b.resize(b.size() + 6, 7);
  data::write_file_bytes(path, b);
  test::expect_error([&] { read_idx_images(path); },
                     {"idx: ", path, "bad magic 0x00000802 at byte 0, expected 0x00000803"});
  std::string labels = dir.file("labels");
  write_idx(labels, test::random_bytes({4}, 0, 10));
  test::expect_error([&] { read_idx_images(labels); }, {labels, "bad magic 0x00000801 at byte 0"});
}

TEST(Idx, TruncatedFilesReportExpectedAndActualBytes) {
  TempDir dir;
  std::string path = dir.file("images");
  write_idx(path, test::random_bytes({3, 4, 5}));
  test::truncate_file(path, 16 + 50);
  test::expect_error([&] { read_idx_images(path); },
                     {"idx: ", path, "expected 60 bytes of pixels at byte 16, file has 50"});
  test::truncate_file(path, 10);
  test::expect_error([&] { read_idx_images(path); }, {path, "expected a 16-byte header, file has 10 bytes"});

  std::string labels = dir.file("labels");
  write_idx(labels, test::random_bytes({9}, 0, 10));
  test::truncate_file(labels, 8 + 4);
  test::expect_error([&] { read_idx_labels(labels); },
                     {labels, "expected 9 bytes of labels at byte 8, file has 4"});

  // Extra bytes after the data mean a wrong header or a corrupt file.
  std::string extra = dir.file("extra");
  std::vector<uint8_t> b = idx_header(0x00000801, {3});
  b.resize(b.size() + 5, 1);
  data::write_file_bytes(extra, b);
  test::expect_error([&] { read_idx_labels(extra); },
                     {extra, "2 unexpected bytes after the labels at byte 11"});
}

TEST(Idx, TruncatedGzipIsAnErrorNotAShortFile) {
  TempDir dir;
  std::string path = dir.file("images.gz");
  write_idx(path, test::random_bytes({20, 8, 8}), /*gzip=*/true);
  size_t full = std::filesystem::file_size(path);
  test::truncate_file(path, full / 2);
  test::expect_error([&] { read_idx_images(path); }, {"idx: ", path, "gzip data after"});
}

TEST(Idx, MissingFileIsNamed) {
  TempDir dir;
  std::string path = dir.file("nope-idx3-ubyte");
  test::expect_error([&] { read_idx_images(path); }, {"idx: ", path, "no such file"});
}

// A small MNIST-layout folder: train images gzip, train labels raw.
void write_mnist_dir(const TempDir& dir, const Tensor& images, const Tensor& labels) {
  write_idx(dir.file("train-images-idx3-ubyte.gz"), images, true);
  write_idx(dir.file("train-labels-idx1-ubyte"), labels, false);
}

TEST(Mnist, LoadsTheTrainSplitFromAFolder) {
  TempDir dir;
  Tensor images = test::random_bytes({6, 28, 28}), labels = test::random_bytes({6}, 0, 10);
  write_mnist_dir(dir, images, labels);
  data::LabeledImages d = load_mnist(dir.str(), /*train=*/true);
  EXPECT_EQ(d.size(), 6);
  EXPECT_EQ(test::bytes_of(d.images), test::bytes_of(images));
  EXPECT_EQ(d.labels.to_vector<int64_t>(), labels.to_vector<int64_t>());
  test::expect_error([&] { load_mnist(dir.str(), /*train=*/false); },
                     {"mnist: no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz in ", dir.str()});
  test::expect_error([&] { load_fashion_mnist(dir.file("missing"), true); },
                     {"fashion-mnist", "no such directory"});
}

TEST(Mnist, CountMismatchAndBadLabelsAreErrors) {
  TempDir dir;
  write_mnist_dir(dir, test::random_bytes({6, 28, 28}), test::random_bytes({5}, 0, 10));
  test::expect_error(
      [&] { load_mnist(dir.str(), true); },
      {"mnist: ", "train-images-idx3-ubyte.gz has 6 images but ", "train-labels-idx1-ubyte has 5 labels"});
  Tensor labels = from_vector({1, 2, 3, 12}, {4}, {.dtype = DType::u8});
  write_mnist_dir(dir, test::random_bytes({4, 28, 28}), labels);
  test::expect_error([&] { load_mnist(dir.str(), true); }, {"label 12 at byte 11 is not a class in 0..9"});
}

// The Debian package dataset-fashion-mnist: 60000 + 10000 items, 10 balanced classes.
TEST(FashionMnist, RealDatasetHasBalancedClasses) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no " << dir;
  for (bool train : {true, false}) {
    data::LabeledImages d = load_fashion_mnist(dir, train);
    int64_t n = train ? 60000 : 10000;
    ASSERT_EQ(d.images.shape(), (Shape{n, 28, 28}));
    ASSERT_EQ(d.labels.shape(), (Shape{n}));
    std::vector<int64_t> counts(10, 0);
    const int64_t* labels = d.labels.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_GE(labels[i], 0);
      ASSERT_LT(labels[i], 10);
      ++counts[labels[i]];
    }
    for (int64_t c : counts) EXPECT_EQ(c, n / 10);
    // Not blank: clothing on a black background covers a good part of the pixels.
    const uint8_t* px = d.images.data<uint8_t>();
    int64_t nonzero = 0;
    for (int64_t i = 0; i < 28 * 28 * 100; ++i) nonzero += px[i] != 0;
    EXPECT_GT(nonzero, 28 * 28 * 100 / 5);
  }
}

}  // namespace
}  // namespace nabla

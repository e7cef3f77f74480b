// Hostile data files (issue 15): every case is refused with one line naming the file and what was
// expected, without a crash, a hang or a memory bomb. IDX dimensions whose product overflows, a gzip bomb
// stopped at the declared size, trailing gzip garbage, PNG/JPEG headers declaring huge images, /dev/zero
// and FIFOs posing as images, symlink loops, and a validation folder with a class the training set lacks.
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "data_testing.h"
#include "models/classifiers.h"

namespace nabla {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::vector<uint8_t> be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
          static_cast<uint8_t>(v)};
}

std::vector<uint8_t> idx_header(uint32_t magic, const std::vector<uint32_t>& dims) {
  std::vector<uint8_t> b = be32(magic);
  for (uint32_t d : dims) {
    auto x = be32(d);
    b.insert(b.end(), x.begin(), x.end());
  }
  return b;
}

TEST(HostileIdx, DimensionsWhoseProductOverflowsAreRefused) {
  TempDir dir;
  const std::string path = dir.file("huge-idx3-ubyte");
  data::write_file_bytes(path, idx_header(0x00000803, {0xffffffffu, 0xffffffffu, 0xffffffffu}));
  test::expect_error([&] { data::read_idx_images(path); },
                     {"idx: " + path +
                      ": the dimensions at byte 4: the product of sizes "
                      "[4294967295,4294967295,4294967295] does not fit in a signed 64-bit size"});
  // No element at all, but the strides of the other two dimensions would still overflow.
  data::write_file_bytes(path, idx_header(0x00000803, {0, 0xffffffffu, 0xffffffffu}), /*gzip=*/true);
  test::expect_error([&] { data::read_idx_images(path); },
                     {"idx: " + path +
                      ": the dimensions at byte 4: the product of sizes "
                      "[0,4294967295,4294967295] does not fit in a signed 64-bit size"});
  // Large but representable: the file is too short, said before anything is allocated.
  data::write_file_bytes(path, idx_header(0x00000803, {100000, 100000, 1000}));
  test::expect_error([&] { data::read_idx_images(path); },
                     {"idx: " + path + ": expected 10000000000000 bytes of pixels at byte 16, file has 0"});
}

// A gzip file whose header declares [n, 4, 4] images followed by `zeros` bytes (written in chunks, so the
// test itself stays small).
void write_gzip_bomb(const std::string& path, uint32_t n, size_t zeros) {
  gzFile gz = gzopen(path.c_str(), "wb9");
  ASSERT_NE(gz, nullptr);
  std::vector<uint8_t> head = idx_header(0x00000803, {n, 4, 4});
  gzwrite(gz, head.data(), static_cast<unsigned>(head.size()));
  std::vector<uint8_t> chunk(1 << 20, 0);
  for (size_t left = zeros; left > 0;) {
    size_t k = std::min(left, chunk.size());
    gzwrite(gz, chunk.data(), static_cast<unsigned>(k));
    left -= k;
  }
  ASSERT_EQ(gzclose(gz), Z_OK);
}

TEST(HostileIdx, GzipBombStopsOneBytePastTheDeclaredSize) {
  TempDir dir;
  const std::string path = dir.file("bomb-idx3-ubyte.gz");
  const uint32_t n = 3 + static_cast<uint32_t>(test::next_seed() % 5);
  write_gzip_bomb(path, n, size_t{256} << 20);  // 256 MiB of zeros in ~250 KB
  EXPECT_LT(fs::file_size(path), 400'000u);
  const auto t0 = std::chrono::steady_clock::now();
  test::expect_error(
      [&] { data::read_idx_images(path); },
      {"idx: " + path + ": more than the " + std::to_string(16 + 16 * n) + " bytes its header declares ([" +
       std::to_string(n) + ",4,4] pixels) after decompression (stopped at compressed byte "});
  // It stopped early: inflating all 256 MiB takes far longer than reading a few KB.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.5);
  // One byte too many, ending right at the bound + 1 (found by fuzz_idx_gzip): still refused.
  std::vector<uint8_t> one_more = idx_header(0x00000803, {1, 2, 2});
  one_more.resize(one_more.size() + 5, 9);
  const std::string near = dir.file("near-idx3-ubyte.gz");
  data::write_file_bytes(near, one_more, /*gzip=*/true);
  test::expect_error([&] { data::read_idx_images(near); },
                     {"idx: " + near +
                      ": more than the 20 bytes its header declares ([1,2,2] pixels) after "
                      "decompression (21 bytes)"});
  // The same bound holds for any reader: read_file_bytes with an explicit cap.
  test::expect_error(
      [&] { data::read_file_bytes(path, "test", 1000); },
      {"test: " + path + ": more than the limit of 1000 bytes (NABLA_MAX_FILE_BYTES) after decompression"});
}

TEST(HostileGzip, TrailingGarbageIsAnErrorAndMembersFollowEachOther) {
  TempDir dir;
  Tensor images = test::random_bytes({5, 4, 4});
  const std::string path = dir.file("img-idx3-ubyte.gz");
  data::write_idx(path, images, /*gzip=*/true);
  const auto size = fs::file_size(path);
  {
    std::FILE* f = std::fopen(path.c_str(), "ab");
    std::fputs("garbage", f);
    std::fclose(f);
  }
  test::expect_error(
      [&] { data::read_idx_images(path); },
      {"idx: " + path + ": 7 bytes of trailing garbage after the gzip stream, which ends at byte " +
       std::to_string(size) + " (expected end of file or another gzip member)"});
  // Two gzip members, as `cat a.gz b.gz` makes: one stream of their contents.
  const std::string a = dir.file("a.gz"), b = dir.file("b.gz"), ab = dir.file("ab.gz");
  std::vector<uint8_t> first = test::bytes_of(test::random_bytes({100})),
                       second = test::bytes_of(test::random_bytes({37}));
  data::write_file_bytes(a, first, true);
  data::write_file_bytes(b, second, true);
  std::vector<uint8_t> both = test::read_bytes(a);  // decompressed: re-read the raw bytes instead
  {
    std::FILE* out = std::fopen(ab.c_str(), "wb");
    for (const std::string& p : {a, b}) {
      std::FILE* in = std::fopen(p.c_str(), "rb");
      int ch;
      while ((ch = std::fgetc(in)) != EOF) std::fputc(ch, out);
      std::fclose(in);
    }
    std::fclose(out);
  }
  both.insert(both.end(), second.begin(), second.end());
  EXPECT_EQ(test::read_bytes(ab), both);
}

TEST(HostileFiles, DevZeroFifoAndSymlinkLoopAreRefusedAtOnce) {
  TempDir dir;
  const std::string zero = dir.file("zero.jpg");
  fs::create_symlink("/dev/zero", zero);
  test::expect_error([&] { data::read_image(zero); },
                     {"image: " + zero + ": is a character device, expected a regular file"});
  const std::string fifo = dir.file("fifo.png");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  test::expect_error([&] { data::read_image(fifo); },
                     {"image: " + fifo + ": is a FIFO, expected a regular file"});
  test::expect_error([&] { data::read_idx_labels(fifo); },
                     {"idx: " + fifo + ": is a FIFO, expected a regular file"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  const std::string loop = dir.file("loop.png");
  fs::create_symlink(loop, loop);
  test::expect_error([&] { data::read_image(loop); },
                     {"image: " + loop + ": is a symlink loop (too many levels of symbolic links)"});
  // A size cap on raw files too (NABLA_MAX_FILE_BYTES by default).
  const std::string small = dir.file("small.bin");
  data::write_file_bytes(small, std::vector<uint8_t>(11, 1));
  test::expect_error(
      [&] { data::read_file_bytes(small, "test", 10); },
      {"test: " + small + ": 11 bytes, more than the limit of 10 bytes (NABLA_MAX_FILE_BYTES)"});
}

// A PNG with only a signature, an IHDR declaring w x h, a 2-byte IDAT and IEND (CRCs correct, so libpng reads
// the header).
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
    auto len = be32(static_cast<uint32_t>(data.size()));
    b.insert(b.end(), len.begin(), len.end());
    std::vector<uint8_t> body(type, type + 4);
    body.insert(body.end(), data.begin(), data.end());
    b.insert(b.end(), body.begin(), body.end());
    auto crc = be32(static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
    b.insert(b.end(), crc.begin(), crc.end());
  };
  std::vector<uint8_t> ihdr = be32(w);
  auto hh = be32(h);
  ihdr.insert(ihdr.end(), hh.begin(), hh.end());
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", {0x78, 0x9c});  // png_read_info stops at the first IDAT; the data is cut short
  chunk("IEND", {});
  return b;
}

TEST(HostileImages, HugeDeclaredSizesAreRefusedBeforeAllocating) {
  const auto png = png_header_only(60000, 60000);
  test::expect_error(
      [&] { data::decode_image(png.data(), png.size(), "big.png"); },
      {"image: big.png: the PNG header declares 60000x60000 = 3600000000 pixels, more than the limit "
       "of 268435456 (raise it with NABLA_MAX_IMAGE_PIXELS or data::set_max_image_pixels)"});
  // A real JPEG whose SOF0 is patched to 65500 x 65500.
  std::vector<uint8_t> jpg = data::encode_jpeg(test::random_bytes({8, 8, 3}));
  size_t sof = 2;
  while (sof + 9 < jpg.size() && !(jpg[sof] == 0xFF && jpg[sof + 1] == 0xC0)) ++sof;
  ASSERT_LT(sof + 9, jpg.size());
  jpg[sof + 5] = 0xFF, jpg[sof + 6] = 0xDC, jpg[sof + 7] = 0xFF, jpg[sof + 8] = 0xDC;  // height, width
  test::expect_error(
      [&] { data::decode_image(jpg.data(), jpg.size(), "big.jpg"); },
      {"image: big.jpg: the JPEG header declares 65500x65500 = 4290250000 pixels, more than the "
       "limit of 268435456"});
  // Under the limit but with no pixel data: an error after the first row, not a 768 MB buffer.
  const auto truncated = png_header_only(16000, 16000);
  test::expect_error([&] { data::decode_image(truncated.data(), truncated.size(), "t.png"); },
                     {"image: t.png: corrupt PNG near byte"});
  // The limit can be lowered (and raised) for the process.
  Tensor img = test::random_bytes({30, 40, 3});
  std::vector<uint8_t> small = data::encode_png(img);
  data::set_max_image_pixels(1199);
  test::expect_error(
      [&] { data::decode_image(small.data(), small.size(), "s.png"); },
      {"image: s.png: the PNG header declares 40x30 = 1200 pixels, more than the limit of 1199"});
  data::set_max_image_pixels(1200);
  EXPECT_EQ(test::bytes_of(data::decode_image(small.data(), small.size(), "s.png")), test::bytes_of(img));
  data::set_max_image_pixels(data::kDefaultMaxImagePixels);
}

void make_class_dirs(const TempDir& dir, const std::string& split, const std::vector<std::string>& classes) {
  for (const std::string& c : classes) {
    fs::create_directories(dir.file(split + "/" + c));
    data::write_png(dir.file(split + "/" + c + "/a.png"), test::random_bytes({4, 4, 3}));
  }
}

TEST(HostileImageFolder, ValidationClassesAreMappedByNameAndUnknownOnesRefused) {
  TempDir dir;
  make_class_dirs(dir, "train", {"cat", "dog", "owl"});
  make_class_dirs(dir, "val", {"dog", "owl"});  // fewer classes: the indices stay the training set's
  data::ImageFolder train(dir.file("train"));
  data::ImageFolder val(dir.file("val"), data::ImageMode::rgb, train.classes());
  ASSERT_EQ(val.size(), 2);
  EXPECT_EQ(val.get(0).label, 1);
  EXPECT_EQ(val.get(1).label, 2);
  EXPECT_EQ(val.classes(), train.classes());
  // Without the training classes the same folder would be labelled 0 and 1: the silent wrong answer.
  EXPECT_EQ(data::ImageFolder(dir.file("val")).get(0).label, 0);
  make_class_dirs(dir, "val", {"zebra"});
  test::expect_error(
      [&] { data::ImageFolder(dir.file("val"), data::ImageMode::rgb, train.classes()); },
      {"ImageFolder: " + dir.file("val") +
       ": class folder 'zebra' is not one of the 3 training classes (cat, dog, owl); every class "
       "must also be in the training set"});
}

TEST(HostileImageFolder, SymlinkLoopsAreOneLineNamingTheLink) {
  TempDir dir;
  make_class_dirs(dir, "train", {"cat", "dog"});
  fs::create_directory_symlink("..", dir.file("train/cat/up"));  // cat/up -> train: leads back above
  test::expect_error([&] { data::ImageFolder(dir.file("train")); },
                     {"ImageFolder: " + dir.file("train/cat/up/cat") +
                      ": is a symlink loop (it leads back to a folder above it); remove the link"});
  fs::remove(dir.file("train/cat/up"));
  fs::create_symlink(dir.file("train/dog/self.jpg"), dir.file("train/dog/self.jpg"));
  test::expect_error([&] { data::ImageFolder(dir.file("train")); },
                     {"ImageFolder: " + dir.file("train/dog/self.jpg") +
                      ": is a symlink loop (too many levels of symbolic links)"});
  fs::remove(dir.file("train/dog/self.jpg"));
  EXPECT_EQ(data::ImageFolder(dir.file("train")).size(), 2);
}

TEST(HostileSizes, ModelSizesFromDataDimensionsAreChecked) {
  // An image size from a file header or a command line whose square overflows: an error, not
  // "Linear: features must be positive, got -103079214960".
  test::expect_error(
      [] { models::make_classifier("mlp", 3, 3037000500, 10); },
      {"mlp: input features channels x size x size: the product of sizes [3,3037000500,3037000500] "
       "does not fit in a signed 64-bit size"});
  const int64_t side = 8 + static_cast<int64_t>(test::next_seed() % 8);
  auto net = models::make_classifier("mlp", 1, side, 10);
  EXPECT_EQ(net->parameters()[0].shape(), (Shape{256, side * side}));
}

}  // namespace
}  // namespace nabla

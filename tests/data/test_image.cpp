// JPEG/PNG decoding: exact PNG round trips of random pixels, the PNG conversions (palette, gray + alpha,
// RGBA, 16-bit), JPEG within its loss, CMYK, ImageMode conversions, corrupt files giving errors (never
// ending the process), and ImageFolder's class and file ordering.
#include <filesystem>

#include "data_testing.h"

namespace nabla {
namespace {

using data::ImageMode;
using data::read_image;
using test::TempDir;

Tensor constant_image(int64_t h, int64_t w, std::vector<uint8_t> color) {
  int64_t c = static_cast<int64_t>(color.size());
  Tensor t = Tensor::empty({h, w, c}, DType::u8);
  uint8_t* p = t.data<uint8_t>();
  for (int64_t i = 0; i < h * w; ++i)
    for (int64_t k = 0; k < c; ++k) p[i * c + k] = color[k];
  return t;
}

// A smooth gradient (JPEG's best case) plus a little noise.
Tensor smooth_image(int64_t h, int64_t w) {
  Tensor noise = test::random_bytes({h, w, 3}, 0, 8);
  Tensor t = Tensor::empty({h, w, 3}, DType::u8);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t c = 0; c < 3; ++c)
        t.data<uint8_t>()[(y * w + x) * 3 + c] =
            static_cast<uint8_t>(40 + 3 * y + 2 * x + 30 * c + noise.data<uint8_t>()[(y * w + x) * 3 + c]);
  return t;
}

int max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<uint8_t> x = test::bytes_of(a), y = test::bytes_of(b);
  EXPECT_EQ(x.size(), y.size());
  int m = 0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) m = std::max(m, std::abs(int{x[i]} - int{y[i]}));
  return m;
}

TEST(Png, RandomPixelsRoundTripExactly) {
  TempDir dir;
  for (int64_t c : {1, 3}) {
    Tensor img = test::random_bytes({7, 9, c});
    std::string path = dir.file("img" + std::to_string(c) + ".png");
    data::write_png(path, img);
    Tensor got = read_image(path);
    EXPECT_EQ(got.dtype(), DType::u8);
    EXPECT_EQ(got.shape(), (Shape{7, 9, c}));
    EXPECT_EQ(test::bytes_of(got), test::bytes_of(img));
  }
}

TEST(Png, PaletteAlphaAnd16BitBecome8BitRgbOrGray) {
  TempDir dir;
  // Palette: 5 colours over a 6x4 image.
  Tensor colors = test::random_bytes({5, 3});
  Tensor pick = test::random_bytes({6, 4}, 0, 5);
  Tensor rgb = Tensor::empty({6, 4, 3}, DType::u8);
  for (int64_t i = 0; i < 24; ++i)
    for (int64_t k = 0; k < 3; ++k)
      rgb.data<uint8_t>()[i * 3 + k] = colors.data<uint8_t>()[pick.data<uint8_t>()[i] * 3 + k];
  data::write_png(dir.file("palette.png"), rgb, /*palette=*/true);
  EXPECT_EQ(test::bytes_of(read_image(dir.file("palette.png"))), test::bytes_of(rgb));

  // Alpha is dropped: RGBA -> RGB, gray + alpha -> gray.
  Tensor rgba = test::random_bytes({5, 3, 4});
  data::write_png(dir.file("rgba.png"), rgba);
  Tensor got = read_image(dir.file("rgba.png"));
  ASSERT_EQ(got.shape(), (Shape{5, 3, 3}));
  EXPECT_EQ(test::bytes_of(got), test::bytes_of(rgba.narrow(2, 0, 3)));
  Tensor gray_alpha = test::random_bytes({4, 6, 2});
  data::write_png(dir.file("ga.png"), gray_alpha);
  got = read_image(dir.file("ga.png"));
  ASSERT_EQ(got.shape(), (Shape{4, 6, 1}));
  EXPECT_EQ(test::bytes_of(got), test::bytes_of(gray_alpha.narrow(2, 0, 1)));

  // 16 bits: v * 257 maps back to v exactly; other values round to the nearest 8-bit level.
  Tensor levels = test::random_bytes({3, 5, 3});
  Tensor wide = Tensor::empty({3, 5, 3}, DType::i32);
  for (int64_t i = 0; i < 45; ++i) wide.data<int32_t>()[i] = levels.data<uint8_t>()[i] * 257;
  data::write_png(dir.file("wide.png"), wide);
  EXPECT_EQ(test::bytes_of(read_image(dir.file("wide.png"))), test::bytes_of(levels));
  Tensor odd = from_vector({0, 128, 32767, 65535}, {1, 4, 1}, {.dtype = DType::i32});
  data::write_png(dir.file("odd.png"), odd);
  EXPECT_EQ(read_image(dir.file("odd.png")).to_vector<int>(), (std::vector<int>{0, 0, 127, 255}));
}

TEST(Image, ModesConvertGrayAndRgb) {
  TempDir dir;
  Tensor gray = test::random_bytes({3, 4, 1});
  data::write_png(dir.file("g.png"), gray);
  Tensor as_rgb = read_image(dir.file("g.png"), ImageMode::rgb);
  ASSERT_EQ(as_rgb.shape(), (Shape{3, 4, 3}));
  for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(test::bytes_of(as_rgb.narrow(2, k, 1)), test::bytes_of(gray));

  Tensor rgb = from_vector({255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 90}, {2, 2, 3}, {.dtype = DType::u8});
  data::write_png(dir.file("c.png"), rgb);
  Tensor as_gray = read_image(dir.file("c.png"), ImageMode::gray);
  ASSERT_EQ(as_gray.shape(), (Shape{2, 2, 1}));
  // L = 0.299 R + 0.587 G + 0.114 B, rounded: 76, 150, 29, and 0.299*10 + 0.587*200 + 0.114*90 = 130.65.
  EXPECT_EQ(as_gray.to_vector<int>(), (std::vector<int>{76, 150, 29, 131}));
}

TEST(Jpeg, DecodesWithinTheCompressionLoss) {
  TempDir dir;
  Tensor flat = constant_image(16, 24, {200, 30, 90});
  data::write_jpeg(dir.file("flat.jpg"), flat, 100);
  Tensor got = read_image(dir.file("flat.jpg"));
  ASSERT_EQ(got.shape(), (Shape{16, 24, 3}));
  EXPECT_LE(max_abs_diff(got, flat), 2);

  Tensor gray = constant_image(9, 13, {77});
  data::write_jpeg(dir.file("gray.jpeg"), gray, 100);
  got = read_image(dir.file("gray.jpeg"));
  ASSERT_EQ(got.shape(), (Shape{9, 13, 1}));
  EXPECT_LE(max_abs_diff(got, gray), 1);
  EXPECT_EQ(read_image(dir.file("gray.jpeg"), ImageMode::rgb).shape(), (Shape{9, 13, 3}));

  Tensor smooth = smooth_image(32, 40);
  data::write_jpeg(dir.file("smooth.jpg"), smooth, 95);
  got = read_image(dir.file("smooth.jpg"));
  std::vector<uint8_t> a = test::bytes_of(got), b = test::bytes_of(smooth);
  double mean_err = 0;
  for (size_t i = 0; i < a.size(); ++i) mean_err += std::abs(int{a[i]} - int{b[i]});
  EXPECT_LT(mean_err / a.size(), 3.0);
}

TEST(Jpeg, AdobeCmykBecomesRgb) {
  TempDir dir;
  // libjpeg writes CMYK with an Adobe marker, which readers take as Photoshop's inverted CMYK:
  // R = stored_C * stored_K / 255.
  data::write_jpeg(dir.file("cmyk.jpg"), constant_image(8, 8, {255, 128, 0, 200}), 100);
  Tensor got = read_image(dir.file("cmyk.jpg"));
  ASSERT_EQ(got.shape(), (Shape{8, 8, 3}));
  EXPECT_LE(max_abs_diff(got, constant_image(8, 8, {200, 100, 0})), 2);
}

TEST(Image, CorruptAndTruncatedFilesAreErrorsNamingTheFile) {
  TempDir dir;
  std::string jpg = dir.file("a.jpg"), png = dir.file("a.png");
  data::write_jpeg(jpg, smooth_image(32, 32), 90);
  data::write_png(png, test::random_bytes({16, 16, 3}));

  std::vector<uint8_t> jb = test::read_bytes(jpg);
  test::truncate_file(jpg, jb.size() / 2);
  test::expect_error([&] { read_image(jpg); }, {"image: ", jpg, "corrupt JPEG near byte", "Premature end"});
  std::vector<uint8_t> bad_header(jb.begin(), jb.end());
  std::fill(bad_header.begin() + 3, bad_header.begin() + 40, 0);
  data::write_file_bytes(jpg, bad_header);
  test::expect_error([&] { read_image(jpg); }, {"image: ", jpg, "corrupt JPEG"});

  std::vector<uint8_t> pb = test::read_bytes(png);
  test::truncate_file(png, pb.size() - 30);
  test::expect_error([&] { read_image(png); }, {"image: ", png, "corrupt PNG near byte"});
  std::vector<uint8_t> flipped = pb;
  flipped[18] ^= 0x40;  // inside IHDR: its CRC no longer matches
  data::write_file_bytes(png, flipped);
  test::expect_error([&] { read_image(png); }, {"image: ", png, "corrupt PNG", "CRC"});

  std::string txt = dir.file("notes.png");
  data::write_file_bytes(txt, {'G', 'I', 'F', '8', '9', 'a'});
  test::expect_error([&] { read_image(txt); }, {"image: ", txt, "not a JPEG or PNG file", "47 49 46 38"});
  test::expect_error([&] { read_image(dir.file("missing.jpg")); }, {"missing.jpg", "no such file"});
}

TEST(ImageFolder, SortsClassesAndFilesAndSkipsOtherFiles) {
  TempDir dir;
  namespace fs = std::filesystem;
  std::string root = dir.file("train");
  for (const char* cls : {"dog", "ant", "cat"}) fs::create_directories(fs::path(root) / cls);
  fs::create_directories(fs::path(root) / "cat" / "more");
  Tensor a = test::random_bytes({4, 5, 3}), b = test::random_bytes({6, 2, 3}),
         c = test::random_bytes({3, 3, 1});
  data::write_png(root + "/dog/b.PNG", b);
  data::write_png(root + "/dog/a.png", a);
  data::write_jpeg(root + "/ant/x.JpEg", constant_image(8, 8, {10, 20, 30}), 100);
  data::write_png(root + "/cat/more/z.png", c);
  data::write_png(root + "/cat/m.png", a);
  data::write_file_bytes(root + "/cat/readme.txt", {'h', 'i'});
  data::write_file_bytes(root + "/notes.txt", {'h', 'i'});  // files at the root are not classes

  data::ImageFolder folder(root);
  EXPECT_EQ(folder.classes(), (std::vector<std::string>{"ant", "cat", "dog"}));
  ASSERT_EQ(folder.size(), 5);
  std::vector<std::string> names;
  std::vector<int64_t> labels;
  for (const auto& s : folder.samples()) {
    names.push_back(fs::relative(s.path, root).string());
    labels.push_back(s.label);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ant/x.JpEg", "cat/m.png", "cat/more/z.png", "dog/a.png",
                                             "dog/b.PNG"}));
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 1, 2, 2}));
  data::Example e = folder.get(4);
  EXPECT_EQ(e.label, 2);
  EXPECT_EQ(test::bytes_of(e.input), test::bytes_of(b));
  EXPECT_EQ(folder.get(2).input.shape(), (Shape{3, 3, 3}));  // gray file, rgb mode
  test::expect_error([&] { folder.get(5); }, {"ImageFolder: index 5 is out of range for 5 examples"});
}

TEST(ImageFolder, MissingOrEmptyRootsAreErrors) {
  TempDir dir;
  test::expect_error([&] { data::ImageFolder f(dir.file("nope")); },
                     {"ImageFolder: ", "nope", "no such directory"});
  test::expect_error([&] { data::ImageFolder f(dir.str()); }, {"ImageFolder: ", dir.str(), "is empty"});
  std::filesystem::create_directories(dir.file("cls"));
  data::write_file_bytes(dir.file("cls/a.gif"), {'G', 'I', 'F'});
  test::expect_error([&] { data::ImageFolder f(dir.str()); },
                     {"class folder ", "cls", "has no .jpg, .jpeg or .png files"});
}

}  // namespace
}  // namespace nabla

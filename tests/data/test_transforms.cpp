// Transforms against hand-computed values: to_float, normalize, flip, crop with padding, bilinear resize
// (up, down with and without antialiasing), centre crop placement, random-resized-crop's fallback, and
// the reproducibility of random transforms.
#include <set>

#include "data_testing.h"

namespace nabla {
namespace {

using namespace data;

Tensor u8(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, {.dtype = DType::u8}); }
Tensor f32(const std::vector<double>& v, const Shape& s) { return from_vector(v, s); }

TEST(Transforms, ToFloatMakesChwInUnitRange) {
  // [H=1, W=2, C=3]: pixel 0 = (0, 51, 255), pixel 1 = (102, 204, 17)
  Tensor img = u8({0, 51, 255, 102, 204, 17}, {1, 2, 3});
  Tensor x = to_float_chw(img);
  EXPECT_EQ(x.dtype(), DType::f32);
  EXPECT_EQ(x.shape(), (Shape{3, 1, 2}));
  test::expect_close(x, {0, 0.4, 0.2, 0.8, 1, 17.0 / 255}, 1e-7);
  EXPECT_EQ(to_float_chw(u8({1, 2, 3, 4}, {2, 2})).shape(), (Shape{1, 2, 2}));  // gray HW
  test::expect_error([&] { to_float_chw(f32({1, 2}, {1, 2})); }, {"to_float", "expected a u8 image"});
}

TEST(Transforms, NormalizeIsPerChannel) {
  Tensor x = f32({0.5, 1.0, 0.2, 0.0}, {2, 1, 2});
  Tensor y = normalize_chw(x, {0.5, 0.1}, {0.25, 0.5});
  test::expect_close(y, {0, 2, 0.2, -0.2}, 1e-6);
  test::expect_error(
      [&] {
        normalize_chw(x, {0.5, 0.5, 0.5}, {1, 1, 1});
      },
      {"normalize", "3 means and 3 stds for an image of 2 channels", "[2,1,2]"});
}

TEST(Transforms, HorizontalFlipInBothLayouts) {
  Tensor hwc = u8({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 3, 2});  // rows (1,2)(3,4)(5,6) / (7,8)...
  EXPECT_EQ(hflip_image(hwc).to_vector<int>(), (std::vector<int>{5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8}));
  Tensor chw = f32({1, 2, 3, 4, 5, 6}, {2, 1, 3});
  EXPECT_EQ(hflip_image(chw).to_vector<int>(), (std::vector<int>{3, 2, 1, 6, 5, 4}));
  // Flipping bytes then converting equals converting then flipping.
  Tensor img = test::random_bytes({5, 7, 3});
  EXPECT_EQ(to_float_chw(hflip_image(img)).to_vector(), hflip_image(to_float_chw(img)).to_vector());
}

TEST(Transforms, CropWithPaddingFillsOutsideTheImage) {
  Tensor img = f32({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3});
  // Window at (-1, -1) of size 3x3 of the image padded by 1 with 0.
  EXPECT_EQ(crop_image(img, -1, -1, 3, 3).to_vector(), (std::vector<double>{0, 0, 0, 0, 1, 2, 0, 4, 5}));
  EXPECT_EQ(crop_image(img, 1, 2, 2, 3, -1).to_vector(), (std::vector<double>{6, -1, -1, 9, -1, -1}));
  Tensor hwc = u8({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  EXPECT_EQ(crop_image(hwc, 1, -1, 2, 2, 9).to_vector<int>(), (std::vector<int>{9, 9, 5, 6, 9, 9, 9, 9}));
}

TEST(Transforms, RandomCropCoversEveryPaddedOffset) {
  Tensor img = f32({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 4, 4});
  Transform t = random_crop(4, 4, /*padding=*/1);
  std::set<std::pair<int64_t, int64_t>> seen;
  for (uint64_t s = 0; s < 300; ++s) {
    Rng rng(s);
    Tensor out = t(img, rng);
    bool found = false;
    for (int64_t top = -1; top <= 1 && !found; ++top)
      for (int64_t left = -1; left <= 1 && !found; ++left)
        if (out.to_vector() == crop_image(img, top, left, 4, 4).to_vector()) {
          seen.insert({top, left});
          found = true;
        }
    EXPECT_TRUE(found) << "seed " << s;
  }
  EXPECT_EQ(seen.size(), 9u);
  test::expect_error(
      [&] {
        Rng rng(1);
        random_crop(7, 7, 1)(img, rng);
      },
      {"random_crop", "padded by 1 is smaller than the crop 7 x 7"});
}

TEST(Transforms, BilinearUpscaleMatchesHandCalculation) {
  // 2x2 -> 4x4, half-pixel centres: output x samples u = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
  // clamped at the edges, so the weight of the second pixel is f = 0, 0.25, 0.75, 1 along each axis and,
  // the image being v = 10 x + 20 y, out[y][x] = 10 f[x] + 20 f[y].
  Tensor img = f32({0, 10, 20, 30}, {1, 2, 2});
  const double f[4] = {0, 0.25, 0.75, 1};
  std::vector<double> expected;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) expected.push_back(10 * f[x] + 20 * f[y]);
  test::expect_close(resize_image(img, 4, 4), expected, 1e-5);
  test::expect_close(resize_image(img, 4, 4, /*antialias=*/false), expected, 1e-5);
  // u8 results round: 2.5 -> 2 (half to even, as nearbyint), 7.5 -> 8.
  Tensor bytes = u8({0, 10}, {1, 2, 1});
  EXPECT_EQ(resize_image(bytes, 1, 4).to_vector<int>(), (std::vector<int>{0, 2, 8, 10}));
}

TEST(Transforms, DownscaleWithAndWithoutAntialiasing) {
  // 1x4 -> 1x2 (scale 2). Plain bilinear: u = 0.5 and 2.5 -> (a + b) / 2, (c + d) / 2.
  // Antialiased: the triangle is stretched to radius 2 around centres 1 and 3 (in pixel-edge units); pixel
  // j sits at j + 0.5, so the weights are 0.75, 0.75, 0.25 (and 0.25 outside the image, dropped) over
  // a, b, c for the first output, normalised by 1.75.
  double a = 2, b = 10, c = 4, d = 30;
  Tensor img = f32({a, b, c, d}, {1, 1, 4});
  test::expect_close(resize_image(img, 1, 2, false), {(a + b) / 2, (c + d) / 2}, 1e-5);
  test::expect_close(resize_image(img, 1, 2, true),
                     {(0.75 * a + 0.75 * b + 0.25 * c) / 1.75, (0.25 * b + 0.75 * c + 0.75 * d) / 1.75},
                     1e-5);
  // A constant image stays constant at any size, in both layouts.
  Tensor flat = Tensor::empty({5, 7, 3}, DType::u8).fill_(77);
  EXPECT_EQ(resize_image(flat, 3, 11).to_vector<int>(), std::vector<int>(3 * 11 * 3, 77));
}

TEST(Transforms, CenterCropPlacementFollowsTorchvision) {
  // (5 - 2) / 2 = 1.5 rounds half to even -> 2; (4 - 2) / 2 = 1.
  CropBox box = center_crop_box(5, 4, 2, 2);
  EXPECT_EQ(box.top, 2);
  EXPECT_EQ(box.left, 1);
  Tensor img = f32({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, {1, 5, 4});
  Rng rng;
  EXPECT_EQ(center_crop(2, 2)(img, rng).to_vector(), (std::vector<double>{9, 10, 13, 14}));
  // Larger than the image: padded by (crop - size) // 2 before.
  box = center_crop_box(2, 2, 4, 5);
  EXPECT_EQ(box.top, -1);
  EXPECT_EQ(box.left, -1);
  EXPECT_EQ(center_crop(4, 5)(f32({1, 2, 3, 4}, {1, 2, 2}), rng).to_vector(),
            (std::vector<double>{0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(Transforms, RandomResizedCropFallsBackToAClampedCentreCrop) {
  // An area fraction above 1 never fits, so after 10 attempts: a 10x40 image is wider than 4:3, so the
  // crop keeps the height and takes width round(10 * 4/3) = 13, centred: left (40 - 13) / 2 = 13.
  Rng rng(5);
  CropBox box = random_resized_crop_box(10, 40, {2.0, 3.0}, {3.0 / 4, 4.0 / 3}, rng);
  EXPECT_EQ(box.top, 0);
  EXPECT_EQ(box.left, 13);
  EXPECT_EQ(box.height, 10);
  EXPECT_EQ(box.width, 13);
  EXPECT_EQ(rng.draws(), 20u);  // 10 attempts of 2 draws
  // Taller than 3:4: full width, height round(10 / 0.75) = 13, top (40 - 13) / 2 = 13.
  Rng rng2(6);
  box = random_resized_crop_box(40, 10, {2.0, 3.0}, {3.0 / 4, 4.0 / 3}, rng2);
  EXPECT_EQ(box.top, 13);
  EXPECT_EQ(box.height, 13);
  EXPECT_EQ(box.width, 10);

  Tensor img = test::random_bytes({10, 40, 3});
  Rng rng3(7);
  Tensor out = random_resized_crop(6, 6, {2.0, 3.0})(img, rng3);
  EXPECT_EQ(out.to_vector(), resize_image(crop_image(img, 0, 13, 10, 13), 6, 6).to_vector());
}

TEST(Transforms, RandomResizedCropBoxesStayInsideWithTheRequestedShape) {
  for (uint64_t s = 0; s < 200; ++s) {
    Rng rng(s);
    CropBox b = random_resized_crop_box(48, 64, {0.08, 1.0}, {3.0 / 4, 4.0 / 3}, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 48);
    ASSERT_LE(b.left + b.width, 64);
    double area = static_cast<double>(b.height * b.width) / (48 * 64);
    EXPECT_GT(area, 0.05);  // 0.08 of the area, less the rounding of the sides
    double aspect = static_cast<double>(b.width) / b.height;
    EXPECT_GT(aspect, 0.6);
    EXPECT_LT(aspect, 1.6);
  }
}

TEST(Transforms, RandomTransformsDependOnlyOnTheExampleSeed) {
  Transform t =
      compose({random_crop(28, 28, 4), random_horizontal_flip(), to_float(), normalize({0.5}, {0.25})});
  Tensor img = test::random_bytes({28, 28});
  Rng r1(example_seed(1, 0, 17)), r2(example_seed(1, 0, 17));
  Tensor a = t(img, r1), b = t(img, r2);
  EXPECT_EQ(a.shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_NE(example_seed(1, 0, 17), example_seed(1, 1, 17));
  EXPECT_NE(example_seed(1, 0, 17), example_seed(1, 0, 18));
  EXPECT_NE(example_seed(1, 0, 17), example_seed(2, 0, 17));
  // Different seeds give different augmentations (flip and offset); over 20 seeds, at least 2 distinct.
  std::set<std::vector<double>> outs;
  for (int64_t i = 0; i < 20; ++i) {
    Rng r(example_seed(3, 0, i));
    outs.insert(t(img, r).to_vector());
  }
  EXPECT_GT(outs.size(), 5u);
}

TEST(Transforms, FlipProbabilityIsRespected) {
  Tensor img = f32({1, 2}, {1, 1, 2});
  int flipped = 0;
  for (uint64_t s = 0; s < 400; ++s) {
    Rng rng(s);
    flipped += random_horizontal_flip(0.25)(img, rng).to_vector()[0] == 2;
  }
  EXPECT_GT(flipped, 60);
  EXPECT_LT(flipped, 140);
  Rng rng(1);
  EXPECT_EQ(random_horizontal_flip(0.0)(img, rng).to_vector()[0], 1);
}

TEST(Transforms, ResizeShorterSideKeepsTheAspect) {
  Rng rng;
  EXPECT_EQ(resize_shorter(8)(test::random_bytes({10, 25, 3}), rng).shape(), (Shape{8, 20, 3}));
  EXPECT_EQ(resize_shorter(8)(test::random_bytes({25, 10, 3}), rng).shape(), (Shape{20, 8, 3}));
  EXPECT_EQ(resize_shorter(7)(f32(std::vector<double>(3 * 4 * 6, 0.5), {3, 4, 6}), rng).shape(),
            (Shape{3, 7, 10}));  // 7 * 6 / 4 = 10.5 truncates
}

}  // namespace
}  // namespace nabla

// data/yolo_dataset.h: label paths and files as Darknet reads them (errors with file and line), the
// letterbox placement, Darknet's augmentation keeping boxes on their objects, HSV distortion, batches.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/yolo_dataset.h"
#include "yolo/yolo_testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;
using data::DetectionAugment;
using data::YoloDataset;

float px(const Tensor& im, int c, float x, float y) {  // pixel at relative (x, y)
  const int h = static_cast<int>(im.size(1)), w = static_cast<int>(im.size(2));
  const int X = std::min(w - 1, static_cast<int>(x * w)), Y = std::min(h - 1, static_cast<int>(y * h));
  return im.data<float>()[(static_cast<int64_t>(c) * h + Y) * w + X];
}

TEST(YoloData, LabelPathsAsDarknet) {
  EXPECT_EQ(data::yolo_label_path("/d/UCSD/JPEGImages/a.jpg"), "/d/UCSD/labels/a.txt");
  EXPECT_EQ(data::yolo_label_path("coco/images/train/b.png"), "coco/labels/train/b.txt");
  EXPECT_EQ(data::yolo_label_path("x/c.JPEG"), "x/c.txt");
  // The folder, not the first substring: a parent called my_images/ stays.
  EXPECT_EQ(data::yolo_label_path("/w/my_images/images/d.jpg"), "/w/my_images/labels/d.txt");
  EXPECT_EQ(data::yolo_label_path("images/e.png"), "labels/e.txt");
}

TEST(YoloData, BadLabelLinesNameTheFileAndLine) {
  const std::string dir = test::yolo_temp_dir("labels");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"0 0.5 0.5 0.1", "expected 'class cx cy w h' (five numbers), got '0 0.5 0.5 0.1'"},
      {"car 0.5 0.5 0.1 0.1", "expected 'class cx cy w h'"},
      {"1.5 0.5 0.5 0.1 0.1", "class must be an integer in [0, 3), got '1.5'"},
      {"3 0.5 0.5 0.1 0.1", "class must be an integer in [0, 3), got '3'"},
      {"0 1.2 0.5 0.1 0.1", "the centre must be relative to the image (0..1), got 1.2 0.5"},
      {"0 0.5 0.5 0 0.1", "width and height must be relative"},
      {"0 0.5 0.5 0.1 nan", "expected 'class cx cy w h'"},
  };
  for (const auto& [line, message] : cases) {
    const std::string path = dir + "/labels/bad.txt";
    std::ofstream(path) << "2 0.5 0.5 0.2 0.2\n\n" << line << "\n";
    test::expect_error([&] { data::read_yolo_labels(path, 3); }, {path + ":3: ", message});
  }
  std::ofstream(dir + "/labels/ok.txt") << "2 0.5 0.25 0.2 0.1\r\n\n1 0.1 0.9 0.05 0.05\n";
  const auto boxes = data::read_yolo_labels(dir + "/labels/ok.txt", 3);
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0].cls, 2);
  EXPECT_FLOAT_EQ(boxes[0].y, 0.25f);
  EXPECT_FLOAT_EQ(boxes[1].w, 0.05f);
  EXPECT_TRUE(data::read_yolo_labels(dir + "/labels/missing.txt").empty());
  // A list naming an image that does not exist, and a label error reached through the dataset.
  std::ofstream(dir + "/list.txt") << "images/nope.png\n";
  test::expect_error([&] { YoloDataset ds(dir + "/list.txt"); },
                     {"list.txt:1: image 'images/nope.png' does not exist"});
}

TEST(YoloData, LetterboxWithoutAugmentationPlacesImageAndBoxes) {
  const std::string dir = test::yolo_temp_dir("letterbox");
  const auto truth = test::write_synthetic_set(dir, 3, 96, 64, static_cast<uint32_t>(test::next_seed()));
  std::ofstream(dir + "/list.txt") << "images/im0.png\nimages/im1.png\n" << dir << "/images/im2.png\n";
  YoloDataset ds(dir + "/list.txt", 2);
  ASSERT_EQ(ds.size(), 3);
  DetectionAugment off;
  off.enabled = false;
  std::mt19937 rng(1);
  for (int64_t i = 0; i < 3; ++i) {
    const auto s = ds.load(i, 64, 64, off, rng);
    EXPECT_EQ(s.orig_w, 96);
    EXPECT_EQ(s.orig_h, 64);
    // 96 x 64 -> 64 x 42.67, centred: 10.67 rows of grey above.
    EXPECT_FLOAT_EQ(px(s.image, 0, 0.5f, 0.0f), 0.5f);
    EXPECT_FLOAT_EQ(px(s.image, 2, 0.5f, 0.99f), 0.5f);
    ASSERT_EQ(s.boxes.size(), truth[i].size());
    const float nh = 64 / 1.5f, dy = (64 - nh) / 2;
    for (size_t b = 0; b < s.boxes.size(); ++b) {
      EXPECT_NEAR(s.boxes[b].x, truth[i][b].x, 1e-5);
      EXPECT_NEAR(s.boxes[b].y, truth[i][b].y * nh / 64 + dy / 64, 1e-5);
      EXPECT_NEAR(s.boxes[b].h, truth[i][b].h * nh / 64, 1e-5);
      // The box centre shows an object colour (rectangles may overlap: red or blue, not the background).
      const float r = px(s.image, 0, s.boxes[b].x, s.boxes[b].y),
                  g = px(s.image, 1, s.boxes[b].x, s.boxes[b].y),
                  bl = px(s.image, 2, s.boxes[b].x, s.boxes[b].y);
      EXPECT_GT(std::max(r, bl) - g, 0.5f) << i << " " << b;
    }
  }
}

TEST(YoloData, AugmentationKeepsBoxesOnTheirObjects) {
  const std::string dir = test::yolo_temp_dir("augment");
  test::write_synthetic_set(dir, 4, 80, 60, static_cast<uint32_t>(test::next_seed()));
  YoloDataset ds(dir + "/images", 2);
  DetectionAugment aug;
  aug.jitter = 0.3f, aug.hue = 0, aug.saturation = 1, aug.exposure = 1;  // geometry only: colours stay
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  int checked = 0, on_object = 0;
  for (int rep = 0; rep < 10; ++rep)
    for (int64_t i = 0; i < ds.size(); ++i) {
      const auto s = ds.load(i, 48, 48, aug, rng);
      for (const auto& b : s.boxes) {
        if (b.w * 48 < 4 || b.h * 48 < 4) continue;  // clipped slivers: the centre may sit on an edge
        const float r = px(s.image, 0, b.x, b.y), g = px(s.image, 1, b.x, b.y), bl = px(s.image, 2, b.x, b.y);
        ++checked;
        on_object += std::max(r, bl) - g > 0.4f;
      }
    }
  EXPECT_GT(checked, 30);
  EXPECT_GE(on_object, checked * 95 / 100);
}

TEST(YoloData, HsvDistortionAsDarknet) {
  Tensor red = Tensor::empty({3, 1, 1}, DType::f32);
  red.data<float>()[0] = 0.8f, red.data<float>()[1] = 0.1f, red.data<float>()[2] = 0.1f;
  data::distort_image(red, 1.0f / 3, 1, 1);  // hue +120 degrees: red -> green
  EXPECT_NEAR(red.data<float>()[0], 0.1f, 1e-5);
  EXPECT_NEAR(red.data<float>()[1], 0.8f, 1e-5);
  EXPECT_NEAR(red.data<float>()[2], 0.1f, 1e-5);
  Tensor im = rand({3, 5, 7}), copy = im.clone();
  data::distort_image(im, 0, 1, 1);
  test::expect_close(im, copy, 1e-5);
  data::distort_image(im, 0, 1, 3);  // exposure x3, clamped to 1
  for (int64_t k = 0; k < im.numel(); ++k) EXPECT_LE(im.data<float>()[k], 1.0f);
}

TEST(YoloData, BatchesAreTheSameForASeedWhateverTheThreads) {
  const std::string dir = test::yolo_temp_dir("batch");
  test::write_synthetic_set(dir, 3, 64, 48, static_cast<uint32_t>(test::next_seed()));
  YoloDataset ds(dir + "/images", 2);
  DetectionAugment aug;
  const auto a = ds.batch({2, 0, 1, 2}, 32, 32, aug, 7);
  const auto b = ds.batch({2, 0, 1, 2}, 32, 32, aug, 7);
  const auto c = ds.batch({2, 0, 1, 2}, 32, 32, aug, 8);
  EXPECT_EQ(a.images.shape(), (Shape{4, 3, 32, 32}));
  test::expect_close(a.images, b.images, 0);
  const std::vector<double> va = a.images.to_double_vector(), vc = c.images.to_double_vector();
  double diff = 0;
  for (size_t k = 0; k < va.size(); ++k) diff = std::max(diff, std::fabs(va[k] - vc[k]));
  EXPECT_GT(diff, 0.01);
  ASSERT_EQ(a.boxes.size(), 4u);
  EXPECT_EQ(a.boxes[0].size(), b.boxes[0].size());
  test::expect_error([&] { ds.batch({}, 32, 32, aug, 1); }, {"empty batch"});
}

}  // namespace
}  // namespace nabla

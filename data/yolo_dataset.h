// YOLO-format detection data as Darknet reads it, and Darknet's training augmentation.
//
// A dataset is a list of images: a text file with one image path a line (relative paths are taken relative
// to the list file's folder when they do not exist relative to the working directory), or a folder whose
// .jpg/.jpeg/.png files are taken in sorted order (recursively). Each image's labels are a text file found
// as Darknet's fill_truth_detection finds it: the folder images/ or JPEGImages/ becomes labels/ (the last
// such folder in the path; Darknet replaces the first substring "images", which also hits a parent folder
// such as my_images/: that is used only when no such folder is in the path), and the extension (.jpg .jpeg
// .png .JPG .JPEG .PNG .bmp) becomes .txt. A missing label file is an image without objects (as in
// Darknet), but a dataset where no image has one is an error (a path mistake).
// Label lines: `class cx cy w h`, the box relative to the image (0..1). Blank lines are skipped; anything
// else that is not five numbers with an integer class >= 0 and cx, cy in [0, 1], w, h in (0, 1] is an
// error naming the file and line:
//   yolo labels: a/labels/x.txt:3: expected 'class cx cy w h', got '0 0.5 0.5 0.1'
//
// Training samples (load_data_detection of pjreddie/darknet, per image):
//   dw = jitter * W, dh = jitter * H;  ar = (W + U(-dw, dw)) / (H + U(-dh, dh))
//   ar < 1: nh = net_h, nw = nh * ar;  else nw = net_w, nh = nw / ar
//   dx = U(0, net_w - nw), dy = U(0, net_h - nh)       (either may be negative: the image is then cropped)
//   canvas net_w x net_h filled with 0.5; the image placed at (dx, dy) scaled to nw x nh (place_image:
//   bilinear at (x / nw * W, y / nh * H), pixels outside the image read 0)
//   HSV: hue += U(-hue, hue) (wrapped to [0, 1]), saturation and value *= rand_scale(s) (U(1, s), inverted
//   with probability 1/2), clamped to [0, 1];  horizontal flip with probability 1/2
//   boxes: shuffled, mapped by the same placement and flip, clipped to [0, 1], dropped below 0.001 wide or
//   high (correct_boxes), at most max_boxes kept
// With augmentation off the image is letterboxed: ar = W / H, centred (dx = (net_w - nw) / 2), no colour
// change, no flip, boxes in file order.
// Images are f32 [3, net_h, net_w] RGB in [0, 1] (Darknet's image layout); boxes are relative to the
// network input.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace nabla::data {

struct DetectionBox {
  int cls = 0;
  float x = 0, y = 0, w = 0, h = 0;  // centre and size, relative
};

struct DetectionAugment {
  bool enabled = true;
  float jitter = 0.3f, hue = 0.1f, saturation = 1.5f, exposure = 1.5f;
  bool flip = true;
};

// The label path Darknet derives from an image path.
std::string yolo_label_path(const std::string& image_path);
// Reads one label file; errors name the file and line. A missing file gives no boxes.
std::vector<DetectionBox> read_yolo_labels(const std::string& path, int classes = -1);

class YoloDataset {
 public:
  // `list`: a list file or a folder (see above). classes > 0 checks each label's class against it.
  explicit YoloDataset(const std::string& list, int classes = -1);

  int64_t size() const { return static_cast<int64_t>(images_.size()); }
  const std::string& image_path(int64_t i) const { return images_.at(static_cast<size_t>(i)); }
  const std::vector<DetectionBox>& labels(int64_t i) const { return labels_.at(static_cast<size_t>(i)); }

  struct Sample {
    Tensor image;  // f32 [3, net_h, net_w]
    std::vector<DetectionBox> boxes;
    int orig_w = 0, orig_h = 0;
  };
  // One training sample (augmentation drawn from rng when aug.enabled).
  Sample load(int64_t i, int net_w, int net_h, const DetectionAugment& aug, std::mt19937& rng,
              int max_boxes = 90) const;

  struct Batch {
    Tensor images;  // f32 [B, 3, net_h, net_w]
    std::vector<std::vector<DetectionBox>> boxes;
    std::vector<int64_t> indices;
  };
  // The samples `indices`, decoded in parallel (OpenMP); each sample's augmentation comes from its own
  // generator seeded by (seed, index), so a batch is the same whatever the thread count.
  Batch batch(const std::vector<int64_t>& indices, int net_w, int net_h, const DetectionAugment& aug,
              uint64_t seed, int max_boxes = 90) const;

 private:
  std::vector<std::string> images_;
  std::vector<std::vector<DetectionBox>> labels_;
};

// Darknet's place_image, random_distort_image pieces, exposed for tests: `im` is f32 [3, H, W].
Tensor place_image(const Tensor& im, int nw, int nh, int dx, int dy, int canvas_w, int canvas_h);
void distort_image(Tensor& im, float dhue, float dsat, float dexp);
Tensor image_to_chw_float(const Tensor& hwc_u8);

}  // namespace nabla::data

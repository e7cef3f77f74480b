// Image transforms for training pipelines, torchvision-style, with reproducible randomness.
//
// Layouts: u8 images are HWC ([H, W, C] or [H, W]), f32 images CHW ([C, H, W] or [H, W]); the geometric
// transforms (crop, flip, resize) accept either and keep the layout and dtype, so a pipeline may crop and
// flip the bytes before to_float() (cheaper) or the floats after it.
//
//   to_float:   u8 HWC -> f32 CHW, x / 255
//   normalize:  x[c] = (x[c] - mean[c]) / std[c]                              (f32 CHW)
//   crop:       out[y][x] = in[y + top][x + left], fill outside the image     (so padding is a crop)
//   resize:     separable triangle filter, half-pixel centres: output x samples input at
//               u = (x + 0.5) * in / out - 0.5 with weights tri((j - u) / s), s = max(in / out, 1) when
//               antialiasing (PIL's and torchvision's bilinear), s = 1 without (plain bilinear, edges
//               clamped); weights are normalised over the pixels inside the image; u8 results are rounded
//   random_resized_crop: torchvision's RandomResizedCrop: up to 10 draws of an area fraction in `scale`
//               and a log-uniform aspect ratio in `ratio`; the first box that fits is cropped, otherwise a
//               centre crop clamped to `ratio`; then resized to the output size
//
// Randomness: a random transform draws from the Rng it is given. The DataLoader seeds one Rng per example
// from (loader seed, epoch, example index) (example_seed), so an example gets the same augmentation
// whichever worker thread runs it and whatever the batch size; transforms in a pipeline draw in order.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/tensor.h"

namespace nabla::data {

// A counter-based stream of uniform numbers (Philox, engine/random.h): draw k is a pure function of
// (key, k).
class Rng {
 public:
  explicit Rng(uint64_t key = 0) : key_(key) {}
  double uniform();  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)
  uint64_t key() const { return key_; }
  uint64_t draws() const { return counter_; }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// The key of example `index`'s Rng in `epoch` of a loader seeded with `seed`.
uint64_t example_seed(uint64_t seed, int64_t epoch, int64_t index);

// A transform maps one example's input to a new tensor. It must be safe to call from several threads at
// once (loader workers do): keep no mutable state, take all randomness from the Rng.
using Transform = std::function<Tensor(const Tensor& input, Rng& rng)>;

// ---- deterministic building blocks --------------------------------------------------------------
Tensor to_float_chw(const Tensor& image);
Tensor normalize_chw(const Tensor& image, const std::vector<double>& mean, const std::vector<double>& std);
// The height x width window at (top, left), which may reach outside the image: those pixels are `fill`.
Tensor crop_image(const Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width,
                  double fill = 0);
Tensor hflip_image(const Tensor& image);
// A whole set of u8 (or any dtype) images [N, H, W] or [N, H, W, C] padded to height x width with `fill`,
// centred (the odd pixel, if any, goes to the bottom / right): Fashion-MNIST's 28² -> 32² for the CIFAR
// ResNets. Done once on the stored bytes, before normalisation, as torchvision's Pad before Normalize.
Tensor pad_images(const Tensor& images, int64_t height, int64_t width, double fill = 0);
Tensor resize_image(const Tensor& image, int64_t height, int64_t width, bool antialias = true);

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
// torchvision's RandomResizedCrop.get_params for an image of height x width.
CropBox random_resized_crop_box(int64_t height, int64_t width, const std::vector<double>& scale,
                                const std::vector<double>& ratio, Rng& rng);
// torchvision's center_crop placement (top, left), negative when the crop is larger than the image.
CropBox center_crop_box(int64_t height, int64_t width, int64_t crop_height, int64_t crop_width);

// ---- transforms for pipelines -------------------------------------------------------------------
Transform compose(std::vector<Transform> transforms);
Transform to_float();
Transform normalize(std::vector<double> mean, std::vector<double> std);
// Pads every side by `padding` (with `fill`), then crops height x width at a uniform position
// (torchvision RandomCrop(size, padding)).
Transform random_crop(int64_t height, int64_t width, int64_t padding = 0, double fill = 0);
Transform random_horizontal_flip(double p = 0.5);
Transform resize(int64_t height, int64_t width, bool antialias = true);
// The shorter side becomes `size`, the longer one size * long / short (truncated), as torchvision
// Resize(int).
Transform resize_shorter(int64_t size, bool antialias = true);
Transform center_crop(int64_t height, int64_t width);
Transform random_resized_crop(int64_t height, int64_t width, std::vector<double> scale = {0.08, 1.0},
                              std::vector<double> ratio = {3.0 / 4.0, 4.0 / 3.0}, bool antialias = true);

}  // namespace nabla::data

// Image files: JPEG (libjpeg-turbo) and PNG (libpng) decoding into u8 HWC tensors, encoders for tests, and
// ImageFolder, the one-folder-per-class dataset layout of ImageNet-style data.
//
// Decoding gives u8 [H, W, C]: C = 1 for gray sources, 3 for colour ones. PNG palette, gray below 8 bits
// and tRNS are expanded, 16-bit samples are scaled to 8 bits (round(v * 255 / 65535)), alpha is dropped;
// CMYK/YCCK JPEGs (Adobe's inverted CMYK when it says so) become RGB. ImageMode then converts: rgb repeats
// a gray channel, gray takes L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601, fixed point as PIL).
//
// The format comes from the first bytes (FF D8 FF: JPEG, 89 'P' 'N' 'G': PNG), never from the name. A
// corrupt or truncated file throws nabla::Error naming the file (and, where the decoder knows it, the
// byte), never ends the process: both libraries report errors by longjmp to a setjmp in the decoder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace nabla::data {

enum class ImageMode : uint8_t {
  keep,  // as stored: 1 channel for gray, 3 for colour
  gray,  // always 1 channel
  rgb,   // always 3 channels
};

// The largest image decoded, in pixels (width x height): 16384 x 16384 = 268,435,456 by default, or
// NABLA_MAX_IMAGE_PIXELS from the environment, or what set_max_image_pixels() set (for this process).
// A header that declares more is refused before anything is allocated:
//   image: big.png: the PNG header declares 60000x60000 = 3600000000 pixels, more than the limit of
//   268435456 (raise it with NABLA_MAX_IMAGE_PIXELS or data::set_max_image_pixels)
// Below the limit, the pixel buffer grows with the rows actually decoded, so a truncated file that
// declares a large image costs only what it holds.
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{16384} * 16384;
int64_t max_image_pixels();
void set_max_image_pixels(int64_t pixels);

// `name` only labels errors (a path, usually).
Tensor decode_image(const uint8_t* bytes, size_t size, const std::string& name,
                    ImageMode mode = ImageMode::keep);
Tensor read_image(const std::string& path, ImageMode mode = ImageMode::keep);

// Encoders, used by tests to make image files. JPEG: u8 [H, W, C] with C = 1 (gray), 3 (RGB) or 4 (CMYK,
// written with an Adobe marker), no chroma subsampling. PNG: u8 [H, W, C] with C = 1 (gray), 2 (gray +
// alpha), 3 (RGB) or 4 (RGBA), 8-bit; an i32 tensor with values in 0..65535 gives 16-bit samples; palette =
// true writes an RGB image (at most 256 colours) as a palette image.
std::vector<uint8_t> encode_jpeg(const Tensor& image, int quality = 95);
std::vector<uint8_t> encode_png(const Tensor& image, bool palette = false);
void write_jpeg(const std::string& path, const Tensor& image, int quality = 95);
void write_png(const std::string& path, const Tensor& image, bool palette = false);

// root/<class>/**/<file>.{jpg,jpeg,png} (extensions in any case). Classes are the sub-folders of root in
// sorted (byte) order -> class index; files are sorted by their path inside the class folder, searched
// recursively (as torchvision's ImageFolder). get(i) decodes sample i into u8 [H, W, C] with the given
// mode (rgb by default, so that gray and CMYK files batch with colour ones). Errors for a missing root, a
// root without class folders, a class folder without images, and a symlink loop (one line naming it).
//
// A validation folder must use the training set's labels: pass the training classes, and each folder is
// mapped by name to its index there (a val/ with fewer classes keeps the training indices); a folder
// that is not a training class is an error, never a silently shifted label:
//   ImageFolder val(dir + "/val", ImageMode::rgb, train.classes());
//   -> ImageFolder: d/val: class folder 'zebra' is not one of the 3 training classes (cat, dog, owl);
//      every class must also be in the training set
class ImageFolder final : public Dataset {
 public:
  struct Sample {
    std::string path;
    int64_t label = 0;
  };

  explicit ImageFolder(const std::string& root, ImageMode mode = ImageMode::rgb);
  // classes: the label names, in label order (the training set's classes()); empty = the folders found.
  ImageFolder(const std::string& root, ImageMode mode, const std::vector<std::string>& classes);

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Example get(int64_t i) const override;

  // The label names in label order: the folders found, or the classes given to the constructor.
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<Sample>& samples() const { return samples_; }

 private:
  std::string root_;
  ImageMode mode_;
  std::vector<std::string> classes_;
  std::vector<Sample> samples_;
};

}  // namespace nabla::data

// Image transforms (transforms.h). The geometric kernels read and write through (channel, y, x) strides,
// so one loop serves u8 HWC and f32 CHW alike.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/random.h"
#include "ops/factory.h"

namespace nabla::data {
namespace {

// Shape and element strides of an image tensor in its layout (see transforms.h).
struct Geometry {
  int64_t channels = 1, height = 0, width = 0;
  int64_t sc = 0, sy = 0, sx = 0;
  bool hwc = false;
  bool has_channel_dim = true;
};

Geometry geometry_of(const Tensor& x, const char* who) {
  NABLA_CHECK(x.defined(), who, ": got an undefined tensor");
  NABLA_CHECK(x.dtype() == DType::u8 || x.dtype() == DType::f32, who,
              ": expected a u8 HWC or f32 CHW image, got dtype ", x.dtype(), " shape ", x.shape());
  NABLA_CHECK(x.dim() == 2 || x.dim() == 3, who, ": expected an image [H, W] or ",
              x.dtype() == DType::u8 ? "[H, W, C] (u8)" : "[C, H, W] (f32)", ", got shape ", x.shape());
  Geometry g;
  g.hwc = x.dtype() == DType::u8;
  g.has_channel_dim = x.dim() == 3;
  if (x.dim() == 2) {
    g.height = x.size(0), g.width = x.size(1);
  } else if (g.hwc) {
    g.height = x.size(0), g.width = x.size(1), g.channels = x.size(2);
  } else {
    g.channels = x.size(0), g.height = x.size(1), g.width = x.size(2);
  }
  if (g.hwc) {
    g.sx = g.channels, g.sy = g.width * g.channels, g.sc = 1;
  } else {
    g.sx = 1, g.sy = g.width, g.sc = g.height * g.width;
  }
  return g;
}

// A new image with the layout of `like` and the given height and width.
std::pair<Tensor, Geometry> new_image(const Tensor& like, const Geometry& g, int64_t height, int64_t width) {
  Shape shape;
  if (!g.has_channel_dim)
    shape = {height, width};
  else if (g.hwc)
    shape = {height, width, g.channels};
  else
    shape = {g.channels, height, width};
  Tensor out = Tensor::empty(shape, like.dtype());
  return {out, geometry_of(out, "new_image")};
}

template <class F>
decltype(auto) visit_image(DType t, F&& f) {
  if (t == DType::u8) return f(uint8_t{});
  return f(float{});
}

template <class T>
T from_float(double v) {
  if constexpr (std::is_same_v<T, uint8_t>)
    return static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.0, 255.0));
  else
    return static_cast<T>(v);
}

// Python's round(): halves to even (the default floating-point rounding mode).
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// For each output position along one axis: the first input index and the normalised weights.
struct Taps {
  std::vector<int64_t> start;
  std::vector<int64_t> count;
  std::vector<float> weights;  // max_taps per output position
  int64_t max_taps = 0;
};

Taps filter_taps(int64_t in, int64_t out, bool antialias) {
  double scale = static_cast<double>(in) / static_cast<double>(out);
  double support = antialias ? std::max(scale, 1.0) : 1.0;
  Taps t;
  t.max_taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.start.resize(out);
  t.count.resize(out);
  t.weights.assign(static_cast<size_t>(out * t.max_taps), 0.f);
  for (int64_t x = 0; x < out; ++x) {
    double center = (x + 0.5) * scale;  // in input pixel units, pixel j covers [j, j + 1)
    int64_t lo = std::max<int64_t>(static_cast<int64_t>(std::floor(center - support)), 0);
    int64_t hi = std::min<int64_t>(static_cast<int64_t>(std::ceil(center + support)), in);
    double total = 0;
    std::vector<double> w;
    for (int64_t j = lo; j < hi; ++j) {
      double d = std::abs((j + 0.5 - center) / support);
      w.push_back(d < 1 ? 1 - d : 0);
      total += w.back();
    }
    // Drop zero-weight ends so that the kernels loop over real taps only.
    int64_t first = 0, last = static_cast<int64_t>(w.size());
    while (first < last && w[first] == 0) ++first;
    while (last > first && w[last - 1] == 0) --last;
    t.start[x] = lo + first;
    t.count[x] = last - first;
    for (int64_t k = first; k < last; ++k)
      t.weights[x * t.max_taps + (k - first)] = static_cast<float>(w[k] / total);
  }
  return t;
}

}  // namespace

// ---- Rng ----------------------------------------------------------------------------------------

double Rng::uniform() { return philox_uniform(key_, 0, static_cast<int64_t>(counter_++)); }

int64_t Rng::randint(int64_t lo, int64_t hi) {
  NABLA_CHECK(hi > lo, "Rng::randint: empty range [", lo, ", ", hi, ")");
  int64_t v = lo + static_cast<int64_t>(uniform() * static_cast<double>(hi - lo));
  return std::min(v, hi - 1);
}

uint64_t example_seed(uint64_t seed, int64_t epoch, int64_t index) {
  // Counter 2 * epoch + 1 keys the augmentation stream of an epoch; 2 * epoch is the loader's shuffle.
  auto w = philox4x32(2 * static_cast<uint64_t>(epoch) + 1, seed);
  uint64_t epoch_key = static_cast<uint64_t>(w[0]) << 32 | w[1];
  return philox_bits64(epoch_key, 0, index);
}

// ---- deterministic building blocks --------------------------------------------------------------

Tensor to_float_chw(const Tensor& image) {
  NABLA_CHECK(image.defined() && image.dtype() == DType::u8,
              "to_float: expected a u8 image [H, W] or [H, W, C], got ",
              image.defined() ? dtype_name(image.dtype()) : "an undefined tensor");
  Tensor x = image.contiguous();
  Geometry g = geometry_of(x, "to_float");
  Tensor out = Tensor::empty({g.channels, g.height, g.width}, DType::f32);
  const uint8_t* in = x.data<uint8_t>();
  float* o = out.data<float>();
  int64_t plane = g.height * g.width;
  for (int64_t p = 0; p < plane; ++p)
    for (int64_t c = 0; c < g.channels; ++c)
      o[c * plane + p] = static_cast<float>(in[p * g.channels + c]) / 255.f;
  return out;
}

Tensor normalize_chw(const Tensor& image, const std::vector<double>& mean, const std::vector<double>& std) {
  NABLA_CHECK(image.defined() && image.dtype() == DType::f32 && image.dim() == 3,
              "normalize: expected an f32 image [C, H, W] (after to_float), got ",
              image.defined() ? str_cat(image.dtype(), " ", image.shape()) : "an undefined tensor");
  int64_t channels = image.size(0);
  NABLA_CHECK(
      mean.size() == std.size() && (static_cast<int64_t>(mean.size()) == channels || mean.size() == 1),
      "normalize: got ", mean.size(), " means and ", std.size(), " stds for an image of ", channels,
      " channels ", image.shape());
  for (double s : std) NABLA_CHECK(s > 0, "normalize: std must be positive, got ", s);
  Tensor x = image.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  int64_t plane = image.size(1) * image.size(2);
  const float* in = x.data<float>();
  float* o = out.data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    size_t k = mean.size() == 1 ? 0 : static_cast<size_t>(c);
    float m = static_cast<float>(mean[k]), inv = static_cast<float>(1.0 / std[k]);
    for (int64_t p = 0; p < plane; ++p) o[c * plane + p] = (in[c * plane + p] - m) * inv;
  }
  return out;
}

Tensor crop_image(const Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width,
                  double fill) {
  NABLA_CHECK(height > 0 && width > 0, "crop: expected a positive crop size, got ", height, " x ", width);
  Tensor x = image.contiguous();
  Geometry g = geometry_of(x, "crop");
  auto [out, og] = new_image(x, g, height, width);
  visit_image(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    T fill_value = from_float<T>(fill);
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t y = 0; y < height; ++y) {
        int64_t sy = y + top;
        for (int64_t xx = 0; xx < width; ++xx) {
          int64_t sx = xx + left;
          bool inside = sy >= 0 && sy < g.height && sx >= 0 && sx < g.width;
          o[c * og.sc + y * og.sy + xx * og.sx] = inside ? in[c * g.sc + sy * g.sy + sx * g.sx] : fill_value;
        }
      }
  });
  return out;
}

Tensor pad_images(const Tensor& images, int64_t height, int64_t width, double fill) {
  NABLA_CHECK(images.dim() == 3 || images.dim() == 4,
              "pad_images: expected images [N, H, W] or [N, H, W, C], got ", images.shape());
  const int64_t h = images.size(1), w = images.size(2);
  NABLA_CHECK(height >= h && width >= w, "pad_images: cannot pad ", h, " x ", w, " images to ", height, " x ",
              width, " (smaller)");
  Shape shape = images.shape();
  shape[1] = height;
  shape[2] = width;
  Tensor out = full(shape, fill, {.dtype = images.dtype(), .device = images.device()});
  out.narrow(1, (height - h) / 2, h).narrow(2, (width - w) / 2, w).copy_(images);
  return out;
}

Tensor hflip_image(const Tensor& image) {
  Tensor x = image.contiguous();
  Geometry g = geometry_of(x, "hflip");
  auto [out, og] = new_image(x, g, g.height, g.width);
  visit_image(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t y = 0; y < g.height; ++y)
        for (int64_t xx = 0; xx < g.width; ++xx)
          o[c * og.sc + y * og.sy + xx * og.sx] = in[c * g.sc + y * g.sy + (g.width - 1 - xx) * g.sx];
  });
  return out;
}

Tensor resize_image(const Tensor& image, int64_t height, int64_t width, bool antialias) {
  NABLA_CHECK(height > 0 && width > 0, "resize: expected a positive size, got ", height, " x ", width);
  Tensor x = image.contiguous();
  Geometry g = geometry_of(x, "resize");
  NABLA_CHECK(g.height > 0 && g.width > 0, "resize: cannot resize an empty image ", image.shape());
  auto [out, og] = new_image(x, g, height, width);
  Taps tx = filter_taps(g.width, width, antialias), ty = filter_taps(g.height, height, antialias);
  // Horizontal pass into f32 [C, H_in, W_out], then vertical pass into the output.
  std::vector<float> tmp(static_cast<size_t>(g.channels * g.height * width));
  visit_image(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t y = 0; y < g.height; ++y)
        for (int64_t xx = 0; xx < width; ++xx) {
          const float* w = &tx.weights[xx * tx.max_taps];
          const T* row = in + c * g.sc + y * g.sy + tx.start[xx] * g.sx;
          float acc = 0;
          for (int64_t k = 0; k < tx.count[xx]; ++k) acc += w[k] * static_cast<float>(row[k * g.sx]);
          tmp[(c * g.height + y) * width + xx] = acc;
        }
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t y = 0; y < height; ++y) {
        const float* w = &ty.weights[y * ty.max_taps];
        for (int64_t xx = 0; xx < width; ++xx) {
          const float* col = &tmp[(c * g.height + ty.start[y]) * width + xx];
          float acc = 0;
          for (int64_t k = 0; k < ty.count[y]; ++k) acc += w[k] * col[k * width];
          o[c * og.sc + y * og.sy + xx * og.sx] = from_float<T>(acc);
        }
      }
  });
  return out;
}

CropBox random_resized_crop_box(int64_t height, int64_t width, const std::vector<double>& scale,
                                const std::vector<double>& ratio, Rng& rng) {
  NABLA_CHECK(
      scale.size() == 2 && ratio.size() == 2 && scale[0] <= scale[1] && ratio[0] <= ratio[1] && ratio[0] > 0,
      "random_resized_crop: expected scale = {lo, hi} and ratio = {lo, hi} with lo <= hi, ratio > 0");
  double area = static_cast<double>(height * width);
  double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target_area = area * rng.uniform(scale[0], scale[1]);
    double aspect = std::exp(rng.uniform(log_lo, log_hi));
    int64_t w = round_half_even(std::sqrt(target_area * aspect));
    int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      int64_t top = rng.randint(0, height - h + 1);
      int64_t left = rng.randint(0, width - w + 1);
      return {top, left, h, w};
    }
  }
  double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio[0])
    h = round_half_even(static_cast<double>(w) / ratio[0]);
  else if (in_ratio > ratio[1])
    w = round_half_even(static_cast<double>(h) * ratio[1]);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

CropBox center_crop_box(int64_t height, int64_t width, int64_t crop_height, int64_t crop_width) {
  // torchvision pads a too-small image by (crop - size) // 2 before the first row/column, then crops at 0.
  auto place = [](int64_t size, int64_t crop) {
    return crop > size ? -((crop - size) / 2) : round_half_even(static_cast<double>(size - crop) / 2.0);
  };
  return {place(height, crop_height), place(width, crop_width), crop_height, crop_width};
}

// ---- transforms for pipelines -------------------------------------------------------------------

Transform compose(std::vector<Transform> transforms) {
  return [transforms = std::move(transforms)](const Tensor& input, Rng& rng) {
    Tensor x = input;
    for (const Transform& t : transforms) x = t(x, rng);
    return x;
  };
}

Transform to_float() {
  return [](const Tensor& x, Rng&) { return to_float_chw(x); };
}

Transform normalize(std::vector<double> mean, std::vector<double> std) {
  return [mean = std::move(mean), std = std::move(std)](const Tensor& x, Rng&) {
    return normalize_chw(x, mean, std);
  };
}

Transform random_crop(int64_t height, int64_t width, int64_t padding, double fill) {
  NABLA_CHECK(height > 0 && width > 0 && padding >= 0,
              "random_crop: expected a positive size and padding >= 0, got ", height, " x ", width,
              " padding ", padding);
  return [=](const Tensor& x, Rng& rng) {
    Geometry g = geometry_of(x, "random_crop");
    int64_t ph = g.height + 2 * padding, pw = g.width + 2 * padding;
    NABLA_CHECK(ph >= height && pw >= width, "random_crop: image ", x.shape(), " padded by ", padding,
                " is smaller than the crop ", height, " x ", width);
    int64_t top = rng.randint(0, ph - height + 1) - padding;
    int64_t left = rng.randint(0, pw - width + 1) - padding;
    return crop_image(x, top, left, height, width, fill);
  };
}

Transform random_horizontal_flip(double p) {
  return [p](const Tensor& x, Rng& rng) { return rng.uniform() < p ? hflip_image(x) : x; };
}

Transform resize(int64_t height, int64_t width, bool antialias) {
  return [=](const Tensor& x, Rng&) { return resize_image(x, height, width, antialias); };
}

Transform resize_shorter(int64_t size, bool antialias) {
  NABLA_CHECK(size > 0, "resize_shorter: expected a positive size, got ", size);
  return [=](const Tensor& x, Rng&) {
    Geometry g = geometry_of(x, "resize_shorter");
    int64_t h = size, w = size;
    if (g.height < g.width)
      w = size * g.width / g.height;
    else
      h = size * g.height / g.width;
    return resize_image(x, h, w, antialias);
  };
}

Transform center_crop(int64_t height, int64_t width) {
  return [=](const Tensor& x, Rng&) {
    Geometry g = geometry_of(x, "center_crop");
    CropBox b = center_crop_box(g.height, g.width, height, width);
    return crop_image(x, b.top, b.left, b.height, b.width);
  };
}

Transform random_resized_crop(int64_t height, int64_t width, std::vector<double> scale,
                              std::vector<double> ratio, bool antialias) {
  return [=](const Tensor& x, Rng& rng) {
    Geometry g = geometry_of(x, "random_resized_crop");
    CropBox b = random_resized_crop_box(g.height, g.width, scale, ratio, rng);
    return resize_image(crop_image(x, b.top, b.left, b.height, b.width), height, width, antialias);
  };
}

}  // namespace nabla::data

// In-memory image sets and DARTS's batch augmentation (image_sets.h).
#include "apps/common/image_sets.h"

#include <algorithm>
#include <filesystem>

#include "autograd/autograd.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "data/transforms.h"
#include "ops/factory.h"
#include "ops/elementwise.h"
#include "ops/index.h"

namespace nabla::apps {
namespace {

Tensor normalised(const Tensor& u8, const std::vector<double>& mean, const std::vector<double>& stdv) {
  Tensor x = u8.to(DType::f32) / 255.0;
  x = x.dim() == 3 ? x.unsqueeze(1) : x.permute({0, 3, 1, 2});
  const int64_t c = x.size(1);
  return ((x - from_vector(mean, {1, c, 1, 1})) / from_vector(stdv, {1, c, 1, 1})).contiguous();
}

data::LabeledImages head(data::LabeledImages s, int64_t limit) {
  if (limit > 0 && limit < s.size()) {
    s.images = s.images.narrow(0, 0, limit);
    s.labels = s.labels.narrow(0, 0, limit);
  }
  return s;
}

Tensor resized(const Tensor& x, int64_t size) {
  if (size == 0 || size == x.size(2)) return x;
  std::vector<Tensor> out;
  for (int64_t i = 0; i < x.size(0); ++i) out.push_back(data::resize_image(x.select(0, i), size, size));
  return stack(out, 0);
}

// Class k: a bright bar at row band k (of `classes` bands) on noise: learnable, with a known answer.
ImageSet planted(int64_t n, int64_t size, uint64_t seed) {
  Generator g{seed, 0};
  ImageSet s;
  s.images = randn({n, 1, size, size}, {}, &g) * 0.5;
  s.labels = randint(0, 10, {n}, {.dtype = DType::i64}, &g);
  NoGradGuard ng;
  const int64_t band = std::max<int64_t>(1, size / 10);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = s.labels.select(0, i).item<int64_t>();
    Tensor rows = s.images.select(0, i).narrow(1, std::min(k * band, size - band), band);
    rows.copy_(rows + 1.5);
  }
  return s;
}

}  // namespace

ImageSet load_image_set(const ImageSetOptions& o, bool train) {
  ImageSet s;
  if (o.dataset == "synthetic") {
    const int64_t size = o.image_size ? o.image_size : 16;
    return planted(o.limit ? o.limit : 2000, size, o.seed * 2 + (train ? 0 : 1));
  }
  NABLA_CHECK(std::filesystem::is_directory(o.data_dir), "--data-dir ", o.data_dir, " is not a directory",
              o.dataset == "fashion-mnist" ? " (install the Debian package dataset-fashion-mnist)" : "");
  if (o.dataset == "fashion-mnist") {
    auto d = head(data::load_fashion_mnist(o.data_dir, train), o.limit);
    if (o.pad) {
      NABLA_CHECK(o.pad >= 28, "--pad ", o.pad, ": Fashion-MNIST images are already 28 x 28");
      d.images = data::pad_images(d.images, o.pad, o.pad);
    }
    s.images = resized(normalised(d.images, {0.2860}, {0.3530}), o.image_size);
    s.labels = d.labels;
  } else if (o.dataset == "cifar10") {
    auto d = head(data::load_cifar10(o.data_dir, train), o.limit);
    s.images =
        resized(normalised(d.images, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}), o.image_size);
    s.labels = d.labels;
  } else {
    fail("unknown dataset '", o.dataset, "' (expected fashion-mnist, cifar10 or synthetic)");
  }
  return s;
}

std::vector<int64_t> shuffled(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  data::Rng rng(data::example_seed(seed ^ 0x5a17ull, epoch, -1));
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(rng.randint(0, i + 1))]);
  return v;
}

std::vector<int64_t> random_subset(int64_t n, int64_t k, uint64_t seed, int64_t epoch, int64_t step) {
  NABLA_CHECK(k <= n, "random_subset: ", k, " of ", n);
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  data::Rng rng(data::example_seed(seed ^ 0x7a11ull, epoch, step));
  for (int64_t i = 0; i < k; ++i)
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(rng.randint(i, n))]);
  v.resize(static_cast<size_t>(k));
  return v;
}

std::pair<Tensor, Tensor> gather_batch(const ImageSet& set, const std::vector<int64_t>& indices, bool augment,
                                       int64_t cutout, uint64_t seed, int64_t epoch, int64_t step) {
  Tensor idx = from_vector(std::vector<double>(indices.begin(), indices.end()),
                           {static_cast<int64_t>(indices.size())}, {.dtype = DType::i64});
  Tensor x = index_select(set.images, 0, idx), y = index_select(set.labels, 0, idx);
  if (!augment && cutout == 0) return {x, y};
  const int64_t s = set.image_size();
  data::Rng rng(data::example_seed(seed ^ 0xa06ull, epoch, step));
  std::vector<Tensor> out;
  for (int64_t i = 0; i < x.size(0); ++i) {
    Tensor img = x.select(0, i);
    if (augment) {
      img = data::crop_image(img, rng.randint(0, 9) - 4, rng.randint(0, 9) - 4, s, s);
      if (rng.uniform() < 0.5) img = data::hflip_image(img);
    }
    if (cutout > 0) {
      img = img.clone();
      const int64_t cy = rng.randint(0, s), cx = rng.randint(0, s);
      const int64_t y0 = std::max<int64_t>(0, cy - cutout / 2), y1 = std::min<int64_t>(s, cy + cutout / 2);
      const int64_t x0 = std::max<int64_t>(0, cx - cutout / 2), x1 = std::min<int64_t>(s, cx + cutout / 2);
      if (y1 > y0 && x1 > x0) img.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0).fill_(0.0);
    }
    out.push_back(img);
  }
  return {stack(out, 0).contiguous(), y};
}

}  // namespace nabla::apps

// YOLO label files, image lists and Darknet's detection augmentation (see yolo_dataset.h).
#include "data/yolo_dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/image.h"
#include "engine/error.h"

namespace nabla::data {
namespace {
namespace fs = std::filesystem;

void replace_first(std::string& s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
}

bool parse_float(const std::string& tok, float& v) {
  const char* end = tok.data() + tok.size();
  auto [p, ec] = std::from_chars(tok.data(), end, v);
  return ec == std::errc() && p == end && std::isfinite(v);
}

bool has_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".jpg" || e == ".jpeg" || e == ".png";
}

float rand_uniform(std::mt19937& rng, float lo, float hi) {
  if (hi < lo) std::swap(lo, hi);
  return std::uniform_real_distribution<float>(0.0f, 1.0f)(rng) * (hi - lo) + lo;
}

float rand_scale(std::mt19937& rng, float s) {
  const float scale = rand_uniform(rng, 1, s);
  return (rng() % 2) ? scale : 1 / scale;
}

}  // namespace

std::string yolo_label_path(const std::string& image_path) {
  std::string s = image_path;
  // The last folder named images or JPEGImages becomes labels; without one, Darknet's first-substring
  // replacement (which would also hit "my_images/" in a parent folder: hence the folder rule first).
  bool replaced = false;
  for (const std::string dir : {"JPEGImages", "images"}) {
    const size_t at = s.rfind("/" + dir + "/");
    if (at != std::string::npos) {
      s.replace(at + 1, dir.size(), "labels");
      replaced = true;
      break;
    }
    if (s.rfind(dir + "/", 0) == 0) {
      s.replace(0, dir.size(), "labels");
      replaced = true;
      break;
    }
  }
  if (!replaced) {
    replace_first(s, "images", "labels");
    replace_first(s, "JPEGImages", "labels");
  }
  for (const char* ext : {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp"}) {
    const std::string e = ext;
    if (s.size() > e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0) {
      s.replace(s.size() - e.size(), e.size(), ".txt");
      break;
    }
  }
  return s;
}

std::vector<DetectionBox> read_yolo_labels(const std::string& path, int classes) {
  std::vector<DetectionBox> boxes;
  std::ifstream f(path);
  if (!f) return boxes;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream in(line);
    std::vector<std::string> tok;
    for (std::string t; in >> t;) tok.push_back(t);
    if (tok.empty()) continue;
    const std::string where = "yolo labels: " + path + ":" + std::to_string(lineno) + ": ";
    float v[5];
    bool ok = tok.size() == 5;
    for (size_t k = 0; ok && k < 5; ++k) ok = parse_float(tok[k], v[k]);
    NABLA_CHECK(ok, where, "expected 'class cx cy w h' (five numbers), got '", line, "'");
    NABLA_CHECK(v[0] >= 0 && v[0] == std::floor(v[0]) && (classes <= 0 || v[0] < classes), where,
                "class must be an integer in [0, ",
                classes > 0 ? std::to_string(classes) : std::string("inf"), "), got '", tok[0], "'");
    NABLA_CHECK(v[1] >= 0 && v[1] <= 1 && v[2] >= 0 && v[2] <= 1, where,
                "the centre must be relative to the image (0..1), got ", tok[1], " ", tok[2]);
    NABLA_CHECK(v[3] > 0 && v[3] <= 1 && v[4] > 0 && v[4] <= 1, where,
                "width and height must be relative to the image (0..1] , got ", tok[3], " ", tok[4]);
    boxes.push_back({static_cast<int>(v[0]), v[1], v[2], v[3], v[4]});
  }
  return boxes;
}

YoloDataset::YoloDataset(const std::string& list, int classes) {
  NABLA_CHECK(fs::exists(list), "yolo dataset: '", list,
              "' does not exist (expected a list of images or a folder)");
  if (fs::is_directory(list)) {
    for (const auto& e : fs::recursive_directory_iterator(list))
      if (e.is_regular_file() && has_image_extension(e.path())) images_.push_back(e.path().string());
    std::sort(images_.begin(), images_.end());
  } else {
    std::ifstream f(list);
    const fs::path base = fs::path(list).parent_path();
    std::string line;
    int lineno = 0;
    while (std::getline(f, line)) {
      ++lineno;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      if (line.empty()) continue;
      std::string path = line;
      if (!fs::exists(path) && fs::path(path).is_relative() && fs::exists(base / path))
        path = (base / path).string();
      NABLA_CHECK(fs::exists(path), "yolo dataset: ", list, ":", lineno, ": image '", line,
                  "' does not exist");
      images_.push_back(path);
    }
  }
  NABLA_CHECK(!images_.empty(), "yolo dataset: no images in '", list, "'");
  int found = 0;
  for (const std::string& im : images_) {
    const std::string lp = yolo_label_path(im);
    found += fs::exists(lp);
    labels_.push_back(read_yolo_labels(lp, classes));
  }
  NABLA_CHECK(found > 0, "yolo dataset: '", list, "': none of the ", images_.size(),
              " images has a label file (the first would be ", yolo_label_path(images_[0]),
              "; labels sit in a labels/ folder beside images/ or JPEGImages/)");
}

Tensor image_to_chw_float(const Tensor& hwc) {
  const int h = static_cast<int>(hwc.size(0)), w = static_cast<int>(hwc.size(1)),
            c = static_cast<int>(hwc.size(2));
  Tensor out = Tensor::empty({c, h, w}, DType::f32);
  const uint8_t* s = hwc.contiguous().data<uint8_t>();
  float* d = out.data<float>();
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        d[(static_cast<size_t>(k) * h + y) * w + x] = s[(static_cast<size_t>(y) * w + x) * c + k] / 255.0f;
  return out;
}

Tensor place_image(const Tensor& im, int nw, int nh, int dx, int dy, int canvas_w, int canvas_h) {
  const int c = static_cast<int>(im.size(0)), ih = static_cast<int>(im.size(1)),
            iw = static_cast<int>(im.size(2));
  Tensor canvas = Tensor::empty({c, canvas_h, canvas_w}, DType::f32);
  float* d = canvas.data<float>();
  std::fill(d, d + canvas.numel(), 0.5f);
  const float* s = im.data<float>();
  auto px = [&](int k, int x, int y) -> float {
    if (x < 0 || x >= iw || y < 0 || y >= ih) return 0;
    return s[(static_cast<size_t>(k) * ih + y) * iw + x];
  };
  for (int k = 0; k < c; ++k)
    for (int y = 0; y < nh; ++y) {
      const int Y = y + dy;
      if (Y < 0 || Y >= canvas_h) continue;
      const float ry = (static_cast<float>(y) / nh) * ih;
      const int iy = static_cast<int>(std::floor(ry));
      const float fy = ry - iy;
      for (int x = 0; x < nw; ++x) {
        const int X = x + dx;
        if (X < 0 || X >= canvas_w) continue;
        const float rx = (static_cast<float>(x) / nw) * iw;
        const int ix = static_cast<int>(std::floor(rx));
        const float fx = rx - ix;
        d[(static_cast<size_t>(k) * canvas_h + Y) * canvas_w + X] =
            (1 - fy) * (1 - fx) * px(k, ix, iy) + fy * (1 - fx) * px(k, ix, iy + 1) +
            (1 - fy) * fx * px(k, ix + 1, iy) + fy * fx * px(k, ix + 1, iy + 1);
      }
    }
  return canvas;
}

void distort_image(Tensor& im, float dhue, float dsat, float dexp) {
  const int64_t plane = im.size(1) * im.size(2);
  float* d = im.data<float>();
  float *R = d, *G = d + plane, *B = d + 2 * plane;
  for (int64_t i = 0; i < plane; ++i) {
    // rgb_to_hsv
    const float r = R[i], g = G[i], b = B[i];
    const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), delta = mx - mn;
    float h = 0, s = 0, v = mx;
    if (mx != 0) {
      s = delta / mx;
      if (r == mx)
        h = (g - b) / delta;
      else if (g == mx)
        h = 2 + (b - r) / delta;
      else
        h = 4 + (r - g) / delta;
      if (h < 0) h += 6;
      h = h / 6.0f;
    }
    // scale_image_channel (saturation, value), shift hue with wrap-around
    s *= dsat, v *= dexp;
    h += dhue;
    if (h > 1) h -= 1;
    if (h < 0) h += 1;
    // hsv_to_rgb
    float ro, go, bo;
    if (s == 0) {
      ro = go = bo = v;
    } else {
      const float hh = 6 * h;
      const int index = static_cast<int>(std::floor(hh));
      const float f = hh - index, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
      if (index == 0)
        ro = v, go = t, bo = p;
      else if (index == 1)
        ro = q, go = v, bo = p;
      else if (index == 2)
        ro = p, go = v, bo = t;
      else if (index == 3)
        ro = p, go = q, bo = v;
      else if (index == 4)
        ro = t, go = p, bo = v;
      else
        ro = v, go = p, bo = q;
    }
    // constrain_image
    R[i] = std::clamp(ro, 0.0f, 1.0f), G[i] = std::clamp(go, 0.0f, 1.0f), B[i] = std::clamp(bo, 0.0f, 1.0f);
  }
}

YoloDataset::Sample YoloDataset::load(int64_t i, int net_w, int net_h, const DetectionAugment& aug,
                                      std::mt19937& rng, int max_boxes) const {
  const Tensor orig = image_to_chw_float(read_image(image_path(i), ImageMode::rgb));
  const int ow = static_cast<int>(orig.size(2)), oh = static_cast<int>(orig.size(1));
  Sample s;
  s.orig_w = ow, s.orig_h = oh;
  float new_ar = static_cast<float>(ow) / oh;
  if (aug.enabled) {
    const float dw = aug.jitter * ow, dh = aug.jitter * oh;
    const float a = ow + rand_uniform(rng, -dw, dw);
    new_ar = a / (oh + rand_uniform(rng, -dh, dh));
  }
  float nw, nh;
  if (new_ar < 1) {
    nh = static_cast<float>(net_h);
    nw = nh * new_ar;
  } else {
    nw = static_cast<float>(net_w);
    nh = nw / new_ar;
  }
  float dx, dy;
  if (aug.enabled) {
    dx = rand_uniform(rng, 0, net_w - nw);
    dy = rand_uniform(rng, 0, net_h - nh);
  } else {
    dx = (net_w - nw) / 2, dy = (net_h - nh) / 2;
  }
  s.image = place_image(orig, static_cast<int>(nw), static_cast<int>(nh), static_cast<int>(dx),
                        static_cast<int>(dy), net_w, net_h);
  bool flip = false;
  if (aug.enabled) {
    const float dhue = rand_uniform(rng, -aug.hue, aug.hue);
    const float dsat = rand_scale(rng, aug.saturation);
    const float dexp = rand_scale(rng, aug.exposure);
    distort_image(s.image, dhue, dsat, dexp);
    flip = aug.flip && (rng() % 2);
    if (flip) {
      float* d = s.image.data<float>();
      for (int64_t row = 0; row < 3 * static_cast<int64_t>(net_h); ++row)
        std::reverse(d + row * net_w, d + (row + 1) * net_w);
    }
  }
  // fill_truth_detection: randomize_boxes, correct_boxes(-dx/w, -dy/h, nw/w, nh/h, flip), drop tiny ones.
  std::vector<DetectionBox> boxes = labels(i);
  if (aug.enabled) std::shuffle(boxes.begin(), boxes.end(), rng);
  const float sx = nw / net_w, sy = nh / net_h, ddx = -dx / net_w, ddy = -dy / net_h;
  for (DetectionBox b : boxes) {
    float left = (b.x - b.w / 2) * sx - ddx, right = (b.x + b.w / 2) * sx - ddx;
    float top = (b.y - b.h / 2) * sy - ddy, bottom = (b.y + b.h / 2) * sy - ddy;
    if (flip) {
      const float swap = left;
      left = 1 - right;
      right = 1 - swap;
    }
    left = std::clamp(left, 0.0f, 1.0f), right = std::clamp(right, 0.0f, 1.0f);
    top = std::clamp(top, 0.0f, 1.0f), bottom = std::clamp(bottom, 0.0f, 1.0f);
    b.x = (left + right) / 2, b.y = (top + bottom) / 2;
    b.w = std::clamp(right - left, 0.0f, 1.0f), b.h = std::clamp(bottom - top, 0.0f, 1.0f);
    if (b.w < .001f || b.h < .001f) continue;
    if (static_cast<int>(s.boxes.size()) >= max_boxes) break;
    s.boxes.push_back(b);
  }
  return s;
}

YoloDataset::Batch YoloDataset::batch(const std::vector<int64_t>& indices, int net_w, int net_h,
                                      const DetectionAugment& aug, uint64_t seed, int max_boxes) const {
  const int n = static_cast<int>(indices.size());
  NABLA_CHECK(n > 0, "yolo dataset: empty batch");
  Batch b;
  b.indices = indices;
  b.boxes.resize(n);
  b.images = Tensor::empty({n, 3, net_h, net_w}, DType::f32);
  float* dst = b.images.data<float>();
  const size_t per = static_cast<size_t>(3) * net_h * net_w;
  std::vector<std::string> errors(n);
#pragma omp parallel for schedule(dynamic)
  for (int k = 0; k < n; ++k) {
    try {
      std::seed_seq ss{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                       static_cast<uint32_t>(indices[k]), static_cast<uint32_t>(indices[k] >> 32)};
      std::mt19937 rng(ss);
      Sample s = load(indices[k], net_w, net_h, aug, rng, max_boxes);
      std::memcpy(dst + k * per, s.image.data<float>(), per * sizeof(float));
      b.boxes[k] = std::move(s.boxes);
    } catch (const std::exception& e) {
      errors[k] = e.what();
    }
  }
  for (const std::string& e : errors) NABLA_CHECK(e.empty(), e);
  return b;
}

}  // namespace nabla::data

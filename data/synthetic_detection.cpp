// The synthetic detection set (see synthetic_detection.h).
#include "data/synthetic_detection.h"

#include <filesystem>
#include <fstream>
#include <random>

#include "data/image.h"
#include "engine/error.h"

namespace nabla::data {

std::vector<std::vector<DetectionBox>> write_synthetic_detection_set(const std::string& dir, int count, int w,
                                                                     int h, uint32_t seed) {
  NABLA_CHECK(count > 0, "synthetic detection set: expected a positive image count, got ", count);
  NABLA_CHECK(w >= 16 && h >= 16, "synthetic detection set: expected images of at least 16 x 16, got ", w,
              " x ", h);
  std::filesystem::create_directories(dir + "/images");
  std::filesystem::create_directories(dir + "/labels");
  std::mt19937 rng(seed);
  std::vector<std::vector<DetectionBox>> all;
  for (int i = 0; i < count; ++i) {
    Tensor im = Tensor::empty({h, w, 3}, DType::u8);
    uint8_t* p = im.data<uint8_t>();
    for (int64_t k = 0; k < im.numel(); ++k) p[k] = static_cast<uint8_t>(100 + rng() % 40);
    std::vector<DetectionBox> boxes;
    const int n = 1 + static_cast<int>(rng() % 3);
    std::ofstream labels(dir + "/labels/im" + std::to_string(i) + ".txt");
    NABLA_CHECK(labels.good(), "synthetic detection set: cannot write ", dir, "/labels");
    for (int b = 0; b < n; ++b) {
      const int bw = w / 6 + static_cast<int>(rng() % (w / 4)),
                bh = h / 6 + static_cast<int>(rng() % (h / 4));
      const int x0 = static_cast<int>(rng() % (w - bw)), y0 = static_cast<int>(rng() % (h - bh));
      const int cls = static_cast<int>(rng() % 2);
      for (int y = y0; y < y0 + bh; ++y)
        for (int x = x0; x < x0 + bw; ++x) {
          uint8_t* q = p + (static_cast<int64_t>(y) * w + x) * 3;
          q[0] = cls == 0 ? 230 : 20, q[1] = 20, q[2] = cls == 0 ? 20 : 230;
        }
      DetectionBox db{cls, (x0 + bw / 2.0f) / w, (y0 + bh / 2.0f) / h, static_cast<float>(bw) / w,
                      static_cast<float>(bh) / h};
      labels << cls << " " << db.x << " " << db.y << " " << db.w << " " << db.h << "\n";
      boxes.push_back(db);
    }
    write_png(dir + "/images/im" + std::to_string(i) + ".png", im);
    all.push_back(boxes);
  }
  return all;
}

}  // namespace nabla::data

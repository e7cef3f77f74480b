// Helpers of the YOLO tests: a synthetic detection set (coloured rectangles on a noisy background, with
// exact YOLO labels) and a tiny Darknet cfg that trains in milliseconds.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/yolo_dataset.h"
#include "testing.h"

namespace nabla::test {

inline std::string yolo_temp_dir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(NABLA_BINARY_DIR) / "test_yolo" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "images");
  std::filesystem::create_directories(dir / "labels");
  return dir.string();
}

// Writes `count` PNG images (w x h) under dir/images and their labels under dir/labels: each image has one
// to three rectangles, class 0 red and class 1 blue. Returns the boxes per image.
inline std::vector<std::vector<data::DetectionBox>> write_synthetic_set(const std::string& dir, int count,
                                                                        int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<std::vector<data::DetectionBox>> all;
  for (int i = 0; i < count; ++i) {
    Tensor im = Tensor::empty({h, w, 3}, DType::u8);
    uint8_t* p = im.data<uint8_t>();
    for (int64_t k = 0; k < im.numel(); ++k) p[k] = static_cast<uint8_t>(100 + rng() % 40);
    std::vector<data::DetectionBox> boxes;
    const int n = 1 + static_cast<int>(rng() % 3);
    std::ofstream labels(dir + "/labels/im" + std::to_string(i) + ".txt");
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
      data::DetectionBox db{cls, (x0 + bw / 2.0f) / w, (y0 + bh / 2.0f) / h, static_cast<float>(bw) / w,
                            static_cast<float>(bh) / h};
      labels << cls << " " << db.x << " " << db.y << " " << db.w << " " << db.h << "\n";
      boxes.push_back(db);
    }
    data::write_png(dir + "/images/im" + std::to_string(i) + ".png", im);
    all.push_back(boxes);
  }
  return all;
}

// A 4-layer detector for 2 classes at 64 x 64 (an 8 x 8 grid, 3 anchors).
inline std::string tiny_yolo_cfg(int width = 64) {
  return "[net]\nbatch=2\nsubdivisions=1\nwidth=" + std::to_string(width) +
         "\nheight=" + std::to_string(width) +
         "\nchannels=3\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.005\nburn_in=0\nmax_batches=60\n"
         "policy=steps\nsteps=1000\nscales=.1\nhue=.1\nsaturation=1.5\nexposure=1.5\n\n"
         "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n\n"
         "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=2\npad=1\nactivation=leaky\n\n"
         "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=2\npad=1\nactivation=leaky\n\n"
         "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=21\nactivation=linear\n\n"
         "[yolo]\nmask=0,1,2\nanchors=10,10, 16,16, 24,24\nclasses=2\nnum=3\njitter=.2\nignore_thresh=.7\n"
         "truth_thresh=1\nrandom=0\n";
}

}  // namespace nabla::test

// Helpers of the YOLO tests: a synthetic detection set (coloured rectangles on a noisy background, with
// exact YOLO labels) and a tiny Darknet cfg that trains in milliseconds.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/synthetic_detection.h"
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
  return data::write_synthetic_detection_set(dir, count, w, h, seed);
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

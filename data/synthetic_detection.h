// A synthetic detection set with exact YOLO labels: coloured rectangles on a noisy grey background, class 0
// red and class 1 blue, one to three per image. Written as PNG images under DIR/images and Darknet label
// files under DIR/labels, so that YoloDataset, train_yolo and Darknet read it as any other set. The tests of
// the YOLO code (tests/yolo) and the ABCP YOLO mode (prune_abcp --data synthetic) use it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/yolo_dataset.h"

namespace nabla::data {

// Writes `count` w x h images (im0.png ...) and their labels; returns the boxes per image. Throws on
// count <= 0 or an image smaller than 16 x 16.
std::vector<std::vector<DetectionBox>> write_synthetic_detection_set(const std::string& dir, int count, int w,
                                                                     int h, uint32_t seed);

}  // namespace nabla::data

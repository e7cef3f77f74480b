// YOLO inference as Darknet does it (the Debian package's version, pjreddie/darknet 61c9d02e):
// decode the [yolo] layers' outputs into boxes, map them back through the letterbox, class-aware NMS, and
// the letterbox itself.
//
// Decode (get_yolo_detections + get_yolo_box), for anchor n of a layer at cell (row, col) of an lw x lh
// grid, from the layer output o (logistic already applied to x, y, objectness and classes):
//   objectness = o[4]; cells with objectness <= thresh are skipped
//   x = (col + o[0]) / lw,  y = (row + o[1]) / lh                         (relative to the network input)
//   w = exp(o[2]) * anchor_w / net_w,  h = exp(o[3]) * anchor_h / net_h
//   prob[j] = objectness * o[5 + j], set to 0 unless > thresh
// Letterbox correction (correct_yolo_boxes) for an image w x h letterboxed to net_w x net_h: with new_w,
// new_h the scaled size (integer division as Darknet), x = (x - (net_w - new_w) / 2 / net_w) / (new_w /
// net_w), w *= net_w / new_w (likewise y, h); relative = false then multiplies by the image size.
// NMS (do_nms_sort): detections with objectness 0 go last and are ignored; for each class k, sort by
// prob[k] descending and zero prob[k] of every later box whose IoU with a kept box is > thresh.
// Boxes are centre x, y, width, height.
#pragma once
#include <vector>

#include "models/darknet/network.h"

namespace nabla::models::darknet {

struct Box {
  float x = 0, y = 0, w = 0, h = 0;
};

struct Detection {
  Box bbox;
  float objectness = 0;
  std::vector<float> prob;                      // per class
  int layer = 0, anchor = 0, row = 0, col = 0;  // where it came from (for tests and debugging)
  // The best class and its probability (-1, 0 when every prob is 0).
  int best_class() const;
};

float box_iou(const Box& a, const Box& b);

// Detections of one [yolo] layer from its evaluation-mode output [1, n (5 + classes), lh, lw] (batch item
// `item` of a larger batch). img_w/img_h: the original image size; net_w/net_h: the network input size.
std::vector<Detection> get_yolo_detections(const YoloParams& p, const Tensor& output, int img_w, int img_h,
                                           int net_w, int net_h, float thresh, bool relative, int item = 0);
// All [yolo] layers of a network, in layer order (Darknet's get_network_boxes with hier = 0, map = null).
std::vector<Detection> get_network_boxes(const DarknetNetwork& net, const std::vector<Tensor>& yolo_outputs,
                                         int img_w, int img_h, float thresh, bool relative, int item = 0);
void correct_yolo_boxes(std::vector<Detection>& dets, int img_w, int img_h, int net_w, int net_h,
                        bool relative);
// Darknet's do_nms_sort: reorders `dets` and zeroes suppressed class probabilities in place.
void do_nms_sort(std::vector<Detection>& dets, int classes, float thresh);

// Images here are f32 [C, H, W] in [0, 1] on the CPU, as Darknet's image struct.
// Darknet's resize_image: bilinear with the corner-aligned scale (in - 1) / (out - 1), columns first.
Tensor resize_image(const Tensor& im, int w, int h);
// Darknet's letterbox_image: keep the aspect ratio, fill with 0.5, centre ((w - new_w) / 2, (h - new_h) / 2).
Tensor letterbox_image(const Tensor& im, int w, int h);

}  // namespace nabla::models::darknet

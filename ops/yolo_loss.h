// Darknet's [yolo] training delta (forward_yolo_layer), as a kernel slot with a CPU kernel
// (ops/cpu/yolo_loss.cpp) and a CUDA one (cuda/yolo_loss.cu), so that a GPU computes it where the heads are.
// The maths, statement by statement, and the loss whose gradient the delta is, are in
// models/darknet/yolo_loss.h, which calls this slot; in short, for the raw input z of one [yolo] layer
// [B, n (5 + C), lh, lw] and an entry's layer output o (logistic on x, y, objectness and classes; x, y then
// s o - (s - 1) / 2 for scale_x_y = s):
//   pass 1, every anchor and cell:  delta_obj = -o_obj, 0 when the predicted box's best IoU with the image's
//                                   truths is > ignore_thresh (> truth_thresh: as pass 2 for that truth)
//   pass 2, each truth in order:    the best anchor shape of all `anchors`; if it is in `mask`, at the
//                                   truth's cell: box deltas (scale 2 - w h), delta_obj = 1 - o_obj, classes
// Later assignments overwrite earlier ones element by element. Every element's final delta is the negative
// gradient of one of three losses (`kind`): BCE on the logit, its scaled form on x and y, or mse on w and h.
//
// Kernel contract (contiguous tensors on one device):
//   z       f32 [B, n (5 + C), lh, lw]
//   truths  f32 [B, T, 5]: x, y, w, h (relative to the network input) and the class as a float; an image's
//           list ends at its first row with x == 0 (Darknet's truth buffer); classes in [0, C) (checked by
//           the caller on the host, where the truths come from); T >= 1
//   delta   f32, z's shape: Darknet's l.delta (= -dL/dz)
//   stats   f64 [kYoloStats]: the layer's sums, indexed by YoloStat. The CPU kernel adds in Darknet's order
//           and precision (float sums, the loss in double); the CUDA one adds with atomics (order varies).
#pragma once
#include <cmath>
#include <vector>

#include "engine/tensor.h"
#include "ops/dispatch.h"

namespace nabla::ops {

struct YoloLossSpec {
  int classes = 0;
  std::vector<int> mask;       // this layer's anchors: indices into anchors / 2
  std::vector<float> anchors;  // all anchors: w0, h0, w1, h1, ... in pixels of the network input
  int net_w = 0, net_h = 0;
  float ignore_thresh = 0.5f, truth_thresh = 1.0f, scale_x_y = 1.0f;
};

enum YoloStat : int {
  kYoloIou = 0,    // sum of the IoU of each assigned truth's predicted box
  kYoloClass,      // sum of o at each assigned truth's class
  kYoloObj,        // sum of o_obj at the assigned anchors
  kYoloNoObj,      // sum of o_obj over every anchor and cell
  kYoloRecall50,   // assigned truths with IoU > 0.5
  kYoloRecall75,   // ... > 0.75
  kYoloCount,      // assigned truths (Darknet's count and class_count)
  kYoloCost,       // |delta|^2 (Darknet's *l.cost)
  kYoloLossValue,  // the loss whose gradient is -delta
  kYoloStats
};

// Element maths shared by both kernels (the CPU's are Darknet's float/double choices: expf for the box,
// a logistic in double of expf, logf for the targets).
#if defined(__CUDACC__)
#define NABLA_YOLO_HD __host__ __device__ __forceinline__
#else
#define NABLA_YOLO_HD inline
#endif

// What an element's final delta is the negative gradient of (the last assignment wins).
enum YoloKind : uint8_t { kYoloNone = 0, kYoloLogistic = 1, kYoloMse = 2, kYoloScaledLogistic = 3 };

struct YoloBox {
  float x, y, w, h;
};

NABLA_YOLO_HD float yolo_logistic(float x) { return static_cast<float>(1. / (1. + ::expf(-x))); }

NABLA_YOLO_HD double yolo_softplus(double z) { return ::log1p(::exp(-::fabs(z))) + (z > 0 ? z : 0); }

NABLA_YOLO_HD float yolo_overlap(float x1, float w1, float x2, float w2) {
  const float l1 = x1 - w1 / 2, l2 = x2 - w2 / 2;
  const float left = l1 > l2 ? l1 : l2;
  const float r1 = x1 + w1 / 2, r2 = x2 + w2 / 2;
  const float right = r1 < r2 ? r1 : r2;
  return right - left;
}

// Darknet's box_iou (models/darknet/yolo_layer.h's, the same arithmetic).
NABLA_YOLO_HD float yolo_box_iou(const YoloBox& a, const YoloBox& b) {
  const float w = yolo_overlap(a.x, a.w, b.x, b.w), h = yolo_overlap(a.y, a.h, b.y, b.h);
  const float inter = (w < 0 || h < 0) ? 0.0f : w * h;
  const float uni = a.w * a.h + b.w * b.h - inter;
  return inter / uni;
}

// The loss of one element given its final kind, target t, weight w, and raw input z (s = scale_x_y).
NABLA_YOLO_HD double yolo_element_loss(uint8_t kind, double z, double t, double w, double s) {
  switch (kind) {
    case kYoloLogistic:
      return yolo_softplus(z) - t * z;
    case kYoloScaledLogistic:
      return w * s * (yolo_softplus(z) - (t + (s - 1) / 2.0) / s * z);
    case kYoloMse:
      return 0.5 * w * (t - z) * (t - z);
    default:
      return 0;
  }
}

using YoloLossKernelFn = void (*)(const Tensor& z, const Tensor& truths, const YoloLossSpec& spec,
                                  Tensor& delta, Tensor& stats);

inline Kernel<YoloLossKernelFn> yolo_loss_kernel{"yolo_loss"};

}  // namespace nabla::ops

// A frozen copy of the host implementation of Darknet's [yolo] delta that models/darknet/yolo_loss.cpp had
// before the kernel slot ops/yolo_loss.h (commit 2154794), kept as the reference the CPU kernel must equal
// exactly (delta, statistics and loss value): tests/yolo/test_yolo_loss.cpp. Not used by the library.
#pragma once
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/error.h"
#include "models/darknet/yolo_loss.h"

namespace nabla::test::yolo_reference {
using namespace nabla::models::darknet;

struct ReferenceResult {
  std::vector<float> delta;
  YoloLayerStats stats;
  double value = 0;
};

inline std::vector<float> to_floats(const Tensor& t) {
  Tensor c = t.detach().to(Device::cpu()).to(DType::f32).contiguous();
  std::vector<float> v(static_cast<size_t>(c.numel()));
  std::memcpy(v.data(), c.data_ptr(), 4 * v.size());
  return v;
}

inline float logistic(float x) { return static_cast<float>(1. / (1. + std::exp(-x))); }

inline double softplus(double z) { return std::log1p(std::exp(-std::fabs(z))) + (z > 0 ? z : 0); }

// What the final delta of one element is the gradient of (the last assignment wins, as in Darknet).
enum Kind : uint8_t { kNone = 0, kLogistic = 1, kMse = 2, kScaledLogistic = 3 };

struct LayerView {
  const YoloParams& p;
  int batch, lw, lh, n, classes, net_w, net_h;
  int64_t outputs;  // per batch item
  int64_t entry(int b, int anchor, int e, int loc) const {
    return b * outputs + (static_cast<int64_t>(anchor) * (5 + classes) + e) * lw * lh + loc;
  }
};

inline Box get_box(const std::vector<float>& x, const YoloParams& p, int anchor_global, int64_t index, int i,
                   int j, int lw, int lh, int w, int h, int stride) {
  Box b;
  b.x = (i + x[index + 0 * stride]) / lw;
  b.y = (j + x[index + 1 * stride]) / lh;
  b.w = static_cast<float>(std::exp(x[index + 2 * stride]) * p.anchors[2 * anchor_global] / w);
  b.h = static_cast<float>(std::exp(x[index + 3 * stride]) * p.anchors[2 * anchor_global + 1] / h);
  return b;
}

struct Deltas {
  std::vector<float> delta, target, weight;
  std::vector<uint8_t> kind;
  void set(int64_t k, float d, Kind kd, float t, float w) {
    delta[k] = d, kind[k] = kd, target[k] = t, weight[k] = w;
  }
};

inline float delta_box(const TruthBox& truth, const std::vector<float>& x, const LayerView& v,
                       int anchor_global, int64_t index, int i, int j, Deltas& d, float scale) {
  const int stride = v.lw * v.lh;
  const Box pred = get_box(x, v.p, anchor_global, index, i, j, v.lw, v.lh, v.net_w, v.net_h, stride);
  const float iou = box_iou(pred, Box{truth.x, truth.y, truth.w, truth.h});
  const float tx = truth.x * v.lw - i;
  const float ty = truth.y * v.lh - j;
  const float tw = static_cast<float>(std::log(truth.w * v.net_w / v.p.anchors[2 * anchor_global]));
  const float th = static_cast<float>(std::log(truth.h * v.net_h / v.p.anchors[2 * anchor_global + 1]));
  d.set(index + 0 * stride, scale * (tx - x[index + 0 * stride]), kScaledLogistic, tx, scale);
  d.set(index + 1 * stride, scale * (ty - x[index + 1 * stride]), kScaledLogistic, ty, scale);
  d.set(index + 2 * stride, scale * (tw - x[index + 2 * stride]), kMse, tw, scale);
  d.set(index + 3 * stride, scale * (th - x[index + 3 * stride]), kMse, th, scale);
  return iou;
}

// pjreddie's delta_yolo_class: when the anchor already has class deltas (tested on class 0's entry, as
// Darknet does), only the new class is set.
inline void delta_class(const std::vector<float>& out, Deltas& d, int64_t index, int cls, int classes,
                        int stride, float* avg_cat) {
  if (d.delta[index]) {
    const int64_t k = index + static_cast<int64_t>(stride) * cls;
    d.set(k, 1 - out[k], kLogistic, 1, 1);
    if (avg_cat) *avg_cat += out[k];
    return;
  }
  for (int c = 0; c < classes; ++c) {
    const int64_t k = index + static_cast<int64_t>(stride) * c;
    d.set(k, (c == cls ? 1.0f : 0.0f) - out[k], kLogistic, c == cls ? 1.0f : 0.0f, 1);
    if (c == cls && avg_cat) *avg_cat += out[k];
  }
}

inline ReferenceResult reference_yolo_loss(const YoloParams& p, const Tensor& z,
                                           const std::vector<std::vector<TruthBox>>& truths, int net_w,
                                           int net_h) {
  const int n = static_cast<int>(p.mask.size()), classes = p.classes;
  NABLA_CHECK(z.dim() == 4 && z.size(1) == n * (5 + classes), "yolo_loss: expected the raw [yolo] input [N, ",
              n * (5 + classes), ", H, W] (", n, " anchors x (5 + ", classes, " classes)), got ", z.shape());
  NABLA_CHECK(static_cast<int64_t>(truths.size()) == z.size(0), "yolo_loss: ", z.size(0),
              " batch items but truths for ", truths.size());
  NABLA_CHECK(net_w > 0 && net_h > 0, "yolo_loss: network size must be > 0, got ", net_w, "x", net_h);
  for (int m : p.mask)
    NABLA_CHECK(m >= 0 && 2 * m + 1 < static_cast<int>(p.anchors.size()), "yolo_loss: mask index ", m,
                " outside the ", p.anchors.size() / 2, " anchors");
  const LayerView v{p,
                    static_cast<int>(z.size(0)),
                    static_cast<int>(z.size(3)),
                    static_cast<int>(z.size(2)),
                    n,
                    classes,
                    net_w,
                    net_h,
                    z.numel() / z.size(0)};
  const int plane = v.lw * v.lh;
  const int total = static_cast<int>(p.anchors.size() / 2);
  const float s = p.scale_x_y;

  // Layer output: logistic on x, y (then scale_x_y), objectness and classes.
  const std::vector<float> raw = to_floats(z);
  std::vector<float> out = raw;
  for (int b = 0; b < v.batch; ++b)
    for (int a = 0; a < n; ++a) {
      int64_t idx = v.entry(b, a, 0, 0);
      for (int k = 0; k < 2 * plane; ++k) {
        out[idx + k] = logistic(out[idx + k]);
        if (s != 1.0f) out[idx + k] = out[idx + k] * s + static_cast<float>(-0.5 * (s - 1));
      }
      idx = v.entry(b, a, 4, 0);
      for (int k = 0; k < (1 + classes) * plane; ++k) out[idx + k] = logistic(out[idx + k]);
    }

  Deltas d;
  const size_t total_elems = raw.size();
  d.delta.assign(total_elems, 0), d.target.assign(total_elems, 0), d.weight.assign(total_elems, 0);
  d.kind.assign(total_elems, kNone);
  float avg_iou = 0, recall = 0, recall75 = 0, avg_cat = 0, avg_obj = 0, avg_anyobj = 0;
  int count = 0, class_count = 0;

  for (int b = 0; b < v.batch; ++b) {
    // Darknet's truth buffer: at most max_boxes, the list ends at the first x == 0.
    std::vector<TruthBox> t;
    for (const TruthBox& tb : truths[b]) {
      if (static_cast<int>(t.size()) >= p.max_boxes || !tb.x) break;
      NABLA_CHECK(tb.cls >= 0 && tb.cls < classes, "yolo_loss: batch item ", b, " has a box of class ",
                  tb.cls, ", the layer has ", classes, " classes");
      t.push_back(tb);
    }
    for (int j = 0; j < v.lh; ++j)
      for (int i = 0; i < v.lw; ++i)
        for (int a = 0; a < n; ++a) {
          const int loc = j * v.lw + i;
          const int64_t box_index = v.entry(b, a, 0, loc);
          const Box pred = get_box(out, p, p.mask[a], box_index, i, j, v.lw, v.lh, net_w, net_h, plane);
          float best_iou = 0;
          int best_t = 0;
          for (size_t k = 0; k < t.size(); ++k) {
            const float iou = box_iou(pred, Box{t[k].x, t[k].y, t[k].w, t[k].h});
            if (iou > best_iou) best_iou = iou, best_t = static_cast<int>(k);
          }
          const int64_t obj_index = v.entry(b, a, 4, loc);
          avg_anyobj += out[obj_index];
          d.set(obj_index, 0 - out[obj_index], kLogistic, 0, 1);
          if (best_iou > p.ignore_thresh) d.set(obj_index, 0, kNone, 0, 0);
          if (best_iou > p.truth_thresh) {
            d.set(obj_index, 1 - out[obj_index], kLogistic, 1, 1);
            delta_class(out, d, v.entry(b, a, 5, loc), t[best_t].cls, classes, plane, nullptr);
            delta_box(t[best_t], out, v, p.mask[a], box_index, i, j, d, 2 - t[best_t].w * t[best_t].h);
          }
        }
    for (const TruthBox& truth : t) {
      float best_iou = 0;
      int best_n = 0;
      // Darknet's int conversion; a centre at exactly 1 would index past the grid there: clamped here.
      const int i = std::min(static_cast<int>(truth.x * v.lw), v.lw - 1);
      const int j = std::min(static_cast<int>(truth.y * v.lh), v.lh - 1);
      const Box shift{0, 0, truth.w, truth.h};
      for (int a = 0; a < total; ++a) {
        const Box pred{0, 0, p.anchors[2 * a] / net_w, p.anchors[2 * a + 1] / net_h};
        const float iou = box_iou(pred, shift);
        if (iou > best_iou) best_iou = iou, best_n = a;
      }
      int mask_n = -1;
      for (int a = 0; a < n; ++a)
        if (p.mask[a] == best_n) {
          mask_n = a;
          break;
        }
      if (mask_n < 0) continue;
      const int loc = j * v.lw + i;
      const int64_t box_index = v.entry(b, mask_n, 0, loc);
      const float iou = delta_box(truth, out, v, best_n, box_index, i, j, d, 2 - truth.w * truth.h);
      const int64_t obj_index = v.entry(b, mask_n, 4, loc);
      avg_obj += out[obj_index];
      d.set(obj_index, 1 - out[obj_index], kLogistic, 1, 1);
      delta_class(out, d, v.entry(b, mask_n, 5, loc), truth.cls, classes, plane, &avg_cat);
      ++count;
      ++class_count;
      if (iou > .5) recall += 1;
      if (iou > .75) recall75 += 1;
      avg_iou += iou;
    }
  }

  ReferenceResult r;
  float mag = 0;
  for (float x : d.delta) mag += x * x;
  r.stats.darknet_cost = static_cast<float>(std::pow(std::sqrt(mag), 2));
  r.stats.avg_iou = avg_iou / count;
  r.stats.avg_class = avg_cat / class_count;
  r.stats.avg_obj = avg_obj / count;
  r.stats.avg_noobj = avg_anyobj / (plane * n * v.batch);
  r.stats.recall50 = recall / count;
  r.stats.recall75 = recall75 / count;
  r.stats.count = count;

  // The loss each element's final delta is the negative gradient of.
  double value = 0;
  for (size_t k = 0; k < total_elems; ++k) {
    const double zk = raw[k], tk = d.target[k], wk = d.weight[k];
    switch (d.kind[k]) {
      case kNone:
        break;
      case kLogistic:
        value += softplus(zk) - tk * zk;
        break;
      case kScaledLogistic: {
        const double tt = (tk + (s - 1) / 2.0) / s;
        value += wk * s * (softplus(zk) - tt * zk);
        break;
      }
      case kMse:
        value += 0.5 * wk * (tk - zk) * (tk - zk);
        break;
    }
  }
  r.delta = d.delta;
  r.value = value;
  return r;
}

}  // namespace nabla::test::yolo_reference

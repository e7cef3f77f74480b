// CPU kernel of Darknet's [yolo] training delta (slot and contract: ops/yolo_loss.h; the maths:
// models/darknet/yolo_loss.h). forward_yolo_layer followed statement by statement, in its order and
// precision: float sums for the statistics and |delta|^2, the loss value in double. This is the host
// implementation models/darknet/yolo_loss.cpp had before the CUDA kernel (cuda/yolo_loss.cu), unchanged in
// its arithmetic; tests/yolo/test_yolo_loss.cpp holds it to libdarknet and to a frozen copy of that code.
#include "ops/yolo_loss.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"

namespace nabla::ops::cpu {
namespace {

struct LayerView {
  const YoloLossSpec& p;
  int batch, lw, lh, n, classes, net_w, net_h;
  int64_t outputs;  // per batch item
  int64_t entry(int b, int anchor, int e, int loc) const {
    return b * outputs + (static_cast<int64_t>(anchor) * (5 + classes) + e) * lw * lh + loc;
  }
};

YoloBox get_box(const float* x, const YoloLossSpec& p, int anchor_global, int64_t index, int i, int j, int lw,
                int lh, int w, int h, int stride) {
  YoloBox b;
  b.x = (i + x[index + 0 * stride]) / lw;
  b.y = (j + x[index + 1 * stride]) / lh;
  b.w = static_cast<float>(::expf(x[index + 2 * stride]) * p.anchors[2 * anchor_global] / w);
  b.h = static_cast<float>(::expf(x[index + 3 * stride]) * p.anchors[2 * anchor_global + 1] / h);
  return b;
}

struct Truth {
  float x, y, w, h;
  int cls;
};

struct Deltas {
  float* delta;
  std::vector<float> target, weight;
  std::vector<uint8_t> kind;
  void set(int64_t k, float d, YoloKind kd, float t, float w) {
    delta[k] = d, kind[k] = kd, target[k] = t, weight[k] = w;
  }
};

float delta_box(const Truth& truth, const float* x, const LayerView& v, int anchor_global, int64_t index,
                int i, int j, Deltas& d, float scale) {
  const int stride = v.lw * v.lh;
  const YoloBox pred = get_box(x, v.p, anchor_global, index, i, j, v.lw, v.lh, v.net_w, v.net_h, stride);
  const float iou = yolo_box_iou(pred, YoloBox{truth.x, truth.y, truth.w, truth.h});
  const float tx = truth.x * v.lw - i;
  const float ty = truth.y * v.lh - j;
  const float tw = static_cast<float>(::logf(truth.w * v.net_w / v.p.anchors[2 * anchor_global]));
  const float th = static_cast<float>(::logf(truth.h * v.net_h / v.p.anchors[2 * anchor_global + 1]));
  d.set(index + 0 * stride, scale * (tx - x[index + 0 * stride]), kYoloScaledLogistic, tx, scale);
  d.set(index + 1 * stride, scale * (ty - x[index + 1 * stride]), kYoloScaledLogistic, ty, scale);
  d.set(index + 2 * stride, scale * (tw - x[index + 2 * stride]), kYoloMse, tw, scale);
  d.set(index + 3 * stride, scale * (th - x[index + 3 * stride]), kYoloMse, th, scale);
  return iou;
}

// pjreddie's delta_yolo_class: when the anchor already has class deltas (tested on class 0's entry, as
// Darknet does), only the new class is set.
void delta_class(const float* out, Deltas& d, int64_t index, int cls, int classes, int stride,
                 float* avg_cat) {
  if (d.delta[index]) {
    const int64_t k = index + static_cast<int64_t>(stride) * cls;
    d.set(k, 1 - out[k], kYoloLogistic, 1, 1);
    if (avg_cat) *avg_cat += out[k];
    return;
  }
  for (int c = 0; c < classes; ++c) {
    const int64_t k = index + static_cast<int64_t>(stride) * c;
    d.set(k, (c == cls ? 1.0f : 0.0f) - out[k], kYoloLogistic, c == cls ? 1.0f : 0.0f, 1);
    if (c == cls && avg_cat) *avg_cat += out[k];
  }
}

void yolo_loss_cpu(const Tensor& z, const Tensor& truths, const YoloLossSpec& p, Tensor& delta_t,
                   Tensor& stats_t) {
  NABLA_CHECK(z.dtype() == DType::f32 && truths.dtype() == DType::f32 && delta_t.dtype() == DType::f32 &&
                  stats_t.dtype() == DType::f64,
              "yolo_loss: expected f32 z, truths and delta and f64 stats, got ", z.dtype(), ", ",
              truths.dtype(), ", ", delta_t.dtype(), ", ", stats_t.dtype());
  const int n = static_cast<int>(p.mask.size()), classes = p.classes;
  const LayerView v{p,
                    static_cast<int>(z.size(0)),
                    static_cast<int>(z.size(3)),
                    static_cast<int>(z.size(2)),
                    n,
                    classes,
                    p.net_w,
                    p.net_h,
                    z.numel() / std::max<int64_t>(1, z.size(0))};
  const int plane = v.lw * v.lh;
  const int total = static_cast<int>(p.anchors.size() / 2);
  const float s = p.scale_x_y;
  const int64_t T = truths.size(1);
  const float* raw = static_cast<const float*>(z.data_ptr());
  const float* tr = static_cast<const float*>(truths.data_ptr());

  // Layer output: logistic on x, y (then scale_x_y), objectness and classes.
  const size_t total_elems = static_cast<size_t>(z.numel());
  std::vector<float> out_v(raw, raw + total_elems);
  float* out = out_v.data();
  for (int b = 0; b < v.batch; ++b)
    for (int a = 0; a < n; ++a) {
      int64_t idx = v.entry(b, a, 0, 0);
      for (int k = 0; k < 2 * plane; ++k) {
        out[idx + k] = yolo_logistic(out[idx + k]);
        if (s != 1.0f) out[idx + k] = out[idx + k] * s + static_cast<float>(-0.5 * (s - 1));
      }
      idx = v.entry(b, a, 4, 0);
      for (int k = 0; k < (1 + classes) * plane; ++k) out[idx + k] = yolo_logistic(out[idx + k]);
    }

  Deltas d;
  d.delta = static_cast<float*>(delta_t.data_ptr());
  std::fill(d.delta, d.delta + total_elems, 0.0f);
  d.target.assign(total_elems, 0), d.weight.assign(total_elems, 0);
  d.kind.assign(total_elems, kYoloNone);
  float avg_iou = 0, recall = 0, recall75 = 0, avg_cat = 0, avg_obj = 0, avg_anyobj = 0;
  int count = 0;

  for (int b = 0; b < v.batch; ++b) {
    // Darknet's truth buffer: the list ends at the first x == 0.
    std::vector<Truth> t;
    for (int64_t k = 0; k < T; ++k) {
      const float* row = tr + (b * T + k) * 5;
      if (!row[0]) break;
      t.push_back({row[0], row[1], row[2], row[3], static_cast<int>(row[4])});
    }
    for (int j = 0; j < v.lh; ++j)
      for (int i = 0; i < v.lw; ++i)
        for (int a = 0; a < n; ++a) {
          const int loc = j * v.lw + i;
          const int64_t box_index = v.entry(b, a, 0, loc);
          const YoloBox pred =
              get_box(out, p, p.mask[a], box_index, i, j, v.lw, v.lh, v.net_w, v.net_h, plane);
          float best_iou = 0;
          int best_t = 0;
          for (size_t k = 0; k < t.size(); ++k) {
            const float iou = yolo_box_iou(pred, YoloBox{t[k].x, t[k].y, t[k].w, t[k].h});
            if (iou > best_iou) best_iou = iou, best_t = static_cast<int>(k);
          }
          const int64_t obj_index = v.entry(b, a, 4, loc);
          avg_anyobj += out[obj_index];
          d.set(obj_index, 0 - out[obj_index], kYoloLogistic, 0, 1);
          if (best_iou > p.ignore_thresh) d.set(obj_index, 0, kYoloNone, 0, 0);
          if (best_iou > p.truth_thresh) {
            d.set(obj_index, 1 - out[obj_index], kYoloLogistic, 1, 1);
            delta_class(out, d, v.entry(b, a, 5, loc), t[best_t].cls, classes, plane, nullptr);
            delta_box(t[best_t], out, v, p.mask[a], box_index, i, j, d, 2 - t[best_t].w * t[best_t].h);
          }
        }
    for (const Truth& truth : t) {
      float best_iou = 0;
      int best_n = 0;
      // Darknet's int conversion; a centre at exactly 1 would index past the grid there: clamped here.
      const int i = std::min(static_cast<int>(truth.x * v.lw), v.lw - 1);
      const int j = std::min(static_cast<int>(truth.y * v.lh), v.lh - 1);
      const YoloBox shift{0, 0, truth.w, truth.h};
      for (int a = 0; a < total; ++a) {
        const YoloBox pred{0, 0, p.anchors[2 * a] / v.net_w, p.anchors[2 * a + 1] / v.net_h};
        const float iou = yolo_box_iou(pred, shift);
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
      d.set(obj_index, 1 - out[obj_index], kYoloLogistic, 1, 1);
      delta_class(out, d, v.entry(b, mask_n, 5, loc), truth.cls, classes, plane, &avg_cat);
      ++count;
      if (iou > .5) recall += 1;
      if (iou > .75) recall75 += 1;
      avg_iou += iou;
    }
  }

  float mag = 0;
  for (size_t k = 0; k < total_elems; ++k) mag += d.delta[k] * d.delta[k];
  // The loss each element's final delta is the negative gradient of.
  double value = 0;
  for (size_t k = 0; k < total_elems; ++k)
    value += yolo_element_loss(d.kind[k], raw[k], d.target[k], d.weight[k], s);

  double* st = static_cast<double*>(stats_t.data_ptr());
  st[kYoloIou] = avg_iou;
  st[kYoloClass] = avg_cat;
  st[kYoloObj] = avg_obj;
  st[kYoloNoObj] = avg_anyobj;
  st[kYoloRecall50] = recall;
  st[kYoloRecall75] = recall75;
  st[kYoloCount] = count;
  st[kYoloCost] = static_cast<float>(std::pow(std::sqrt(mag), 2));
  st[kYoloLossValue] = value;
}

}  // namespace

NABLA_REGISTER_KERNEL(yolo_loss_kernel, cpu, yolo_loss_cpu);

}  // namespace nabla::ops::cpu

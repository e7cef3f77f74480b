// YOLO decode, letterbox correction, NMS and Darknet's image resizing (see yolo_layer.h). The arithmetic
// follows Darknet's C expression by expression (float here, double there) so that boxes agree to the bit
// where possible.
#include "models/darknet/yolo_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "ops/factory.h"

namespace nabla::models::darknet {
namespace {

std::vector<float> to_floats(const Tensor& t) {
  Tensor c = t.detach().to(Device::cpu()).to(DType::f32).contiguous();
  std::vector<float> v(c.numel());
  std::memcpy(v.data(), c.data_ptr(), 4 * v.size());
  return v;
}

float overlap(float x1, float w1, float x2, float w2) {
  float l1 = x1 - w1 / 2, l2 = x2 - w2 / 2;
  float left = l1 > l2 ? l1 : l2;
  float r1 = x1 + w1 / 2, r2 = x2 + w2 / 2;
  float right = r1 < r2 ? r1 : r2;
  return right - left;
}

}  // namespace

int Detection::best_class() const {
  int best = -1;
  for (size_t j = 0; j < prob.size(); ++j)
    if (prob[j] > 0 && (best < 0 || prob[j] > prob[best])) best = static_cast<int>(j);
  return best;
}

float box_iou(const Box& a, const Box& b) {
  float w = overlap(a.x, a.w, b.x, b.w), h = overlap(a.y, a.h, b.y, b.h);
  float inter = (w < 0 || h < 0) ? 0.0f : w * h;
  float uni = a.w * a.h + b.w * b.h - inter;
  return inter / uni;
}

std::vector<Detection> get_yolo_detections(const YoloParams& p, const Tensor& output, int img_w, int img_h,
                                           int net_w, int net_h, float thresh, bool relative, int item) {
  const int anchors = static_cast<int>(p.mask.size()), entries = 5 + p.classes;
  NABLA_CHECK(output.dim() == 4 && output.size(1) == anchors * entries && item >= 0 && item < output.size(0),
              "get_yolo_detections: expected an output [N, ", anchors * entries, ", H, W] and item < N, got ",
              output.shape(), " item ", item);
  const int lh = static_cast<int>(output.size(2)), lw = static_cast<int>(output.size(3));
  const std::vector<float> o = to_floats(output.select(0, item));
  const int plane = lw * lh;
  auto at = [&](int n, int entry, int loc) { return o[(n * entries + entry) * plane + loc]; };
  std::vector<Detection> dets;
  for (int i = 0; i < plane; ++i) {
    const int row = i / lw, col = i % lw;
    for (int n = 0; n < anchors; ++n) {
      const float objectness = at(n, 4, i);
      if (objectness <= thresh) continue;
      Detection d;
      d.bbox.x = (col + at(n, 0, i)) / lw;
      d.bbox.y = (row + at(n, 1, i)) / lh;
      d.bbox.w = static_cast<float>(std::exp(at(n, 2, i)) * p.anchor_w(n) / net_w);
      d.bbox.h = static_cast<float>(std::exp(at(n, 3, i)) * p.anchor_h(n) / net_h);
      d.objectness = objectness;
      d.prob.resize(p.classes);
      for (int j = 0; j < p.classes; ++j) {
        const float prob = objectness * at(n, 5 + j, i);
        d.prob[j] = prob > thresh ? prob : 0;
      }
      d.anchor = n, d.row = row, d.col = col;
      dets.push_back(std::move(d));
    }
  }
  correct_yolo_boxes(dets, img_w, img_h, net_w, net_h, relative);
  return dets;
}

std::vector<Detection> get_network_boxes(const DarknetNetwork& net, const std::vector<Tensor>& yolo_outputs,
                                         int img_w, int img_h, float thresh, bool relative, int item) {
  const std::vector<int> idx = net.yolo_layers();
  NABLA_CHECK(idx.size() == yolo_outputs.size(), "get_network_boxes: the network has ", idx.size(),
              " [yolo] layers, got ", yolo_outputs.size(), " outputs");
  std::vector<Detection> all;
  for (size_t k = 0; k < idx.size(); ++k) {
    std::vector<Detection> d = get_yolo_detections(net.layers[idx[k]].yolo, yolo_outputs[k], img_w, img_h,
                                                   net.net.width, net.net.height, thresh, relative, item);
    for (Detection& x : d) x.layer = idx[k];
    all.insert(all.end(), std::make_move_iterator(d.begin()), std::make_move_iterator(d.end()));
  }
  return all;
}

void correct_yolo_boxes(std::vector<Detection>& dets, int w, int h, int netw, int neth, bool relative) {
  int new_w = 0, new_h = 0;
  if ((static_cast<float>(netw) / w) < (static_cast<float>(neth) / h)) {
    new_w = netw;
    new_h = (h * netw) / w;
  } else {
    new_h = neth;
    new_w = (w * neth) / h;
  }
  for (Detection& d : dets) {
    Box b = d.bbox;
    b.x = static_cast<float>((b.x - (netw - new_w) / 2. / netw) / (static_cast<float>(new_w) / netw));
    b.y = static_cast<float>((b.y - (neth - new_h) / 2. / neth) / (static_cast<float>(new_h) / neth));
    b.w *= static_cast<float>(netw) / new_w;
    b.h *= static_cast<float>(neth) / new_h;
    if (!relative) {
      b.x *= w;
      b.w *= w;
      b.y *= h;
      b.h *= h;
    }
    d.bbox = b;
  }
}

void do_nms_sort(std::vector<Detection>& dets, int classes, float thresh) {
  // Darknet swaps objectness-0 detections to the end (order of the rest kept up to those swaps).
  int k = static_cast<int>(dets.size()) - 1;
  for (int i = 0; i <= k; ++i) {
    if (dets[i].objectness == 0) {
      std::swap(dets[i], dets[k]);
      --k;
      --i;
    }
  }
  const int total = k + 1;
  for (int c = 0; c < classes; ++c) {
    // glibc's qsort is a merge sort (stable) for arrays of this size, so stable_sort gives its order.
    std::stable_sort(dets.begin(), dets.begin() + total,
                     [c](const Detection& a, const Detection& b) { return a.prob[c] - b.prob[c] > 0; });
    for (int i = 0; i < total; ++i) {
      if (dets[i].prob[c] == 0) continue;
      for (int j = i + 1; j < total; ++j)
        if (box_iou(dets[i].bbox, dets[j].bbox) > thresh) dets[j].prob[c] = 0;
    }
  }
}

Tensor resize_image(const Tensor& im, int w, int h) {
  NABLA_CHECK(im.dim() == 3 && w > 0 && h > 0,
              "resize_image: expected an image [C, H, W] and a size > 0, got ", im.shape(), " to ", w, "x",
              h);
  const int c = static_cast<int>(im.size(0)), ih = static_cast<int>(im.size(1)),
            iw = static_cast<int>(im.size(2));
  const std::vector<float> src = to_floats(im);
  std::vector<float> part(static_cast<size_t>(c) * ih * w), out(static_cast<size_t>(c) * h * w);
  const float w_scale = static_cast<float>(iw - 1) / (w - 1);
  const float h_scale = static_cast<float>(ih - 1) / (h - 1);
  auto px = [&](int x, int y, int k) { return src[(static_cast<size_t>(k) * ih + y) * iw + x]; };
  for (int k = 0; k < c; ++k)
    for (int r = 0; r < ih; ++r)
      for (int col = 0; col < w; ++col) {
        float val = 0;
        if (col == w - 1 || iw == 1) {
          val = px(iw - 1, r, k);
        } else {
          const float sx = col * w_scale;
          const int ix = static_cast<int>(sx);
          const float dx = sx - ix;
          val = (1 - dx) * px(ix, r, k) + dx * px(ix + 1, r, k);
        }
        part[(static_cast<size_t>(k) * ih + r) * w + col] = val;
      }
  for (int k = 0; k < c; ++k)
    for (int r = 0; r < h; ++r) {
      const float sy = r * h_scale;
      const int iy = static_cast<int>(sy);
      const float dy = sy - iy;
      float* o = &out[(static_cast<size_t>(k) * h + r) * w];
      const float* p0 = &part[(static_cast<size_t>(k) * ih + iy) * w];
      for (int col = 0; col < w; ++col) o[col] = (1 - dy) * p0[col];
      if (r == h - 1 || ih == 1) continue;
      const float* p1 = p0 + w;
      for (int col = 0; col < w; ++col) o[col] += dy * p1[col];
    }
  Tensor t = Tensor::empty({c, h, w}, DType::f32);
  std::memcpy(t.data_ptr(), out.data(), 4 * out.size());
  return t;
}

Tensor letterbox_image(const Tensor& im, int w, int h) {
  NABLA_CHECK(im.dim() == 3, "letterbox_image: expected an image [C, H, W], got ", im.shape());
  const int c = static_cast<int>(im.size(0)), ih = static_cast<int>(im.size(1)),
            iw = static_cast<int>(im.size(2));
  int new_w = iw, new_h = ih;
  if ((static_cast<float>(w) / iw) < (static_cast<float>(h) / ih)) {
    new_w = w;
    new_h = (ih * w) / iw;
  } else {
    new_h = h;
    new_w = (iw * h) / ih;
  }
  const Tensor resized = resize_image(im, new_w, new_h);
  Tensor boxed = full({c, h, w}, 0.5);
  const int dx = (w - new_w) / 2, dy = (h - new_h) / 2;
  const float* s = resized.data<float>();
  float* d = boxed.data<float>();
  for (int k = 0; k < c; ++k)
    for (int y = 0; y < new_h; ++y)
      for (int x = 0; x < new_w; ++x) {
        const int X = dx + x, Y = dy + y;
        if (X < 0 || Y < 0 || X >= w || Y >= h) continue;
        d[(static_cast<size_t>(k) * h + Y) * w + X] = s[(static_cast<size_t>(k) * new_h + y) * new_w + x];
      }
  return boxed;
}

}  // namespace nabla::models::darknet

// Darknet's forward_yolo_layer delta (see yolo_loss.h) through the kernel slot ops/yolo_loss.h on the heads'
// device, and the loss whose gradient it is: one autograd node whose value is the kernel's loss sum and whose
// backward hands -delta (times the incoming gradient) to z.
#include "models/darknet/yolo_loss.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "ops/index.h"
#include "ops/yolo_loss.h"

namespace nabla::models::darknet {
namespace {

std::atomic<int> g_on_host{-1};  // -1: the environment decides

YoloLayerStats stats_from(const double* st, int lw, int lh, int n, int batch) {
  YoloLayerStats r;
  const int count = static_cast<int>(st[ops::kYoloCount]);
  // Darknet's float divisions (0/0 gives nan there too, for a layer without truths).
  r.avg_iou = static_cast<float>(st[ops::kYoloIou]) / count;
  r.avg_class = static_cast<float>(st[ops::kYoloClass]) / count;
  r.avg_obj = static_cast<float>(st[ops::kYoloObj]) / count;
  r.avg_noobj = static_cast<float>(st[ops::kYoloNoObj]) / (lw * lh * n * batch);
  r.recall50 = static_cast<float>(st[ops::kYoloRecall50]) / count;
  r.recall75 = static_cast<float>(st[ops::kYoloRecall75]) / count;
  r.count = count;
  r.darknet_cost = static_cast<float>(st[ops::kYoloCost]);
  return r;
}

}  // namespace

std::string YoloLayerStats::line(int layer_index) const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "Region %d Avg IOU: %f, Class: %f, Obj: %f, No Obj: %f, .5R: %f, .75R: %f,  count: %d",
                layer_index, avg_iou, avg_class, avg_obj, avg_noobj, recall50, recall75, count);
  return buf;
}

bool yolo_loss_on_host() {
  const int v = g_on_host.load(std::memory_order_relaxed);
  if (v >= 0) return v == 1;
  const char* e = std::getenv("NABLA_YOLO_LOSS_HOST");
  return e && std::strcmp(e, "0") != 0 && *e;
}

void set_yolo_loss_on_host(bool on) { g_on_host.store(on ? 1 : 0, std::memory_order_relaxed); }

YoloTruths upload_truths(const std::vector<std::vector<TruthBox>>& truths, int max_boxes, Device device) {
  NABLA_CHECK(max_boxes > 0, "upload_truths: max_boxes must be > 0, got ", max_boxes);
  YoloTruths r;
  r.boxes = truths;
  r.max_boxes = max_boxes;
  std::vector<int> used(truths.size(), 0);
  int T = 1;
  for (size_t b = 0; b < truths.size(); ++b) {
    for (const TruthBox& tb : truths[b]) {
      if (used[b] >= max_boxes || !tb.x) break;
      ++used[b];
    }
    T = std::max(T, used[b]);
  }
  std::vector<double> v(truths.size() * static_cast<size_t>(T) * 5, 0.0);
  for (size_t b = 0; b < truths.size(); ++b)
    for (int k = 0; k < used[b]; ++k) {
      const TruthBox& tb = truths[b][k];
      double* row = v.data() + (b * T + k) * 5;
      row[0] = tb.x, row[1] = tb.y, row[2] = tb.w, row[3] = tb.h, row[4] = tb.cls;
    }
  r.host = from_vector(v, {static_cast<int64_t>(truths.size()), T, 5}, TensorOptions{.dtype = DType::f32});
  r.device = device.is_cpu() ? r.host : r.host.to(device);
  return r;
}

YoloLossResult yolo_layer_loss(const YoloParams& p, const Tensor& z, const YoloTruths& truths, int net_w,
                               int net_h, bool with_stats) {
  const int n = static_cast<int>(p.mask.size()), classes = p.classes;
  NABLA_CHECK(z.dim() == 4 && z.size(1) == n * (5 + classes), "yolo_loss: expected the raw [yolo] input [N, ",
              n * (5 + classes), ", H, W] (", n, " anchors x (5 + ", classes, " classes)), got ", z.shape());
  NABLA_CHECK(static_cast<int64_t>(truths.boxes.size()) == z.size(0), "yolo_loss: ", z.size(0),
              " batch items but truths for ", truths.boxes.size());
  NABLA_CHECK(net_w > 0 && net_h > 0, "yolo_loss: network size must be > 0, got ", net_w, "x", net_h);
  for (int m : p.mask)
    NABLA_CHECK(m >= 0 && 2 * m + 1 < static_cast<int>(p.anchors.size()), "yolo_loss: mask index ", m,
                " outside the ", p.anchors.size() / 2, " anchors");
  if (truths.max_boxes != p.max_boxes)  // a layer with its own truth buffer size
    return yolo_layer_loss(p, z, upload_truths(truths.boxes, p.max_boxes, z.device()), net_w, net_h,
                           with_stats);
  for (size_t b = 0; b < truths.boxes.size(); ++b) {
    int k = 0;
    for (const TruthBox& tb : truths.boxes[b]) {
      if (k++ >= p.max_boxes || !tb.x) break;
      NABLA_CHECK(tb.cls >= 0 && tb.cls < classes, "yolo_loss: batch item ", b, " has a box of class ",
                  tb.cls, ", the layer has ", classes, " classes");
    }
  }
  const ops::YoloLossSpec spec{.classes = classes,
                               .mask = p.mask,
                               .anchors = p.anchors,
                               .net_w = net_w,
                               .net_h = net_h,
                               .ignore_thresh = p.ignore_thresh,
                               .truth_thresh = p.truth_thresh,
                               .scale_x_y = p.scale_x_y};
  const bool host = yolo_loss_on_host() && !z.device().is_cpu();
  const Device run_on = host ? Device::cpu() : z.device();
  const Tensor zf = z.detach().to(run_on).to(DType::f32).contiguous();
  const Tensor& tt = run_on.is_cpu() ? truths.host : truths.device;
  NABLA_CHECK(tt.device() == run_on, "yolo_loss: the truths are on ", tt.device(), ", the heads on ", run_on,
              " (upload_truths to the heads' device)");
  Tensor delta = Tensor::empty(zf.shape(), DType::f32, run_on);
  Tensor stats = Tensor::empty({ops::kYoloStats}, DType::f64, run_on);
  ops::yolo_loss_kernel.get(run_on, "yolo_loss")(zf, tt, spec, delta, stats);
  if (host) delta = delta.to(z.device()), stats = stats.to(z.device());

  YoloLossResult r;
  r.delta = delta;
  r.stats_sums = stats;
  if (with_stats) {
    const Tensor sc = stats.to(Device::cpu());
    r.stats = stats_from(static_cast<const double*>(sc.data_ptr()), static_cast<int>(z.size(3)),
                         static_cast<int>(z.size(2)), n, static_cast<int>(z.size(0)));
  }
  // The loss: the kernel's sum, with backward -delta * g in z's dtype.
  const DType loss_dtype = z.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor loss = stats.narrow(0, ops::kYoloLossValue, 1).reshape({}).to(loss_dtype).clone();
  autograd::record("yolo_loss", loss, {z},
                   [delta, zdtype = z.dtype()](const Tensor& g) -> std::vector<Tensor> {
                     return {(delta * neg(g.to(DType::f32))).to(zdtype)};
                   });
  r.loss = loss;
  return r;
}

YoloLossResult yolo_loss(const YoloParams& p, const Tensor& z,
                         const std::vector<std::vector<TruthBox>>& truths, int net_w, int net_h) {
  return yolo_layer_loss(p, z, upload_truths(truths, p.max_boxes, z.device()), net_w, net_h, true);
}

int yolo_max_boxes(const DarknetNetwork& net) {
  int m = 1;
  for (int i : net.yolo_layers()) m = std::max(m, net.layers[i].yolo.max_boxes);
  return m;
}

NetworkLoss network_yolo_loss(const DarknetNetwork& net, const std::vector<Tensor>& heads,
                              const YoloTruths& truths, bool with_stats) {
  const std::vector<int> idx = net.yolo_layers();
  NABLA_CHECK(idx.size() == heads.size(), "network_yolo_loss: the network has ", idx.size(),
              " [yolo] layers, got ", heads.size(), " heads");
  NetworkLoss r;
  std::vector<Tensor> sums;
  for (size_t k = 0; k < idx.size(); ++k) {
    YoloLossResult l = yolo_layer_loss(net.layers[idx[k]].yolo, heads[k], truths, net.net.width,
                                       net.net.height, /*with_stats=*/false);
    r.loss = r.loss.defined() ? r.loss + l.loss : l.loss;
    sums.push_back(l.stats_sums);
  }
  if (with_stats && !sums.empty()) {  // one device-to-host read for all layers
    const Tensor all = cat(sums, 0).to(Device::cpu());
    const double* st = static_cast<const double*>(all.data_ptr());
    for (size_t k = 0; k < idx.size(); ++k) {
      const YoloParams& p = net.layers[idx[k]].yolo;
      const YoloLayerStats s = stats_from(st + k * ops::kYoloStats, static_cast<int>(heads[k].size(3)),
                                          static_cast<int>(heads[k].size(2)), static_cast<int>(p.mask.size()),
                                          static_cast<int>(heads[k].size(0)));
      r.darknet_cost += s.darknet_cost;
      r.layers.push_back(s);
    }
  }
  return r;
}

NetworkLoss network_yolo_loss(const DarknetNetwork& net, const std::vector<Tensor>& heads,
                              const std::vector<std::vector<TruthBox>>& truths) {
  NABLA_CHECK(!heads.empty(), "network_yolo_loss: no heads");
  return network_yolo_loss(net, heads, upload_truths(truths, yolo_max_boxes(net), heads[0].device()), true);
}

}  // namespace nabla::models::darknet

// The YOLOv3 training loss as Darknet's [yolo] layer computes it (forward_yolo_layer of the Debian package,
// pjreddie/darknet 61c9d02e; scale_x_y as AlexeyAB's fork), checked against libdarknet itself
// (tests/yolo/test_yolo_loss.cpp).
//
// Darknet does not write a loss: its layer fills l.delta, and backward hands that delta down as the
// gradient with Darknet's sign, delta = -dL/dz (update: w += lr/batch * sum delta dy/dw). For every anchor n
// of an lw x lh layer, cell (i, j), with z the raw input and o the layer output (logistic on x, y,
// objectness and classes; x, y then s * o - (s - 1) / 2 for scale_x_y = s), pass 1:
//   pred = (i + o_x) / lw, (j + o_y) / lh, exp(z_w) anchor_w / net_w, exp(z_h) anchor_h / net_h
//   best = max IoU of pred with the image's truths
//   delta_obj = -o_obj;  0 when best > ignore_thresh;  (best > truth_thresh: as pass 2 for that truth)
// pass 2, for each truth t (in order; a truth whose x is 0 ends the list, as Darknet's `if(!truth.x) break`):
//   n* = argmax over ALL anchors of IoU(anchor shape, truth shape) (both centred at 0)
//   if n* is in this layer's mask, at the truth's cell (i = int(x lw), j = int(y lh)):
//     scale = 2 - w h;  tx = x lw - i,  ty = y lh - j,  tw = log(w net_w / anchor_w),  th = ...
//     delta_x = scale (tx - o_x),  delta_y likewise,  delta_w = scale (tw - z_w),  delta_h likewise
//     delta_obj = 1 - o_obj
//     classes: delta_c = [c == class] - o_c; if that anchor already had class deltas (a second truth in
//              the same cell and anchor), only delta_class = 1 - o_class is set (multi-label)
// Later assignments overwrite earlier ones element by element, exactly as in Darknet.
//
// The loss whose gradient is exactly -delta (what `loss` holds, summed over the batch):
//   objectness and classes with target t:  softplus(z) - t z            (BCE on the logit)
//   x, y with target t, weight scale:      scale s (softplus(z) - t' z),  t' = (t + (s - 1) / 2) / s
//   w, h:                                  scale / 2 (t - z)^2          (iou_loss=mse)
// so loss.backward() puts -delta into z's gradient (Darknet's direction, our sign). Darknet's own printed
// cost is |delta|^2 (`darknet_cost`), kept for logs that compare with Darknet's "avg loss" line.
// Not supported: iou_loss other than mse (giou/ciou of AlexeyAB), iou_normalizer, label smoothing.
//
// Where it runs: the kernel slot ops/yolo_loss.h, on z's device (cuda/yolo_loss.cu on a GPU: the heads stay
// there; the truths, [B, T, 5] floats, go up once per batch, best before the forward since a host-to-device
// copy waits for the stream). NABLA_YOLO_LOSS_HOST=1 (or set_yolo_loss_on_host) takes the old route for
// comparison: the heads copied to the CPU, the CPU kernel, the delta copied back.
#pragma once
#include <string>
#include <vector>

#include "models/darknet/network.h"
#include "models/darknet/yolo_layer.h"

namespace nabla::models::darknet {

// A ground-truth box relative to the network input (centre x, y, width, height in [0, 1]) and its class.
struct TruthBox {
  float x = 0, y = 0, w = 0, h = 0;
  int cls = 0;
};

// Darknet's "Region N Avg IOU: ..., Class: ..., Obj: ..., No Obj: ..., .5R: ..., .75R: ..., count: N" line.
struct YoloLayerStats {
  float avg_iou = 0, avg_class = 0, avg_obj = 0, avg_noobj = 0, recall50 = 0, recall75 = 0;
  int count = 0;
  float darknet_cost = 0;  // |delta|^2, Darknet's *l.cost
  std::string line(int layer_index) const;
};

struct YoloLossResult {
  Tensor loss;           // scalar (f64 for f64 z, f32 otherwise), differentiable w.r.t. the raw input
  Tensor delta;          // Darknet's l.delta (f32, on the device the loss ran on), same shape as the input
  YoloLayerStats stats;  // pass sums over the layer's batch (when read: see with_stats below)
  Tensor stats_sums;     // f64 [ops::kYoloStats] on that device: the sums the stats are made of
};

// The truths of a batch as the kernel reads them: f32 [B, T, 5] (x, y, w, h, class), each image's list cut
// at max_boxes (Darknet's truth buffer) and at its first box with x == 0, zero-padded; T >= 1. `boxes` is
// kept for the class checks and the host route.
struct YoloTruths {
  std::vector<std::vector<TruthBox>> boxes;
  int max_boxes = 0;
  Tensor host;    // on the CPU
  Tensor device;  // on `device` (the same tensor when that is the CPU)
};
YoloTruths upload_truths(const std::vector<std::vector<TruthBox>>& truths, int max_boxes, Device device);

// NABLA_YOLO_LOSS_HOST=1 in the environment, unless set here (tests, benchmarks).
bool yolo_loss_on_host();
void set_yolo_loss_on_host(bool on);

// The raw [yolo] input z [N, n (5 + classes), lh, lw] (training-mode output of the layer), the truths of
// each batch item (truths.size() == N; at most p.max_boxes are used, as Darknet's truth buffer), and the
// network input size. with_stats = false leaves `stats` zero (no device-to-host read).
YoloLossResult yolo_loss(const YoloParams& p, const Tensor& z,
                         const std::vector<std::vector<TruthBox>>& truths, int net_w, int net_h);
YoloLossResult yolo_layer_loss(const YoloParams& p, const Tensor& z, const YoloTruths& truths, int net_w,
                               int net_h, bool with_stats = true);

// All [yolo] layers of a network (heads from forward_yolo in training mode): the losses summed, and the
// stats of each layer (read from the device in one copy; with_stats = false skips that read and leaves
// darknet_cost 0 and layers empty).
struct NetworkLoss {
  Tensor loss;
  float darknet_cost = 0;  // sum over layers of |delta|^2
  std::vector<YoloLayerStats> layers;
};
NetworkLoss network_yolo_loss(const DarknetNetwork& net, const std::vector<Tensor>& heads,
                              const std::vector<std::vector<TruthBox>>& truths);
NetworkLoss network_yolo_loss(const DarknetNetwork& net, const std::vector<Tensor>& heads,
                              const YoloTruths& truths, bool with_stats = true);
// The max_boxes of the network's [yolo] layers (the largest; Darknet's layers share one).
int yolo_max_boxes(const DarknetNetwork& net);

}  // namespace nabla::models::darknet

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
  Tensor loss;           // scalar, differentiable w.r.t. the raw input: sum over the batch
  Tensor delta;          // Darknet's l.delta (f32, CPU), same shape as the input
  YoloLayerStats stats;  // pass sums over the layer's batch
};

// The raw [yolo] input z [N, n (5 + classes), lh, lw] (training-mode output of the layer), the truths of
// each batch item (truths.size() == N; at most p.max_boxes are used, as Darknet's truth buffer), and the
// network input size.
YoloLossResult yolo_loss(const YoloParams& p, const Tensor& z,
                         const std::vector<std::vector<TruthBox>>& truths, int net_w, int net_h);

// All [yolo] layers of a network (heads from forward_yolo in training mode): the losses summed, and the
// stats of each layer.
struct NetworkLoss {
  Tensor loss;
  float darknet_cost = 0;  // sum over layers of |delta|^2
  std::vector<YoloLayerStats> layers;
};
NetworkLoss network_yolo_loss(const DarknetNetwork& net, const std::vector<Tensor>& heads,
                              const std::vector<std::vector<TruthBox>>& truths);

}  // namespace nabla::models::darknet

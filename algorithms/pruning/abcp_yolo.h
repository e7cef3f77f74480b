// The YOLO side of ABCP (brief §1.6, §1.8): Darknet YOLOv3 cfgs of any depth and width, a detection set held
// in memory at the network's input size, the short fine-tune of a masked candidate, and its score on a
// validation set: mAP@0.5 (VOC all-point, as train_yolo's map) or the YOLO loss (the original's reward).
//
//   yolov3_cfg({})                               the cfg of Darknet's yolov3.cfg (80 classes, 416²)
//   yolov3_cfg({.base = 8, .blocks = {1,1,2,2,1}, .width = 64, .height = 64, .classes = 2})
//                                                the CPU "mini" YOLOv3: same layout, 7 blocks, 1/4 width
//   DetectionData d = load_detection_data(YoloDataset(list), net_w, net_h);   letterboxed, no augmentation
//   detection_finetune(net, d, params, {...}, &plan);   Adam; masks re-applied after every step
//   detection_map(net, val).map                  mAP@0.5 on boxes relative to the network input (the
//                                                letterbox is a uniform scale and shift: IoUs are those of
//                                                the original image)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/metrics/detection_map.h"
#include "algorithms/pruning/darknet_pruning.h"
#include "data/yolo_dataset.h"
#include "models/darknet/network.h"
#include "models/darknet/yolo_loss.h"

namespace nabla::algorithms::pruning {

struct YoloV3Spec {
  int base = 32;                           // stem width; stages 2, 4, 8, 16, 32 x base (YOLOv3: 32)
  std::vector<int> blocks{1, 2, 8, 8, 4};  // residual blocks per stage (Darknet-53)
  int width = 416, height = 416, classes = 80;
  // the nine anchors of yolov3.cfg (pixels at 416²), scaled by width / 416 and height / 416, at least 1
  bool scale_anchors = true;
};
// Darknet cfg text: Darknet-53 trunk with `blocks`, then YOLOv3's three heads (strides 32, 16, 8) joined by
// route + upsample. With the defaults it has yolov3.cfg's 107 layers and shapes. Throws unless there are five
// stages, each with at least one block (the routes read stages 4 and 3).
std::string yolov3_cfg(const YoloV3Spec& spec);
// "yolov3" or "yolov3-mini" (base 8, blocks 1,1,2,2,1) at the given size and classes; throws on other names.
std::string builtin_yolo_cfg(const std::string& name, int width, int height, int classes);

struct DetectionData {
  Tensor images;                                               // f32 [N, 3, H, W] in [0, 1], letterboxed
  std::vector<std::vector<models::darknet::TruthBox>> truths;  // per image, relative to the network input
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};
// Every image of `ds` letterboxed to w x h (no augmentation), with its boxes.
DetectionData load_detection_data(const data::YoloDataset& ds, int w, int h);

struct FinetuneOptions {
  int64_t steps = 20, batch = 16;
  double lr = 1e-3;
  bool bn_train = true;  // batch statistics (and the running ones recalibrated); false: BN in evaluation
  bool flip = true;      // horizontal flip of each batch with probability 1/2 (boxes mirrored)
  uint64_t seed = 1;
  int recalibrate = 8;  // with bn_train: batches of BN recalibration after the steps (0: none)
};
// Recomputes every BN layer's running statistics as the plain average over `batches` random batches
// (momentum 1 / k for the k-th, then back to the layer's own): Darknet's momentum 0.01 needs hundreds of
// steps before the evaluation-mode statistics match the weights, far more than a short fine-tune has.
void recalibrate_batchnorm(models::darknet::DarknetNetwork& net, const DetectionData& d, int batches,
                           int64_t batch, uint64_t seed);
// `steps` Adam steps of the YOLO loss (summed over the boxes, divided by the batch) on `params` over random
// batches of `d`; with a plan, its masks are applied again after every step (the pruned channels stay 0).
// With bn_train the BN statistics are then recalibrated (`recalibrate` batches). Returns the mean loss of the
// last min(steps, 10) steps.
double detection_finetune(models::darknet::DarknetNetwork& net, const DetectionData& d,
                          const std::vector<Tensor>& params, const FinetuneOptions& o,
                          const ChannelPlan* plan = nullptr);

// mAP@0.5 (VOC all-point; COCO figures too) of the network's detections after Darknet's decode (score >
// thresh) and do_nms_sort; the network is put in evaluation mode.
metrics::MapResult detection_map(models::darknet::DarknetNetwork& net, const DetectionData& d,
                                 float thresh = 0.005f, float nms = 0.45f, int64_t batch = 16);
// The YOLO loss per image with BN in evaluation mode (the network is left in evaluation mode).
double detection_loss(models::darknet::DarknetNetwork& net, const DetectionData& d, int64_t batch = 16);
// Forward throughput in images per second (evaluation, batch `batch`, `reps` timed passes after a warm-up).
double detection_throughput(models::darknet::DarknetNetwork& net, const DetectionData& d, int64_t batch,
                            int reps);

}  // namespace nabla::algorithms::pruning

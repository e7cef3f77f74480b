// Detection evaluation: average precision per class and its mean, VOC style at one IoU threshold and COCO
// style averaged over IoU 0.50:0.05:0.95.
//
// Boxes are centre x, y, width, height in any consistent unit (relative or pixels).
// IoU = |A n B| / (|A| + |B| - |A n B|) (Darknet's box_iou).
//
// VOC / Darknet matching (AlexeyAB darknet's validate_detector_map, the `detector map` command; pjreddie's
// darknet has no mAP command): per class, every detection of that class in score order (ties keep input
// order); its truth is the same-class truth of its image with the largest IoU, counted only when IoU >
// iou_thresh (strict); a detection whose best truth was already taken by a higher-scored one is a false
// positive (it is not moved to another truth). Then precision_k = TP_k / k, recall_k = TP_k / #truths.
//   ApMethod::all_point  area under the monotone envelope at every unique recall (VOC 2010+, and Darknet's
//                        default `-points 0`: "used Area-Under-Curve for each unique Recall")
//   ApMethod::voc11      mean over r in {0, 0.1, ..., 1} of max precision at recall >= r (VOC 2007,
//                        Darknet's `-points 11`)
// mAP is the mean over classes that have at least one truth (Darknet divides by every class; a class with
// no truth has no defined recall, so it is left out here and listed with ap = NaN).
//
// COCO (pycocotools' COCOeval, bbox, area "all", no crowd boxes): per image and class the detections are
// sorted by score and cut to max_dets; each is matched to the unmatched same-class truth of best IoU with
// IoU >= t (an already matched truth is skipped, so a detection can take the next best); AP at threshold
// t is the 101-point interpolated precision (recall 0, 0.01, ..., 1; the envelope's value at the first
// rank reaching that recall, 0 beyond the last recall); mAP@[.5:.95] averages t = 0.50, 0.55, ..., 0.95
// and the classes with truths.
#pragma once
#include <string>
#include <vector>

namespace nabla::metrics {

struct EvalBox {
  int image = 0;  // which image (any id; only equality matters)
  int cls = 0;
  float x = 0, y = 0, w = 0, h = 0;
  float score = 1;  // detections only
};

enum class ApMethod { all_point, voc11 };

struct ClassAp {
  int cls = 0;
  int truths = 0, detections = 0;
  int true_positives = 0, false_positives = 0;  // over all detections of the class (VOC matching)
  double ap = 0;                                // NaN when the class has no truth
  double ap50_95 = 0;                           // COCO style; NaN when no truth
};

struct MapResult {
  std::vector<ClassAp> classes;  // one per class 0..classes-1
  double map = 0;                // VOC / Darknet style at iou_thresh
  double map50_coco = 0;         // COCO style at 0.5 (101-point)
  double map50_95 = 0;           // COCO style over 0.50:0.05:0.95
  // A table: "class | name | truths | detections | TP | FP | AP@0.5 | AP@[.5:.95]" and the means.
  std::string table(const std::vector<std::string>& names = {}) const;
};

float eval_iou(const EvalBox& a, const EvalBox& b);

// AP from precision and recall at each rank (in score order) by the given method.
double average_precision(const std::vector<double>& precision, const std::vector<double>& recall,
                         ApMethod method);

MapResult evaluate_map(const std::vector<EvalBox>& detections, const std::vector<EvalBox>& truths,
                       int classes, float iou_thresh = 0.5f, ApMethod method = ApMethod::all_point,
                       int coco_max_dets = 100);

}  // namespace nabla::metrics

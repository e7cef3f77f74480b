// Detection AP and mAP, VOC/Darknet and COCO style (see detection_map.h for the matching rules).
#include "algorithms/metrics/detection_map.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

#include "engine/error.h"

namespace nabla::metrics {
namespace {

float overlap(float x1, float w1, float x2, float w2) {
  const float left = std::max(x1 - w1 / 2, x2 - w2 / 2);
  const float right = std::min(x1 + w1 / 2, x2 + w2 / 2);
  return right - left;
}

// Indices of `dets` with class c in score order (stable: ties keep input order).
std::vector<int> ranked(const std::vector<EvalBox>& dets, int c) {
  std::vector<int> idx;
  for (int i = 0; i < static_cast<int>(dets.size()); ++i)
    if (dets[i].cls == c) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return dets[a].score > dets[b].score; });
  return idx;
}

// COCO's AP at one IoU threshold for one class; NaN without truths.
double coco_ap(const std::vector<EvalBox>& dets, const std::vector<EvalBox>& truths, int c, float t,
               int max_dets) {
  std::map<int, std::vector<int>> gt_by_image, dt_by_image;
  int n_gt = 0;
  for (int i = 0; i < static_cast<int>(truths.size()); ++i)
    if (truths[i].cls == c) gt_by_image[truths[i].image].push_back(i), ++n_gt;
  if (n_gt == 0) return std::numeric_limits<double>::quiet_NaN();
  for (int i : ranked(dets, c)) dt_by_image[dets[i].image].push_back(i);
  // (score, matched) for every kept detection; pycocotools sorts them all by score with a stable merge
  // sort of the per-image lists concatenated in image order.
  std::vector<std::pair<float, bool>> all;
  for (auto& [image, dt] : dt_by_image) {
    if (static_cast<int>(dt.size()) > max_dets) dt.resize(max_dets);
    const std::vector<int>& gt = gt_by_image[image];
    std::vector<bool> taken(gt.size(), false);
    for (int d : dt) {
      double best = std::min(static_cast<double>(t), 1 - 1e-10);
      int m = -1;
      for (size_t g = 0; g < gt.size(); ++g) {
        if (taken[g]) continue;
        const double iou = eval_iou(dets[d], truths[gt[g]]);
        if (iou < best) continue;
        best = iou, m = static_cast<int>(g);
      }
      if (m >= 0) taken[m] = true;
      all.push_back({dets[d].score, m >= 0});
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<double> prec, rec;
  double tp = 0, fp = 0;
  for (const auto& [score, match] : all) {
    (match ? tp : fp) += 1;
    rec.push_back(tp / n_gt);
    prec.push_back(tp / (tp + fp + std::numeric_limits<double>::epsilon()));
  }
  for (int k = static_cast<int>(prec.size()) - 1; k > 0; --k) prec[k - 1] = std::max(prec[k - 1], prec[k]);
  double sum = 0;
  for (int r = 0; r <= 100; ++r) {
    const double target = r / 100.0;
    const auto it = std::lower_bound(rec.begin(), rec.end(), target);
    if (it != rec.end()) sum += prec[it - rec.begin()];
  }
  return sum / 101;
}

double nan_mean(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (!std::isnan(x)) s += x, ++n;
  return n ? s / n : 0;
}

}  // namespace

float eval_iou(const EvalBox& a, const EvalBox& b) {
  const float w = overlap(a.x, a.w, b.x, b.w), h = overlap(a.y, a.h, b.y, b.h);
  const float inter = (w < 0 || h < 0) ? 0.0f : w * h;
  const float uni = a.w * a.h + b.w * b.h - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

double average_precision(const std::vector<double>& precision, const std::vector<double>& recall,
                         ApMethod method) {
  NABLA_CHECK(precision.size() == recall.size(), "average_precision: ", precision.size(), " precisions but ",
              recall.size(), " recalls");
  const int n = static_cast<int>(precision.size());
  if (n == 0) return 0;
  if (method == ApMethod::voc11) {
    double sum = 0;
    for (int r = 0; r <= 10; ++r) {
      double best = 0;
      for (int k = 0; k < n; ++k)
        if (recall[k] >= r / 10.0 - 1e-12) best = std::max(best, precision[k]);
      sum += best;
    }
    return sum / 11;
  }
  // Darknet's loop: from the last rank back, the envelope times each recall step, then the rest to 0.
  double ap = 0, last_recall = recall[n - 1], last_precision = precision[n - 1];
  for (int k = n - 2; k >= 0; --k) {
    ap += (last_recall - recall[k]) * last_precision;
    last_recall = recall[k];
    last_precision = std::max(last_precision, precision[k]);
  }
  return ap + last_recall * last_precision;
}

MapResult evaluate_map(const std::vector<EvalBox>& detections, const std::vector<EvalBox>& truths,
                       int classes, float iou_thresh, ApMethod method, int coco_max_dets) {
  NABLA_CHECK(classes > 0, "evaluate_map: classes must be > 0, got ", classes);
  for (const EvalBox& b : detections)
    NABLA_CHECK(b.cls >= 0 && b.cls < classes, "evaluate_map: a detection of class ", b.cls, " (", classes,
                " classes)");
  for (const EvalBox& b : truths)
    NABLA_CHECK(b.cls >= 0 && b.cls < classes, "evaluate_map: a truth of class ", b.cls, " (", classes,
                " classes)");
  MapResult r;
  std::vector<double> voc, coco50, coco;
  for (int c = 0; c < classes; ++c) {
    ClassAp ca;
    ca.cls = c;
    std::map<int, std::vector<int>> gt_by_image;
    for (int i = 0; i < static_cast<int>(truths.size()); ++i)
      if (truths[i].cls == c) gt_by_image[truths[i].image].push_back(i), ++ca.truths;
    std::vector<bool> taken(truths.size(), false);
    std::vector<double> prec, rec;
    for (int d : ranked(detections, c)) {
      ++ca.detections;
      int best_t = -1;
      float best = 0;
      for (int g : gt_by_image[detections[d].image]) {
        const float iou = eval_iou(detections[d], truths[g]);
        if (iou > iou_thresh && iou > best) best = iou, best_t = g;
      }
      if (best_t >= 0 && !taken[best_t]) {
        taken[best_t] = true;
        ++ca.true_positives;
      } else {
        ++ca.false_positives;
      }
      prec.push_back(static_cast<double>(ca.true_positives) / ca.detections);
      rec.push_back(ca.truths ? static_cast<double>(ca.true_positives) / ca.truths : 0.0);
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    ca.ap = ca.truths ? average_precision(prec, rec, method) : nan;
    std::vector<double> per_t;
    for (int k = 0; k < 10; ++k)
      per_t.push_back(coco_ap(detections, truths, c, 0.5f + 0.05f * k, coco_max_dets));
    ca.ap50_95 = ca.truths ? nan_mean(per_t) : nan;
    voc.push_back(ca.ap), coco50.push_back(per_t[0]), coco.push_back(ca.ap50_95);
    r.classes.push_back(ca);
  }
  r.map = nan_mean(voc);
  r.map50_coco = nan_mean(coco50);
  r.map50_95 = nan_mean(coco);
  return r;
}

std::string MapResult::table(const std::vector<std::string>& names) const {
  std::string s = "| class | name | truths | detections | TP | FP | AP@0.5 | AP@[.5:.95] |\n";
  s += "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  char buf[512];
  for (const ClassAp& c : classes) {
    const std::string name =
        c.cls < static_cast<int>(names.size()) ? names[c.cls] : "class" + std::to_string(c.cls);
    std::snprintf(buf, sizeof buf, "| %d | %s | %d | %d | %d | %d | %.2f%% | %.2f%% |\n", c.cls, name.c_str(),
                  c.truths, c.detections, c.true_positives, c.false_positives, 100 * c.ap, 100 * c.ap50_95);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "mAP@0.5 = %.2f%% | COCO mAP@0.5 = %.2f%% | mAP@[.5:.95] = %.2f%%\n",
                100 * map, 100 * map50_coco, 100 * map50_95);
  return s + buf;
}

}  // namespace nabla::metrics

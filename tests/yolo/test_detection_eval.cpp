// Detection evaluation (algorithms/metrics/detection_map.h) on hand-made detections whose AP is worked out
// in the comments, and class-aware NMS (models/darknet/yolo_layer.h: do_nms_sort) on hand-made boxes.
#include <cmath>
#include <random>

#include "algorithms/metrics/detection_map.h"
#include "models/darknet/yolo_layer.h"
#include "testing.h"

namespace nabla {
namespace {
using metrics::ApMethod;
using metrics::EvalBox;

EvalBox box(int image, int cls, float x, float y, float w, float h, float score = 1) {
  return {image, cls, x, y, w, h, score};
}

// Three truths of class 0 over two images; four detections in score order TP, FP, TP, FP:
// precision 1, 1/2, 2/3, 1/2 and recall 1/3, 1/3, 2/3, 2/3.
struct FourDetections {
  std::vector<EvalBox> truths{box(0, 0, 0.2f, 0.2f, 0.1f, 0.1f), box(0, 0, 0.7f, 0.7f, 0.2f, 0.2f),
                              box(1, 0, 0.5f, 0.5f, 0.3f, 0.3f)};
  std::vector<EvalBox> dets{box(0, 0, 0.2f, 0.2f, 0.1f, 0.1f, 0.9f),    // T1, IoU 1
                            box(1, 0, 0.1f, 0.9f, 0.1f, 0.1f, 0.8f),    // nothing there
                            box(1, 0, 0.5f, 0.5f, 0.3f, 0.3f, 0.7f),    // T3, IoU 1
                            box(0, 0, 0.21f, 0.2f, 0.1f, 0.1f, 0.6f)};  // T1 again: taken, FP
};

TEST(DetectionMap, AllPointElevenPointAndCocoOnAHandMadeCase) {
  FourDetections c;
  // All-point: envelope 1 up to recall 1/3, 2/3 up to 2/3: 1/3 + 1/3 * 2/3 = 5/9.
  auto r = metrics::evaluate_map(c.dets, c.truths, 1, 0.5f, ApMethod::all_point);
  EXPECT_NEAR(r.classes[0].ap, 5.0 / 9, 1e-9);
  EXPECT_NEAR(r.map, 5.0 / 9, 1e-9);
  EXPECT_EQ(r.classes[0].true_positives, 2);
  EXPECT_EQ(r.classes[0].false_positives, 2);
  EXPECT_EQ(r.classes[0].truths, 3);
  // 11-point: r = 0, .1, .2, .3 -> 1; .4, .5, .6 -> 2/3; .7 .. 1 -> 0: (4 + 2) / 11.
  r = metrics::evaluate_map(c.dets, c.truths, 1, 0.5f, ApMethod::voc11);
  EXPECT_NEAR(r.classes[0].ap, 6.0 / 11, 1e-9);
  // COCO 101-point: recall thresholds 0 .. 0.33 (34) -> 1, 0.34 .. 0.66 (33) -> 2/3, the rest 0; every IoU
  // is 1 except the FPs, so each threshold 0.5 .. 0.95 gives the same.
  EXPECT_NEAR(r.map50_coco, (34 + 33 * 2.0 / 3) / 101, 1e-9);
  EXPECT_NEAR(r.map50_95, (34 + 33 * 2.0 / 3) / 101, 1e-9);
}

TEST(DetectionMap, CocoAveragesOverIouThresholds) {
  // One truth, one detection inside it with IoU 0.72: a hit at 0.50 .. 0.70 (5 thresholds), a miss above.
  const std::vector<EvalBox> truths{box(3, 1, 0.5f, 0.5f, 0.2f, 0.2f)};
  const std::vector<EvalBox> dets{box(3, 1, 0.5f, 0.5f, 0.2f, 0.2f * 0.72f, 0.4f)};
  const auto r = metrics::evaluate_map(dets, truths, 2, 0.5f);
  EXPECT_NEAR(r.classes[1].ap, 1.0, 1e-9);
  EXPECT_NEAR(r.classes[1].ap50_95, 0.5, 1e-9);
  EXPECT_TRUE(std::isnan(r.classes[0].ap));  // no truth of class 0: left out of the mean
  EXPECT_NEAR(r.map, 1.0, 1e-9);
  EXPECT_NEAR(r.map50_95, 0.5, 1e-9);
  // At a VOC threshold of 0.8 the detection misses.
  EXPECT_NEAR(metrics::evaluate_map(dets, truths, 2, 0.8f).map, 0.0, 1e-9);
}

TEST(DetectionMap, VocKeepsATakenBestTruthAFalsePositiveWhileCocoMovesOn) {
  // Truths A and B overlap; both detections' best truth is A. VOC/Darknet: the second is a false positive
  // (precision 1, 1/2 at recall 1/2, 1/2: AP 1/2). COCO skips the matched A and takes B: AP 1.
  const std::vector<EvalBox> truths{box(0, 0, 0.40f, 0.5f, 0.2f, 0.2f), box(0, 0, 0.48f, 0.5f, 0.2f, 0.2f)};
  const std::vector<EvalBox> dets{box(0, 0, 0.40f, 0.5f, 0.2f, 0.2f, 0.9f),
                                  box(0, 0, 0.42f, 0.5f, 0.2f, 0.2f, 0.8f)};
  const auto r = metrics::evaluate_map(dets, truths, 1, 0.5f);
  EXPECT_NEAR(r.classes[0].ap, 0.5, 1e-9);
  EXPECT_NEAR(r.map50_coco, 1.0, 1e-9);
}

TEST(DetectionMap, TiedScoresKeepInputOrder) {
  const std::vector<EvalBox> truths{box(0, 0, 0.5f, 0.5f, 0.2f, 0.2f)};
  // FP first: precision 0, 1/2 at recall 0, 1 -> AP 1/2. TP first: precision 1 at recall 1 -> AP 1.
  std::vector<EvalBox> dets{box(0, 0, 0.1f, 0.1f, 0.1f, 0.1f, 0.5f), box(0, 0, 0.5f, 0.5f, 0.2f, 0.2f, 0.5f)};
  EXPECT_NEAR(metrics::evaluate_map(dets, truths, 1).classes[0].ap, 0.5, 1e-9);
  std::swap(dets[0], dets[1]);
  EXPECT_NEAR(metrics::evaluate_map(dets, truths, 1).classes[0].ap, 1.0, 1e-9);
}

TEST(DetectionMap, PerfectRandomDetectionsScoreOneAndShuffledScoresDoNot) {
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  std::uniform_real_distribution<float> u(0.1f, 0.9f), s(0.05f, 0.1f);
  std::vector<EvalBox> truths, dets;
  for (int i = 0; i < 40; ++i) {
    truths.push_back(box(i % 7, i % 3, u(rng), u(rng), s(rng), s(rng)));
    EvalBox d = truths.back();
    d.score = 0.5f + 0.01f * (i % 40);
    dets.push_back(d);
    dets.push_back(box(i % 7, i % 3, u(rng), u(rng), s(rng), s(rng), 0.1f));  // low-scored misses
  }
  const auto r = metrics::evaluate_map(dets, truths, 3);
  EXPECT_NEAR(r.map, 1.0, 1e-9);
  EXPECT_NEAR(r.map50_95, 1.0, 1e-9);
  for (EvalBox& d : dets) d.score = 1 - d.score;  // misses now rank first
  EXPECT_LT(metrics::evaluate_map(dets, truths, 3).map, 0.9);
  EXPECT_NE(r.table({"a", "b", "c"}).find("| 2 | c | "), std::string::npos);
}

TEST(DetectionMap, BadClassesAreErrors) {
  test::expect_error([] { metrics::evaluate_map({box(0, 3, 0.5f, 0.5f, 0.1f, 0.1f)}, {}, 2); },
                     {"detection of class 3", "2 classes"});
  test::expect_error(
      [] {
        metrics::average_precision({1, 0.5}, {0.5}, ApMethod::all_point);
      },
      {"2 precisions but 1 recalls"});
}

models::darknet::Detection det(float x, float y, float w, float h, std::vector<float> prob) {
  models::darknet::Detection d;
  d.bbox = {x, y, w, h};
  d.objectness = 1;
  d.prob = std::move(prob);
  return d;
}

TEST(DarknetNms, SuppressesOverlapsWithinAClassOnly) {
  using models::darknet::do_nms_sort;
  // A (0.9) and B (0.8) overlap with IoU 0.8: B loses class 0 but keeps class 1, where it is the best;
  // C is far away and keeps its score.
  std::vector<models::darknet::Detection> d{det(0.5f, 0.5f, 0.2f, 0.2f, {0.8f, 0.3f}),
                                            det(0.51f, 0.5f, 0.2f, 0.18f, {0.7f, 0.6f}),
                                            det(0.1f, 0.1f, 0.1f, 0.1f, {0.2f, 0.0f})};
  d[0].prob = {0.9f, 0.3f};
  d[1].prob = {0.8f, 0.6f};
  ASSERT_GT(models::darknet::box_iou(d[0].bbox, d[1].bbox), 0.45f);
  do_nms_sort(d, 2, 0.45f);
  // After the sort by class 1 (the last class): B (0.6), A (0.3), C (0).
  EXPECT_FLOAT_EQ(d[0].prob[1], 0.6f);
  EXPECT_FLOAT_EQ(d[0].prob[0], 0.0f);  // B lost class 0 to A
  EXPECT_FLOAT_EQ(d[1].prob[0], 0.9f);
  EXPECT_FLOAT_EQ(d[1].prob[1], 0.0f);  // A lost class 1 to B
  EXPECT_FLOAT_EQ(d[2].prob[0], 0.2f);
  // A higher threshold keeps both.
  std::vector<models::darknet::Detection> e{det(0.5f, 0.5f, 0.2f, 0.2f, {0.9f}),
                                            det(0.51f, 0.5f, 0.2f, 0.18f, {0.8f})};
  do_nms_sort(e, 1, 0.95f);
  EXPECT_FLOAT_EQ(e[1].prob[0], 0.8f);
}

}  // namespace
}  // namespace nabla

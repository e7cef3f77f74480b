// apps::topk_correct against a direct count on fresh random logits.
#include "apps/common/accuracy.h"

#include <cmath>
#include "testing.h"

namespace nabla {
namespace {

int64_t reference_topk(const std::vector<double>& logits, const std::vector<double>& labels, int64_t classes,
                       int64_t k) {
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double target = logits[i * classes + static_cast<size_t>(labels[i])];
    int64_t above = 0;
    for (int64_t c = 0; c < classes; ++c) above += logits[i * classes + c] > target;
    correct += above < k;
  }
  return correct;
}

TEST(TopkCorrect, MatchesADirectCountForEveryK) {
  const int64_t batch = 200, classes = 10;
  Tensor logits = test::randn32({batch, classes});
  Tensor labels = test::randint64(0, classes, {batch});
  auto vl = logits.to_vector(), vy = labels.to_vector();
  int64_t previous = -1;
  for (int64_t k : {1, 2, 5, 9, 10}) {
    const int64_t got = static_cast<int64_t>(apps::topk_correct(logits, labels, k).item());
    EXPECT_EQ(got, reference_topk(vl, vy, classes, k)) << "k = " << k;
    EXPECT_GE(got, previous) << "top-k grows with k";
    previous = got;
  }
  EXPECT_EQ(previous, batch) << "top-10 of 10 classes is always right";
  // k = 1 is argmax agreement (continuous random logits have no ties).
  const int64_t argmax_hits = static_cast<int64_t>(sum(eq(argmax(logits, 1), labels).to(DType::i64)).item());
  EXPECT_EQ(static_cast<int64_t>(apps::topk_correct(logits, labels, 1).item()), argmax_hits);
  // A random top-1 accuracy is far from the all-correct case (the test can fail).
  EXPECT_LT(argmax_hits, batch / 2);
}

TEST(TopkCorrect, RowsWithNanLogitsAreWrong) {
  // A diverged model's logits: all NaN in some rows, one NaN in another; the rest stay counted as before.
  const int64_t batch = 50, classes = 10;
  Tensor logits = test::randn32({batch, classes});
  Tensor labels = test::randint64(0, classes, {batch});
  const int64_t before = static_cast<int64_t>(apps::topk_correct(logits, labels, 10).item());
  ASSERT_EQ(before, batch);
  float* p = logits.data<float>();
  for (int64_t c = 0; c < classes; ++c) p[0 * classes + c] = p[1 * classes + c] = std::nanf("");
  p[2 * classes + 3] = std::nanf("");  // one NaN, not at the label necessarily
  for (int64_t k : {1, 10}) {
    const int64_t got = static_cast<int64_t>(apps::topk_correct(logits, labels, k).item());
    auto vl = logits.to_vector(), vy = labels.to_vector();
    const int64_t clean = reference_topk(std::vector<double>(vl.begin() + 3 * classes, vl.end()),
                                         std::vector<double>(vy.begin() + 3, vy.end()), classes, k);
    EXPECT_EQ(got, clean) << "k = " << k << ": the three rows with NaN must not count";
  }
  Tensor all_nan = full({8, classes}, std::nan(""));
  EXPECT_EQ(static_cast<int64_t>(apps::topk_correct(all_nan, test::randint64(0, classes, {8}), 1).item()), 0);
}

TEST(TopkCorrect, RejectsBadShapesAndK) {
  Tensor logits = test::randn32({4, 6});
  test::expect_error([&] { apps::topk_correct(logits, test::randint64(0, 6, {5}), 1); },
                     {"topk_correct: expected logits [B, C] and labels [B], got [4,6] and [5]"});
  test::expect_error([&] { apps::topk_correct(logits, test::randint64(0, 6, {4}), 0); },
                     {"k must be at least 1"});
}

}  // namespace
}  // namespace nabla

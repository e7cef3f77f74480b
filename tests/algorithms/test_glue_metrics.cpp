// The GLUE metrics (algorithms/metrics/classification.h) on hand-counted cases.
#include <cmath>
#include <vector>

#include "algorithms/metrics/classification.h"
#include "testing.h"

namespace nabla {
namespace {

TEST(GlueMetrics, AccuracyF1MatthewsPearsonOnHandCountedCases) {
  // TP 3, TN 2, FP 1, FN 2.
  std::vector<int64_t> y{1, 1, 1, 1, 1, 0, 0, 0}, p{1, 1, 1, 0, 0, 1, 0, 0};
  EXPECT_DOUBLE_EQ(metrics::accuracy(p, y), 5.0 / 8);
  EXPECT_DOUBLE_EQ(metrics::f1_binary(p, y), 6.0 / 9);
  EXPECT_NEAR(metrics::matthews_corrcoef(p, y), (3.0 * 2 - 1.0 * 2) / std::sqrt(4.0 * 5 * 3 * 4), 1e-12);
  EXPECT_DOUBLE_EQ(metrics::matthews_corrcoef(y, y), 1.0);
  std::vector<int64_t> three{0, 1, 2, 0, 1, 2};
  EXPECT_DOUBLE_EQ(metrics::matthews_corrcoef(three, three), 1.0);
  std::vector<double> x{1, 2, 3, 4}, lin{3, 5, 7, 9}, anti{4, 3, 2, 1};
  EXPECT_NEAR(metrics::pearson(x, lin), 1.0, 1e-12);
  EXPECT_NEAR(metrics::pearson(x, anti), -1.0, 1e-12);
  try {
    metrics::accuracy(p, std::vector<int64_t>{1});
    ADD_FAILURE() << "no error for inputs of different sizes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("8 and 1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nabla

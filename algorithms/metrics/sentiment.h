// The sentiment study's scores, from host vectors of strings.
//
//   classification (SC, ABSC): accuracy = mean(pred == gold); macro-F1 = the mean over the gold label set of
//     F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) (0 when the denominator is 0). An unparseable answer is the
//     prediction "" : wrong, a false negative of its gold class, and counted in `unparsed`.
//   set extraction (E2E-ABSA (aspect, polarity) pairs, ECE cause clauses, ECPE (emotion, cause) pairs):
//     each instance has a gold set and a predicted set of items (strings; duplicates count once);
//     micro P = TP / #pred, R = TP / #gold, F1 = 2PR / (P + R), TP = exact matches summed over instances
//     (P is 0 when nothing is predicted, R 0 when the gold sets are empty). The study's compute-f1.py.
// Inputs of different lengths throw naming both sizes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nabla::metrics {

struct ClassificationScores {
  double accuracy = 0, macro_f1 = 0;
  int64_t n = 0, correct = 0, unparsed = 0;
};
ClassificationScores classification_scores(const std::vector<std::string>& gold,
                                           const std::vector<std::string>& predicted);

struct PrfScores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t tp = 0, predicted = 0, gold = 0;
};
PrfScores micro_prf(const std::vector<std::vector<std::string>>& gold,
                    const std::vector<std::vector<std::string>>& predicted);

}  // namespace nabla::metrics

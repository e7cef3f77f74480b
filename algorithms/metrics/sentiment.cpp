// The sentiment study's scores (see sentiment.h).
#include "algorithms/metrics/sentiment.h"

#include <map>
#include <set>

#include "engine/error.h"

namespace nabla::metrics {

ClassificationScores classification_scores(const std::vector<std::string>& gold,
                                           const std::vector<std::string>& predicted) {
  NABLA_CHECK(gold.size() == predicted.size(), "classification_scores: ", gold.size(), " gold labels, ",
              predicted.size(), " predictions");
  ClassificationScores s;
  s.n = static_cast<int64_t>(gold.size());
  std::map<std::string, int64_t> tp, fp, fn;
  for (size_t i = 0; i < gold.size(); ++i) {
    if (predicted[i].empty()) ++s.unparsed;
    if (predicted[i] == gold[i]) {
      ++s.correct, ++tp[gold[i]];
    } else {
      ++fn[gold[i]];
      if (!predicted[i].empty()) ++fp[predicted[i]];
    }
  }
  if (s.n == 0) return s;
  s.accuracy = static_cast<double>(s.correct) / static_cast<double>(s.n);
  std::set<std::string> classes(gold.begin(), gold.end());
  double sum = 0;
  for (const auto& c : classes) {
    const double d = 2.0 * tp[c] + fp[c] + fn[c];
    sum += d > 0 ? 2.0 * tp[c] / d : 0.0;
  }
  s.macro_f1 = sum / static_cast<double>(classes.size());
  return s;
}

PrfScores micro_prf(const std::vector<std::vector<std::string>>& gold,
                    const std::vector<std::vector<std::string>>& predicted) {
  NABLA_CHECK(gold.size() == predicted.size(), "micro_prf: ", gold.size(), " gold sets, ", predicted.size(),
              " predicted sets");
  PrfScores s;
  for (size_t i = 0; i < gold.size(); ++i) {
    const std::set<std::string> g(gold[i].begin(), gold[i].end()),
        p(predicted[i].begin(), predicted[i].end());
    s.gold += static_cast<int64_t>(g.size());
    s.predicted += static_cast<int64_t>(p.size());
    for (const auto& x : p) s.tp += g.count(x) ? 1 : 0;
  }
  s.precision = s.predicted ? static_cast<double>(s.tp) / static_cast<double>(s.predicted) : 0.0;
  s.recall = s.gold ? static_cast<double>(s.tp) / static_cast<double>(s.gold) : 0.0;
  s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

}  // namespace nabla::metrics

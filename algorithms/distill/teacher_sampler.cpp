// Teacher distributions (UD, TRD, SRD with the linear-rank or softmax mapping) and the per-step draw.
#include "algorithms/distill/teacher_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "engine/random.h"

namespace nabla::distill {

TeacherSampling parse_teacher_sampling(const std::string& name) {
  if (name == "ud") return TeacherSampling::uniform;
  if (name == "trd") return TeacherSampling::teacher_rank;
  if (name == "srd") return TeacherSampling::student_rank;
  fail("teacher sampling '", name, "', expected ud, trd or srd");
}

RankMapping parse_rank_mapping(const std::string& name) {
  if (name == "linear") return RankMapping::linear;
  if (name == "softmax") return RankMapping::softmax;
  fail("rank mapping '", name, "', expected linear or softmax");
}

namespace {
void check_scores(const std::vector<double>& scores) {
  NABLA_CHECK(!scores.empty(), "teacher scores: none given");
  for (size_t i = 0; i < scores.size(); ++i)
    NABLA_CHECK(std::isfinite(scores[i]), "teacher scores: score ", i, " is ", scores[i],
                ", expected a finite number");
}
}  // namespace

std::vector<double> score_ranks(const std::vector<double>& scores) {
  check_scores(scores);
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j + 1);  // ranks i+1 .. j+1 share their mean
    for (size_t k = i; k <= j; ++k) rank[order[k]] = mean_rank;
    i = j + 1;
  }
  return rank;
}

std::vector<double> linear_rank_probabilities(const std::vector<double>& scores) {
  std::vector<double> r = score_ranks(scores);
  const double total = std::accumulate(r.begin(), r.end(), 0.0);
  for (double& v : r) v /= total;
  return r;
}

std::vector<double> softmax_probabilities(const std::vector<double>& scores, double tau) {
  check_scores(scores);
  NABLA_CHECK(std::isfinite(tau) && tau > 0, "softmax teacher distribution: tau ", tau,
              ", expected a finite number > 0");
  const double m = *std::max_element(scores.begin(), scores.end());
  std::vector<double> p(scores.size());
  double total = 0;
  for (size_t i = 0; i < p.size(); ++i) total += p[i] = std::exp((scores[i] - m) / tau);
  for (double& v : p) v /= total;
  return p;
}

std::vector<double> teacher_probabilities(TeacherSampling sampling, RankMapping mapping,
                                          const std::vector<double>& scores, int64_t n, double tau) {
  NABLA_CHECK(n >= 1, "teacher distribution: ", n, " teachers, expected at least 1");
  if (sampling == TeacherSampling::uniform) return std::vector<double>(static_cast<size_t>(n), 1.0 / n);
  NABLA_CHECK(static_cast<int64_t>(scores.size()) == n, "teacher distribution ",
              sampling == TeacherSampling::teacher_rank ? "TRD needs each teacher's own dev score"
                                                        : "SRD needs, for each teacher, the dev score of a "
                                                          "student distilled from it alone",
              ": ", scores.size(), " scores given for ", n, " teachers");
  return mapping == RankMapping::linear ? linear_rank_probabilities(scores)
                                        : softmax_probabilities(scores, tau);
}

TeacherSampler::TeacherSampler(std::vector<double> probabilities, uint64_t seed)
    : p_(std::move(probabilities)), seed_(seed) {
  NABLA_CHECK(!p_.empty(), "TeacherSampler: no teachers");
  double total = 0;
  for (size_t i = 0; i < p_.size(); ++i) {
    NABLA_CHECK(std::isfinite(p_[i]) && p_[i] >= 0, "TeacherSampler: probability ", i, " is ", p_[i],
                ", expected a finite number >= 0");
    total += p_[i];
  }
  NABLA_CHECK(total > 0, "TeacherSampler: the probabilities sum to 0");
  double run = 0;
  for (double& v : p_) {
    v /= total;
    cdf_.push_back(run += v);
  }
  cdf_.back() = 1.0;
}

int64_t TeacherSampler::draw(int64_t step) const {
  // A key of its own, so that the draws never share counters with the default generator's stream.
  const double u = philox_uniform(seed_ ^ 0x5b0e7c3a9d1f2e47ull, static_cast<uint64_t>(step), 0);
  for (size_t i = 0; i < cdf_.size(); ++i)
    if (u < cdf_[i] && p_[i] > 0) return static_cast<int64_t>(i);
  for (size_t i = cdf_.size(); i-- > 0;)
    if (p_[i] > 0) return static_cast<int64_t>(i);
  return 0;
}

}  // namespace nabla::distill

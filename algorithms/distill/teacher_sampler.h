// The teacher distribution of stochastic knowledge distillation (SKDBERT, Ding et al. AAAI 2023;
// docs/skd.md): each training step draws ONE teacher k ~ Categorical(p) from the team.
//
//   UD   p_i = 1 / N
//   TRD  p from each teacher's own dev score s_i
//   SRD  p from the dev score s_i of a student distilled from teacher i alone (N single-teacher runs first)
//
// The paper's mapping from scores to p is not known (the brief reconstructs it); two are offered:
//   linear   p_i = rank_i / sum_j rank_j = 2 rank_i / (N (N + 1)), rank 1 = the lowest score, N = the
//   highest;
//            tied scores share the mean of their ranks (so equal teachers get equal probability)
//   softmax  p_i = exp(s_i / tau) / sum_j exp(s_j / tau)   (tau: scores are accuracies in [0, 1], so a tau
//            of 0.01 makes one point of accuracy a factor e)
//
// The draw of step t is a pure function of (seed, t): u = philox_uniform(seed, t, 0), k = the first i with
// u < p_1 + ... + p_i. A resumed run draws the teachers an uninterrupted run would; no state to save.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nabla::distill {

enum class TeacherSampling { uniform, teacher_rank, student_rank };  // UD, TRD, SRD
enum class RankMapping { linear, softmax };

// "ud" | "trd" | "srd" and "linear" | "softmax"; anything else throws naming the choices.
TeacherSampling parse_teacher_sampling(const std::string& name);
RankMapping parse_rank_mapping(const std::string& name);

// 1-based ranks in ascending order of score (1 = lowest); ties get the mean of their ranks.
std::vector<double> score_ranks(const std::vector<double>& scores);
std::vector<double> linear_rank_probabilities(const std::vector<double>& scores);
std::vector<double> softmax_probabilities(const std::vector<double>& scores, double tau);

// p for `n` teachers: UD ignores `scores`; TRD and SRD need n finite scores (else an error that says which
// scores each mode needs).
std::vector<double> teacher_probabilities(TeacherSampling sampling, RankMapping mapping,
                                          const std::vector<double>& scores, int64_t n, double tau = 0.01);

class TeacherSampler {
 public:
  // `probabilities`: non-negative, finite, summing to a positive number (normalised here).
  TeacherSampler(std::vector<double> probabilities, uint64_t seed);
  int64_t draw(int64_t step) const;
  const std::vector<double>& probabilities() const { return p_; }
  int64_t size() const { return static_cast<int64_t>(p_.size()); }

 private:
  std::vector<double> p_, cdf_;
  uint64_t seed_;
};

}  // namespace nabla::distill

// NSGA-II over integer genes (Deb et al. 2002), as pymoo 0.3.0 runs it under NSGA-Net and PSTRN
// (brief: shared/papers/abcp-pstrn-bdarts.md, section 2.4). Every objective is minimised.
//
//   initial population   pop_size distinct random integer vectors, gene i uniform in [lower_i, upper_i]
//   mating selection     binary tournament: the individual that Pareto-dominates wins; if neither does,
//                        the one with the larger crowding distance; a tie is a coin flip
//   crossover            two-point (probability crossover_prob, else the parents are copied): cut points
//                        1 <= p1 < p2 <= n - 1, the children swap genes [p1, p2)
//   mutation             polynomial (distribution index eta = 3), each gene with probability 1 / n:
//                          u ~ U(0, 1), d1 = (x - lo) / (hi - lo), d2 = (hi - x) / (hi - lo)
//                          u <= .5: dq = (2u + (1 - 2u)(1 - d1)^(eta + 1))^(1 / (eta + 1)) - 1
//                          u >  .5: dq = 1 - (2(1 - u) + 2(u - .5)(1 - d2)^(eta + 1))^(1 / (eta + 1))
//                          x' = round(x + dq (hi - lo)), clamped to [lo, hi]
//   duplicate elimination offspring equal to a member of the population or to an earlier child are
//                        dropped and mating repeats (at most kMatingRounds rounds)
//   survival             parents + offspring sorted into non-dominated fronts (fast non-dominated sort);
//                        whole fronts are kept while they fit, the last one by decreasing crowding distance
//   crowding distance    per front: sum over objectives of (f[next] - f[prev]) / (f_max - f_min) along the
//                        sorted objective; the two ends of every objective (and fronts of <= 2) get +inf
// With one objective this is a (mu + lambda) GA with tournament on fitness (single-objective mode).
// Deterministic under the seed: all randomness comes from one std::mt19937_64 whose state is saved with
// the population (state()/restore()), so a search can be resumed bit-identically.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace nabla::evolution {

using Genes = std::vector<int64_t>;
using Objectives = std::vector<double>;

struct Individual {
  Genes genes;
  Objectives f;      // minimised
  int64_t rank = 0;  // non-dominated front, 0 = best
  double crowding = 0;
};

// a dominates b: no worse in every objective and better in one.
bool dominates(const Objectives& a, const Objectives& b);
// Fronts of indices into f, best first (each front in increasing index order).
std::vector<std::vector<size_t>> non_dominated_sort(const std::vector<Objectives>& f);
// Crowding distance of each member of `front` (indices into f), in the order of `front`.
std::vector<double> crowding_distance(const std::vector<Objectives>& f, const std::vector<size_t>& front);

struct NSGA2Options {
  int64_t pop_size = 30;
  int64_t n_offspring = 30;
  std::vector<int64_t> lower, upper;  // inclusive bounds per gene
  double crossover_prob = 0.9;
  double mutation_eta = 3.0;
  double mutation_prob = -1;  // per gene; < 0: 1 / number of genes
  bool eliminate_duplicates = true;
  uint64_t seed = 0;
};

class NSGA2 {
 public:
  static constexpr int kMatingRounds = 100;

  // Throws when bounds are missing or inverted, or sizes are not positive.
  explicit NSGA2(NSGA2Options o);

  // Random distinct genes (fewer than pop_size only when the space holds fewer points).
  std::vector<Genes> initial_population();
  // n_offspring children of `pop` (which must carry f, rank and crowding: see rank_and_crowd).
  std::vector<Genes> make_offspring(const std::vector<Individual>& pop);
  // Sets rank and crowding of every member.
  static void rank_and_crowd(std::vector<Individual>& pop);
  // The best `n` of `merged` by rank, then crowding (rank and crowding of the whole fronts set on the
  // result).
  static std::vector<Individual> survive(std::vector<Individual> merged, size_t n);

  // The operators, exposed for tests.
  size_t tournament(const std::vector<Individual>& pop, size_t a, size_t b);
  std::pair<Genes, Genes> crossover(const Genes& a, const Genes& b);
  Genes mutate(const Genes& g);

  const NSGA2Options& options() const { return o_; }
  std::string rng_state() const;
  void set_rng_state(const std::string& s);
  std::mt19937_64& rng() { return rng_; }

 private:
  int64_t random_int(int64_t lo, int64_t hi);  // inclusive
  double uniform();
  NSGA2Options o_;
  std::mt19937_64 rng_;
};

}  // namespace nabla::evolution

// PSTRN: progressively searching the ranks of a tensor-ring network (brief:
// shared/papers/abcp-pstrn-bdarts.md, sections 2.4-2.6, as the authors' evolution_search_multi.py and
// synthetic-experiment logs do it).
//
// Encoding: one integer gene ("rank code") per rank element, code in [1, 5]; phase p decodes
//   r_i = max(min_rank, step_p * code_i + bias_i)
// Phase 1: step = steps[0] (5 for the nets: {5..25}; 3 in the synthetic logs: {3..15}), bias 0.
// Evolutionary phase: NSGA-II (algorithms/evolution/nsga2.h) for generations[p] generations (the first
// is the initial population), fitness = (error, 100 - compression ratio) (or error alone, single mode).
// Progressive phase, between phases: the top_k individuals of the population by error; per element the
// centre c_i = the mode of their decoded ranks (ties: the value of the lowest-error one among the tied);
// then step' = steps[p + 1] and the code 3 (the middle of [1, 5]) is put on the lattice point nearest c_i:
//   bias_i = step' * floor((c_i - 3 step') / step' + 1/2)
// so the five candidates are centred on c_i with the step halved. For step 5 -> 2 this gives the code's table
// {1:0, 2:4, 3:10, 4:14, 5:20} (best code -> bias), for step -> 1 the candidates c-2..c+2, and for the
// synthetic logs' 3 -> 2 the maps seen there ([3,4,6,8,10] for c = 6, [3,3,4,6,8] for c = 3 with min 3).
// The population either carries over (evolution_search_multi.py: the same codes, re-decoded and therefore
// re-evaluated) or restarts from the seed (reinit_each_phase: the synthetic logs, whose three phases start
// from the same 20 codes).
//
// Evaluations are counted as the authors count them (every individual evaluated, duplicates included);
// a cache keyed by the decoded ranks means a net is trained once (the training is seeded, so a second run
// would give the same numbers: the logs show identical values for repeated ranks).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "algorithms/evolution/nsga2.h"

namespace nabla::pstrn {

using evolution::Genes;
using Ranks = std::vector<int64_t>;

// The gene -> rank map of one phase.
struct RankMap {
  int64_t step = 5;
  std::vector<int64_t> bias;  // one per rank element
  int64_t min_rank = 2;
  Ranks decode(const Genes& codes) const;
};

// Centre per element of the top_k entries (ranks, error): mode, ties to the lowest error. Throws on an
// empty list or ragged ranks.
Ranks interest_centre(std::vector<std::pair<Ranks, double>> evaluated, int64_t top_k);
// The next phase's map around `centre` with step `new_step` (formula above).
RankMap shrink_map(const Ranks& centre, int64_t new_step, int64_t min_rank);

struct FitnessResult {
  double error = 0;        // minimised: 100 - accuracy (%), or a validation loss
  double compression = 1;  // dense parameters / TR parameters
};
// Evaluates a batch of rank vectors (one generation's new individuals); may run them in parallel.
using Fitness = std::function<std::vector<FitnessResult>(const std::vector<Ranks>&)>;

struct PstrnOptions {
  int64_t n_ranks = 4;
  std::vector<int64_t> steps = {5, 2, 1};           // one per phase
  std::vector<int64_t> generations = {50, 30, 20};  // per phase, the initial population included
  int64_t code_low = 1, code_high = 5;
  int64_t min_rank = 2;
  int64_t pop_size = 30, n_offspring = 30;
  int64_t top_k = 5;
  bool reinit_each_phase = false;
  bool multi_objective = true;
  double crossover_prob = 0.9, mutation_eta = 3.0;
  uint64_t seed = 0;
};

// One evaluated network.
struct Record {
  int64_t phase = 0, generation = 0;
  Genes codes;
  Ranks ranks;
  FitnessResult result;
};

class PstrnSearch {
 public:
  // Throws when the options are inconsistent (steps and generations of different lengths, ...).
  explicit PstrnSearch(PstrnOptions o);

  // Runs every remaining generation of every phase. on_generation runs after each generation (after the
  // progressive update when a phase ends): the place to log and checkpoint.
  void run(const Fitness& fitness, const std::function<void(const PstrnSearch&)>& on_generation = {});
  bool finished() const { return phase_ >= static_cast<int64_t>(o_.steps.size()); }

  // The whole state (options checked against this search's, population, map, RNG, history, cache) for a
  // checkpoint; restore() continues bit-identically. Throws naming the field that does not fit.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

  int64_t phase() const { return phase_; }            // 0-based; == number of phases when finished
  int64_t generation() const { return generation_; }  // generations done in this phase
  const RankMap& map() const { return map_; }
  const std::vector<RankMap>& maps() const { return maps_; }  // the map of every phase started so far
  const std::vector<evolution::Individual>& population() const { return pop_; }
  const std::vector<Record>& history() const { return history_; }
  int64_t evaluations() const { return static_cast<int64_t>(history_.size()); }
  int64_t distinct_networks() const { return static_cast<int64_t>(cache_.size()); }
  const PstrnOptions& options() const { return o_; }
  // The lowest-error record (the first one reaching it).
  const Record& best() const;
  // Non-dominated records (error, compression) of one phase (-1: all phases), distinct ranks, by error.
  std::vector<Record> pareto_front(int64_t phase = -1) const;

 private:
  evolution::Objectives objectives(const FitnessResult& r) const;
  std::vector<evolution::Individual> evaluate(const std::vector<Genes>& codes, const Fitness& fitness);
  void start_phase(const Fitness& fitness);

  PstrnOptions o_;
  evolution::NSGA2 ga_;
  int64_t phase_ = 0, generation_ = 0;
  RankMap map_;
  std::vector<RankMap> maps_;
  std::vector<evolution::Individual> pop_;
  std::vector<Record> history_;
  std::map<Ranks, FitnessResult> cache_;
};

}  // namespace nabla::pstrn

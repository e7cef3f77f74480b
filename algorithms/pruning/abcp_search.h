// The ABCP search loop: sample an action (controller or uniform random search), evaluate it (the caller's
// function: reset to the pretrained weights, mask, short fine-tune, validation loss or mAP), reward
//   R = -(L_val + lambda * MACs / MACs_full)        (RewardKind::loss, the original's)
//   R = mAP@0.5 - lambda * MACs / MACs_full          (RewardKind::map, the YOLO mode's default)
// A FLOPs and / or parameter budget (fractions of the full network's) is a hard constraint: a candidate over
// it is not evaluated (its cost comes from `SearchOptions::cost`), its score is `over_budget_score` (mAP 0,
// or the caller's bad loss), and its reward loses the relative excess max(f / F_budget, p / P_budget) - 1
// on top, so that the controller is pushed back inside. The best candidate is the argmax R among the
// candidates within the budget (any candidate when none is).
// update the controller, and append every candidate to an archive (JSONL, one line per iteration, flushed).
// The best candidate is the archive's argmax R (as the original picks it from its log). The first candidate
// of a controller search is the unpruned network (as the original).
#pragma once
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "algorithms/pruning/abcp_controller.h"
#include "algorithms/pruning/darknet_pruning.h"

namespace nabla::algorithms::pruning {

enum class RewardKind { loss, map };

struct Candidate {
  int iteration = 0;
  PruneAction action;  // resolved
  double loss = 0, flops_fraction = 0, reward = 0;
  double map = 0;  // RewardKind::map: the validation mAP@0.5
  double params_fraction = 0;
  bool within_budget = true, evaluated = true;
  Cost cost;
  int blocks_kept = 0;
  double advantage = 0, baseline = 0;
};

struct SearchOptions {
  int iterations = 100;
  double lambda = 1.0;
  bool random_search = false;  // uniform actions: blocks pruned with probability 1/2, ratios U(0, max)
  double max_ratio = 0.9;
  bool start_unpruned = true;
  std::string archive;  // JSONL path ("" = none); appended to
  uint64_t seed = 1;
  RewardKind reward = RewardKind::loss;
  double flops_budget = 0, params_budget = 0;    // fractions of the full network's; 0 = no constraint
  double over_budget_score = 0;                  // the loss (or mAP) an over-budget candidate is given
  std::function<Cost(const PruneAction&)> cost;  // needed with a budget: the cost without evaluating
};

struct Evaluation {
  double loss = 0;  // RewardKind::loss
  Cost cost;
  double map = 0;  // RewardKind::map
};
using EvaluateFn = std::function<Evaluation(const PruneAction& resolved)>;

// What a resumed search needs besides the controller: the candidates so far and the random-search generator.
struct SearchState {
  std::vector<Candidate> archive;
  std::mt19937_64 rng;
};

// Runs the search; `controller` may be null for random search. `on_candidate` (optional) sees each one.
// With `state`, the search starts at candidate state->archive.size() with state->rng (a fresh state: seed it
// with SearchOptions::seed) and keeps `state` up to date before each on_candidate call, so that the callback
// can checkpoint it; the archive file is only appended to.
std::vector<Candidate> abcp_search(const PruneStructure& s, AbcpController* controller,
                                   const EvaluateFn& evaluate, const Cost& full, const SearchOptions& o,
                                   const std::function<void(const Candidate&)>& on_candidate = {},
                                   SearchState* state = nullptr);

// The inverse of candidate_json (exact doubles); throws naming `what` on a malformed line.
Candidate candidate_from_json(const std::string& line, const std::string& what);

// The highest reward among the candidates within the budget (among all when none is).
const Candidate& best_candidate(const std::vector<Candidate>& archive);

// The uniform ratio r (no block pruned) whose MACs come closest to `target_macs` (bisection on r).
PruneAction uniform_action_for_macs(const models::darknet::DarknetNetwork& net, const PruneStructure& s,
                                    int64_t target_macs);

std::string candidate_json(const Candidate& c);

}  // namespace nabla::algorithms::pruning

// The ABCP search loop: sample an action (controller or uniform random search), evaluate it (the caller's
// function: reset to the pretrained weights, mask, short fine-tune, validation loss), reward
//   R = -(L_val + lambda * MACs / MACs_full),
// update the controller, and append every candidate to an archive (JSONL, one line per iteration, flushed).
// The best candidate is the archive's argmax R (as the original picks it from its log). The first candidate
// of a controller search is the unpruned network (as the original).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "algorithms/pruning/abcp_controller.h"
#include "algorithms/pruning/darknet_pruning.h"

namespace nabla::algorithms::pruning {

struct Candidate {
  int iteration = 0;
  PruneAction action;  // resolved
  double loss = 0, flops_fraction = 0, reward = 0;
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
};

struct Evaluation {
  double loss = 0;
  Cost cost;
};
using EvaluateFn = std::function<Evaluation(const PruneAction& resolved)>;

// Runs the search; `controller` may be null for random search. `on_candidate` (optional) sees each one.
std::vector<Candidate> abcp_search(const PruneStructure& s, AbcpController* controller,
                                   const EvaluateFn& evaluate, const Cost& full, const SearchOptions& o,
                                   const std::function<void(const Candidate&)>& on_candidate = {});

const Candidate& best_candidate(const std::vector<Candidate>& archive);

// The uniform ratio r (no block pruned) whose MACs come closest to `target_macs` (bisection on r).
PruneAction uniform_action_for_macs(const models::darknet::DarknetNetwork& net, const PruneStructure& s,
                                    int64_t target_macs);

std::string candidate_json(const Candidate& c);

}  // namespace nabla::algorithms::pruning

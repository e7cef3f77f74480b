// The ABCP search loop and the uniform-ratio baseline (see abcp_search.h).
#include "algorithms/pruning/abcp_search.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/error.h"

namespace nabla::algorithms::pruning {

std::string candidate_json(const Candidate& c) {
  nlohmann::json j;
  j["iteration"] = c.iteration;
  j["loss"] = c.loss;
  j["flops_fraction"] = c.flops_fraction;
  j["reward"] = c.reward;
  j["map"] = c.map;
  j["params_fraction"] = c.params_fraction;
  j["within_budget"] = c.within_budget;
  j["evaluated"] = c.evaluated;
  j["macs"] = c.cost.macs;
  j["params"] = c.cost.params;
  j["gflops"] = c.cost.gflops();
  j["blocks_kept"] = c.blocks_kept;
  j["baseline"] = c.baseline;
  j["advantage"] = c.advantage;
  j["ratios"] = c.action.ratios;
  j["prune_block"] = c.action.prune_block;
  return j.dump();
}

Candidate candidate_from_json(const std::string& line, const std::string& what) {
  try {
    const nlohmann::json j = nlohmann::json::parse(line);
    Candidate c;
    c.iteration = j.at("iteration").get<int>();
    c.loss = j.at("loss").get<double>();
    c.flops_fraction = j.at("flops_fraction").get<double>();
    c.reward = j.at("reward").get<double>();
    c.map = j.at("map").get<double>();
    c.params_fraction = j.at("params_fraction").get<double>();
    c.within_budget = j.at("within_budget").get<bool>();
    c.evaluated = j.at("evaluated").get<bool>();
    c.cost.macs = j.at("macs").get<int64_t>();
    c.cost.params = j.at("params").get<int64_t>();
    c.blocks_kept = j.at("blocks_kept").get<int>();
    c.baseline = j.at("baseline").get<double>();
    c.advantage = j.at("advantage").get<double>();
    c.action.ratios = j.at("ratios").get<std::vector<double>>();
    c.action.prune_block = j.at("prune_block").get<std::vector<int>>();
    return c;
  } catch (const nlohmann::json::exception& e) {
    NABLA_CHECK(false, what, ": not a candidate line (", e.what(), ")");
  }
  return {};
}

std::vector<Candidate> abcp_search(const PruneStructure& s, AbcpController* controller,
                                   const EvaluateFn& evaluate, const Cost& full, const SearchOptions& o,
                                   const std::function<void(const Candidate&)>& on_candidate,
                                   SearchState* state) {
  NABLA_CHECK(o.iterations > 0, "abcp search: iterations must be positive, got ", o.iterations);
  NABLA_CHECK(full.macs > 0, "abcp search: the full network has no MACs");
  const bool budget = o.flops_budget > 0 || o.params_budget > 0;
  NABLA_CHECK(!budget || o.cost, "abcp search: a FLOPs or parameter budget needs SearchOptions::cost");
  NABLA_CHECK(o.flops_budget >= 0 && o.flops_budget <= 1 && o.params_budget >= 0 && o.params_budget <= 1,
              "abcp search: budgets are fractions in [0, 1], got FLOPs ", o.flops_budget, ", params ",
              o.params_budget);
  std::ofstream archive;
  if (!o.archive.empty()) {
    archive.open(o.archive, std::ios::app);
    NABLA_CHECK(archive.good(), "abcp search: cannot open archive ", o.archive);
  }
  SearchState local{{}, std::mt19937_64(o.seed)};
  SearchState& st = state ? *state : local;
  NABLA_CHECK(st.archive.size() <= static_cast<size_t>(o.iterations), "abcp search: resumed with ",
              st.archive.size(), " candidates, more than the ", o.iterations, " iterations");
  std::mt19937_64& rng = st.rng;
  std::uniform_real_distribution<double> u01(0, 1);
  std::vector<Candidate>& out = st.archive;
  for (int it = static_cast<int>(out.size()); it < o.iterations; ++it) {
    PruneAction a;
    ControllerSample sample;
    if (it == 0 && o.start_unpruned) {
      a.ratios.assign(s.convs.size(), 0.0);
      a.prune_block.assign(s.blocks.size(), 0);
    } else if (controller && !o.random_search) {
      sample = controller->sample();
      a = sample.action;
    } else {
      for (size_t i = 0; i < s.convs.size(); ++i) a.ratios.push_back(o.max_ratio * u01(rng));
      for (size_t b = 0; b < s.blocks.size(); ++b) a.prune_block.push_back(u01(rng) < 0.5);
    }
    Candidate c;
    c.iteration = it;
    c.action = resolve(s, a);
    double excess = 0;
    if (budget) {
      const Cost pre = o.cost(c.action);
      const double f = static_cast<double>(pre.macs) / static_cast<double>(full.macs),
                   p = full.params > 0 ? static_cast<double>(pre.params) / static_cast<double>(full.params)
                                       : 0;
      if (o.flops_budget > 0) excess = std::max(excess, f / o.flops_budget - 1);
      if (o.params_budget > 0) excess = std::max(excess, p / o.params_budget - 1);
    }
    Evaluation e;
    if (excess > 0) {
      c.within_budget = c.evaluated = false;
      e.cost = o.cost(c.action);
      e.loss = e.map = o.over_budget_score;
    } else {
      e = evaluate(c.action);
    }
    c.loss = e.loss;
    c.map = e.map;
    c.cost = e.cost;
    c.flops_fraction = static_cast<double>(e.cost.macs) / static_cast<double>(full.macs);
    c.params_fraction =
        full.params > 0 ? static_cast<double>(e.cost.params) / static_cast<double>(full.params) : 0;
    c.reward = o.reward == RewardKind::map ? e.map - o.lambda * c.flops_fraction
                                           : -(e.loss + o.lambda * c.flops_fraction);
    c.reward -= excess;
    c.blocks_kept = static_cast<int>(s.blocks.size());
    for (int p : c.action.prune_block) c.blocks_kept -= p;
    if (controller && !o.random_search && sample.log_prob.defined()) {
      c.advantage = controller->update(sample, c.reward);
      c.baseline = controller->baseline();
    }
    if (archive.is_open()) archive << candidate_json(c) << "\n" << std::flush;
    out.push_back(std::move(c));
    if (on_candidate) on_candidate(out.back());
  }
  return out;
}

const Candidate& best_candidate(const std::vector<Candidate>& archive) {
  NABLA_CHECK(!archive.empty(), "abcp: empty archive");
  bool any_within = false;
  for (const Candidate& c : archive) any_within |= c.within_budget;
  const Candidate* best = nullptr;
  for (const Candidate& c : archive)
    if ((c.within_budget || !any_within) && (!best || c.reward > best->reward)) best = &c;
  return *best;
}

PruneAction uniform_action_for_macs(const models::darknet::DarknetNetwork& net, const PruneStructure& s,
                                    int64_t target_macs) {
  double lo = 0, hi = 0.999;
  PruneAction a;
  a.prune_block.assign(s.blocks.size(), 0);
  for (int k = 0; k < 40; ++k) {
    const double mid = 0.5 * (lo + hi);
    a.ratios.assign(s.convs.size(), mid);
    ChannelPlan p = plan_channels(net, s, resolve(s, a));
    if (count_cost(net, &p).macs > target_macs)
      lo = mid;
    else
      hi = mid;
  }
  // of the two ends of the bracket, the one with MACs closest to the target
  auto macs_at = [&](double r) {
    a.ratios.assign(s.convs.size(), r);
    ChannelPlan p = plan_channels(net, s, resolve(s, a));
    return count_cost(net, &p).macs;
  };
  const int64_t d_lo = std::llabs(macs_at(lo) - target_macs), d_hi = std::llabs(macs_at(hi) - target_macs);
  a.ratios.assign(s.convs.size(), d_lo < d_hi ? lo : hi);
  return resolve(s, a);
}

}  // namespace nabla::algorithms::pruning

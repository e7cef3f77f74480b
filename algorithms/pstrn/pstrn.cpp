// PSTRN search: algorithms/pstrn/pstrn.h has the encoding, the progressive update and the phases.
#include "algorithms/pstrn/pstrn.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/error.h"

namespace nabla::pstrn {
using evolution::Individual;
using evolution::NSGA2;
using evolution::NSGA2Options;
using nlohmann::json;

Ranks RankMap::decode(const Genes& codes) const {
  NABLA_CHECK(codes.size() == bias.size(), "PSTRN: ", codes.size(), " rank codes for a map of ", bias.size(),
              " elements");
  Ranks r(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) r[i] = std::max(min_rank, step * codes[i] + bias[i]);
  return r;
}

Ranks interest_centre(std::vector<std::pair<Ranks, double>> evaluated, int64_t top_k) {
  NABLA_CHECK(!evaluated.empty() && top_k >= 1, "PSTRN: the interest region needs at least one evaluated ",
              "network and top_k >= 1 (got ", evaluated.size(), " and ", top_k, ")");
  std::stable_sort(evaluated.begin(), evaluated.end(), [](auto& a, auto& b) { return a.second < b.second; });
  evaluated.resize(std::min<size_t>(evaluated.size(), static_cast<size_t>(top_k)));
  const size_t n = evaluated[0].first.size();
  Ranks centre(n);
  for (size_t i = 0; i < n; ++i) {
    std::map<int64_t, int64_t> count;
    for (auto& [r, e] : evaluated) {
      NABLA_CHECK(r.size() == n, "PSTRN: ranks of ", r.size(), " elements among ranks of ", n);
      ++count[r[i]];
    }
    int64_t best_count = 0;
    for (auto& [v, c] : count) best_count = std::max(best_count, c);
    for (auto& [r, e] : evaluated)  // the lowest-error one among the most frequent values
      if (count[r[i]] == best_count) {
        centre[i] = r[i];
        break;
      }
  }
  return centre;
}

RankMap shrink_map(const Ranks& centre, int64_t new_step, int64_t min_rank) {
  NABLA_CHECK(new_step >= 1, "PSTRN: the step must be >= 1, got ", new_step);
  RankMap m{.step = new_step, .bias = {}, .min_rank = min_rank};
  for (int64_t c : centre) {
    const double b = std::floor(static_cast<double>(c - 3 * new_step) / new_step + 0.5);
    m.bias.push_back(new_step * static_cast<int64_t>(b));
  }
  return m;
}

namespace {

NSGA2Options ga_options(const PstrnOptions& o) {
  return {.pop_size = o.pop_size,
          .n_offspring = o.n_offspring,
          .lower = std::vector<int64_t>(o.n_ranks, o.code_low),
          .upper = std::vector<int64_t>(o.n_ranks, o.code_high),
          .crossover_prob = o.crossover_prob,
          .mutation_eta = o.mutation_eta,
          .seed = o.seed};
}

const PstrnOptions& checked(const PstrnOptions& o) {
  NABLA_CHECK(o.n_ranks >= 1, "PSTRN: need at least one rank element, got ", o.n_ranks);
  NABLA_CHECK(!o.steps.empty() && o.steps.size() == o.generations.size(), "PSTRN: ", o.steps.size(),
              " phase steps but ", o.generations.size(), " phase generation counts (one of each per phase)");
  for (size_t p = 0; p < o.steps.size(); ++p)
    NABLA_CHECK(o.steps[p] >= 1 && o.generations[p] >= 1, "PSTRN: phase ", p + 1, " has step ", o.steps[p],
                " and ", o.generations[p], " generations; both must be >= 1");
  NABLA_CHECK(o.code_low <= 3 && o.code_high >= 3 && o.code_low >= 0,
              "PSTRN: the codes must span 3 (the centre the progressive phase aims at), got [", o.code_low,
              ", ", o.code_high, "]");
  NABLA_CHECK(o.min_rank >= 1 && o.top_k >= 1, "PSTRN: min_rank ", o.min_rank, " and top_k ", o.top_k,
              " must be >= 1");
  return o;
}

json map_json(const RankMap& m) { return {{"step", m.step}, {"bias", m.bias}, {"min_rank", m.min_rank}}; }
RankMap map_from(const json& j) {
  return {j.at("step").get<int64_t>(), j.at("bias").get<std::vector<int64_t>>(),
          j.at("min_rank").get<int64_t>()};
}

}  // namespace

PstrnSearch::PstrnSearch(PstrnOptions o) : o_(checked(o)), ga_(ga_options(o_)) {
  map_ = RankMap{.step = o_.steps[0], .bias = std::vector<int64_t>(o_.n_ranks, 0), .min_rank = o_.min_rank};
  maps_.push_back(map_);
}

evolution::Objectives PstrnSearch::objectives(const FitnessResult& r) const {
  if (o_.multi_objective) return {r.error, 100.0 - r.compression};
  return {r.error};
}

std::vector<Individual> PstrnSearch::evaluate(const std::vector<Genes>& codes, const Fitness& fitness) {
  std::vector<Ranks> todo;
  for (auto& c : codes) {
    Ranks r = map_.decode(c);
    if (!cache_.count(r) && std::find(todo.begin(), todo.end(), r) == todo.end()) todo.push_back(r);
  }
  if (!todo.empty()) {
    auto results = fitness(todo);
    NABLA_CHECK(results.size() == todo.size(), "PSTRN: the fitness function returned ", results.size(),
                " results for ", todo.size(), " networks");
    for (size_t i = 0; i < todo.size(); ++i) {
      NABLA_CHECK(std::isfinite(results[i].error) && std::isfinite(results[i].compression),
                  "PSTRN: non-finite fitness for a network (error ", results[i].error, ", compression ",
                  results[i].compression, ")");
      cache_[todo[i]] = results[i];
    }
  }
  std::vector<Individual> out;
  for (auto& c : codes) {
    Ranks r = map_.decode(c);
    const FitnessResult& res = cache_.at(r);
    history_.push_back({phase_, generation_, c, r, res});
    out.push_back({c, objectives(res), 0, 0});
  }
  return out;
}

void PstrnSearch::start_phase(const Fitness& fitness) {
  std::vector<Genes> codes;
  if (phase_ == 0 || o_.reinit_each_phase) {
    ga_ = NSGA2(ga_options(o_));  // the same seed: every phase starts from the same codes (synthetic logs)
    codes = ga_.initial_population();
  } else {
    for (auto& p : pop_) codes.push_back(p.genes);  // re-decoded under the new map, so re-evaluated
  }
  pop_ = evaluate(codes, fitness);
  NSGA2::rank_and_crowd(pop_);
}

void PstrnSearch::run(const Fitness& fitness, const std::function<void(const PstrnSearch&)>& on_generation) {
  const int64_t phases = static_cast<int64_t>(o_.steps.size());
  while (!finished()) {
    if (generation_ == 0) {
      start_phase(fitness);
    } else {
      std::vector<Individual> merged = pop_;
      auto children = evaluate(ga_.make_offspring(pop_), fitness);
      merged.insert(merged.end(), children.begin(), children.end());
      pop_ = NSGA2::survive(std::move(merged), static_cast<size_t>(o_.pop_size));
    }
    ++generation_;
    if (generation_ == o_.generations[phase_]) {
      if (phase_ + 1 < phases) {  // progressive phase: the interest region around the best ranks
        std::vector<std::pair<Ranks, double>> top;
        for (auto& p : pop_) top.emplace_back(map_.decode(p.genes), p.f[0]);
        map_ = shrink_map(interest_centre(top, o_.top_k), o_.steps[phase_ + 1], o_.min_rank);
        maps_.push_back(map_);
      }
      ++phase_;
      generation_ = 0;
    }
    if (on_generation) on_generation(*this);
  }
}

const Record& PstrnSearch::best() const {
  NABLA_CHECK(!history_.empty(), "PSTRN: no network evaluated yet");
  const Record* b = &history_[0];
  for (auto& r : history_)
    if (r.result.error < b->result.error) b = &r;
  return *b;
}

std::vector<Record> PstrnSearch::pareto_front(int64_t phase) const {
  std::vector<Record> distinct;
  for (auto& r : history_) {
    if (phase >= 0 && r.phase != phase) continue;
    if (std::none_of(distinct.begin(), distinct.end(), [&](auto& d) { return d.ranks == r.ranks; }))
      distinct.push_back(r);
  }
  std::vector<evolution::Objectives> f;
  for (auto& r : distinct) f.push_back({r.result.error, -r.result.compression});
  std::vector<Record> front;
  if (distinct.empty()) return front;
  const auto fronts = evolution::non_dominated_sort(f);
  for (size_t i : fronts[0]) front.push_back(distinct[i]);
  std::sort(front.begin(), front.end(), [](auto& a, auto& b) { return a.result.error < b.result.error; });
  return front;
}

json PstrnSearch::state() const {
  json pop = json::array(), hist = json::array(), cache = json::array(), maps = json::array();
  for (auto& p : pop_)
    pop.push_back({{"genes", p.genes}, {"f", p.f}, {"rank", p.rank}, {"crowding", p.crowding}});
  for (auto& r : history_)
    hist.push_back({{"phase", r.phase},
                    {"generation", r.generation},
                    {"codes", r.codes},
                    {"ranks", r.ranks},
                    {"error", r.result.error},
                    {"compression", r.result.compression}});
  for (auto& [r, res] : cache_)
    cache.push_back({{"ranks", r}, {"error", res.error}, {"compression", res.compression}});
  for (auto& m : maps_) maps.push_back(map_json(m));
  // crowding may be +inf, which JSON cannot hold: stored as null and read back as inf.
  for (auto& p : pop)
    if (std::isinf(p["crowding"].get<double>())) p["crowding"] = nullptr;
  return {{"format", "pstrn-search-1"},
          {"n_ranks", o_.n_ranks},
          {"steps", o_.steps},
          {"generations", o_.generations},
          {"pop_size", o_.pop_size},
          {"n_offspring", o_.n_offspring},
          {"seed", o_.seed},
          {"multi_objective", o_.multi_objective},
          {"phase", phase_},
          {"generation", generation_},
          {"maps", maps},
          {"population", pop},
          {"rng", ga_.rng_state()},
          {"history", hist},
          {"cache", cache}};
}

void PstrnSearch::restore(const json& s) {
  try {
    NABLA_CHECK(s.at("format") == "pstrn-search-1", "format is ", s.at("format").dump(),
                ", expected pstrn-search-1");
    auto same = [&](const char* key, const json& mine) {
      NABLA_CHECK(s.at(key) == mine, key, " is ", s.at(key).dump(), " in the checkpoint but ", mine.dump(),
                  " in this search");
    };
    same("n_ranks", o_.n_ranks);
    same("steps", o_.steps);
    same("generations", o_.generations);
    same("pop_size", o_.pop_size);
    same("n_offspring", o_.n_offspring);
    same("seed", o_.seed);
    same("multi_objective", o_.multi_objective);
    const int64_t phase = s.at("phase").get<int64_t>(), gen = s.at("generation").get<int64_t>();
    const int64_t phases = static_cast<int64_t>(o_.steps.size());
    NABLA_CHECK(phase >= 0 && phase <= phases && gen >= 0 && (phase == phases || gen < o_.generations[phase]),
                "phase ", phase, " generation ", gen, " is outside the search's ", phases, " phases");
    std::vector<RankMap> maps;
    for (auto& m : s.at("maps")) {
      maps.push_back(map_from(m));
      NABLA_CHECK(maps.back().bias.size() == static_cast<size_t>(o_.n_ranks), "a map has ",
                  maps.back().bias.size(), " biases for ", o_.n_ranks, " ranks");
    }
    NABLA_CHECK(!maps.empty() && static_cast<int64_t>(maps.size()) == std::min(phase + 1, phases),
                "it holds ", maps.size(), " phase maps at phase ", phase);
    std::vector<Individual> pop;
    for (auto& p : s.at("population")) {
      Individual ind{p.at("genes").get<Genes>(), p.at("f").get<std::vector<double>>(),
                     p.at("rank").get<int64_t>(),
                     p.at("crowding").is_null() ? INFINITY : p.at("crowding").get<double>()};
      NABLA_CHECK(ind.genes.size() == static_cast<size_t>(o_.n_ranks), "an individual has ", ind.genes.size(),
                  " genes for ", o_.n_ranks, " ranks");
      pop.push_back(std::move(ind));
    }
    std::vector<Record> hist;
    for (auto& r : s.at("history"))
      hist.push_back({r.at("phase").get<int64_t>(),
                      r.at("generation").get<int64_t>(),
                      r.at("codes").get<Genes>(),
                      r.at("ranks").get<Ranks>(),
                      {r.at("error").get<double>(), r.at("compression").get<double>()}});
    std::map<Ranks, FitnessResult> cache;
    for (auto& c : s.at("cache"))
      cache[c.at("ranks").get<Ranks>()] = {c.at("error").get<double>(), c.at("compression").get<double>()};
    ga_.set_rng_state(s.at("rng").get<std::string>());
    phase_ = phase;
    generation_ = gen;
    maps_ = std::move(maps);
    map_ = maps_.back();
    pop_ = std::move(pop);
    history_ = std::move(hist);
    cache_ = std::move(cache);
  } catch (const json::exception& e) {
    fail("PSTRN checkpoint: ", e.what());
  } catch (const Error& e) {
    fail("PSTRN checkpoint: ", e.what());
  }
}

}  // namespace nabla::pstrn

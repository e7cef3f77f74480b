// NSGA-II (algorithms/evolution/nsga2.h) and the PSTRN search (algorithms/pstrn/pstrn.h): sorting and
// crowding on hand-made fronts, the operators' bounds, ZDT1, the progressive update against hand cases and
// the authors' synthetic-experiment logs, a whole progressive search on a function with a known optimum,
// resuming from a checkpoint, and bad options.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "algorithms/evolution/nsga2.h"
#include "algorithms/pstrn/pstrn.h"
#include "testing.h"

namespace nabla {
namespace {

using evolution::Genes;
using evolution::Individual;
using evolution::NSGA2;
using evolution::Objectives;
using pstrn::FitnessResult;
using pstrn::PstrnOptions;
using pstrn::PstrnSearch;
using pstrn::Ranks;

TEST(NSGA2, NonDominatedSortOnAHandMadeSet) {
  std::vector<Objectives> f = {{4, 4}, {1, 5}, {2, 4}, {2, 3}, {3, 1}, {3, 3}};
  auto fronts = evolution::non_dominated_sort(f);
  ASSERT_EQ(fronts.size(), 3u);
  EXPECT_EQ(fronts[0], (std::vector<size_t>{1, 3, 4}));
  EXPECT_EQ(fronts[1], (std::vector<size_t>{2, 5}));
  EXPECT_EQ(fronts[2], (std::vector<size_t>{0}));
  EXPECT_TRUE(evolution::dominates({1, 2}, {1, 3}));
  EXPECT_FALSE(evolution::dominates({1, 3}, {1, 3}));
  EXPECT_FALSE(evolution::dominates({0, 4}, {1, 3}));
}

TEST(NSGA2, CrowdingDistanceOnAHandMadeFront) {
  // Sorted by f0: (1,5) (1.5,4) (2,3) (3,1); ranges 2 and 4.
  std::vector<Objectives> f = {{2, 3}, {1, 5}, {3, 1}, {1.5, 4}};
  auto d = evolution::crowding_distance(f, {0, 1, 2, 3});
  EXPECT_DOUBLE_EQ(d[0], (3 - 1.5) / 2 + (4 - 1) / 4.0);
  EXPECT_TRUE(std::isinf(d[1]));
  EXPECT_TRUE(std::isinf(d[2]));
  EXPECT_DOUBLE_EQ(d[3], (2 - 1) / 2.0 + (5 - 3) / 4.0);
  auto two = evolution::crowding_distance(f, {0, 1});
  EXPECT_TRUE(std::isinf(two[0]) && std::isinf(two[1]));
}

TEST(NSGA2, SurvivalKeepsWholeFrontsThenTheMostIsolated) {
  std::vector<Individual> merged;
  std::vector<Objectives> f = {{4, 4}, {1, 5}, {2, 4}, {2, 3}, {3, 1}, {3, 3}, {1.2, 4.9}};
  for (size_t i = 0; i < f.size(); ++i) merged.push_back({{static_cast<int64_t>(i)}, f[i]});
  // Front 0: (1,5) (1.2,4.9) (2,3) (3,1); keep 3: the ends (inf) and then (2,3) (1.8 / 2 + 3.9 / 4 against
  // 1 / 2 + 1.1 / 4 for (1.2, 4.9)).
  auto kept = NSGA2::survive(merged, 3);
  std::vector<int64_t> ids;
  for (auto& k : kept) ids.push_back(k.genes[0]);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 3, 4}));
  for (auto& k : kept) EXPECT_EQ(k.rank, 0);
  auto five = NSGA2::survive(merged, 5);
  EXPECT_EQ(five.size(), 5u);
  EXPECT_EQ(five.back().rank, 1);
}

TEST(NSGA2, TournamentPrefersDominanceThenCrowding) {
  NSGA2 ga({.pop_size = 4, .n_offspring = 4, .lower = {0}, .upper = {9}, .seed = 3});
  std::vector<Individual> pop = {{{1}, {1, 1}, 0, 0.1}, {{2}, {2, 2}, 1, 50}, {{3}, {0, 3}, 0, 2.0}};
  EXPECT_EQ(ga.tournament(pop, 0, 1), 0u);
  EXPECT_EQ(ga.tournament(pop, 1, 0), 0u);
  EXPECT_EQ(ga.tournament(pop, 0, 2), 2u);  // neither dominates: larger crowding
}

TEST(NSGA2, CrossoverAndMutationStayInBoundsAndSwapContiguousSegments) {
  NSGA2 ga({.pop_size = 4,
            .n_offspring = 4,
            .lower = {1, 1, 1, 1, 1, 1},
            .upper = {5, 5, 5, 5, 5, 5},
            .crossover_prob = 1.0,
            .seed = test::next_seed()});
  Genes a = {1, 1, 1, 1, 1, 1}, b = {5, 5, 5, 5, 5, 5};
  int64_t mutated = 0;
  for (int t = 0; t < 2000; ++t) {
    auto [c, d] = ga.crossover(a, b);
    // The children swap one segment [p1, p2), 1 <= p1 < p2 <= 6: c is 1...1 5...5 1...1 with a non-empty
    // middle that never starts at 0.
    EXPECT_EQ(c[0], 1);
    int switches = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      EXPECT_EQ(c[i] + d[i], 6);
      if (i > 0 && c[i] != c[i - 1]) ++switches;
    }
    EXPECT_GE(switches, 1);
    EXPECT_LE(switches, 2);
    Genes m = ga.mutate({1, 3, 5, 2, 4, 3});
    for (int64_t v : m) {
      EXPECT_GE(v, 1);
      EXPECT_LE(v, 5);
    }
    mutated += m != Genes{1, 3, 5, 2, 4, 3};
  }
  // Each gene mutates with probability 1/6 and rounding keeps some unchanged: about half the vectors change.
  EXPECT_GT(mutated, 400);
  EXPECT_LT(mutated, 1800);
}

TEST(NSGA2, SameSeedSameRunAndTheGeneratorStateRoundTrips) {
  evolution::NSGA2Options o{
      .pop_size = 10, .n_offspring = 10, .lower = {0, 0, 0}, .upper = {20, 20, 20}, .seed = 7};
  NSGA2 a(o), b(o);
  EXPECT_EQ(a.initial_population(), b.initial_population());
  const std::string s = a.rng_state();
  Genes m1 = a.mutate({10, 10, 10});
  auto c1 = a.crossover({0, 1, 2}, {3, 4, 5});
  b.set_rng_state(s);
  EXPECT_EQ(b.mutate({10, 10, 10}), m1);
  EXPECT_EQ(b.crossover({0, 1, 2}, {3, 4, 5}), c1);
}

TEST(NSGA2, ApproachesTheParetoFrontOfZDT1) {
  // ZDT1 with 6 variables on the grid x = g / 100: f1 = x1, g = 1 + 9 mean(x2..x6), f2 = g (1 - sqrt(f1 /
  // g)). The front is g = 1; the distance of a point to it is g - 1.
  const int n = 6;
  NSGA2 ga({.pop_size = 40, .n_offspring = 40, .lower = Genes(n, 0), .upper = Genes(n, 100), .seed = 11});
  auto eval = [&](const Genes& genes) {
    double s = 0;
    for (int i = 1; i < n; ++i) s += genes[i] / 100.0;
    const double f1 = genes[0] / 100.0, g = 1 + 9 * s / (n - 1);
    return Objectives{f1, g * (1 - std::sqrt(f1 / g))};
  };
  auto mean_gap = [&](const std::vector<Individual>& pop) {
    double gap = 0;
    for (auto& p : pop) {
      double s = 0;
      for (int i = 1; i < n; ++i) s += p.genes[i] / 100.0;
      gap += 9 * s / (n - 1);
    }
    return gap / pop.size();
  };
  std::vector<Individual> pop;
  for (auto& g : ga.initial_population()) pop.push_back({g, eval(g)});
  NSGA2::rank_and_crowd(pop);
  const double start = mean_gap(pop);
  for (int gen = 0; gen < 150; ++gen) {
    auto merged = pop;
    for (auto& g : ga.make_offspring(pop)) merged.push_back({g, eval(g)});
    pop = NSGA2::survive(merged, 40);
  }
  EXPECT_GT(start, 2.0);
  EXPECT_LT(mean_gap(pop), 0.1);
  double lo = 1, hi = 0;  // the survivors spread along the front
  for (auto& p : pop) {
    lo = std::min(lo, p.f[0]);
    hi = std::max(hi, p.f[0]);
  }
  EXPECT_LT(lo, 0.1);
  EXPECT_GT(hi, 0.8);
}

TEST(PSTRN, ShrinkMapGivesTheReferenceTables) {
  // Step 5 -> 2 around the phase-1 candidates 5..25: the code's bias table {0, 4, 10, 14, 20}.
  auto m = pstrn::shrink_map({5, 10, 15, 20, 25}, 2, 2);
  EXPECT_EQ(m.bias, (std::vector<int64_t>{0, 4, 10, 14, 20}));
  EXPECT_EQ(m.decode({1, 2, 3, 4, 5}), (Ranks{2, 8, 16, 22, 30}));
  EXPECT_EQ(m.decode({1, 1, 1, 1, 1}), (Ranks{2, 6, 12, 16, 22}));
  // Step -> 1: the candidates c - 2 .. c + 2, clamped at min_rank.
  auto f = pstrn::shrink_map({4, 3, 6, 6}, 1, 3);
  EXPECT_EQ(f.decode({1, 1, 1, 1}), (Ranks{3, 3, 4, 4}));
  EXPECT_EQ(f.decode({5, 5, 5, 5}), (Ranks{6, 5, 8, 8}));
}

TEST(PSTRN, InterestCentreIsTheModeOfTheTopKTiesToTheBest) {
  std::vector<std::pair<Ranks, double>> ev = {{{6, 3, 3, 6}, 8.56},   {{3, 3, 6, 6}, 8.57},
                                              {{12, 3, 9, 6}, 8.58},  {{6, 9, 3, 9}, 8.59},
                                              {{15, 3, 3, 12}, 8.60}, {{15, 15, 15, 15}, 9.0}};
  EXPECT_EQ(pstrn::interest_centre(ev, 5), (Ranks{6, 3, 3, 6}));
  EXPECT_EQ(pstrn::interest_centre(ev, 1), (Ranks{6, 3, 3, 6}));
  // Top 2: every element ties (one each) except the 2nd and 4th: ties go to the lower error.
  EXPECT_EQ(pstrn::interest_centre(ev, 2), (Ranks{6, 3, 3, 6}));
  ev[0].second = 9.5;  // now (3,3,6,6) leads; the 1st element's mode among the top 5 is 15 (twice)
  EXPECT_EQ(pstrn::interest_centre(ev, 5), (Ranks{15, 3, 3, 6}));
}

// The authors' logs: every (code -> rank) pair of the immediate and final phases agrees with shrink_map
// around the best ranks of the phase before ([6,3,3,6] and [4,3,6,6]), with the logs' minimum rank 3.
TEST(PSTRN, ProgressiveMapsReproduceTheAuthorsSyntheticLogs) {
  const char* env = std::getenv("NABLA_PSTRN_SYNTHETIC_DIR");
  const std::string dir = env ? env : "/work/shared/data/pstrn-synthetic";
  if (!std::filesystem::exists(dir + "/search_logs/final_phase.txt")) GTEST_SKIP() << "no logs at " << dir;
  auto pairs = [&](const std::string& file) {
    std::ifstream in(dir + "/search_logs/" + file);
    std::vector<std::pair<Genes, Ranks>> out;
    std::string line;
    Genes code;
    std::regex re_code(R"(rank code = \[(\d+) (\d+) (\d+) (\d+)\])"),
        re_rank(R"(RANK = \[(\d+), (\d+), (\d+), (\d+)\])");
    std::smatch m;
    while (std::getline(in, line)) {
      if (std::regex_search(line, m, re_code))
        code = {std::stoll(m[1]), std::stoll(m[2]), std::stoll(m[3]), std::stoll(m[4])};
      if (std::regex_search(line, m, re_rank))
        out.push_back({code, {std::stoll(m[1]), std::stoll(m[2]), std::stoll(m[3]), std::stoll(m[4])}});
    }
    return out;
  };
  const pstrn::RankMap initial{.step = 3, .bias = {0, 0, 0, 0}, .min_rank = 3};
  const auto immediate = pstrn::shrink_map({6, 3, 3, 6}, 2, 3),
             final_map = pstrn::shrink_map({4, 3, 6, 6}, 1, 3);
  for (auto& [file, map] :
       std::vector<std::pair<std::string, pstrn::RankMap>>{{"initial_phase.txt", initial},
                                                           {"immediate_phase.txt", immediate},
                                                           {"final_phase.txt", final_map}}) {
    auto ps = pairs(file);
    ASSERT_EQ(ps.size(), 200u) << file;
    for (auto& [c, r] : ps) EXPECT_EQ(map.decode(c), r) << file;
  }
}

// A fitness with a known optimum: error = sum (r - target)^2, compression = 1000 / sum r.
std::vector<FitnessResult> quadratic(const std::vector<Ranks>& batch, const Ranks& target) {
  std::vector<FitnessResult> out;
  for (auto& r : batch) {
    double e = 0, s = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      e += (r[i] - target[i]) * (r[i] - target[i]);
      s += r[i];
    }
    out.push_back({e, 1000 / s});
  }
  return out;
}

TEST(PSTRN, ProgressiveSearchFindsAKnownOptimumOffTheCoarseGrid) {
  const Ranks target = {7, 12, 3, 18, 23};
  PstrnOptions o{.n_ranks = 5,
                 .steps = {5, 2, 1},
                 .generations = {8, 8, 8},
                 .pop_size = 16,
                 .n_offspring = 16,
                 .top_k = 3,
                 .multi_objective = false,
                 .seed = 5};
  PstrnSearch s(o);
  int64_t calls = 0;
  s.run([&](const std::vector<Ranks>& b) { return quadratic(b, target); },
        [&](const PstrnSearch&) { ++calls; });
  EXPECT_TRUE(s.finished());
  EXPECT_EQ(calls, 24);
  EXPECT_EQ(s.best().ranks, target);
  EXPECT_EQ(s.maps().size(), 3u);
  EXPECT_EQ(s.maps()[2].step, 1);
  // The evaluations are counted as the authors count them: every individual of every generation.
  EXPECT_EQ(s.evaluations(), 3 * (16 + 7 * 16));  // each phase re-evaluates the carried population
  EXPECT_LE(s.distinct_networks(), s.evaluations());
  // Phase 1 alone can only reach multiples of 5.
  for (auto& r : s.history())
    if (r.phase == 0)
      for (int64_t v : r.ranks) EXPECT_EQ(v % 5, 0);
}

TEST(PSTRN, ParetoFrontIsNonDominatedAndSortedByError) {
  PstrnOptions o{
      .n_ranks = 3, .steps = {5, 2}, .generations = {4, 3}, .pop_size = 10, .n_offspring = 10, .seed = 2};
  PstrnSearch s(o);
  s.run([](const std::vector<Ranks>& b) { return quadratic(b, {9, 9, 9}); });
  auto front = s.pareto_front();
  ASSERT_FALSE(front.empty());
  for (size_t i = 1; i < front.size(); ++i) {
    EXPECT_LE(front[i - 1].result.error, front[i].result.error);
    if (front[i - 1].result.error < front[i].result.error)  // else the worse one would be dominated
      EXPECT_LT(front[i - 1].result.compression, front[i].result.compression);
    else  // different ranks with the same objectives
      EXPECT_EQ(front[i - 1].result.compression, front[i].result.compression);
  }
  for (auto& r : s.history())
    for (auto& p : front)
      EXPECT_FALSE(r.result.error < p.result.error && r.result.compression > p.result.compression);
}

TEST(PSTRN, ResumedSearchContinuesBitIdentically) {
  PstrnOptions o{
      .n_ranks = 4, .steps = {5, 2, 1}, .generations = {3, 3, 3}, .pop_size = 8, .n_offspring = 8, .seed = 9};
  auto fit = [](const std::vector<Ranks>& b) { return quadratic(b, {4, 3, 6, 6}); };
  PstrnSearch whole(o);
  whole.run(fit);
  for (int stop_after : {2, 4, 7}) {
    PstrnSearch first(o);
    nlohmann::json saved;
    int seen = 0;
    try {
      first.run(fit, [&](const PstrnSearch& s) {
        if (++seen == stop_after) {
          saved = nlohmann::json::parse(s.state().dump());
          throw std::runtime_error("stop");
        }
      });
    } catch (const std::runtime_error&) {
    }
    PstrnSearch resumed(o);
    resumed.restore(saved);
    resumed.run(fit);
    ASSERT_EQ(resumed.evaluations(), whole.evaluations()) << stop_after;
    for (int64_t i = 0; i < whole.evaluations(); ++i) {
      EXPECT_EQ(resumed.history()[i].ranks, whole.history()[i].ranks);
      EXPECT_EQ(resumed.history()[i].result.error, whole.history()[i].result.error);
    }
  }
}

TEST(PSTRN, BadOptionsAndCheckpointsAreErrors) {
  test::expect_error(
      [] {
        PstrnSearch({.steps = {5, 2, 1}, .generations = {3, 3}});
      },
      {"3 phase steps", "2 phase"});
  test::expect_error([] { PstrnSearch({.steps = {5, 0}, .generations = {3, 3}}); }, {"phase 2", "step 0"});
  test::expect_error([] { PstrnSearch({.code_low = 4, .code_high = 5}); }, {"span 3", "[4, 5]"});
  test::expect_error([] { NSGA2({.lower = {1, 5}, .upper = {5, 1}}); }, {"gene 1", "lower bound 5"});
  test::expect_error([] { NSGA2({.lower = {1}, .upper = {1, 2}}); }, {"1 and 2"});
  PstrnSearch a({.n_ranks = 4, .steps = {5, 1}, .generations = {2, 2}, .pop_size = 4, .n_offspring = 4});
  auto st = a.state();
  PstrnSearch b({.n_ranks = 5, .steps = {5, 1}, .generations = {2, 2}, .pop_size = 4, .n_offspring = 4});
  test::expect_error([&] { b.restore(st); }, {"PSTRN checkpoint", "n_ranks is 4", "5 in this search"});
  st["phase"] = 7;
  test::expect_error([&] { a.restore(st); }, {"phase 7"});
  test::expect_error([&] { a.restore(nlohmann::json::object()); }, {"PSTRN checkpoint"});
  test::expect_error(
      [&] {
        PstrnSearch c({.n_ranks = 2, .steps = {5}, .generations = {1}, .pop_size = 4, .n_offspring = 4});
        c.run([](const std::vector<Ranks>&) { return std::vector<FitnessResult>{}; });
      },
      {"returned 0 results"});
}

}  // namespace
}  // namespace nabla

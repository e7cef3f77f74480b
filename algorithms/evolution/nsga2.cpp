// NSGA-II over integer genes: algorithms/evolution/nsga2.h has the operators and their maths.
#include "algorithms/evolution/nsga2.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include "engine/error.h"

namespace nabla::evolution {

bool dominates(const Objectives& a, const Objectives& b) {
  NABLA_CHECK(a.size() == b.size(), "dominates: ", a.size(), " objectives against ", b.size());
  bool better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) better = true;
  }
  return better;
}

std::vector<std::vector<size_t>> non_dominated_sort(const std::vector<Objectives>& f) {
  const size_t n = f.size();
  std::vector<std::vector<size_t>> dominated(n);  // whom i dominates
  std::vector<size_t> count(n, 0);                // how many dominate i
  std::vector<std::vector<size_t>> fronts(1);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      if (dominates(f[i], f[j])) {
        dominated[i].push_back(j);
        ++count[j];
      } else if (dominates(f[j], f[i])) {
        dominated[j].push_back(i);
        ++count[i];
      }
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (count[i] == 0) fronts[0].push_back(i);
  while (!fronts.back().empty()) {
    std::vector<size_t> next;
    for (size_t i : fronts.back())
      for (size_t j : dominated[i])
        if (--count[j] == 0) next.push_back(j);
    std::sort(next.begin(), next.end());
    fronts.push_back(std::move(next));
  }
  fronts.pop_back();
  return fronts;
}

std::vector<double> crowding_distance(const std::vector<Objectives>& f, const std::vector<size_t>& front) {
  const size_t n = front.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> d(n, 0.0);
  if (n <= 2) return std::vector<double>(n, inf);
  const size_t m = f[front[0]].size();
  std::vector<size_t> order(n);
  for (size_t k = 0; k < m; ++k) {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return f[front[a]][k] < f[front[b]][k]; });
    const double lo = f[front[order.front()]][k], hi = f[front[order.back()]][k];
    d[order.front()] = inf;
    d[order.back()] = inf;
    if (hi - lo <= 0) continue;
    for (size_t i = 1; i + 1 < n; ++i)
      d[order[i]] += (f[front[order[i + 1]]][k] - f[front[order[i - 1]]][k]) / (hi - lo);
  }
  return d;
}

NSGA2::NSGA2(NSGA2Options o) : o_(std::move(o)), rng_(o_.seed) {
  NABLA_CHECK(!o_.lower.empty() && o_.lower.size() == o_.upper.size(),
              "NSGA2: need one lower and one upper bound ", "per gene, got ", o_.lower.size(), " and ",
              o_.upper.size());
  for (size_t i = 0; i < o_.lower.size(); ++i)
    NABLA_CHECK(o_.lower[i] <= o_.upper[i], "NSGA2: gene ", i, " has lower bound ", o_.lower[i],
                " above upper ", o_.upper[i]);
  NABLA_CHECK(o_.pop_size >= 2 && o_.n_offspring >= 1,
              "NSGA2: population must be >= 2 and offspring >= 1, got ", o_.pop_size, " and ",
              o_.n_offspring);
  NABLA_CHECK(o_.crossover_prob >= 0 && o_.crossover_prob <= 1,
              "NSGA2: crossover probability must be in [0, 1], got ", o_.crossover_prob);
  NABLA_CHECK(o_.mutation_eta > 0, "NSGA2: mutation eta must be > 0, got ", o_.mutation_eta);
  if (o_.mutation_prob < 0) o_.mutation_prob = 1.0 / static_cast<double>(o_.lower.size());
}

int64_t NSGA2::random_int(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
}
double NSGA2::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

std::vector<Genes> NSGA2::initial_population() {
  double space = 1;
  for (size_t i = 0; i < o_.lower.size(); ++i) space *= static_cast<double>(o_.upper[i] - o_.lower[i] + 1);
  std::vector<Genes> pop;
  std::set<Genes> seen;
  const int64_t want = static_cast<int64_t>(std::min<double>(static_cast<double>(o_.pop_size), space));
  while (static_cast<int64_t>(pop.size()) < want) {
    Genes g(o_.lower.size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = random_int(o_.lower[i], o_.upper[i]);
    if (!o_.eliminate_duplicates || seen.insert(g).second) pop.push_back(std::move(g));
  }
  return pop;
}

size_t NSGA2::tournament(const std::vector<Individual>& pop, size_t a, size_t b) {
  if (dominates(pop[a].f, pop[b].f)) return a;
  if (dominates(pop[b].f, pop[a].f)) return b;
  if (pop[a].crowding > pop[b].crowding) return a;
  if (pop[b].crowding > pop[a].crowding) return b;
  return uniform() < 0.5 ? a : b;
}

std::pair<Genes, Genes> NSGA2::crossover(const Genes& a, const Genes& b) {
  NABLA_CHECK(a.size() == b.size() && a.size() == o_.lower.size(), "NSGA2: crossover of genes of size ",
              a.size(), " and ", b.size(), ", expected ", o_.lower.size());
  Genes c = a, d = b;
  const int64_t n = static_cast<int64_t>(a.size());
  if (n < 2 || uniform() >= o_.crossover_prob) return {c, d};
  int64_t p1 = random_int(1, n - 1), p2 = random_int(1, n - 1);
  if (n > 2)
    while (p2 == p1) p2 = random_int(1, n - 1);
  if (p1 > p2) std::swap(p1, p2);
  if (p1 == p2) p2 = n;  // two genes: one cut point, swap the tail
  for (int64_t i = p1; i < p2; ++i) std::swap(c[i], d[i]);
  return {c, d};
}

Genes NSGA2::mutate(const Genes& g) {
  Genes m = g;
  const double eta = o_.mutation_eta, pow_ = 1.0 / (eta + 1.0);
  for (size_t i = 0; i < m.size(); ++i) {
    if (uniform() >= o_.mutation_prob) continue;
    const double lo = static_cast<double>(o_.lower[i]), hi = static_cast<double>(o_.upper[i]);
    if (hi <= lo) continue;
    const double x = static_cast<double>(m[i]);
    const double d1 = (x - lo) / (hi - lo), d2 = (hi - x) / (hi - lo), u = uniform();
    double dq;
    if (u <= 0.5) {
      dq = std::pow(2 * u + (1 - 2 * u) * std::pow(1 - d1, eta + 1), pow_) - 1;
    } else {
      dq = 1 - std::pow(2 * (1 - u) + 2 * (u - 0.5) * std::pow(1 - d2, eta + 1), pow_);
    }
    const double y = std::clamp(std::round(x + dq * (hi - lo)), lo, hi);
    m[i] = static_cast<int64_t>(y);
  }
  return m;
}

std::vector<Genes> NSGA2::make_offspring(const std::vector<Individual>& pop) {
  NABLA_CHECK(pop.size() >= 2, "NSGA2: mating needs a population of at least 2, got ", pop.size());
  std::set<Genes> seen;
  for (auto& p : pop) seen.insert(p.genes);
  std::vector<Genes> children;
  const size_t want = static_cast<size_t>(o_.n_offspring);
  const int64_t n = static_cast<int64_t>(pop.size());
  for (int round = 0; round < kMatingRounds && children.size() < want; ++round) {
    for (size_t k = 0; k < want && children.size() < want; k += 2) {
      const size_t pa = tournament(pop, random_int(0, n - 1), random_int(0, n - 1));
      const size_t pb = tournament(pop, random_int(0, n - 1), random_int(0, n - 1));
      auto [c, d] = crossover(pop[pa].genes, pop[pb].genes);
      for (Genes* g : {&c, &d}) {
        Genes child = mutate(*g);
        if (children.size() < want && (!o_.eliminate_duplicates || seen.insert(child).second))
          children.push_back(std::move(child));
      }
    }
  }
  return children;
}

void NSGA2::rank_and_crowd(std::vector<Individual>& pop) {
  std::vector<Objectives> f;
  for (auto& p : pop) f.push_back(p.f);
  auto fronts = non_dominated_sort(f);
  for (size_t r = 0; r < fronts.size(); ++r) {
    auto d = crowding_distance(f, fronts[r]);
    for (size_t i = 0; i < fronts[r].size(); ++i) {
      pop[fronts[r][i]].rank = static_cast<int64_t>(r);
      pop[fronts[r][i]].crowding = d[i];
    }
  }
}

std::vector<Individual> NSGA2::survive(std::vector<Individual> merged, size_t n) {
  std::vector<Objectives> f;
  for (auto& p : merged) f.push_back(p.f);
  auto fronts = non_dominated_sort(f);
  std::vector<Individual> out;
  for (size_t r = 0; r < fronts.size() && out.size() < n; ++r) {
    auto d = crowding_distance(f, fronts[r]);
    std::vector<size_t> order(fronts[r].size());
    std::iota(order.begin(), order.end(), 0);
    if (out.size() + order.size() > n)  // the last front: most isolated first
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d[a] > d[b]; });
    for (size_t i : order) {
      if (out.size() == n) break;
      Individual ind = merged[fronts[r][i]];
      ind.rank = static_cast<int64_t>(r);
      ind.crowding = d[i];
      out.push_back(std::move(ind));
    }
  }
  return out;  // crowding as computed on the whole fronts (pymoo's RankAndCrowdingSurvival)
}

std::string NSGA2::rng_state() const {
  std::ostringstream s;
  s << rng_;
  return s.str();
}

void NSGA2::set_rng_state(const std::string& state) {
  std::istringstream s(state);
  s >> rng_;
  NABLA_CHECK(!s.fail(), "NSGA2: the saved random-generator state is malformed");
}

}  // namespace nabla::evolution

// VRGD (algorithms/vrgd): the GSNR ratio and one or two steps of every VR optimizer against naive scalar
// references written here (the Ref* code never calls the library), the invariants of Algorithm 1 (r in
// [gamma, 1], invariance to the loss scale, finite results for identical partitions, gamma = 1 gives the
// base optimizer bit for bit), micro-batch and simulated-rank partitions giving the same r, checkpoints and
// errors. Inputs are fresh random tensors (f64 where values are compared with references).
#include <cmath>
#include <numeric>

#include "algorithms/vrgd/gsnr.h"
#include "algorithms/vrgd/vr_optimizer.h"
#include "testing.h"

namespace nabla::vrgd {
namespace {

using Vec = std::vector<double>;
using optim::ParamGroup;

Vec values(const Tensor& t) {
  Tensor c = t.to(DType::f64).contiguous();
  Vec v(static_cast<size_t>(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) v[static_cast<size_t>(i)] = c.flatten().select(0, i).item();
  return v;
}

double max_rel_diff(const Vec& a, const Vec& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]) / std::max(1e-12, std::abs(b[i])));
  return m;
}

// ---- reference GSNR: one tensor, partitions' gradients given as vectors ----------------------------------

struct RefGsnr {
  double gamma = 0.1, eps = 1e-6;
  // Returns {mean gradient, clamped r}.
  std::pair<Vec, Vec> ratio(const std::vector<Vec>& parts) const {
    const size_t n = parts[0].size(), k = parts.size();
    Vec g(n, 0.0), m2(n, 0.0), r(n);
    for (const Vec& p : parts)
      for (size_t j = 0; j < n; ++j) g[j] += p[j] / k, m2[j] += p[j] * p[j] / k;
    double mean = 0;
    for (size_t j = 0; j < n; ++j) {
      const double var = std::max(m2[j] - g[j] * g[j], 0.0);
      r[j] = g[j] * g[j] / (var + eps * m2[j] + 1e-30);
      mean += r[j] / n;
    }
    for (double& x : r) x = std::clamp(x / (mean + 1e-30), gamma, 1.0);
    return {g, r};
  }
};

// Sets each parameter's .grad to its partition-d gradient and accumulates; grads[d][i] is parameter i's.
void feed(Gsnr& gsnr, const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& grads) {
  for (const auto& part : grads) {
    for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(part[i].clone());
    gsnr.accumulate();
  }
}

std::vector<std::vector<Tensor>> random_grads(const std::vector<Tensor>& params, int64_t k, DType dtype) {
  std::vector<std::vector<Tensor>> out(static_cast<size_t>(k));
  for (auto& part : out)
    for (const Tensor& p : params) {
      // A shared mean plus per-partition noise, so GSNR varies over the elements.
      Tensor g = test::randn64(p.shape(), false) * 0.5 + 0.3;
      part.push_back(g.to(dtype));
    }
  // Give the first tensor a few elements with a strong shared signal (r far above the mean: clipped at 1).
  for (auto& part : out) {
    Tensor f = part[0].flatten();
    f.narrow(0, 0, 2).fill_(2.0);
  }
  return out;
}

std::vector<Tensor> make_params(DType dtype, const std::vector<Shape>& shapes) {
  std::vector<Tensor> ps;
  for (const Shape& s : shapes) {
    Tensor p = test::randn64(s, false).to(dtype);
    p.requires_grad_(true);
    ps.push_back(p);
  }
  return ps;
}

GsnrOptions opts(double gamma, double beta3 = 0.0) { return {.gamma = gamma, .beta3 = beta3}; }

// ---- GSNR ------------------------------------------------------------------------------------------------

TEST(Gsnr, RatioAndMeanGradientMatchNaiveReference) {
  const int64_t k = 5;
  auto params = make_params(DType::f64, {{6, 4}, {7}});
  auto grads = random_grads(params, k, DType::f64);
  int interior = 0;
  for (double gamma : {0.1, 0.3}) {
    Gsnr gsnr(params, {}, opts(gamma));
    feed(gsnr, params, grads);
    EXPECT_EQ(gsnr.partitions(), k);
    gsnr.reduce();
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<Vec> parts;
      for (const auto& part : grads) parts.push_back(values(part[i]));
      auto [g, r] = RefGsnr{.gamma = gamma}.ratio(parts);
      EXPECT_LT(max_rel_diff(values(params[i].grad()), g), 1e-12) << "param " << i;
      EXPECT_LT(max_rel_diff(values(gsnr.ratios()[i]), r), 1e-10) << "param " << i;
      // Not degenerate: some elements at each bound and some strictly inside.
      int lo = 0, hi = 0;
      for (double x : r) lo += x == gamma, hi += x == 1.0;
      EXPECT_GT(hi, 0);
      interior += static_cast<int>(r.size()) - lo - hi;
    }
  }
  EXPECT_GT(interior, 0);
}

TEST(Gsnr, GlobalScopeNormalisesOverAllParameters) {
  const int64_t k = 4;
  auto params = make_params(DType::f64, {{5, 3}, {8}});
  auto grads = random_grads(params, k, DType::f64);
  GsnrOptions o = opts(0.1);
  o.scope = GsnrScope::kGlobal;
  Gsnr gsnr(params, {}, o);
  feed(gsnr, params, grads);
  gsnr.reduce();
  // Reference: raw r of every element, one mean over all of them.
  Vec raw_all;
  std::vector<Vec> raws;
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<Vec> parts;
    for (const auto& part : grads) parts.push_back(values(part[i]));
    const size_t n = parts[0].size();
    Vec g(n, 0.0), m2(n, 0.0), r(n);
    for (const Vec& p : parts)
      for (size_t j = 0; j < n; ++j) g[j] += p[j] / k, m2[j] += p[j] * p[j] / k;
    for (size_t j = 0; j < n; ++j)
      r[j] = g[j] * g[j] / (std::max(m2[j] - g[j] * g[j], 0.0) + 1e-6 * m2[j] + 1e-30);
    raws.push_back(r);
    raw_all.insert(raw_all.end(), r.begin(), r.end());
  }
  const double mean = std::accumulate(raw_all.begin(), raw_all.end(), 0.0) / raw_all.size();
  for (size_t i = 0; i < params.size(); ++i) {
    Vec want = raws[i];
    for (double& x : want) x = std::clamp(x / mean, 0.1, 1.0);
    EXPECT_LT(max_rel_diff(values(gsnr.ratios()[i]), want), 1e-6);
  }
}

TEST(Gsnr, EveryRatioLiesBetweenGammaAndOne) {
  auto params = make_params(DType::f32, {{16, 9}, {9}, {3, 3, 2, 2}});
  for (double gamma : {0.01, 0.1, 0.5, 0.9}) {
    for (int64_t k : {2, 3, 8}) {
      Gsnr gsnr(params, {}, opts(gamma, 0.9));
      feed(gsnr, params, random_grads(params, k, DType::f32));
      gsnr.request_stats();
      gsnr.reduce();
      gsnr.apply();
      const double lo = static_cast<float>(gamma);  // gamma as the f32 clamp stores it
      for (size_t i = 0; i < params.size(); ++i)
        for (const Tensor& t : {gsnr.ratios()[i], gsnr.multipliers()[i]}) {
          EXPECT_GE(amin(t).item(), lo) << "gamma " << gamma << " k " << k;
          EXPECT_LE(amax(t).item(), 1.0) << "gamma " << gamma << " k " << k;
        }
      ASSERT_EQ(gsnr.last_stats().size(), params.size());
      for (const auto& s : gsnr.last_stats()) {
        EXPECT_GE(s.mean_ratio, lo);
        EXPECT_LE(s.mean_ratio, 1.0);
        EXPECT_GE(s.frac_at_gamma, 0.0);
        EXPECT_LE(s.frac_at_gamma + s.frac_at_one, 1.0 + 1e-6);
      }
    }
  }
}

// A small model whose partitions are real micro-batches: y = tanh(x W1 + b1) W2.
struct Net {
  Tensor w1, b1, w2;
  explicit Net(DType dt) {
    auto ps = make_params(dt, {{6, 5}, {5}, {5, 3}});
    w1 = ps[0], b1 = ps[1], w2 = ps[2];
  }
  std::vector<Tensor> params() const { return {w1, b1, w2}; }
  Tensor loss(const Tensor& x, const Tensor& y) const {
    return mse_loss(matmul(tanh(matmul(x, w1) + b1), w2), y);
  }
};

TEST(Gsnr, RatioDoesNotChangeWhenTheLossIsScaled) {
  Net net(DType::f64);
  Tensor x = test::randn64({24, 6}, false), y = test::randn64({24, 3}, false);
  std::vector<Vec> base;
  for (double scale : {1.0, 3.7, 1e-3}) {
    Gsnr gsnr(net.params(), {}, opts(0.1));
    accumulate_micro_batches(gsnr, 24, 4, [&](int64_t s, int64_t n) {
      return net.loss(x.narrow(0, s, n), y.narrow(0, s, n)) * scale;
    });
    gsnr.reduce();
    for (size_t i = 0; i < 3; ++i) {
      Vec r = values(gsnr.ratios()[i]);
      if (scale == 1.0)
        base.push_back(r);
      else
        EXPECT_LT(max_rel_diff(r, base[i]), 1e-9) << "scale " << scale << " param " << i;
    }
  }
}

TEST(Gsnr, IdenticalPartitionsGiveFiniteRatiosOfOne) {
  for (DType dt : {DType::f32, DType::f64}) {
    auto params = make_params(dt, {{7, 5}, {5}, {4}});
    auto one = random_grads(params, 1, dt)[0];
    one[2].fill_(0.0);  // a parameter whose gradient is zero everywhere: r = 0/0 guarded
    Gsnr gsnr(params, {}, opts(0.1, 0.9));
    feed(gsnr, params, {one, one, one, one});
    gsnr.reduce();
    gsnr.apply();
    for (size_t i = 0; i < params.size(); ++i) {
      Vec r = values(gsnr.ratios()[i]), g = values(params[i].grad());
      for (size_t j = 0; j < r.size(); ++j) {
        ASSERT_TRUE(std::isfinite(r[j]) && std::isfinite(g[j]));
        // sigma^2 = 0: every nonzero element has r = 1/eps, i.e. multiplier 1 (to the rounding of the
        // normalisation); zero gradients get gamma.
        EXPECT_NEAR(r[j], i == 2 ? 0.1 : 1.0, 1e-6) << dt << " param " << i << " element " << j;
      }
    }
  }
}

TEST(Gsnr, MicroBatchesAndSimulatedRanksGiveTheSameRatio) {
  const int64_t k = 4, batch = 32;
  Net net(DType::f64);
  Tensor x = test::randn64({batch, 6}, false), y = test::randn64({batch, 3}, false);
  auto loss_of = [&](int64_t s, int64_t n) { return net.loss(x.narrow(0, s, n), y.narrow(0, s, n)); };

  Gsnr micro(net.params(), {}, opts(0.1));
  accumulate_micro_batches(micro, batch, k, loss_of);
  micro.reduce();
  std::vector<Vec> want_r, want_g;
  for (size_t i = 0; i < 3; ++i) {
    want_r.push_back(values(micro.ratios()[i]));
    want_g.push_back(values(net.params()[i].grad()));
  }

  // k ranks in one process: each rank's GSNR sees one partition. The fake all-reduce records each rank's
  // buffers and, when the last rank calls it, sums them in rank order and writes the sums back to all.
  std::vector<std::unique_ptr<Gsnr>> ranks;
  std::vector<std::vector<Tensor>> posted;
  auto fake_all_reduce = [&](std::vector<Tensor>& tensors) {
    posted.push_back(tensors);
    if (static_cast<int64_t>(posted.size()) < k) return;
    for (size_t t = 0; t < tensors.size(); ++t) {
      Tensor total = posted[0][t].clone();
      for (int64_t r = 1; r < k; ++r) add_(total, posted[static_cast<size_t>(r)][t]);
      for (auto& p : posted) p[t].copy_(total);
    }
  };
  for (int64_t r = 0; r < k; ++r) {
    ranks.push_back(std::make_unique<Gsnr>(net.params(), std::vector<std::string>{}, opts(0.1)));
    for (const Tensor& p : net.params()) p.zero_grad();
    loss_of(r * (batch / k), batch / k).backward();
    ranks.back()->accumulate();
    ranks.back()->all_reduce(fake_all_reduce, k);
  }
  for (auto& rank : ranks) {
    EXPECT_EQ(rank->partitions(), k);
    rank->reduce();
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_LT(max_rel_diff(values(rank->ratios()[i]), want_r[i]), 1e-12);
      EXPECT_LT(max_rel_diff(values(net.params()[i].grad()), want_g[i]), 1e-12);
    }
  }
}

TEST(Gsnr, RejectsBadUse) {
  auto params = make_params(DType::f32, {{3, 2}});
  test::expect_error([&] { Gsnr(params, {}, opts(0.0)); }, {"gamma must be in (0, 1]", "0"});
  test::expect_error([&] { Gsnr(params, {}, opts(1.5)); }, {"gamma must be in (0, 1]", "1.5"});
  test::expect_error([&] { Gsnr(params, {"a", "b"}, opts(0.1)); }, {"2 names for 1 parameters"});
  Gsnr gsnr(params, {"fc.weight"}, opts(0.1));
  feed(gsnr, params, random_grads(params, 1, DType::f32));
  test::expect_error([&] { gsnr.reduce(); }, {"at least 2 partitions", "got 1"});
  test::expect_error(
      [&] { accumulate_micro_batches(gsnr, 10, 3, [&](int64_t, int64_t) { return params[0].sum(); }); },
      {"batch of 10", "3 equal partitions"});
  // A parameter that misses a partition.
  auto two = make_params(DType::f32, {{3}, {2}});
  Gsnr partial(two, {"a", "b"}, opts(0.1));
  two[0].set_grad(test::randn32({3}));
  two[1].set_grad(test::randn32({2}));
  partial.accumulate();
  two[0].set_grad(test::randn32({3}));
  partial.accumulate();
  test::expect_error([&] { partial.reduce(); }, {"param 1 (b)", "1 of 2 partitions"});
}

// ---- VR optimizers: gamma = 1 is the base optimizer, bit for bit
// -------------------------------------------

std::vector<ParamGroup> groups_of(const std::vector<Tensor>& ps, double wd) {
  ParamGroup g;
  g.params = ps;
  g.weight_decay = wd;
  return {g};
}

std::unique_ptr<optim::Optimizer> make_base(const std::string& kind, const std::vector<Tensor>& ps) {
  auto g = groups_of(ps, 0.01);
  if (kind == "vr-sgd") return std::make_unique<optim::Sgd>(g, optim::SgdOptions{.lr = 0.1});
  if (kind == "vr-momentum")
    return std::make_unique<optim::Sgd>(g, optim::SgdOptions{.lr = 0.1, .momentum = 0.9});
  if (kind == "vr-adam") return std::make_unique<optim::Adam>(g, optim::AdamOptions{.lr = 0.1});
  if (kind == "vr-adamw") return std::make_unique<optim::AdamW>(g, optim::AdamWOptions{.lr = 0.1});
  if (kind == "vr-lars") return std::make_unique<optim::Lars>(g, optim::LarsOptions{.lr = 0.1});
  return std::make_unique<optim::Lamb>(g, optim::LambOptions{.lr = 0.1});
}

const std::vector<std::string> kKinds{"vr-sgd", "vr-momentum", "vr-adam", "vr-adamw", "vr-lars", "vr-lamb"};

TEST(VrOptimizer, GammaOneIsTheBaseOptimizerBitForBit) {
  for (const std::string& kind : kKinds) {
    auto a = make_params(DType::f32, {{8, 5}, {5}});
    std::vector<Tensor> b;
    for (const Tensor& p : a) b.push_back(p.detach().clone().requires_grad_(true));
    auto vr = make_vr_optimizer(kind, groups_of(a, 0.01), {.lr = 0.1, .gsnr = {.gamma = 1.0}});
    auto base = make_base(kind, b);
    auto& gsnr = dynamic_cast<VrOptimizer&>(*vr).gsnr();
    for (int step = 0; step < 3; ++step) {
      auto grads = random_grads(a, 4, DType::f32);
      feed(gsnr, a, grads);
      vr->step();
      // The base optimizer gets the same mean gradient, summed and scaled by the same ops.
      for (size_t i = 0; i < b.size(); ++i) {
        Tensor s = grads[0][i].clone();
        for (size_t d = 1; d < grads.size(); ++d) add_(s, grads[d][i]);
        b[i].set_grad(mul_(s, 0.25));
      }
      base->step();
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_EQ(amax(abs(a[i] - b[i])).item(), 0.0) << kind << " step " << step << " param " << i;
    }
  }
}

// ---- VR optimizers against naive references (f64, two steps) ---------------------------------------------

struct RefParam {
  Vec w, buf, m, v, p;  // p: GSNR momentum
  bool is_1d = false;
};

double norm2(const Vec& x) {
  double s = 0;
  for (double e : x) s += e * e;
  return std::sqrt(s);
}

// One step of `kind` (lr 0.05, wd 0.01, momentum 0.9, Adam betas 0.9/0.999, eps 1e-8 (Adam) / 1e-6 (LAMB),
// LARS eta 1e-3; LARS and LAMB exclude 1-d parameters from decay and adaptation) on multiplier-adapted
// gradients, written from the published rules.
void ref_step(const std::string& kind, RefParam& q, const Vec& g_mean, const Vec& r, int t, double beta3) {
  const size_t n = q.w.size();
  const double lr = 0.05, wd = 0.01, mu = 0.9, b1 = 0.9, b2 = 0.999;
  Vec mult = r;
  if (beta3 > 0) {
    if (q.p.empty()) q.p.assign(n, 0.0);
    for (size_t j = 0; j < n; ++j) {
      q.p[j] = beta3 * q.p[j] + (1 - beta3) * r[j];
      mult[j] = std::clamp(q.p[j] / (1 - std::pow(beta3, t)), 0.1, 1.0);
    }
  }
  Vec g(n);
  for (size_t j = 0; j < n; ++j) g[j] = mult[j] * g_mean[j];
  if (kind == "vr-sgd" || kind == "vr-momentum") {
    for (size_t j = 0; j < n; ++j) g[j] += wd * q.w[j];
    if (kind == "vr-momentum") {
      if (q.buf.empty())
        q.buf = g;
      else
        for (size_t j = 0; j < n; ++j) q.buf[j] = mu * q.buf[j] + g[j];
      g = q.buf;
    }
    for (size_t j = 0; j < n; ++j) q.w[j] -= lr * g[j];
  } else if (kind == "vr-adam" || kind == "vr-adamw") {
    if (q.m.empty()) q.m.assign(n, 0.0), q.v.assign(n, 0.0);
    const double eps = 1e-8, bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    for (size_t j = 0; j < n; ++j) {
      if (kind == "vr-adamw")
        q.w[j] -= lr * wd * q.w[j];
      else
        g[j] += wd * q.w[j];
      q.m[j] = b1 * q.m[j] + (1 - b1) * g[j];
      q.v[j] = b2 * q.v[j] + (1 - b2) * g[j] * g[j];
      q.w[j] -= lr * (q.m[j] / bc1) / (std::sqrt(q.v[j] / bc2) + eps);
    }
  } else if (kind == "vr-lars") {
    const double d_wd = q.is_1d ? 0.0 : wd;
    double local = 1.0;
    const double wn = norm2(q.w), gn = norm2(g);
    if (!q.is_1d && wn > 0 && gn > 0) local = 1e-3 * wn / (gn + d_wd * wn);
    Vec d(n);
    for (size_t j = 0; j < n; ++j) d[j] = local * (g[j] + d_wd * q.w[j]);
    if (q.buf.empty())
      q.buf = d;
    else
      for (size_t j = 0; j < n; ++j) q.buf[j] = mu * q.buf[j] + d[j];
    for (size_t j = 0; j < n; ++j) q.w[j] -= lr * q.buf[j];
  } else {  // vr-lamb
    if (q.m.empty()) q.m.assign(n, 0.0), q.v.assign(n, 0.0);
    const double eps = 1e-6, bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t), d_wd = q.is_1d ? 0.0 : wd;
    Vec u(n);
    for (size_t j = 0; j < n; ++j) {
      q.m[j] = b1 * q.m[j] + (1 - b1) * g[j];
      q.v[j] = b2 * q.v[j] + (1 - b2) * g[j] * g[j];
      u[j] = (q.m[j] / bc1) / (std::sqrt(q.v[j] / bc2) + eps) + d_wd * q.w[j];
    }
    double ratio = 1.0;
    const double wn = norm2(q.w), un = norm2(u);
    if (!q.is_1d && wn > 0 && un > 0) ratio = wn / un;
    for (size_t j = 0; j < n; ++j) q.w[j] -= lr * ratio * u[j];
  }
}

TEST(VrOptimizer, TwoStepsOfEachMatchNaiveReferences) {
  const int64_t k = 4;
  for (const std::string& kind : kKinds) {
    const bool adam_family = kind == "vr-adam" || kind == "vr-adamw" || kind == "vr-lamb";
    const double beta3 = adam_family ? 0.9 : 0.0;  // the defaults
    auto params = make_params(DType::f64, {{6, 4}, {4}});
    auto opt = make_vr_optimizer(kind, groups_of(params, 0.01), {.lr = 0.05, .momentum = 0.9});
    EXPECT_NE(opt->name().find("VR-"), std::string::npos);
    auto& gsnr = dynamic_cast<VrOptimizer&>(*opt).gsnr();
    EXPECT_EQ(*gsnr.options().beta3, beta3) << kind;
    std::vector<RefParam> ref;
    for (const Tensor& p : params)
      ref.push_back({.w = values(p), .buf = {}, .m = {}, .v = {}, .p = {}, .is_1d = p.dim() == 1});
    for (int t = 1; t <= 2; ++t) {
      auto grads = random_grads(params, k, DType::f64);
      feed(gsnr, params, grads);
      opt->step();
      for (size_t i = 0; i < params.size(); ++i) {
        std::vector<Vec> parts;
        for (const auto& part : grads) parts.push_back(values(part[i]));
        auto [g, r] = RefGsnr{}.ratio(parts);
        ref_step(kind, ref[i], g, r, t, beta3);
        EXPECT_LT(max_rel_diff(values(params[i]), ref[i].w), 1e-9) << kind << " step " << t << " param " << i;
      }
    }
  }
}

TEST(VrOptimizer, CheckpointRoundTripContinuesBitForBit) {
  auto a = make_params(DType::f32, {{5, 3}, {3}});
  std::vector<Tensor> b;
  for (const Tensor& p : a) b.push_back(p.detach().clone().requires_grad_(true));
  auto opt_a = make_vr_optimizer("vr-adam", groups_of(a, 0.0), {.lr = 0.01});
  auto grads = random_grads(a, 3, DType::f32);
  feed(dynamic_cast<VrOptimizer&>(*opt_a).gsnr(), a, grads);
  opt_a->step();
  NamedTensors state = opt_a->state_tensors();
  bool has_gsnr = false;
  for (const auto& [name, t] : state) has_gsnr |= name == "gsnr.param0.gsnr_momentum";
  EXPECT_TRUE(has_gsnr);
  for (size_t i = 0; i < a.size(); ++i) b[i].detach().copy_(a[i].detach());
  auto opt_b = make_vr_optimizer("vr-adam", groups_of(b, 0.0), {.lr = 0.01});
  opt_b->load_state_tensors(state);
  auto next = random_grads(a, 3, DType::f32);
  feed(dynamic_cast<VrOptimizer&>(*opt_a).gsnr(), a, next);
  feed(dynamic_cast<VrOptimizer&>(*opt_b).gsnr(), b, next);
  opt_a->step();
  opt_b->step();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(amax(abs(a[i] - b[i])).item(), 0.0);
  // A state without the GSNR momentum is refused, naming what is missing.
  NamedTensors partial;
  for (const auto& [name, t] : state)
    if (name != "gsnr.param1.gsnr_momentum") partial.emplace_back(name, t);
  test::expect_error([&] { opt_b->load_state_tensors(partial); }, {"missing [param1.gsnr_momentum]"});
}

TEST(VrOptimizer, FactoryRejectsUnknownKinds) {
  auto ps = make_params(DType::f32, {{2, 2}});
  test::expect_error([&] { make_vr_optimizer("vr-rmsprop", groups_of(ps, 0.0), {}); },
                     {"unknown VR optimizer 'vr-rmsprop'", "vr-lamb"});
  EXPECT_TRUE(is_vr_optimizer_kind("vr-lars"));
  EXPECT_FALSE(is_vr_optimizer_kind("lars"));
}

}  // namespace
}  // namespace nabla::vrgd

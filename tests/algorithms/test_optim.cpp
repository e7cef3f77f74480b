// Optimizers against hand-written scalar loops of the published update rules (the Ref* structs below never
// call the library), checkpoint round trips, gradient clipping, errors, and an optional parity run against
// torch.optim through Debian's /usr/bin/python3.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "algorithms/optim/clip.h"
#include "algorithms/optim/optimizer.h"
#include "testing.h"

namespace nabla::optim {
namespace {

using Vec = std::vector<double>;

double l2(const Vec& x) {
  double s = 0;
  for (double e : x) s += e * e;
  return std::sqrt(s);
}

// ---- references: one parameter's update, element by element ----------------------------------------------

struct RefSgd {
  double lr, momentum = 0, dampening = 0, wd = 0;
  bool nesterov = false;
  Vec w{}, buf{};
  void step(const Vec& g) {
    Vec d(w.size());
    for (size_t i = 0; i < w.size(); ++i) d[i] = g[i] + wd * w[i];
    if (momentum != 0) {
      if (buf.empty())
        buf = d;
      else
        for (size_t i = 0; i < w.size(); ++i) buf[i] = momentum * buf[i] + (1 - dampening) * d[i];
      for (size_t i = 0; i < w.size(); ++i) d[i] = nesterov ? d[i] + momentum * buf[i] : buf[i];
    }
    for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * d[i];
  }
};

struct RefAdam {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, wd = 0;
  bool decoupled = false;
  Vec w{}, m{}, v{};
  int t = 0;
  void step(const Vec& grad) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
    for (size_t i = 0; i < w.size(); ++i) {
      double g = grad[i];
      if (decoupled)
        w[i] -= lr * wd * w[i];
      else
        g += wd * w[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      w[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + eps);
    }
  }
};

// adapt: trust ratio applied; decay: weight decay applied (both false for excluded 1-D parameters).
struct RefLars {
  double lr, momentum, wd, eta, eps = 0;
  bool adapt = true, decay = true;
  Vec w{}, buf{};
  double last_local_lr = 0;
  void step(const Vec& g) {
    const double wd_eff = decay ? wd : 0.0;
    double local_lr = 1.0;
    const double wn = l2(w), gn = l2(g);
    if (adapt && wn > 0 && gn > 0) local_lr = eta * wn / (gn + wd_eff * wn + eps);
    last_local_lr = local_lr;
    Vec d(w.size());
    for (size_t i = 0; i < w.size(); ++i) d[i] = local_lr * (g[i] + wd_eff * w[i]);
    if (buf.empty())
      buf = d;
    else
      for (size_t i = 0; i < w.size(); ++i) buf[i] = momentum * buf[i] + d[i];
    for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * buf[i];
  }
};

struct RefLamb {
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-6, wd = 0;
  bool adapt = true, decay = true;
  Vec w{}, m{}, v{};
  int t = 0;
  double last_ratio = 0;
  void step(const Vec& g) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
    Vec r(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      r[i] = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps) + (decay ? wd : 0.0) * w[i];
    }
    const double wn = l2(w), rn = l2(r);
    last_ratio = adapt && wn > 0 && rn > 0 ? wn / rn : 1.0;
    for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * last_ratio * r[i];
  }
};

// Draws fresh gradients for every parameter, steps the optimizer and the references side by side, and
// checks the parameters (through the handles the caller holds) after every step.
template <class Ref>
void expect_matches_reference(Optimizer& opt, const std::vector<Tensor>& params, std::vector<Ref>& refs,
                              int steps, double tol = 1e-12) {
  ASSERT_EQ(params.size(), refs.size());
  for (size_t i = 0; i < params.size(); ++i) refs[i].w = params[i].to_double_vector();
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = test::randn64(params[i].shape(), false);
      params[i].set_grad(g);
      refs[i].step(g.to_double_vector());
    }
    opt.step();
    for (size_t i = 0; i < params.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(s + 1) + " param " + std::to_string(i));
      test::expect_close(params[i], refs[i].w, tol);
    }
  }
}

// ---- SGD -------------------------------------------------------------------------------------------------

TEST(OptimSgd, PlainStepIsLrTimesGradPlusWeightDecay) {
  std::vector<Tensor> params{test::randn64({3, 4}), test::randn64({5})};
  Sgd opt(params, {.lr = 0.1, .weight_decay = 0.01});
  std::vector<RefSgd> refs(2, RefSgd{.lr = 0.1, .wd = 0.01});
  expect_matches_reference(opt, params, refs, 3);
  EXPECT_EQ(opt.step_count(), 3);
}

TEST(OptimSgd, MomentumWithDampeningCopiesTheFirstGradient) {
  std::vector<Tensor> params{test::randn64({3, 4}), test::randn64({5})};
  Sgd opt(params, {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.02});
  std::vector<RefSgd> refs(2, RefSgd{.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .wd = 0.02});
  expect_matches_reference(opt, params, refs, 4);
}

TEST(OptimSgd, NesterovMomentum) {
  std::vector<Tensor> params{test::randn64({2, 3, 2}), test::randn64({4})};
  Sgd opt(params, {.lr = 0.1, .momentum = 0.8, .weight_decay = 1e-3, .nesterov = true});
  std::vector<RefSgd> refs(2, RefSgd{.lr = 0.1, .momentum = 0.8, .wd = 1e-3, .nesterov = true});
  expect_matches_reference(opt, params, refs, 4);
}

TEST(OptimSgd, UpdatesF32ParametersInPlace) {
  Tensor p = test::randn32({4, 3}).requires_grad_();
  Tensor same_handle = p;  // what a model would hold
  const void* data = p.data_ptr();
  Sgd opt({p}, {.lr = 0.5});
  Vec before = p.to_double_vector();
  Tensor g = test::randn32({4, 3});
  p.set_grad(g);
  opt.step();
  Vec gv = g.to_double_vector(), after = same_handle.to_double_vector();
  EXPECT_EQ(same_handle.data_ptr(), data);
  EXPECT_TRUE(same_handle.requires_grad());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_NEAR(after[i], before[i] - 0.5 * gv[i], 1e-6);
}

// ---- Adam, AdamW
// -------------------------------------------------------------------------------------------

TEST(OptimAdam, BiasCorrectedMomentsWithL2WeightDecay) {
  std::vector<Tensor> params{test::randn64({3, 4}), test::randn64({5})};
  Adam opt(params, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1});
  std::vector<RefAdam> refs(2, RefAdam{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .wd = 0.1});
  expect_matches_reference(opt, params, refs, 4);
}

TEST(OptimAdam, AdamWDecouplesTheDecay) {
  std::vector<Tensor> params{test::randn64({3, 4}), test::randn64({5})};
  AdamW opt(params, {.lr = 0.02, .weight_decay = 0.3});
  std::vector<RefAdam> refs(2, RefAdam{.lr = 0.02, .wd = 0.3, .decoupled = true});
  expect_matches_reference(opt, params, refs, 4);
}

TEST(OptimAdam, AdamWDefaultWeightDecayIsPyTorchs) {
  AdamW opt(std::vector<Tensor>{test::randn64({2})}, {.lr = 0.1});
  EXPECT_EQ(opt.groups()[0].weight_decay, 1e-2);
  Adam adam(std::vector<Tensor>{test::randn64({2})});
  EXPECT_EQ(adam.groups()[0].weight_decay, 0.0);
}

TEST(OptimAdam, ParametersWithoutGradAreSkippedAndKeepTheirOwnStepCount) {
  Tensor a = test::randn64({3}), b = test::randn64({2, 2});
  Adam opt({a, b}, {.lr = 0.1});
  RefAdam ra{.lr = 0.1, .w = a.to_double_vector()}, rb{.lr = 0.1, .w = b.to_double_vector()};
  for (int s = 0; s < 3; ++s) {
    Tensor ga = test::randn64({3}, false);
    a.set_grad(ga);
    ra.step(ga.to_double_vector());
    if (s == 0) {
      b.zero_grad();
    } else {  // b's first update uses bias correction for t = 1
      Tensor gb = test::randn64({2, 2}, false);
      b.set_grad(gb);
      rb.step(gb.to_double_vector());
    }
    opt.step();
    test::expect_close(a, ra.w, 1e-12);
    test::expect_close(b, rb.w, 1e-12);
  }
  for (const auto& [name, t] : opt.state_tensors()) {
    if (name == "group0.param0.step") {
      EXPECT_EQ(t.item(), 3);
    }
    if (name == "group0.param1.step") {
      EXPECT_EQ(t.item(), 2);
    }
  }
}

// ---- LARS
// --------------------------------------------------------------------------------------------------

TEST(OptimLars, TrustRatioOnMatricesAndPlainMomentumOnExcludedBiases) {
  Tensor w = test::randn64({4, 3}), bias = test::randn64({4});
  Lars opt({w, bias}, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02});
  std::vector<RefLars> refs{
      {.lr = 0.5, .momentum = 0.9, .wd = 0.05, .eta = 0.02},
      {.lr = 0.5, .momentum = 0.9, .wd = 0.05, .eta = 0.02, .adapt = false, .decay = false}};
  expect_matches_reference(opt, {w, bias}, refs, 4);
  EXPECT_NE(refs[0].last_local_lr, 1.0);
}

TEST(OptimLars, ExcludeOneDOffAdaptsBiasesToo) {
  Tensor w = test::randn64({4, 3}), bias = test::randn64({4});
  Lars opt({w, bias},
           {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.05, .eta = 0.02, .eps = 1e-8, .exclude_1d = false});
  std::vector<RefLars> refs(2, RefLars{.lr = 0.5, .momentum = 0.9, .wd = 0.05, .eta = 0.02, .eps = 1e-8});
  expect_matches_reference(opt, {w, bias}, refs, 3);
}

TEST(OptimLars, ZeroWeightGetsLocalLrOne) {
  Tensor w = zeros({3, 2}, {.dtype = DType::f64, .requires_grad = true});
  Lars opt({w}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  std::vector<RefLars> refs{{.lr = 0.1, .momentum = 0.9, .wd = 0.1, .eta = 1e-3}};
  expect_matches_reference(opt, {w}, refs, 2);
}

TEST(OptimLars, GroupExcludedFromAdaptationKeepsItsWeightDecay) {
  Tensor w = test::randn64({3, 3});
  ParamGroup g{.params = {w}, .weight_decay = 0.2, .exclude_from_adaptation = true};
  Lars opt(std::vector<ParamGroup>{g}, {.lr = 0.1, .momentum = 0.5});
  std::vector<RefLars> refs{{.lr = 0.1, .momentum = 0.5, .wd = 0.2, .eta = 1e-3, .adapt = false}};
  expect_matches_reference(opt, {w}, refs, 3);
}

// ---- LAMB
// --------------------------------------------------------------------------------------------------

TEST(OptimLamb, TrustRatioOnMatricesAndAdamStepOnExcludedNormScales) {
  Tensor w = test::randn64({5, 3}), scale = test::rand64({5}, 0.5, 1.5);
  Lamb opt({w, scale}, {.lr = 0.01, .beta1 = 0.85, .beta2 = 0.99, .weight_decay = 0.1});
  std::vector<RefLamb> refs{
      {.lr = 0.01, .beta1 = 0.85, .beta2 = 0.99, .wd = 0.1},
      {.lr = 0.01, .beta1 = 0.85, .beta2 = 0.99, .wd = 0.1, .adapt = false, .decay = false}};
  expect_matches_reference(opt, {w, scale}, refs, 4);
  EXPECT_NE(refs[0].last_ratio, 1.0);
}

TEST(OptimLamb, ExcludeOneDOffAdaptsEveryParameter) {
  Tensor w = test::randn64({2, 3}), scale = test::randn64({3});
  Lamb opt({w, scale}, {.lr = 0.05, .weight_decay = 0.02, .exclude_1d = false});
  std::vector<RefLamb> refs(2, RefLamb{.lr = 0.05, .wd = 0.02});
  expect_matches_reference(opt, {w, scale}, refs, 3);
}

TEST(OptimLamb, ZeroWeightGetsRatioOne) {
  Tensor w = zeros({2, 4}, {.dtype = DType::f64, .requires_grad = true});
  Lamb opt({w}, {.lr = 0.1, .weight_decay = 0.0});
  std::vector<RefLamb> refs{{.lr = 0.1, .wd = 0.0}};
  expect_matches_reference(opt, {w}, refs, 2);
  EXPECT_NE(refs[0].last_ratio, 1.0);  // the weight is no longer zero after the first step
}

TEST(OptimLamb, SplitDecayGroupsMatchesTheDefaultExclusion) {
  Tensor w = test::randn64({4, 2}), b = test::randn64({4});
  Tensor w2 = w.detach().clone().requires_grad_(), b2 = b.detach().clone().requires_grad_();
  Lamb by_dim({w, b}, {.lr = 0.01, .weight_decay = 0.1});
  Lamb by_groups(split_decay_groups({{"fc.weight", w2}, {"fc.bias", b2}}),
                 {.lr = 0.01, .weight_decay = 0.1, .exclude_1d = false});
  for (int s = 0; s < 3; ++s) {
    Tensor gw = test::randn64({4, 2}, false), gb = test::randn64({4}, false);
    w.set_grad(gw), w2.set_grad(gw), b.set_grad(gb), b2.set_grad(gb);
    by_dim.step();
    by_groups.step();
  }
  test::expect_close(w2, w, 1e-14);
  test::expect_close(b2, b, 1e-14);
}

// ---- groups, lr, zero_grad -------------------------------------------------------------------------------

TEST(OptimGroups, SplitDecayGroupsByDim) {
  Tensor w = test::randn64({4, 2}), b = test::randn64({4}), s = test::randn64({});
  auto groups = split_decay_groups({{"w", w}, {"b", b}, {"s", s}}, 0.05, 0.3);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].names, (std::vector<std::string>{"w"}));
  EXPECT_EQ(groups[0].weight_decay, 0.05);
  EXPECT_FALSE(groups[0].exclude_from_adaptation);
  EXPECT_EQ(groups[1].names, (std::vector<std::string>{"b", "s"}));
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_TRUE(groups[1].exclude_from_adaptation);
  EXPECT_EQ(groups[1].lr, 0.3);
  EXPECT_EQ(split_decay_groups({{"w", w}}).size(), 1u);
}

TEST(OptimGroups, GroupsTakeDefaultsFromOptionsAndSetLrScales) {
  Tensor a = test::randn64({3}), b = test::randn64({3});
  Sgd opt(std::vector<ParamGroup>{{.params = {a}}, {.params = {b}, .weight_decay = 0.5, .lr_scale = 0.1}},
          {.lr = 0.2, .weight_decay = 0.01});
  EXPECT_EQ(opt.groups()[0].lr, 0.2);
  EXPECT_EQ(opt.groups()[0].weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(opt.groups()[1].lr, 0.02);
  EXPECT_EQ(opt.groups()[1].weight_decay, 0.5);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.2);
  opt.set_lr(1.0);
  EXPECT_EQ(opt.groups()[0].lr, 1.0);
  EXPECT_DOUBLE_EQ(opt.groups()[1].lr, 0.1);
  EXPECT_DOUBLE_EQ(opt.lr(), 1.0);
  // The new lr is what the next step uses.
  Vec av = a.to_double_vector(), bv = b.to_double_vector();
  Tensor ga = test::randn64({3}, false), gb = test::randn64({3}, false);
  a.set_grad(ga), b.set_grad(gb);
  opt.step();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.to_double_vector()[i], av[i] - 1.0 * (ga.to_double_vector()[i] + 0.01 * av[i]), 1e-14);
    EXPECT_NEAR(b.to_double_vector()[i], bv[i] - 0.1 * (gb.to_double_vector()[i] + 0.5 * bv[i]), 1e-14);
  }
}

TEST(OptimGroups, ZeroGradDropsEveryGradient) {
  Tensor a = test::randn64({3}), b = test::randn64({2, 2});
  Adam opt({a, b});
  sum(a * a + 1.0).backward();
  sum(b * 3.0).backward();
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  Vec before = a.to_double_vector();
  opt.step();  // nothing has a grad: nothing moves
  test::expect_close(a, before, 0.0);
  EXPECT_EQ(opt.state_tensors().size(), 1u);  // only "step"
}

// ---- checkpoints -----------------------------------------------------------------------------------------

// Runs `steps` steps of a and b on the same parameters values and grads.
template <class Opt, class Options>
void expect_state_round_trip(Options o, const std::vector<std::string>& expected_names) {
  Tensor w = test::randn64({3, 4}), bias = test::randn64({4});
  Opt a({w, bias}, o);
  for (int s = 0; s < 3; ++s) {
    w.set_grad(test::randn64({3, 4}, false));
    bias.set_grad(test::randn64({4}, false));
    a.step();
  }
  NamedTensors state = a.state_tensors();
  std::vector<std::string> names;
  for (const auto& [n, t] : state) names.push_back(n);
  EXPECT_EQ(names, expected_names);

  Tensor w2 = w.detach().clone().requires_grad_(), bias2 = bias.detach().clone().requires_grad_();
  Opt b({w2, bias2}, o);
  b.load_state_tensors(state);
  EXPECT_EQ(b.step_count(), 3);
  // The saved copies must not move when `a` keeps training.
  Tensor gw = test::randn64({3, 4}, false), gb = test::randn64({4}, false);
  w.set_grad(gw), bias.set_grad(gb), w2.set_grad(gw), bias2.set_grad(gb);
  a.step();
  b.step();
  test::expect_close(w2, w, 0.0);
  test::expect_close(bias2, bias, 0.0);
}

TEST(OptimState, RoundTripReproducesTheNextStepExactly) {
  const std::vector<std::string> adam_names{"step",
                                            "group0.param0.step",
                                            "group0.param0.exp_avg",
                                            "group0.param0.exp_avg_sq",
                                            "group0.param1.step",
                                            "group0.param1.exp_avg",
                                            "group0.param1.exp_avg_sq"};
  const std::vector<std::string> momentum_names{"step", "group0.param0.step", "group0.param0.momentum_buffer",
                                                "group0.param1.step", "group0.param1.momentum_buffer"};
  expect_state_round_trip<Sgd>(SgdOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}, momentum_names);
  expect_state_round_trip<Sgd>(SgdOptions{.lr = 0.1}, {"step", "group0.param0.step", "group0.param1.step"});
  expect_state_round_trip<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.1}, adam_names);
  expect_state_round_trip<AdamW>(AdamWOptions{.lr = 0.01}, adam_names);
  expect_state_round_trip<Lars>(LarsOptions{.lr = 0.1, .weight_decay = 0.01}, momentum_names);
  expect_state_round_trip<Lamb>(LambOptions{.lr = 0.01}, adam_names);
}

TEST(OptimState, LoadListsMissingUnexpectedAndMismatchedNames) {
  Tensor w = test::randn64({3, 4});
  Adam opt({w});
  w.set_grad(test::randn64({3, 4}, false));
  opt.step();
  NamedTensors state = opt.state_tensors();
  NamedTensors bad;
  for (auto& [n, t] : state) {
    if (n == "group0.param0.exp_avg_sq") continue;  // missing
    if (n == "group0.param0.exp_avg")
      bad.emplace_back(n, zeros({4, 3}, {.dtype = DType::f64}));
    else
      bad.emplace_back(n, t);
  }
  bad.emplace_back("group0.param7.exp_avg", zeros({3, 4}, {.dtype = DType::f64}));
  bad.emplace_back("group0.param0.momentum_buffer", zeros({3, 4}, {.dtype = DType::f64}));
  test::expect_error([&] { opt.load_state_tensors(bad); },
                     {"Adam", "load_state_tensors", "missing [group0.param0.exp_avg_sq]",
                      "group0.param7.exp_avg", "group0.param0.momentum_buffer",
                      "mismatched [group0.param0.exp_avg (expected [3,4] f64, got [4,3] f64)]"});
  test::expect_error([&] { opt.load_state_tensors({}); }, {"missing [step]"});
  // A failed load leaves the state as it was.
  EXPECT_EQ(opt.state_tensors().size(), state.size());
}

// ---- clip_grad_norm --------------------------------------------------------------------------------------

TEST(OptimClip, ScalesEveryGradByTheGlobalNormWhenAbove) {
  Tensor a = test::randn64({3, 4}), b = test::randn64({5}), no_grad = test::randn64({2});
  Tensor ga = test::randn64({3, 4}, false) * 4.0, gb = test::randn64({5}, false) * 4.0;
  a.set_grad(ga.clone()), b.set_grad(gb.clone());
  Vec va = ga.to_double_vector(), vb = gb.to_double_vector();
  double sq = 0;
  for (double e : va) sq += e * e;
  for (double e : vb) sq += e * e;
  const double total = std::sqrt(sq), max_norm = 1.5;
  ASSERT_GT(total, max_norm);
  EXPECT_NEAR(clip_grad_norm({a, b, no_grad}, max_norm), total, 1e-12);
  const double coef = max_norm / (total + 1e-6);
  for (double& e : va) e *= coef;
  for (double& e : vb) e *= coef;
  test::expect_close(a.grad(), va, 1e-12);
  test::expect_close(b.grad(), vb, 1e-12);
  EXPECT_FALSE(no_grad.grad().defined());
}

TEST(OptimClip, LeavesGradsAloneWhenBelowAndWorksOnF32) {
  Tensor a = test::randn32({4}).requires_grad_();
  Tensor g = test::randn32({4});
  a.set_grad(g.clone());
  const double n = l2(g.to_double_vector());
  EXPECT_NEAR(clip_grad_norm({a}, n * 2), n, 1e-5);
  test::expect_close(a.grad(), g, 0.0);
  EXPECT_EQ(clip_grad_norm({test::randn64({2})}, 1.0), 0.0);  // no grads at all
}

TEST(OptimClip, NonFiniteNormClipsNothing) {
  Tensor a = test::randn64({3});
  a.set_grad(from_vector({1.0, INFINITY, 2.0}, {3}, {.dtype = DType::f64}));
  EXPECT_TRUE(std::isinf(clip_grad_norm({a}, 1.0)));
  EXPECT_EQ(a.grad().to_double_vector(), (Vec{1.0, INFINITY, 2.0}));
}

// ---- errors ----------------------------------------------------------------------------------------------

TEST(OptimErrors, BadOptionsAndGroups) {
  Tensor p = test::randn64({3}), q = test::randn64({2});
  test::expect_error([&] { Sgd({p}, {.momentum = 0.0, .nesterov = true}); },
                     {"SGD", "nesterov needs momentum > 0"});
  test::expect_error([&] { Sgd({p}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
                     {"SGD", "dampening 0.1"});
  test::expect_error([&] { Sgd({p}, {.lr = -1.0}); }, {"SGD", "group 0", "lr must be >= 0", "-1"});
  test::expect_error([&] { Adam({p}, {.beta1 = 1.0}); }, {"Adam", "beta1 must be in [0, 1)"});
  test::expect_error([&] { AdamW({p}, {.beta2 = -0.1}); }, {"AdamW", "beta2"});
  test::expect_error([&] { Lamb({p}, {.eps = -1.0}); }, {"LAMB", "eps must be >= 0"});
  test::expect_error([&] { Lars({p}, {.eta = 0.0}); }, {"LARS", "eta must be > 0"});
  test::expect_error([&] { Adam({p, q, p}); }, {"Adam", "group 0 param 2", "more than once"});
  test::expect_error(
      [&] {
        Adam(std::vector<ParamGroup>{{.params = {p}, .names = {"a", "b"}}});
      },
      {"Adam", "2 names for 1 parameters"});
  test::expect_error(
      [&] {
        Adam(
            std::vector<ParamGroup>{{.params = {p}, .names = {"fc.bias"}}, {.params = {randint(0, 3, {2})}}});
      },
      {"Adam", "group 1 param 0", "dtype i64"});
  test::expect_error([&] { Adam(std::vector<ParamGroup>{}); }, {"Adam", "no parameter groups"});
  test::expect_error([&] { Adam(std::vector<ParamGroup>{{.params = {p}, .lr_scale = 0}}); }, {"lr_scale"});
  Sgd ok({p}, {.lr = 0.1});
  test::expect_error([&] { ok.set_lr(-0.5); }, {"SGD", "set_lr"});
}

// ---- parity with torch.optim (optional)
// --------------------------------------------------------------------

constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-torch; never the one on PATH

bool torch_available() {
  return std::system((std::string(kPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
}

struct ParityCase {
  std::string optimizer;
  nlohmann::json options;
  std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> make;
};

TEST(OptimTorchParity, FiveStepsOfSgdAdamAdamWMatchTorchOptim) {
  if (!torch_available()) GTEST_SKIP() << kPython << " cannot import torch";
  std::vector<ParityCase> cases{
      {"sgd",
       {{"lr", 0.1}, {"momentum", 0.9}, {"dampening", 0.0}, {"weight_decay", 0.01}, {"nesterov", true}},
       [](std::vector<Tensor> p) {
         return std::make_unique<Sgd>(
             p, SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"sgd",
       {{"lr", 0.05}, {"momentum", 0.8}, {"dampening", 0.25}, {"weight_decay", 0.1}, {"nesterov", false}},
       [](std::vector<Tensor> p) {
         return std::make_unique<Sgd>(
             p, SgdOptions{.lr = 0.05, .momentum = 0.8, .dampening = 0.25, .weight_decay = 0.1});
       }},
      {"adam",
       {{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.99}, {"eps", 1e-7}, {"weight_decay", 0.05}},
       [](std::vector<Tensor> p) {
         return std::make_unique<Adam>(
             p, AdamOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-7, .weight_decay = 0.05});
       }},
      {"adamw",
       {{"lr", 0.02}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0.1}},
       [](std::vector<Tensor> p) {
         return std::make_unique<AdamW>(p, AdamWOptions{.lr = 0.02, .weight_decay = 0.1});
       }},
  };
  const std::vector<Shape> shapes{{3, 4}, {4}, {}};
  constexpr int kSteps = 5;

  nlohmann::json input = nlohmann::json::array();
  std::vector<std::vector<Vec>> ours;  // [case][param] final values
  for (const ParityCase& c : cases) {
    std::vector<Tensor> params;
    nlohmann::json jparams = nlohmann::json::array(), jgrads = nlohmann::json::array();
    for (const Shape& s : shapes) {
      params.push_back(test::randn64(s));
      jparams.push_back({{"shape", s}, {"values", params.back().to_double_vector()}});
    }
    auto opt = c.make(params);
    for (int step = 0; step < kSteps; ++step) {
      nlohmann::json step_grads = nlohmann::json::array();
      for (Tensor& p : params) {
        Tensor g = test::randn64(p.shape(), false);
        p.set_grad(g);
        step_grads.push_back(g.to_double_vector());
      }
      jgrads.push_back(step_grads);
      opt->step();
    }
    input.push_back(
        {{"optimizer", c.optimizer}, {"options", c.options}, {"params", jparams}, {"grads", jgrads}});
    ours.emplace_back();
    for (Tensor& p : params) ours.back().push_back(p.to_double_vector());
  }

  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = "nabla_optim_parity_" + std::to_string(::getpid());
  const auto in_path = dir / (tag + "_in.json"), out_path = dir / (tag + "_out.json");
  std::ofstream(in_path) << input.dump();
  const std::string script = std::string(NABLA_SOURCE_DIR) + "/tests/algorithms/torch_optim_reference.py";
  const std::string cmd =
      std::string(kPython) + " " + script + " " + in_path.string() + " " + out_path.string();
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "failed: " << cmd;
  nlohmann::json torch_out = nlohmann::json::parse(std::ifstream(out_path));
  std::filesystem::remove(in_path);
  std::filesystem::remove(out_path);

  ASSERT_EQ(torch_out.size(), cases.size());
  for (size_t c = 0; c < cases.size(); ++c)
    for (size_t p = 0; p < shapes.size(); ++p) {
      Vec theirs = torch_out[c][p].get<Vec>();
      ASSERT_EQ(theirs.size(), ours[c][p].size());
      for (size_t i = 0; i < theirs.size(); ++i)
        EXPECT_NEAR(ours[c][p][i], theirs[i], 1e-6) << cases[c].optimizer << " case " << c << " param " << p;
    }
}

}  // namespace
}  // namespace nabla::optim

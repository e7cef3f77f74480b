// The ABCP LSTM controller and its REINFORCE update (see abcp_controller.h for the maths and decisions).
#include "algorithms/pruning/abcp_controller.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <numbers>
#include <sstream>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/reduce.h"

namespace nabla::algorithms::pruning {

ActionLayout ActionLayout::from(const PruneStructure& s) {
  ActionLayout l;
  l.num_convs = static_cast<int>(s.convs.size());
  for (const auto& b : s.blocks) {
    l.block_first.push_back(s.conv_slot[b.first_conv]);
    l.block_second.push_back(s.conv_slot[b.second_conv]);
  }
  return l;
}

AbcpController::AbcpController(ActionLayout layout, ControllerOptions o)
    : nn::Module("AbcpController"), layout_(std::move(layout)), o_(o), rng_(o.seed) {
  NABLA_CHECK(layout_.num_convs > 0, "abcp controller: no prunable convs");
  NABLA_CHECK(layout_.block_first.size() == layout_.block_second.size(), "abcp controller: bad block layout");
  const int h = o_.hidden;
  lstm_ = register_module("lstm", std::make_shared<nn::LSTMCell>(h, h, o_.init));
  auto lin = [&](const char* name, int out) {
    auto m = register_module(name, std::make_shared<nn::Linear>(h, out, false));
    NoGradGuard ng;
    m->weight.copy_(uniform(m->weight.shape(), -o_.init, o_.init));
    return m;
  };
  w_res_ = lin("w_res", 2);
  w_mu_ = lin("w_mu", 1);
  w_rho_ = lin("w_rho", 1);
  auto emb = [&](const char* name, int rows) {
    return register_parameter(name, uniform({rows, h}, -o_.init, o_.init, {.requires_grad = true}));
  };
  g_emb_ = emb("g_emb", 1);
  w_resemb_ = emb("w_resemb", 2);
  w_emb_ = emb("w_emb", 10);
  adam_ = std::make_unique<optim::Adam>(
      parameters(), optim::AdamOptions{.lr = o_.lr, .beta1 = o_.adam_beta1, .eps = o_.adam_eps});
}

ControllerSample AbcpController::run(bool greedy) {
  const double tc = o_.tanh_constant;
  const double half_log_2pi = 0.5 * std::log(2 * std::numbers::pi);
  std::vector<int> first_of(layout_.num_convs, -1), second_of(layout_.num_convs, -1);
  for (size_t b = 0; b < layout_.block_first.size(); ++b) {
    first_of[layout_.block_first[b]] = static_cast<int>(b);
    second_of[layout_.block_second[b]] = static_cast<int>(b);
  }
  ControllerSample out;
  out.action.ratios.assign(layout_.num_convs, 0.0);
  out.action.prune_block.assign(layout_.block_first.size(), 0);
  Tensor x = g_emb_;
  nn::LSTMState st;
  Tensor logp = zeros({});
  std::normal_distribution<double> normal01(0, 1);
  std::uniform_real_distribution<double> u01(0, 1);
  // one Gaussian ratio decision; `counted` = its log-prob enters the loss
  auto ratio_step = [&](int slot, bool counted) {
    st = lstm_->forward_step(x, st);
    Tensor mu = tanh(w_mu_->forward(st.h)) * (2 * tc);
    Tensor sigma = sqrt(exp(tanh(w_rho_->forward(st.h)) * tc)) + 0.1;
    const double m = mu.item<double>(), s = sigma.item<double>();
    const double u = greedy ? m : m + s * normal01(rng_);
    const double p = std::clamp(u, 0.0, o_.max_ratio);
    out.action.ratios[slot] = p;
    const double v = o_.original_bugs ? p : u;
    Tensor z = (scalar_like(v, mu) - mu) / sigma;
    Tensor lp = sum(z * z * -0.5 - log(sigma)) - half_log_2pi;
    out.entropy += 0.5 * std::log(2 * std::numbers::pi * std::numbers::e * s * s);
    if (counted) logp = o_.original_bugs ? logp + lp : logp + lp;  // original: +log N in a -log pi sum
    const int bucket =
        o_.original_bugs ? static_cast<int>(std::lround(p)) : std::min(9, static_cast<int>(10 * p));
    x = w_emb_.narrow(0, bucket, 1);
  };
  for (int l = 0; l < layout_.num_convs; ++l) {
    if (first_of[l] >= 0) {
      const int b = first_of[l];
      st = lstm_->forward_step(x, st);
      Tensor z = tanh(w_res_->forward(st.h)) * tc;  // [1, 2]
      Tensor logits = z.reshape({2});
      Tensor lse = logsumexp(logits);
      std::vector<double> zv = logits.to_vector<double>();
      const double l0 = zv[0] - lse.item<double>(), l1 = zv[1] - lse.item<double>();
      const double p1 = std::exp(l1);
      out.block_prune_prob.push_back(p1);
      const int choice = greedy ? (p1 > 0.5) : (u01(rng_) < p1);
      out.action.prune_block[b] = choice;
      Tensor lp = logits.narrow(0, choice, 1).reshape({}) - lse;
      out.entropy += -(std::exp(l0) * l0 + p1 * l1);
      // original: the sum holds -log pi(b) for blocks (cross-entropy), multiplied by +A below
      logp = o_.original_bugs ? logp - lp : logp + lp;
      x = w_resemb_.narrow(0, choice, 1);
      if (choice) {
        out.action.ratios[l] = 1.0;
      } else {
        ratio_step(l, true);
      }
    } else if (second_of[l] >= 0) {
      if (out.action.prune_block[second_of[l]]) {
        out.action.ratios[l] = 1.0;
      } else {
        ratio_step(l, true);
      }
    } else {
      ratio_step(l, !o_.original_bugs);
    }
  }
  out.log_prob = logp;
  return out;
}

ControllerSample AbcpController::sample() { return run(false); }

PruneAction AbcpController::mode() {
  NoGradGuard ng;
  return run(true).action;
}

double AbcpController::update(const ControllerSample& evaluated, double reward) {
  NABLA_CHECK(std::isfinite(reward), "abcp controller: reward ", reward, " is not finite");
  // original: the update re-samples, so the reward is credited to a fresh action
  ControllerSample fresh;
  const ControllerSample& s = o_.original_bugs ? (fresh = sample()) : evaluated;
  const double r = reward + o_.entropy_weight * s.entropy;
  if (!baseline_set_ && !o_.original_bugs) baseline_ = r;  // first reward (original: from 0)
  baseline_set_ = true;
  baseline_ -= (1 - o_.baseline_decay) * (baseline_ - r);
  const double adv = r - baseline_;
  // fixed: minimise -A sum log pi; original: minimise +A (sum of -log pi(b) and +log N(p))
  Tensor loss = o_.original_bugs ? s.log_prob * adv : s.log_prob * -adv;
  adam_->zero_grad();
  if (!loss.requires_grad()) return adv;  // original mode with no counted decision: nothing to learn
  loss.backward();
  adam_->step();
  return adv;
}

std::string rng_to_string(const std::mt19937_64& rng) {
  std::ostringstream os;
  os << rng;
  return os.str();
}

std::mt19937_64 rng_from_string(const std::string& text, const std::string& what) {
  std::istringstream is(text);
  std::mt19937_64 rng;
  is >> rng;
  NABLA_CHECK(!is.fail() && (is >> std::ws).eof(), what, " is not a saved mt19937_64 state (", text.size(),
              " characters)");
  return rng;
}

std::string double_to_string(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  NABLA_CHECK(ec == std::errc(), "cannot format ", v);
  return std::string(buf, end);
}

double double_from_string(const std::string& text, const std::string& what) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  NABLA_CHECK(ec == std::errc() && end == text.data() + text.size(), what, " is '", text,
              "', expected a number");
  return v;
}

void AbcpController::save_state(std::map<std::string, std::string>& out, const std::string& prefix) const {
  out[prefix + "baseline"] = double_to_string(baseline_);
  out[prefix + "baseline_set"] = baseline_set_ ? "1" : "0";
  out[prefix + "rng"] = rng_to_string(rng_);
}

void AbcpController::load_state(const std::map<std::string, std::string>& in, const std::string& prefix,
                                const std::string& source) {
  auto get = [&](const std::string& key) -> const std::string& {
    auto it = in.find(prefix + key);
    NABLA_CHECK(it != in.end(), source, ": has no field '", prefix + key, "'");
    return it->second;
  };
  const std::string where = source + ": field '" + prefix;
  baseline_ = double_from_string(get("baseline"), where + "baseline'");
  const std::string& set = get("baseline_set");
  NABLA_CHECK(set == "0" || set == "1", where, "baseline_set' is '", set, "', expected 0 or 1");
  baseline_set_ = set == "1";
  rng_ = rng_from_string(get("rng"), where + "rng'");
}

}  // namespace nabla::algorithms::pruning

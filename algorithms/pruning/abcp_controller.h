// The ABCP controller: an ENAS-style LSTM policy that emits, conv by conv, a keep/prune decision for each
// residual block (categorical head) and a channel-pruning ratio for each conv (Gaussian head), trained by
// REINFORCE with an exponential-moving-average baseline (the brief's §1.4, §1.5, §1.7).
//
//   x_0 = g_emb; (c, h) = LSTM(x, c, h) at every decision
//   block:  z = 1.5 tanh(h W_res), b ~ Categorical(softmax z), next x = W_resemb[b]
//   ratio:  mu = 2 * 1.5 tanh(h w_mu), sigma = 0.1 + sqrt(exp(1.5 tanh(h w_rho))), u ~ N(mu, sigma^2),
//           p = clip(u, 0, max_ratio), next x = W_emb[bucket(p)]
//   R'  = R + entropy_weight * H(pi);  baseline b <- b - (1 - decay)(b - R');  advantage A = R' - b
//   loss = -A * sum over every sampled action of log pi(action);  Adam(lr 1e-3, beta1 0, eps 1e-3)
//
// Decisions (fixed behaviour, the default) against the original code's anomalies (§1.11), each reproduced
// by `original_bugs = true`:
//   1. sign: one sign for all actions (loss = -A sum log pi). Original: -log pi(b) for blocks but +log N(u)
//      for ratios in the sum that is multiplied by A (gradient ascent on the ratio log-likelihood of bad
//      samples).
//   2. every ratio's log-prob enters the loss. Original: stem, down-sampling and neck ratios left out.
//   3. credit: the update uses the log-probs of the action that was evaluated. Original: update() re-samples
//      a fresh action and credits the reward to it.
//   the Gaussian log-density is of the unclipped draw u (clip is a deterministic function of u); original:
//   of the clipped p. Next-input embedding: bucket = min(9, floor(10 p)); original: round(p) (0 or 1).
#pragma once
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "algorithms/pruning/darknet_pruning.h"
#include "models/nn/layers.h"
#include "models/nn/rnn.h"

namespace nabla::algorithms::pruning {

struct ControllerOptions {
  int hidden = 64;
  double init = 0.1;  // U(-0.1, 0.1), as ENAS
  double tanh_constant = 1.5;
  double entropy_weight = 1e-4;
  double baseline_decay = 0.99;
  double lr = 1e-3, adam_beta1 = 0.0, adam_eps = 1e-3;
  double max_ratio = 0.9;
  bool original_bugs = false;
  uint64_t seed = 1;
};

// What the controller decides over: the prunable convs in order and which slots start / end a block.
struct ActionLayout {
  int num_convs = 0;
  std::vector<int> block_first;   // conv slot of each block's first conv
  std::vector<int> block_second;  // conv slot of each block's second conv
  static ActionLayout from(const PruneStructure& s);
};

struct ControllerSample {
  PruneAction action;
  Tensor log_prob;                       // scalar, with graph: the sum the update uses (per the mode)
  double entropy = 0;                    // H(pi) of the sampled decisions (no gradient)
  std::vector<double> block_prune_prob;  // pi(prune) at each block (for logs)
};

// Text forms of a generator's state and of a double (exact round trip); the readers throw naming `what`.
std::string rng_to_string(const std::mt19937_64& rng);
std::mt19937_64 rng_from_string(const std::string& text, const std::string& what);
std::string double_to_string(double v);
double double_from_string(const std::string& text, const std::string& what);

class AbcpController : public nn::Module {
 public:
  AbcpController(ActionLayout layout, ControllerOptions o = {});
  ControllerSample sample();
  // The action with the most likely decisions (argmax blocks, mu clipped): the policy's mode.
  PruneAction mode();
  // One REINFORCE step for `s` evaluated with `reward`; returns the advantage used.
  double update(const ControllerSample& s, double reward);
  double baseline() const { return baseline_; }
  // What a resumed search needs beyond the parameters (state_dict) and the Adam state (optimizer()): the
  // EMA baseline and the sampling generator, as text entries (keys "<prefix>baseline",
  // "<prefix>baseline_set",
  // "<prefix>rng"); load_state throws naming `source` when one is missing or malformed.
  void save_state(std::map<std::string, std::string>& out, const std::string& prefix) const;
  void load_state(const std::map<std::string, std::string>& in, const std::string& prefix,
                  const std::string& source);
  optim::Optimizer& optimizer() { return *adam_; }
  const ControllerOptions& options() const { return o_; }

 private:
  ControllerSample run(bool greedy);
  ActionLayout layout_;
  ControllerOptions o_;
  std::shared_ptr<nn::LSTMCell> lstm_;
  std::shared_ptr<nn::Linear> w_res_, w_mu_, w_rho_;
  Tensor g_emb_, w_resemb_, w_emb_;
  std::unique_ptr<optim::Optimizer> adam_;
  std::mt19937_64 rng_;
  double baseline_ = 0;
  bool baseline_set_ = false;
};

}  // namespace nabla::algorithms::pruning

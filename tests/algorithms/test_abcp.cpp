// ABCP model surgery (algorithms/pruning/darknet_pruning.h): masked network == physically shrunk network
// on fresh random inputs, FLOPs / parameters against hand-computed counts, the structure of YOLOv3
// (23 blocks, 72 prunable convs, stage tie groups), and the exported .cfg / .weights loading back.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "algorithms/pruning/abcp_controller.h"
#include "algorithms/pruning/abcp_search.h"
#include "algorithms/pruning/darknet_pruning.h"
#include "autograd/autograd.h"
#include "models/darknet/cfg.h"
#include "models/darknet/network.h"
#include "models/darknet/weights.h"
#include "ops/conv.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "darknet_testing.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;
using namespace models::darknet;
using namespace algorithms::pruning;

// A miniature YOLOv3: stem, two stages of residual blocks, two [yolo] heads joined by route + upsample.
const char* kMiniYolo = R"(
[net]
width=32
height=32
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[shortcut]
from=-3
activation=linear
[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[shortcut]
from=-3
activation=linear
[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky
[shortcut]
from=-3
activation=linear
[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=3,4,5
anchors=4,5, 8,9, 12,10, 16,20, 20,14, 30,28
classes=2
num=6
[route]
layers=-3
[upsample]
stride=2
[route]
layers=-1,7
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,10, 16,20, 20,14, 30,28
classes=2
num=6
)";

void randomize(DarknetNetwork& net, uint64_t seed) {
  test::randomize_darknet(net, seed, test::BnScales::signed_normal);
}

double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].shape(), b[i].shape());
    std::vector<double> x = a[i].to_vector<double>(), y = b[i].to_vector<double>();
    for (size_t j = 0; j < x.size(); ++j) m = std::max(m, std::fabs(x[j] - y[j]));
  }
  return m;
}

TEST(AbcpSurgery, FindsBlocksAndStageTieGroupsOfTheMiniYolo) {
  DarknetNetwork net(parse_cfg(kMiniYolo, "mini"), false);
  PruneStructure s = analyze(net);
  EXPECT_EQ(s.convs.size(), 11u);  // 13 convs, 2 detection outputs without BN
  ASSERT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(s.blocks[1].first_conv, 5);
  EXPECT_EQ(s.blocks[1].shortcut, 7);
  ASSERT_EQ(s.tie_groups.size(), 2u);
  EXPECT_EQ(s.tie_groups[0], (std::vector<int>{1, 3, 6}));
  EXPECT_EQ(s.tie_groups[1], (std::vector<int>{8, 10}));
  // tying: the largest ratio below 1 of the group, pruned blocks at 1
  PruneAction a;
  a.ratios.assign(11, 0.1);
  a.ratios[s.conv_slot[3]] = 0.6;
  a.prune_block = {0, 1, 0};
  PruneAction r = resolve(s, a);
  EXPECT_DOUBLE_EQ(r.ratios[s.conv_slot[1]], 0.6);
  EXPECT_DOUBLE_EQ(r.ratios[s.conv_slot[3]], 0.6);
  EXPECT_DOUBLE_EQ(r.ratios[s.conv_slot[5]], 1.0);
  EXPECT_DOUBLE_EQ(r.ratios[s.conv_slot[6]], 1.0);
  EXPECT_DOUBLE_EQ(r.ratios[s.conv_slot[8]], 0.1);
  a.ratios.pop_back();
  EXPECT_THROW(resolve(s, a), Error);
}

TEST(AbcpSurgery, Yolov3HasThe23BlocksAnd72PrunableConvsOfThePaper) {
  const std::string cfg = "/usr/share/darknet/cfg/yolov3.cfg";
  if (!fs::exists(cfg)) GTEST_SKIP() << "Debian's darknet cfgs are not installed";
  auto net = DarknetNetwork::from_file(cfg, false);
  PruneStructure s = analyze(*net);
  EXPECT_EQ(s.convs.size(), 72u);
  EXPECT_EQ(s.blocks.size(), 23u);
  std::vector<size_t> sizes;
  for (const auto& g : s.tie_groups) sizes.push_back(g.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 3, 9, 9, 5}));  // down-sampling conv + one per block
  // pjreddie's table: YOLOv3-608 140.69 BFLOPs, YOLOv3-416 65.86 (the ABCP README's 65.5 is TensorFlow's
  // count)
  EXPECT_NEAR(count_cost(*net).gflops(), 140.69, 0.01);
}

TEST(AbcpSurgery, KeepCountFollowsTheOriginalThreshold) {
  EXPECT_EQ(keep_count(32, 0.0), 32);
  EXPECT_EQ(keep_count(32, 0.9), 4);  // sorted|gamma|[int(3.2)] keeps 4
  EXPECT_EQ(keep_count(32, 0.5), 17);
  EXPECT_EQ(keep_count(32, 1.0), 0);
}

TEST(AbcpSurgery, CostMatchesAHandComputedNet) {
  const char* cfg =
      "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\n"
      "stride=1\npad=1\nactivation=leaky\n[convolutional]\nfilters=2\nsize=1\nstride=2\npad=1\n"
      "activation=linear\n";
  DarknetNetwork net(parse_cfg(cfg, "hand"));
  Cost full = count_cost(net);
  EXPECT_EQ(full.macs, 8 * 8 * 9 * 3 * 4 + 4 * 4 * 1 * 4 * 2);
  EXPECT_EQ(full.params, 9 * 3 * 4 + 2 * 4 + 4 * 2 + 2);
  randomize(net, 3);
  PruneStructure s = analyze(net);
  ChannelPlan plan = plan_channels(net, s, resolve(s, {{0.5}, {}}));  // keeps 3 of 4
  Cost c = count_cost(net, &plan);
  EXPECT_EQ(c.macs, 8 * 8 * 9 * 3 * 3 + 4 * 4 * 3 * 2);
  EXPECT_EQ(c.params, 9 * 3 * 3 + 2 * 3 + 3 * 2 + 2);
}

// BN recalibration after masking: the running statistics become the average of the masked net's batch
// statistics (mean of the batch means, mean of the unbiased batch variances), computed here by hand from the
// masked conv weights; pruned channels get mean 0 and variance 0; the layer's momentum is restored.
TEST(AbcpSurgery, BnRecalibrationAveragesTheMaskedNetsBatchStatistics) {
  const char* cfg =
      "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\n"
      "stride=1\npad=1\nactivation=leaky\n[convolutional]\nfilters=2\nsize=1\nstride=2\npad=1\n"
      "activation=linear\n";
  DarknetNetwork net(parse_cfg(cfg, "hand"));
  randomize(net, 11);
  PruneStructure s = analyze(net);
  ChannelPlan plan = plan_channels(net, s, resolve(s, {{0.5}, {}}));  // keeps 3 of 4
  apply_masks(net, plan);
  auto& conv = *net.layers[0].conv;
  const double momentum = conv.bn->momentum;
  const std::vector<double> before = conv.bn->running_mean.to_vector<double>();
  Generator g{77, 0};
  std::vector<Tensor> xs;
  for (int k = 0; k < 3; ++k) xs.push_back(normal({5, 3, 8, 8}, 0.3 * k, 1.0 + k, {}, &g));
  recalibrate_bn(net, 3, [&](int k) { (void)net.forward(xs[k]); });
  EXPECT_EQ(conv.bn->momentum, momentum);
  std::vector<double> want_mean(4, 0.0), want_var(4, 0.0);
  for (int k = 0; k < 3; ++k) {
    NoGradGuard ng;
    Tensor y = conv2d(xs[k], conv.conv->weight, Tensor(), {1, 1}, {1, 1});  // [5, 4, 8, 8]
    std::vector<double> m = mean(y, {0, 2, 3}).to_vector<double>(), v = var(y, {0, 2, 3}).to_vector<double>();
    for (int c = 0; c < 4; ++c) want_mean[c] += m[c] / 3, want_var[c] += v[c] / 3;
  }
  const std::vector<double> got_mean = conv.bn->running_mean.to_vector<double>(),
                            got_var = conv.bn->running_var.to_vector<double>();
  int pruned = 0;
  for (int c = 0; c < 4; ++c) {
    EXPECT_NEAR(got_mean[c], want_mean[c], 1e-4 * (1 + std::fabs(want_mean[c]))) << "channel " << c;
    EXPECT_NEAR(got_var[c], want_var[c], 1e-4 * (1 + want_var[c])) << "channel " << c;
    if (want_var[c] == 0) {
      ++pruned;
      EXPECT_EQ(got_mean[c], 0.0);
    } else {
      EXPECT_GT(std::fabs(got_mean[c] - before[c]), 1e-3) << "channel " << c << " kept its old mean";
    }
  }
  EXPECT_EQ(pruned, 1);
  EXPECT_THROW(recalibrate_bn(net, 0, [](int) {}), Error);
}

TEST(AbcpSurgery, MaskedNetworkEqualsShrunkNetworkAndExportLoadsBack) {
  Cfg cfg = parse_cfg(kMiniYolo, "mini");
  Generator g{2026, 0};
  for (int trial = 0; trial < 3; ++trial) {
    DarknetNetwork net(cfg);
    randomize(net, 100 + trial);
    net.eval();
    PruneStructure s = analyze(net);
    PruneAction a;
    std::vector<double> u =
        uniform({static_cast<int64_t>(s.convs.size())}, 0, 0.9, {}, &g).to_vector<double>();
    a.ratios = u;
    a.prune_block = {trial == 0, 1, trial == 2};
    PruneAction r = resolve(s, a);
    ChannelPlan plan = plan_channels(net, s, r);
    auto small = shrink(cfg, net, plan);
    small->eval();
    const int removed = static_cast<int>(std::count(plan.removed.begin(), plan.removed.end(), 1));
    EXPECT_EQ(small->layers.size(), net.layers.size() - removed);
    EXPECT_EQ(removed, 3 * (1 + (trial != 1)));
    apply_masks(net, plan);
    Tensor x = uniform({2, 3, 32, 32}, 0, 1, {}, &g);
    NoGradGuard ng;
    std::vector<Tensor> want = net.forward_yolo(x), got = small->forward_yolo(x);
    EXPECT_LT(max_diff(want, got), 1e-4) << "trial " << trial;
    // the counts that follow the masked widths are the shrunk network's exact counts
    Cost masked = count_cost(net, &plan), exact = count_cost(*small);
    EXPECT_EQ(masked.macs, exact.macs);
    EXPECT_EQ(masked.params, exact.params);
    EXPECT_LT(exact.macs, count_cost(net).macs);
    // export, read back with our builder and .weights reader
    fs::path dir = fs::path(NABLA_BINARY_DIR) / "test_abcp";
    fs::create_directories(dir);
    const std::string prefix = (dir / ("pruned" + std::to_string(trial))).string();
    export_darknet(shrink_cfg(cfg, net, plan), *small, prefix);
    auto back = DarknetNetwork::from_file(prefix + ".cfg");
    load_weights(*back, prefix + ".weights");
    back->eval();
    EXPECT_LT(max_diff(want, back->forward_yolo(x)), 1e-4);
    EXPECT_FALSE(fs::exists(prefix + ".weights.tmp"));
  }
}

// Two-armed bandit on the block head: pruning the block pays 1, keeping it 0. REINFORCE must move
// pi(prune) from 1/2 to near 1 (a wrong sign would drive it to 0).
TEST(AbcpController, ReinforceLearnsTheBetterArmOfATwoArmedBandit) {
  ActionLayout layout{.num_convs = 2, .block_first = {0}, .block_second = {1}};
  for (int better : {1, 0}) {
    AbcpController c(layout,
                     {.hidden = 16, .entropy_weight = 0, .baseline_decay = 0.9, .lr = 0.02, .seed = 7});
    double p_first = 0, p_last = 0;
    for (int it = 0; it < 150; ++it) {
      ControllerSample s = c.sample();
      if (it == 0) p_first = s.block_prune_prob[0];
      p_last = s.block_prune_prob[0];
      const double r = s.action.prune_block[0] == better ? 1.0 : 0.0;
      c.update(s, r + 0.01 * std::sin(it));  // never a constant reward
    }
    EXPECT_NEAR(p_first, 0.5, 0.1);
    if (better == 1)
      EXPECT_GT(p_last, 0.9);
    else
      EXPECT_LT(p_last, 0.1);
    EXPECT_EQ(c.mode().prune_block[0], better);
  }
}

// The Gaussian head on one stem conv, reward = p (prune more). sigma >= 0.57 by construction (0.1 +
// sqrt(exp(-1.5))) and p is clipped to [0, 0.9], so what REINFORCE must do is raise the expected reward: the
// fixed update does; the original leaves a stem's ratio out of the loss (nothing learnt).
double mean_reward_after(const ActionLayout& layout, bool original, uint64_t seed,
                         const std::function<double(const PruneAction&)>& reward, int iters) {
  AbcpController c(layout, {.hidden = 16,
                            .entropy_weight = 0,
                            .baseline_decay = 0.9,
                            .lr = 0.02,
                            .original_bugs = original,
                            .seed = seed});
  double sum = 0;
  int n = 0;
  for (int it = 0; it < iters; ++it) {
    ControllerSample s = c.sample();
    const double r = reward(s.action);
    if (it >= iters - 100) sum += r, ++n;
    c.update(s, r);
  }
  return sum / n;
}

TEST(AbcpController, GaussianHeadRaisesTheRewardWithTheFixedUpdateOnly) {
  ActionLayout layout{.num_convs = 1};
  auto reward = [](const PruneAction& a) { return a.ratios[0]; };
  const double fixed = mean_reward_after(layout, false, 11, reward, 300);
  const double original = mean_reward_after(layout, true, 11, reward, 300);
  const double start = mean_reward_after(layout, false, 11, reward, 100);
  std::printf("gaussian head: start %.3f fixed %.3f original %.3f\n", start, fixed, original);
  EXPECT_GT(fixed, 0.85);  // the clip at 0.9 is the best reachable
  EXPECT_GT(fixed, original + 0.2);
}

// Inside a kept block the original's sign is inverted for the ratio: reward -|p - 0.5| (and -1 for pruning).
TEST(AbcpController, OriginalSignOnBlockRatiosLearnsLessThanTheFixedSign) {
  ActionLayout layout{.num_convs = 2, .block_first = {0}, .block_second = {1}};
  auto reward = [](const PruneAction& a) { return a.prune_block[0] ? -1.0 : -std::fabs(a.ratios[0] - 0.5); };
  const double fixed = mean_reward_after(layout, false, 5, reward, 300);
  const double original = mean_reward_after(layout, true, 5, reward, 300);
  std::printf("block ratios: fixed %.3f original %.3f\n", fixed, original);
  EXPECT_GT(fixed, original + 0.05);
}

// The search loop on the mini YOLO with a synthetic evaluation (loss = fraction of channels kept by conv 0):
// one archive line per iteration, the unpruned net first, the best by reward, the uniform baseline's MACs.
TEST(AbcpSearch, ArchivesEveryCandidateAndPicksTheBestReward) {
  DarknetNetwork net(parse_cfg(kMiniYolo, "mini"));
  randomize(net, 9);
  PruneStructure s = analyze(net);
  const Cost full = count_cost(net);
  EvaluateFn eval = [&](const PruneAction& a) {
    ChannelPlan p = plan_channels(net, s, a);
    return Evaluation{1.0 - a.ratios[0], count_cost(net, &p)};
  };
  fs::path dir = fs::path(NABLA_BINARY_DIR) / "test_abcp";
  fs::create_directories(dir);
  const std::string archive = (dir / "archive.jsonl").string();
  fs::remove(archive);
  AbcpController c(ActionLayout::from(s), {.hidden = 8, .seed = 3});
  auto out = abcp_search(s, &c, eval, full, {.iterations = 12, .lambda = 0.5, .archive = archive});
  ASSERT_EQ(out.size(), 12u);
  EXPECT_EQ(out[0].flops_fraction, 1.0);
  EXPECT_NEAR(out[0].reward, -(1.0 + 0.5), 1e-12);
  std::ifstream f(archive);
  int lines = 0;
  for (std::string l; std::getline(f, l);) ++lines;
  EXPECT_EQ(lines, 12);
  const Candidate& best = best_candidate(out);
  for (const auto& cand : out) EXPECT_LE(cand.reward, best.reward);
  PruneAction u = uniform_action_for_macs(net, s, best.cost.macs);
  ChannelPlan p = plan_channels(net, s, u);
  EXPECT_NEAR(static_cast<double>(count_cost(net, &p).macs) / best.cost.macs, 1.0, 0.25);
}

// Resuming at the library level: a search stopped after 5 of 12 candidates and continued with a new
// controller that received the parameters, the Adam state, the baseline and the generator (and the
// candidates through their JSON lines) gives the same 12 candidates as an uninterrupted search.
TEST(AbcpSearch, AResumedSearchEqualsAnUninterruptedOne) {
  DarknetNetwork net(parse_cfg(kMiniYolo, "mini"));
  randomize(net, 5);
  PruneStructure s = analyze(net);
  const Cost full = count_cost(net);
  EvaluateFn eval = [&](const PruneAction& a) {
    ChannelPlan p = plan_channels(net, s, a);
    return Evaluation{1.0 - a.ratios[0] + 0.3 * a.prune_block[0], count_cost(net, &p)};
  };
  const uint64_t seed = test::next_seed();
  const ControllerOptions co{.hidden = 8, .lr = 0.05, .seed = seed};
  for (bool random : {false, true}) {
    const SearchOptions so{.iterations = 12, .lambda = 0.5, .random_search = random, .seed = seed + 1};
    manual_seed(seed);  // the controller's initial weights come from the default generator
    AbcpController a(ActionLayout::from(s), co);
    const std::vector<Candidate> whole = abcp_search(s, &a, eval, full, so);
    manual_seed(seed);
    AbcpController b(ActionLayout::from(s), co);
    SearchState st{{}, std::mt19937_64(so.seed)};
    SearchOptions first = so;
    first.iterations = 5;
    abcp_search(s, &b, eval, full, first, {}, &st);
    ASSERT_EQ(st.archive.size(), 5u);
    std::map<std::string, std::string> saved;
    b.save_state(saved, "c.");
    AbcpController c(ActionLayout::from(s), {.hidden = 8, .lr = 0.05, .seed = seed + 99});
    c.load_state_dict(b.state_dict());
    c.optimizer().load_state_tensors(b.optimizer().state_tensors());
    c.load_state(saved, "c.", "saved");
    SearchState resumed{{}, rng_from_string(rng_to_string(st.rng), "rng")};
    for (const Candidate& k : st.archive)
      resumed.archive.push_back(candidate_from_json(candidate_json(k), "line"));
    const std::vector<Candidate> rest = abcp_search(s, &c, eval, full, so, {}, &resumed);
    ASSERT_EQ(rest.size(), whole.size());
    for (size_t i = 0; i < whole.size(); ++i)
      EXPECT_EQ(candidate_json(rest[i]), candidate_json(whole[i])) << i;
  }
  std::map<std::string, std::string> bad{{"c.baseline", "1.5x"}, {"c.baseline_set", "1"}, {"c.rng", "3"}};
  AbcpController d(ActionLayout::from(s), co);
  EXPECT_THROW(d.load_state(bad, "c.", "ck.safetensors"), Error);
  EXPECT_THROW(candidate_from_json("{\"iteration\": 1}", "archive line 2"), Error);
}

}  // namespace
}  // namespace nabla

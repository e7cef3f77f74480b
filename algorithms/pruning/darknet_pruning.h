// ABCP model surgery on a Darknet network: channel masks from |gamma| of the pretrained batch-norm layers,
// residual-block pruning, stage-wise tying, FLOPs / parameter counts that follow the masked widths, and
// the physical shrink into a new, smaller network (.cfg + .weights).
//
// Structure (analyze): a residual block is [conv (BN), conv (BN), shortcut from=-3] with a linear
// shortcut, as in Darknet-53. Convs whose outputs are summed by shortcuts must keep the same channels
// (their tensors add element by element): they form a tie group (a union-find over shortcut inputs); in
// YOLOv3 a group is a stage's down-sampling conv plus the second conv of each of the stage's blocks.
//
// Action: a ratio p_l in [0, 1] per prunable conv (BN convs; convs without BN, e.g. the detection
// outputs, are never pruned) and a keep/prune flag per block. A pruned block has p = 1 on both convs.
// resolve() applies the paper's post-processing: in a tie group, every member with p != 1 gets the
// largest such ratio r* (the original's §1.5 rule).
//
// Masks (channel criterion of the original, §1.6): keep_count(n, p) = min(n, floor(n (1 - p)) + 1) for
// p < 1, 0 for p = 1 (their threshold sorted|gamma|[int(n (1 - p))]); the kept channels are those with the
// largest |gamma| of the pretrained BN. Decision (documented in docs/abcp.md): a tie group keeps ONE
// channel set, chosen by the sum of |gamma| over its members; the original picks each member's set from its
// own gamma, so that x + f(x) is non-zero on the union of the sets and the physically shrunk net cannot
// equal the masked one. Masking zeroes the conv weight rows, gamma and beta of pruned channels (running
// statistics untouched, as the original): in evaluation BN gives exactly 0 there, and a zero-preserving
// activation (linear, leaky, relu, tanh, mish) keeps it 0.
//
// Shrink: the blocks with p = 1 are removed (their shortcut becomes identity), every conv keeps its
// kept output channels and the live channels of its input; routes and shortcuts are re-indexed. The result
// equals the masked network on every input (tests/algorithms/test_abcp.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/darknet/network.h"

namespace nabla::algorithms::pruning {

struct ResidualBlock {
  int first_conv = 0, second_conv = 0, shortcut = 0;  // Darknet layer indices
};

struct PruneStructure {
  std::vector<int> convs;  // prunable conv layers (with BN), in order; actions index this list
  std::vector<ResidualBlock> blocks;
  std::vector<std::vector<int>> tie_groups;  // conv layer indices whose outputs are summed (size >= 2)
  std::vector<int> conv_slot;                // layer index -> position in convs, -1 if not prunable
  std::vector<int> block_of;                 // layer index -> block number, -1 outside blocks
};

PruneStructure analyze(const models::darknet::DarknetNetwork& net);

struct PruneAction {
  std::vector<double> ratios;    // one per structure.convs, in [0, 1]
  std::vector<int> prune_block;  // one per structure.blocks, 1 = replaced by identity
};

// Block flags into ratios (1 on both convs), clipping to [0, 1], stage-wise tying. Throws on wrong sizes.
PruneAction resolve(const PruneStructure& s, PruneAction a);

int keep_count(int n, double ratio);

// Kept output channels (sorted) of every layer of the network (live channels; all for non-BN convs).
struct ChannelPlan {
  std::vector<std::vector<int>> live;  // per layer
  std::vector<char> removed;           // per layer: 1 if the shrink drops it (pruned blocks)
};
// `gammas_from` supplies |gamma| (the pretrained network); the action must be resolved.
ChannelPlan plan_channels(const models::darknet::DarknetNetwork& pretrained, const PruneStructure& s,
                          const PruneAction& resolved);

// Zeroes conv weight rows, gamma and beta of the pruned channels of `net` (same cfg as the plan's).
void apply_masks(models::darknet::DarknetNetwork& net, const ChannelPlan& plan);

// Re-estimates the running statistics of every BN layer of `net` as the plain average over `batches`
// forward passes in training mode (PyTorch's momentum=None): batch k (from 0) enters with momentum
// 1 / (k + 1), so afterwards running_mean is the mean of the batch means and running_var the mean of the
// unbiased batch variances of the (masked) network. `forward(k)` runs batch k through `net` (no gradient is
// recorded). The momenta are restored and the network is left in evaluation mode.
void recalibrate_bn(models::darknet::DarknetNetwork& net, int batches,
                    const std::function<void(int)>& forward);

struct Cost {
  int64_t macs = 0;    // multiply-accumulates of the convolutions at the [net] input size
  int64_t params = 0;  // conv weights + conv bias (no BN) or BN gamma and beta
  double gflops() const { return 2e-9 * static_cast<double>(macs); }  // Darknet's BFLOPs = 2 MACs
};
// Cost with the plan's live widths; with an empty plan (default) the full network.
Cost count_cost(const models::darknet::DarknetNetwork& net, const ChannelPlan* plan = nullptr);

// The physically smaller network: its cfg (a copy of the network's cfg with filters, removed sections and
// re-indexed routes / shortcuts) and a network built from it with the kept weights copied.
models::darknet::Cfg shrink_cfg(const models::darknet::Cfg& cfg, const models::darknet::DarknetNetwork& net,
                                const ChannelPlan& plan);
std::shared_ptr<models::darknet::DarknetNetwork> shrink(const models::darknet::Cfg& cfg,
                                                        const models::darknet::DarknetNetwork& net,
                                                        const ChannelPlan& plan);
// Writes <prefix>.cfg and <prefix>.weights, each through a temporary file renamed into place.
void export_darknet(const models::darknet::Cfg& cfg, models::darknet::DarknetNetwork& net,
                    const std::string& prefix);

}  // namespace nabla::algorithms::pruning

// ABCP model surgery on Darknet networks (see darknet_pruning.h for the rules and the decisions).
#include "algorithms/pruning/darknet_pruning.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "models/darknet/weights.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

namespace nabla::algorithms::pruning {
namespace {
using models::darknet::Activation;
using models::darknet::Cfg;
using models::darknet::CfgSection;
using models::darknet::DarknetNetwork;
using models::darknet::Layer;
using models::darknet::LayerType;

bool is_bn_conv(const Layer& l) { return l.type == LayerType::convolutional && l.batch_normalize; }

int find_root(std::vector<int>& parent, int x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

// The conv whose channels a layer's output carries (through shortcuts, upsample, pooling), or -1.
int channel_source(const DarknetNetwork& net, int i) {
  const Layer& l = net.layers[i];
  switch (l.type) {
    case LayerType::convolutional:
      return i;
    case LayerType::shortcut:
      return channel_source(net, l.inputs[0]);
    case LayerType::upsample:
    case LayerType::maxpool:
    case LayerType::dropout:
      return i > 0 ? channel_source(net, i - 1) : -1;
    case LayerType::route:
      return l.inputs.size() == 1 ? channel_source(net, l.inputs[0]) : -1;
    default:
      return -1;
  }
}

std::vector<float> floats(const Tensor& t) { return t.contiguous().to_vector<float>(); }

Tensor tensor_from(const std::vector<float>& v, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  NABLA_CHECK(static_cast<int64_t>(v.size()) == t.numel(), "abcp: internal size mismatch");
  std::memcpy(t.data_ptr(), v.data(), 4 * v.size());
  return t;
}

void set_option(CfgSection& s, const std::string& key, const std::string& value) {
  for (auto& o : s.options)
    if (o.key == key) {
      o.value = value;
      return;
    }
  s.options.push_back({key, value, 0});
}

}  // namespace

PruneStructure analyze(const DarknetNetwork& net) {
  PruneStructure s;
  const int n = static_cast<int>(net.layers.size());
  s.conv_slot.assign(n, -1);
  s.block_of.assign(n, -1);
  for (int i = 0; i < n; ++i)
    if (is_bn_conv(net.layers[i])) {
      s.conv_slot[i] = static_cast<int>(s.convs.size());
      s.convs.push_back(i);
    }
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  for (int i = 0; i < n; ++i) {
    const Layer& l = net.layers[i];
    if (l.type != LayerType::shortcut) continue;
    const int a = channel_source(net, i - 1), b = channel_source(net, l.inputs[0]);
    NABLA_CHECK(a >= 0 && b >= 0, "abcp: shortcut layer ", i,
                " adds tensors whose channels come from no single conv");
    parent[find_root(parent, a)] = find_root(parent, b);
    if (l.inputs[0] == i - 3 && l.activation == Activation::linear && is_bn_conv(net.layers[i - 1]) &&
        is_bn_conv(net.layers[i - 2]) && net.layers[i - 1].groups == 1 && net.layers[i - 2].groups == 1) {
      s.block_of[i - 2] = s.block_of[i - 1] = s.block_of[i] = static_cast<int>(s.blocks.size());
      s.blocks.push_back({i - 2, i - 1, i});
    }
  }
  std::vector<std::vector<int>> groups(n);
  for (int c : s.convs) groups[find_root(parent, c)].push_back(c);
  for (auto& g : groups)
    if (g.size() >= 2) s.tie_groups.push_back(g);
  return s;
}

int keep_count(int n, double ratio) {
  if (ratio >= 1.0) return 0;
  return std::min(n, static_cast<int>(std::floor(n * (1.0 - ratio))) + 1);
}

PruneAction resolve(const PruneStructure& s, PruneAction a) {
  NABLA_CHECK(a.ratios.size() == s.convs.size(), "abcp: action has ", a.ratios.size(),
              " ratios, the network ", s.convs.size(), " prunable convs");
  if (a.prune_block.empty()) a.prune_block.assign(s.blocks.size(), 0);
  NABLA_CHECK(a.prune_block.size() == s.blocks.size(), "abcp: action has ", a.prune_block.size(),
              " block flags, the network ", s.blocks.size(), " blocks");
  for (double& r : a.ratios) {
    NABLA_CHECK(std::isfinite(r), "abcp: ratio ", r, " is not finite");
    r = std::clamp(r, 0.0, 1.0);
  }
  for (size_t b = 0; b < s.blocks.size(); ++b)
    if (a.prune_block[b]) {
      a.ratios[s.conv_slot[s.blocks[b].first_conv]] = 1.0;
      a.ratios[s.conv_slot[s.blocks[b].second_conv]] = 1.0;
    }
  for (const auto& g : s.tie_groups) {
    double r_star = -1;
    for (int c : g)
      if (a.ratios[s.conv_slot[c]] < 1.0) r_star = std::max(r_star, a.ratios[s.conv_slot[c]]);
    if (r_star < 0) continue;
    for (int c : g)
      if (a.ratios[s.conv_slot[c]] < 1.0) a.ratios[s.conv_slot[c]] = r_star;
  }
  return a;
}

ChannelPlan plan_channels(const DarknetNetwork& net, const PruneStructure& s, const PruneAction& a) {
  const int n = static_cast<int>(net.layers.size());
  ChannelPlan p;
  p.live.resize(n);
  p.removed.assign(n, 0);
  // kept channels per prunable conv; tie groups share one set, ranked by the sum of |gamma|
  std::vector<std::vector<int>> kept(n);
  std::vector<char> done(n, 0);
  auto rank_and_keep = [&](const std::vector<int>& members) {
    const int c = net.layers[members[0]].filters;
    std::vector<double> score(c, 0.0);
    double ratio = 1.0;
    for (int m : members) {
      const double r = a.ratios[s.conv_slot[m]];
      if (r >= 1.0) continue;
      ratio = r;
      std::vector<float> g = floats(net.layers[m].conv->bn->weight);
      for (int j = 0; j < c; ++j) score[j] += std::fabs(g[j]);
    }
    std::vector<int> order(c);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return score[x] > score[y]; });
    std::vector<int> keep(order.begin(), order.begin() + keep_count(c, ratio));
    std::sort(keep.begin(), keep.end());
    for (int m : members) {
      kept[m] = a.ratios[s.conv_slot[m]] >= 1.0 ? std::vector<int>{} : keep;
      done[m] = 1;
    }
  };
  for (const auto& g : s.tie_groups) rank_and_keep(g);
  for (int c : s.convs)
    if (!done[c]) rank_and_keep({c});
  for (size_t b = 0; b < s.blocks.size(); ++b)
    if (a.ratios[s.conv_slot[s.blocks[b].first_conv]] >= 1.0 &&
        a.ratios[s.conv_slot[s.blocks[b].second_conv]] >= 1.0)
      p.removed[s.blocks[b].first_conv] = p.removed[s.blocks[b].second_conv] =
          p.removed[s.blocks[b].shortcut] = 1;
  auto all = [](int c) {
    std::vector<int> v(c);
    std::iota(v.begin(), v.end(), 0);
    return v;
  };
  for (int i = 0; i < n; ++i) {
    const Layer& l = net.layers[i];
    switch (l.type) {
      case LayerType::convolutional:
        if (l.batch_normalize) {
          NABLA_CHECK(l.groups == 1 || kept[i].size() == static_cast<size_t>(l.filters), "abcp: layer ", i,
                      " is a grouped conv (groups ", l.groups, "): not prunable");
          NABLA_CHECK(kept[i].size() == static_cast<size_t>(l.filters) ||
                          l.activation == Activation::linear || l.activation == Activation::leaky ||
                          l.activation == Activation::relu || l.activation == Activation::tanh ||
                          l.activation == Activation::mish,
                      "abcp: layer ", i, " activation ", models::darknet::activation_name(l.activation),
                      " does not keep masked channels at 0");
          p.live[i] = kept[i];
        } else {
          p.live[i] = all(l.filters);
        }
        break;
      case LayerType::shortcut:
        p.live[i] = p.removed[i] ? p.live[l.inputs[0]] : p.live[l.inputs[0]];
        if (!p.removed[i])
          NABLA_CHECK(p.live[i - 1] == p.live[l.inputs[0]], "abcp: shortcut ", i,
                      " adds tensors with different kept channels (untied widths)");
        break;
      case LayerType::route: {
        int off = 0;
        for (int src : l.inputs) {
          for (int c : p.live[src]) p.live[i].push_back(off + c);
          off += net.layers[src].out_c;
        }
        break;
      }
      case LayerType::upsample:
      case LayerType::maxpool:
      case LayerType::dropout:
      case LayerType::avgpool:
        p.live[i] = p.live[i - 1];
        break;
      case LayerType::softmax:
      case LayerType::yolo:
        NABLA_CHECK(static_cast<int>(p.live[i - 1].size()) == net.layers[i - 1].out_c, "abcp: layer ", i,
                    " (", models::darknet::layer_type_name(l.type),
                    ") needs all its input channels, the plan keeps ", p.live[i - 1].size(), " of ",
                    net.layers[i - 1].out_c);
        p.live[i] = all(l.out_c);
        break;
    }
  }
  return p;
}

void apply_masks(DarknetNetwork& net, const ChannelPlan& plan) {
  NoGradGuard ng;
  for (size_t i = 0; i < net.layers.size(); ++i) {
    Layer& l = net.layers[i];
    if (!is_bn_conv(l) || static_cast<int>(plan.live[i].size()) == l.filters) continue;
    std::vector<float> m(l.filters, 0.f);
    for (int c : plan.live[i]) m[c] = 1.f;
    Tensor mask = tensor_from(m, {l.filters}).to(l.conv->bn->weight.device());
    auto& conv = *l.conv;
    mul_(conv.conv->weight, mask.reshape({l.filters, 1, 1, 1}));
    mul_(conv.bn->weight, mask);
    mul_(conv.bn->bias, mask);
  }
}

Cost count_cost(const DarknetNetwork& net, const ChannelPlan* plan) {
  Cost c;
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& l = net.layers[i];
    if (l.type != LayerType::convolutional) continue;
    if (plan && plan->removed[i]) continue;
    const int64_t out = plan ? static_cast<int64_t>(plan->live[i].size()) : l.filters;
    const int64_t in = plan && i > 0 ? static_cast<int64_t>(plan->live[i - 1].size()) : l.in_c;
    const int64_t k2 = static_cast<int64_t>(l.size) * l.size;
    c.macs += static_cast<int64_t>(l.out_h) * l.out_w * k2 * (in / l.groups) * out;
    c.params += k2 * (in / l.groups) * out + (l.batch_normalize ? 2 * out : out);
  }
  return c;
}

Cfg shrink_cfg(const Cfg& cfg, const DarknetNetwork& net, const ChannelPlan& plan) {
  const int n = static_cast<int>(net.layers.size());
  // alias: a removed shortcut's output is its `from` input; new index of each surviving layer
  std::vector<int> alias(n), new_index(n, -1);
  int next = 0;
  for (int i = 0; i < n; ++i) {
    alias[i] = i;
    if (net.layers[i].type == LayerType::shortcut && plan.removed[i])
      alias[i] = alias[net.layers[i].inputs[0]];
    if (!plan.removed[i]) new_index[i] = next++;
  }
  Cfg out;
  out.path = cfg.path + " (pruned)";
  for (const CfgSection& sec : cfg.sections) {
    int layer = -1;
    for (int i = 0; i < n; ++i)
      if (net.layers[i].line == sec.line) layer = i;
    if (layer < 0) {  // [net]
      out.sections.push_back(sec);
      continue;
    }
    if (plan.removed[layer]) continue;
    CfgSection s = sec;
    const Layer& l = net.layers[layer];
    const int me = new_index[layer];
    auto ref = [&](int old) {
      const int t = new_index[alias[old]];
      NABLA_CHECK(t >= 0, "abcp: layer ", layer, " reads removed layer ", old);
      return std::to_string(t - me);
    };
    if (l.type == LayerType::convolutional && l.batch_normalize)
      set_option(s, "filters", std::to_string(plan.live[layer].size()));
    if (l.type == LayerType::shortcut) set_option(s, "from", ref(l.inputs[0]));
    if (l.type == LayerType::route) {
      std::string v;
      for (size_t k = 0; k < l.inputs.size(); ++k) v += (k ? "," : "") + ref(l.inputs[k]);
      set_option(s, "layers", v);
    }
    out.sections.push_back(s);
  }
  return out;
}

std::shared_ptr<DarknetNetwork> shrink(const Cfg& cfg, const DarknetNetwork& net, const ChannelPlan& plan) {
  Cfg small_cfg = shrink_cfg(cfg, net, plan);
  auto small = std::make_shared<DarknetNetwork>(small_cfg);
  NoGradGuard ng;
  size_t j = 0;
  for (size_t i = 0; i < net.layers.size(); ++i) {
    if (plan.removed[i]) continue;
    const Layer& l = net.layers[i];
    Layer& t = small->layers[j++];
    if (l.type != LayerType::convolutional) continue;
    const std::vector<int>& outs = plan.live[i];
    const std::vector<int> ins = i > 0 ? plan.live[i - 1] : [&] {
      std::vector<int> v(l.in_c);
      std::iota(v.begin(), v.end(), 0);
      return v;
    }();
    const int k2 = l.size * l.size, in_per_group = l.in_c / l.groups;
    const int new_in = static_cast<int>(ins.size()) / l.groups;
    NABLA_CHECK(l.groups == 1 || static_cast<int>(ins.size()) == l.in_c, "abcp: grouped conv ", i,
                " with pruned inputs is not supported");
    std::vector<float> w = floats(l.conv->conv->weight), nw;
    nw.reserve(outs.size() * new_in * k2);
    for (int o : outs)
      for (int c = 0; c < new_in; ++c) {
        const int src = l.groups == 1 ? ins[c] : c;
        const float* p = w.data() + (static_cast<size_t>(o) * in_per_group + src) * k2;
        nw.insert(nw.end(), p, p + k2);
      }
    t.conv->conv->weight.copy_(tensor_from(nw, t.conv->conv->weight.shape()));
    auto pick = [&](const Tensor& src, Tensor& dst) {
      std::vector<float> v = floats(src), r;
      for (int o : outs) r.push_back(v[o]);
      dst.copy_(tensor_from(r, dst.shape()));
    };
    if (l.batch_normalize) {
      pick(l.conv->bn->weight, t.conv->bn->weight);
      pick(l.conv->bn->bias, t.conv->bn->bias);
      pick(l.conv->bn->running_mean, t.conv->bn->running_mean);
      pick(l.conv->bn->running_var, t.conv->bn->running_var);
    } else {
      pick(l.conv->conv->bias, t.conv->conv->bias);
    }
  }
  return small;
}

void export_darknet(const Cfg& cfg, DarknetNetwork& net, const std::string& prefix) {
  namespace fs = std::filesystem;
  const std::string cfg_path = prefix + ".cfg", weights_path = prefix + ".weights";
  {
    std::ofstream f(cfg_path + ".tmp");
    f << models::darknet::format_cfg(cfg);
    NABLA_CHECK(f.good(), "abcp: cannot write ", cfg_path, ".tmp");
  }
  models::darknet::save_weights(net, weights_path + ".tmp");
  fs::rename(cfg_path + ".tmp", cfg_path);
  fs::rename(weights_path + ".tmp", weights_path);
}

void recalibrate_bn(DarknetNetwork& net, int batches, const std::function<void(int)>& forward) {
  NABLA_CHECK(batches > 0, "BN recalibration: expected batches > 0, got ", batches);
  std::vector<nn::BatchNorm*> bns;
  for (Layer& l : net.layers)
    if (l.conv && l.conv->bn) bns.push_back(l.conv->bn.get());
  std::vector<double> momentum;
  for (nn::BatchNorm* bn : bns) momentum.push_back(bn->momentum);
  NoGradGuard ng;
  net.train();
  for (int k = 0; k < batches; ++k) {
    for (nn::BatchNorm* bn : bns) bn->momentum = 1.0 / (k + 1);
    forward(k);
  }
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->momentum = momentum[i];
  net.eval();
}

}  // namespace nabla::algorithms::pruning

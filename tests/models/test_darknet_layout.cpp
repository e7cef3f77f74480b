// The speed paths of models/darknet/network.h on the CPU, against the plain path (NCHW, unfused), on a small
// cfg that has every layer type YOLOv3 uses (conv + BN + leaky / relu / mish / linear, stride 2, shortcut,
// maxpool 2/1 with Darknet's -inf padding and 2/2, upsample, a route of two layers, two [yolo] heads):
//   - channels-last (set_channels_last): every layer's output, in training and evaluation, the [yolo]
//     heads, the gradient of every parameter and of the input, and the running statistics equal the NCHW
//     run's; the activations really are channels-last;
//   - fusion (batch_norm_add_relu with slope 0.1 / 0 for conv + BN + leaky / relu; set_darknet_fused):
//     the same, with and without channels-last.
// Fresh random weights, BN statistics and inputs each run. The CUDA twin is
// tests/cuda/test_parity_darknet.cpp.
#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "models/darknet/cfg.h"
#include "models/darknet/network.h"
#include "darknet_testing.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace models::darknet;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

const char* kLayoutCfg =
    "[net]\nwidth=16\nheight=16\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"   // 0
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n"  // 1: 8x8
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=1\nstride=1\npad=1\nactivation=leaky\n"   // 2
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"  // 3
    "[shortcut]\nfrom=-3\nactivation=linear\n"                                                     // 4
    "[maxpool]\nsize=2\nstride=1\n"                                                                // 5
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=1\nstride=1\npad=1\nactivation=relu\n"    // 6
    "[upsample]\nstride=2\n"                                                                       // 7: 16x16
    "[route]\nlayers=-1,0\n"                                                                       // 8: 16 ch
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=mish\n"    // 9
    "[maxpool]\nsize=2\nstride=2\n"                                                                // 10: 8x8
    "[convolutional]\nfilters=14\nsize=1\nstride=1\npad=1\nactivation=linear\n"                    // 11
    "[yolo]\nmask=0,1\nnum=4\nclasses=2\nanchors=4,5,6,7,8,9,10,11\n"                              // 12
    "[route]\nlayers=4\n"                                                                          // 13
    "[convolutional]\nfilters=14\nsize=1\nstride=1\npad=1\nactivation=linear\n"                    // 14
    "[yolo]\nmask=2,3\nnum=4\nclasses=2\nanchors=4,5,6,7,8,9,10,11\n";                             // 15

// Restores the process-wide fusion switch.
struct FusedSwitch {
  bool saved = darknet_fused();
  ~FusedSwitch() { set_darknet_fused(saved); }
};

struct Run {
  std::vector<Tensor> outs;   // every layer's output
  std::vector<Tensor> grads;  // every parameter's, then the input's
  std::vector<Tensor> stats;  // running mean / var of every BN (training)
};

// One forward (and, training, a backward of sum_heads mean(head^2) + sum_heads mean(head * cot)) of a fresh
// network with parameters from `seed`, in the given layout and fusion.
Run run_net(uint64_t seed, const Tensor& x, const std::vector<Tensor>& cot, bool training, bool channels_last,
            bool fused) {
  set_darknet_fused(fused);
  DarknetNetwork net(parse_cfg(kLayoutCfg, "layout.cfg"));
  test::randomize_darknet(net, seed);
  net.set_channels_last(channels_last);
  EXPECT_EQ(net.channels_last(), channels_last);
  net.train(training);
  Tensor xi = x.detach().clone().requires_grad_(training);
  Run r;
  r.outs = net.forward_all(xi);
  if (channels_last) {  // the activations are NHWC from the first conv to the last (the inputs of [yolo])
    for (int i : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14})
      EXPECT_TRUE(r.outs[i].is_contiguous(kCL) && !r.outs[i].is_contiguous())
          << "layer " << i << " (" << layer_type_name(net.layers[i].type) << ") is not channels-last";
  }
  if (!training) return r;
  // Not vacuous: training runs conv + BN + leaky fused exactly when asked to (layer 0 is one).
  if (!r.outs[0].grad_fn()) {
    ADD_FAILURE() << "layer 0's output has no grad_fn in training";
    return r;
  }
  EXPECT_EQ(r.outs[0].grad_fn()->name, std::string(fused ? "batch_norm_add_relu" : "leaky_relu"));
  Tensor loss;
  size_t k = 0;
  for (int i : net.yolo_layers()) {
    const Tensor& h = r.outs[i];
    Tensor term = mean(h * h) + mean(h * cot[k++]);
    loss = loss.defined() ? loss + term : term;
  }
  loss.backward();
  for (const Tensor& p : net.parameters()) r.grads.push_back(p.grad());
  r.grads.push_back(xi.grad());
  for (const Layer& l : net.layers)
    if (l.conv && l.conv->bn) {
      r.stats.push_back(l.conv->bn->running_mean);
      r.stats.push_back(l.conv->bn->running_var);
    }
  return r;
}

// |got - want| <= tol (1 + max |want|) everywhere: the paths differ only in summation orders and skipped
// roundings.
void expect_near_scaled(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_EQ(got.shape(), want.shape());
  const std::vector<double> a = got.to_double_vector(), b = want.to_double_vector();
  double scale = 0, worst = 0;
  for (double v : b) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LE(worst, tol * (1 + scale)) << "max |want| " << scale;
}

void expect_same(const Run& want, const Run& got, double tol, const std::string& what) {
  ASSERT_EQ(want.outs.size(), got.outs.size());
  for (size_t i = 0; i < want.outs.size(); ++i) {
    SCOPED_TRACE(what + ": output of layer " + std::to_string(i));
    expect_near_scaled(got.outs[i], want.outs[i], tol);
  }
  ASSERT_EQ(want.grads.size(), got.grads.size());
  for (size_t i = 0; i < want.grads.size(); ++i) {
    SCOPED_TRACE(what + ": gradient " + std::to_string(i));
    ASSERT_TRUE(got.grads[i].defined());
    expect_near_scaled(got.grads[i], want.grads[i], tol);
  }
  ASSERT_EQ(want.stats.size(), got.stats.size());
  for (size_t i = 0; i < want.stats.size(); ++i) {
    SCOPED_TRACE(what + ": running statistic " + std::to_string(i));
    expect_near_scaled(got.stats[i], want.stats[i], tol);
  }
}

void expect_paths_agree(bool training) {
  FusedSwitch keep;
  const uint64_t seed = test::next_seed();
  Tensor x = test::randn32({2, 3, 16, 16});
  std::vector<Tensor> cot = {test::randn32({2, 14, 8, 8}), test::randn32({2, 14, 8, 8})};
  const Run ref = run_net(seed, x, cot, training, /*channels_last=*/false, /*fused=*/false);
  // Not vacuous: the gradients are there and not all zero.
  if (training) {
    ASSERT_FALSE(ref.grads.empty());
    for (const Tensor& g : ref.grads) EXPECT_GT(amax(abs(g)).item(), 0.0);
  }
  expect_same(ref, run_net(seed, x, cot, training, true, false), 2e-5, "channels-last");
  expect_same(ref, run_net(seed, x, cot, training, false, true), 2e-5, "fused");
  expect_same(ref, run_net(seed, x, cot, training, true, true), 2e-5, "channels-last, fused");
}

TEST(DarknetLayout, ChannelsLastAndFusedMatchNchwInTraining) { expect_paths_agree(true); }

TEST(DarknetLayout, ChannelsLastAndFusedMatchNchwInEvaluation) { expect_paths_agree(false); }

TEST(DarknetLayout, ChannelsLastOffRestoresRowMajorParameters) {
  DarknetNetwork net(parse_cfg(kLayoutCfg, "layout.cfg"));
  net.set_channels_last(true);
  EXPECT_TRUE(net.layers[0].conv->conv->weight.is_contiguous(kCL));
  net.set_channels_last(false);
  EXPECT_FALSE(net.channels_last());
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.is_contiguous());
  Tensor y = net.forward(test::randn32({1, 3, 16, 16}));
  EXPECT_TRUE(y.is_contiguous());
  DarknetNetwork shapes(parse_cfg(kLayoutCfg, "layout.cfg"), /*allocate=*/false);
  test::expect_error([&] { shapes.set_channels_last(true); }, {"layout.cfg", "allocate = false"});
}

}  // namespace
}  // namespace nabla

// CUDA parity of the Darknet speed paths (models/darknet/network.h): a small cfg with every layer type of
// YOLOv3 (conv + BN + leaky / relu / linear, stride 2, shortcut, maxpool 2/1 with Darknet's padding,
// upsample, a route of two layers, two [yolo] heads), channel counts that take the packed batch-norm
// kernels (multiples of 8) and one that does not (the 14-channel heads: the conv alone).
//   - f32, TF32 off: the GPU channels-last + fused network against the CPU NCHW unfused one: the [yolo]
//     heads, every parameter gradient, the input gradient and the running statistics (training), and the
//     heads in evaluation (the GPU's one-pass batch norm against Darknet's normalize_cpu on the CPU);
//   - bf16 autocast on the GPU: channels-last + fused against NCHW unfused, both on the GPU; the two round
//     differently, so each bf16 gradient is measured against the f32 one and channels-last must be about
//     as close to it as NCHW is (as CudaChannelsLast.CifarResNetForwardBackwardEqualsRowMajor does).
#include <algorithm>
#include <cmath>

#include "models/darknet/cfg.h"
#include "models/darknet/network.h"
#include "parity.h"

namespace nabla {
namespace {
using namespace models::darknet;
using test::parity_randn;
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

const char* kCfg =
    "[net]\nwidth=16\nheight=16\nchannels=3\n"
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"  // 0
    "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=2\npad=1\nactivation=leaky\n"  // 1: 8x8
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=1\nstride=1\npad=1\nactivation=leaky\n"  // 2
    "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=1\npad=1\nactivation=leaky\n"  // 3
    "[shortcut]\nfrom=-3\nactivation=linear\n"                                                     // 4
    "[maxpool]\nsize=2\nstride=1\n"                                                                // 5
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=1\nstride=1\npad=1\nactivation=relu\n"   // 6
    "[upsample]\nstride=2\n"                                                                       // 7
    "[route]\nlayers=-1,0\n"                                                                       // 8: 32 ch
    "[convolutional]\nbatch_normalize=1\nfilters=24\nsize=3\nstride=2\npad=1\nactivation=leaky\n"  // 9: 8x8
    "[convolutional]\nfilters=14\nsize=1\nstride=1\npad=1\nactivation=linear\n"                    // 10
    "[yolo]\nmask=0,1\nnum=4\nclasses=2\nanchors=4,5,6,7,8,9,10,11\n"                              // 11
    "[route]\nlayers=4\n"                                                                          // 12
    "[convolutional]\nfilters=14\nsize=1\nstride=1\npad=1\nactivation=linear\n"                    // 13
    "[yolo]\nmask=2,3\nnum=4\nclasses=2\nanchors=4,5,6,7,8,9,10,11\n";                             // 14

struct FusedSwitch {
  bool saved = darknet_fused();
  ~FusedSwitch() { set_darknet_fused(saved); }
};

// Random BN statistics and affine parameters (the default init has mean 0, var 1, scale 1, bias 0).
void randomize_bn(DarknetNetwork& net) {
  NoGradGuard ng;
  for (const Layer& l : net.layers)
    if (l.conv && l.conv->bn) {
      auto& bn = *l.conv->bn;
      bn.running_var.copy_(test::parity_uniform(bn.running_var.shape(), 0.5, 1.5, false));
      bn.running_mean.copy_(parity_randn(bn.running_mean.shape(), false) * 0.2);
      bn.weight.copy_(test::parity_uniform(bn.weight.shape(), 0.8, 1.2, false));
      bn.bias.copy_(parity_randn(bn.bias.shape(), false) * 0.2);
    }
}

struct Pass {
  std::vector<Tensor> heads, grads, stats;  // f32 on the CPU (grads: parameters, then the input)
};

// One pass of `net` on x (training: backward of sum_k mean(head_k * cot_k) + mean(head_k^2)).
Pass pass(DarknetNetwork& net, const Tensor& x, const std::vector<Tensor>& cot, bool training, bool bf16) {
  net.train(training);
  for (Tensor& p : net.parameters()) p.zero_grad();
  Tensor xi = x.detach().clone().requires_grad_(training);
  Pass r;
  Tensor loss;
  {
    AutocastGuard ac(DType::bf16, bf16);
    std::vector<Tensor> heads = net.forward_yolo(xi);
    for (size_t k = 0; k < heads.size(); ++k) {
      const Tensor h = heads[k].to(DType::f32);
      r.heads.push_back(h.detach().to(Device::cpu()));
      if (!training) continue;
      Tensor term = mean(h * h) + mean(h * cot[k].to(x.device()));
      loss = loss.defined() ? loss + term : term;
    }
  }
  if (!training) return r;
  loss.backward();
  for (const Tensor& p : net.parameters()) r.grads.push_back(p.grad().to(DType::f32).to(Device::cpu()));
  r.grads.push_back(xi.grad().to(DType::f32).to(Device::cpu()));
  for (const Layer& l : net.layers)
    if (l.conv && l.conv->bn) {
      r.stats.push_back(l.conv->bn->running_mean.to(Device::cpu()));
      r.stats.push_back(l.conv->bn->running_var.to(Device::cpu()));
    }
  return r;
}

std::shared_ptr<DarknetNetwork> make(uint64_t seed) {
  manual_seed(seed);
  auto net = std::make_shared<DarknetNetwork>(parse_cfg(kCfg, "parity.cfg"));
  return net;
}

TEST(CudaDarknet, ChannelsLastFusedF32EqualsCpuNchwUnfused) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  FusedSwitch keep;
  const bool prev_tf32 = cuda::tf32_enabled();
  cuda::set_tf32_enabled(false);
  const uint64_t seed = test::next_seed();
  auto cpu = make(seed), gpu = make(seed);
  randomize_bn(*cpu);
  gpu->load_state_dict(cpu->state_dict());
  gpu->to(Device::cuda(0));
  gpu->set_channels_last(true);
  const Tensor x = parity_randn({4, 3, 16, 16}, false);
  const std::vector<Tensor> cot = {parity_randn({4, 14, 8, 8}, false), parity_randn({4, 14, 8, 8}, false)};
  const test::ParityOptions tol{.atol = 2e-4, .rtol = 2e-4};
  for (bool training : {true, false}) {
    set_darknet_fused(false);
    const Pass want = pass(*cpu, x, cot, training, false);
    set_darknet_fused(true);
    const Pass got = pass(*gpu, x.to(Device::cuda(0)), cot, training, false);
    const std::string mode = training ? "training " : "evaluation ";
    for (size_t k = 0; k < want.heads.size(); ++k)
      test::compare_tensors(want.heads[k], got.heads[k].to(Device::cuda(0)), tol,
                            mode + "head " + std::to_string(k));
    ASSERT_EQ(want.grads.size(), got.grads.size());
    for (size_t i = 0; i < want.grads.size(); ++i)
      test::compare_tensors(want.grads[i], got.grads[i].to(Device::cuda(0)), {.atol = 1e-3, .rtol = 1e-3},
                            mode + "gradient " + std::to_string(i));
    for (size_t i = 0; i < want.stats.size(); ++i)
      test::compare_tensors(want.stats[i], got.stats[i].to(Device::cuda(0)), tol,
                            mode + "running statistic " + std::to_string(i));
  }
  cuda::set_tf32_enabled(prev_tf32);
}

TEST(CudaDarknet, ChannelsLastFusedBf16TracksNchwUnfused) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  FusedSwitch keep;
  const bool prev_tf32 = cuda::tf32_enabled();
  cuda::set_tf32_enabled(false);
  const uint64_t seed = test::next_seed();
  auto a = make(seed), b = make(seed);
  randomize_bn(*a);
  b->load_state_dict(a->state_dict());
  a->to(Device::cuda(0));
  b->to(Device::cuda(0));
  b->set_channels_last(true);
  const Tensor x = parity_randn({4, 3, 16, 16}, false).to(Device::cuda(0));
  const std::vector<Tensor> cot = {parity_randn({4, 14, 8, 8}, false), parity_randn({4, 14, 8, 8}, false)};
  // The f32 reference (NCHW, unfused), then both layouts under bf16 (training normalises with the batch's
  // statistics, so the running ones that each pass moves do not matter here; the f32 test compares them).
  set_darknet_fused(false);
  const Pass ref = pass(*a, x, cot, true, false);
  const Pass nchw = pass(*a, x, cot, true, true);
  set_darknet_fused(true);
  const Pass cl = pass(*b, x, cot, true, true);
  for (size_t k = 0; k < ref.heads.size(); ++k)
    test::compare_tensors(nchw.heads[k], cl.heads[k].to(Device::cuda(0)), {.atol = 5e-2, .rtol = 5e-2},
                          "bf16 head " + std::to_string(k));
  auto rel = [](const Tensor& g, const Tensor& r) {
    return norm(g - r).item() / std::max(norm(r).item(), 1e-12);
  };
  ASSERT_EQ(ref.grads.size(), cl.grads.size());
  for (size_t i = 0; i < ref.grads.size(); ++i) {
    const double e_nchw = rel(nchw.grads[i], ref.grads[i]), e_cl = rel(cl.grads[i], ref.grads[i]);
    EXPECT_LT(e_cl, 1.5 * e_nchw + 0.05) << "bf16 gradient " << i << ": channels-last + fused " << e_cl
                                         << " from f32, NCHW unfused " << e_nchw;
  }
  // Inference under bf16 in both layouts.
  const Pass ei = pass(*a, x, cot, false, true), ec = pass(*b, x, cot, false, true);
  for (size_t k = 0; k < ei.heads.size(); ++k)
    test::compare_tensors(ei.heads[k], ec.heads[k].to(Device::cuda(0)), {.atol = 5e-2, .rtol = 5e-2},
                          "bf16 evaluation head " + std::to_string(k));
  cuda::set_tf32_enabled(prev_tf32);
}

}  // namespace
}  // namespace nabla

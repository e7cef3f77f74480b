// Tensor-ring layers (models/tensor_ring.h): the reconstructed weight against the trace formula, each layer
// against the dense layer built from its reconstructed weight (values and gradients, fresh random inputs),
// the two contraction orders against each other, f64 gradient checks, parameter / compression / multiply-add
// counts on hand cases, the variance of the initialisation, TR-LeNet5 / TR-ResNet shapes and bad ranks.
#include <cmath>

#include "engine/device_runtime.h"
#include "models/tensor_ring.h"
#include "pstrn_testing.h"
#include "testing.h"

namespace nabla {
namespace {

using models::TRContraction;
using models::TRConv2d;
using models::TRLayerOptions;
using models::TRLinear;
using test::expect_close;

TRLayerOptions f64_options(TRContraction order, bool bias = true) {
  return {.bias = bias, .init = models::TRInit::lenet, .order = order, .dtype = DType::f64};
}

// Fills the bias with random values (it starts at 0), so that the bias paths are tested too.
void randomise_bias(Tensor& bias) {
  NoGradGuard ng;
  bias.copy_(test::randn64({bias.size(0)}, false));
}

// W(i_1..i_d) = Tr(Z_1(i_1) ... Z_d(i_d)) by loops, for cores [R, n, R'] in f64.
double ring_trace(const std::vector<Tensor>& cores, const std::vector<int64_t>& idx) {
  const int64_t r0 = cores[0].size(0);
  std::vector<double> m(r0 * r0, 0.0);  // running product, starts at identity
  for (int64_t i = 0; i < r0; ++i) m[i * r0 + i] = 1.0;
  int64_t rows = r0, cols = r0;
  for (size_t k = 0; k < cores.size(); ++k) {
    const Tensor c = cores[k].contiguous();
    const double* z = c.data<double>();
    const int64_t rl = c.size(0), n = c.size(1), rr = c.size(2);
    std::vector<double> next(rows * rr, 0.0);
    for (int64_t a = 0; a < rows; ++a)
      for (int64_t b = 0; b < rl; ++b)
        for (int64_t e = 0; e < rr; ++e) next[a * rr + e] += m[a * cols + b] * z[(b * n + idx[k]) * rr + e];
    m = next;
    cols = rr;
  }
  double tr = 0;
  for (int64_t i = 0; i < r0; ++i) tr += m[i * cols + i];
  return tr;
}

TEST(TRLinear, FullWeightIsTheRingTraceOfTheCores) {
  TRLinear layer({2, 3}, {4, 2}, {2, 3, 4, 3}, f64_options(TRContraction::paper));
  Tensor w = layer.full_weight();  // [O, I]
  ASSERT_EQ(w.shape(), (Shape{8, 6}));
  std::vector<Tensor> cores = layer.in_cores;
  cores.insert(cores.end(), layer.out_cores.begin(), layer.out_cores.end());
  const auto v = w.to_double_vector();
  for (int64_t i1 = 0; i1 < 2; ++i1)
    for (int64_t i2 = 0; i2 < 3; ++i2)
      for (int64_t o1 = 0; o1 < 4; ++o1)
        for (int64_t o2 = 0; o2 < 2; ++o2)
          EXPECT_NEAR(v[(o1 * 2 + o2) * 6 + i1 * 3 + i2], ring_trace(cores, {i1, i2, o1, o2}), 1e-12);
}

// The layer against linear(x, W) with W its reconstructed weight as a separate leaf: the outputs, the input
// gradients and the bias gradients match, and the cores' gradients (through either order) equal those of
// <dL/dW, W(cores)>, i.e. the chain rule through the reconstruction.
void check_linear_against_dense(TRContraction order) {
  TRLinear layer({3, 4}, {2, 5}, {3, 2, 4, 2}, f64_options(order));
  randomise_bias(layer.bias);
  Tensor x = test::randn64({7, 12});
  Tensor w_dense = layer.full_weight().detach().clone().requires_grad_();
  Tensor b_dense = layer.bias.detach().clone().requires_grad_();
  Tensor gy = test::randn64({7, 10}, false);

  Tensor y = layer.forward(x);
  y.backward(gy);
  Tensor xd = x.detach().clone().requires_grad_();
  Tensor yd = linear(xd, w_dense, b_dense);
  yd.backward(gy);
  expect_close(y, yd, 1e-10);
  expect_close(x.grad(), xd.grad(), 1e-10);
  expect_close(layer.bias.grad(), b_dense.grad(), 1e-10);
  // Cores' gradients: d<dW, W(cores)>/dcores with dW the dense weight's gradient.
  std::vector<Tensor> expected;
  for (auto* cores : {&layer.in_cores, &layer.out_cores})
    for (auto& c : *cores) expected.push_back(c.grad().clone());
  layer.zero_grad();
  sum(mul(layer.full_weight(), w_dense.grad())).backward();
  size_t k = 0;
  for (auto* cores : {&layer.in_cores, &layer.out_cores})
    for (auto& c : *cores) expect_close(c.grad(), expected[k++], 1e-10);
}

TEST(TRLinear, PaperOrderEqualsDenseLayerWithReconstructedWeight) {
  check_linear_against_dense(TRContraction::paper);
}
TEST(TRLinear, FullWeightOrderEqualsDenseLayerWithReconstructedWeight) {
  check_linear_against_dense(TRContraction::full_weight);
}

TEST(TRLinear, ContractionOrdersGiveTheSameOutputAndGradients) {
  TRLinear a({2, 5, 3}, {6, 4}, {3, 4, 2, 5, 2}, f64_options(TRContraction::paper));
  TRLinear b({2, 5, 3}, {6, 4}, {3, 4, 2, 5, 2}, f64_options(TRContraction::full_weight));
  randomise_bias(a.bias);
  b.load_state_dict(a.state_dict());
  Tensor x = test::randn64({5, 30}, false);
  Tensor gy = test::randn64({5, 24}, false);
  Tensor ya = a.forward(x), yb = b.forward(x);
  expect_close(ya, yb, 1e-10);
  ya.backward(gy);
  yb.backward(gy);
  auto pa = a.named_parameters(), pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) expect_close(pa[i].second.grad(), pb[i].second.grad(), 1e-10);
}

TEST(TRLinear, GradientsMatchFiniteDifferencesInBothOrders) {
  for (auto order : {TRContraction::paper, TRContraction::full_weight}) {
    TRLinear layer({2, 3}, {3, 2}, {2, 3, 2, 2}, f64_options(order));
    randomise_bias(layer.bias);
    std::vector<Tensor> inputs = {test::randn64({4, 6})};
    for (auto& p : layer.parameters()) inputs.push_back(p);
    test::expect_gradcheck([&](const std::vector<Tensor>& in) { return layer.forward(in[0]); }, inputs);
  }
}

void check_conv_against_dense(TRContraction order, int64_t stride, int64_t padding) {
  TRConv2d layer({2, 3}, {4, 2}, {2, 3, 2}, {3, 2}, 3, stride, padding, f64_options(order));
  randomise_bias(layer.bias);
  Tensor x = test::randn64({2, 6, 7, 6});
  Tensor w_dense = layer.full_weight().detach().clone().requires_grad_();
  Tensor b_dense = layer.bias.detach().clone().requires_grad_();
  ASSERT_EQ(w_dense.shape(), (Shape{8, 6, 3, 3}));
  Tensor y = layer.forward(x);
  Tensor gy = test::randn64(y.shape(), false);
  y.backward(gy);
  Tensor xd = x.detach().clone().requires_grad_();
  Tensor yd = conv2d(xd, w_dense, b_dense, {stride, stride}, {padding, padding});
  yd.backward(gy);
  expect_close(y, yd, 1e-10);
  expect_close(x.grad(), xd.grad(), 1e-10);
  expect_close(layer.bias.grad(), b_dense.grad(), 1e-10);
  std::vector<Tensor> expected;
  for (auto& p : layer.parameters()) expected.push_back(p.grad().clone());
  layer.zero_grad();
  sum(mul(layer.full_weight(), w_dense.grad())).backward();
  auto ps = layer.parameters();
  for (size_t i = 0; i + 1 < ps.size(); ++i) expect_close(ps[i].grad(), expected[i], 1e-10);  // not bias
}

TEST(TRConv2d, PaperOrderEqualsDenseConvWithReconstructedWeight) {
  check_conv_against_dense(TRContraction::paper, 1, 1);
  check_conv_against_dense(TRContraction::paper, 2, 0);
}
TEST(TRConv2d, FullWeightOrderEqualsDenseConvWithReconstructedWeight) {
  check_conv_against_dense(TRContraction::full_weight, 2, 1);
}

TEST(TRConv2d, FullWeightIsTheRingTraceOfCoresAndKernel) {
  // W[o, c, p, q] = Tr(Z_in(c) K(p, q) Z_out(o)): the kernel core is a node [R_a, k^2, R_{a+1}] of the ring.
  TRConv2d layer({2}, {3}, {2, 3}, {2}, 2, 1, 0, f64_options(TRContraction::paper));
  Tensor w = layer.full_weight();
  Tensor k = layer.kernel_core.permute({1, 2, 3, 0}).reshape({3, 4, 2});  // [R_a, pq, R_b]
  std::vector<Tensor> cores = {layer.in_cores[0], k, layer.out_cores[0]};
  const auto v = w.to_double_vector();
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t pq = 0; pq < 4; ++pq)
        EXPECT_NEAR(v[(o * 2 + c) * 4 + pq], ring_trace(cores, {c, pq, o}), 1e-12);
}

TEST(TRConv2d, GradientsMatchFiniteDifferences) {
  for (auto order : {TRContraction::paper, TRContraction::full_weight}) {
    TRConv2d layer({2}, {3}, {2, 2}, {2}, 3, 2, 1, f64_options(order));
    randomise_bias(layer.bias);
    std::vector<Tensor> inputs = {test::randn64({2, 2, 5, 5})};
    for (auto& p : layer.parameters()) inputs.push_back(p);
    test::expect_gradcheck([&](const std::vector<Tensor>& in) { return layer.forward(in[0]); }, inputs);
  }
}

TEST(TRLayers, CheapestOrderPicksTheOneHoldingFewerElementsAndAgrees) {
  // 320 -> 10 with ranks 20: W has 3,200 elements, U and V 20 * 20 * 330 = 132,000: full weight wins.
  TRLinear small({5, 8, 8}, {10}, {20, 20, 20, 20}, {.order = TRContraction::cheapest});
  EXPECT_EQ(small.resolved_order(64), TRContraction::full_weight);
  // 4096 -> 4096 with ranks 2: U, V and t hold far less than W.
  TRLinear big({64, 64}, {64, 64}, {2, 2, 2, 2}, {.order = TRContraction::cheapest});
  EXPECT_EQ(big.resolved_order(64), TRContraction::paper);
  TRLinear paper({5, 8, 8}, {10}, {20, 20, 20, 20}, {.order = TRContraction::paper});
  paper.load_state_dict(small.state_dict());
  Tensor x = test::randn32({9, 320});
  expect_close(small.forward(x), paper.forward(x), 1e-4);
}

TEST(TRLayers, ParameterCompressionAndMultiplyAddCountsOnHandCases) {
  // [2,3] -> [4], ranks [2,3,5]: cores [2,2,3] + [3,3,5] + [5,4,2] = 12 + 45 + 40 = 97; dense 6 x 4 = 24.
  TRLinear fc({2, 3}, {4}, {2, 3, 5});
  EXPECT_EQ(fc.tr_params(), 97);
  EXPECT_EQ(fc.dense_params(), 24);
  EXPECT_DOUBLE_EQ(fc.compression(), 24.0 / 97.0);
  // merge: [4, 3] x [3, 15] = 180; per row R0 Ra (I + O) = 10 x 10; full: 180 + W (4 x 10 x 6) + B I O.
  EXPECT_EQ(fc.macs(7, TRContraction::paper), 180 + 7 * 100);
  EXPECT_EQ(fc.macs(7, TRContraction::full_weight), 180 + 240 + 7 * 24);
  // conv [2] -> [3], in ranks [2,4], out [3], 3x3: 2*2*4 + 9*4*3 + 3*3*2 = 16 + 108 + 18 = 142; dense 54.
  TRConv2d conv({2}, {3}, {2, 4}, {3}, 3, 1, 1);
  EXPECT_EQ(conv.tr_params(), 142);
  EXPECT_EQ(conv.dense_params(), 54);
  // B = 2, 5x5: 1x1 2 * 25 * 2 * (2 * 4) = 800, kernel 2 * 2 * 25 * 4 * 3 * 9 = 10,800, projection
  // 2 * 25 * (2 * 3) * 3 = 900; single-core sides merge nothing.
  EXPECT_EQ(conv.macs(2, 5, 5, TRContraction::paper), 800 + 10800 + 900);
  // full: U K = 2*2*4*9*3 = 432, W = 3*6*2*9 = 324, conv 2 * 25 * 3 * 2 * 9 = 2,700.
  EXPECT_EQ(conv.macs(2, 5, 5, TRContraction::full_weight), 432 + 324 + 2700);
}

TEST(TRLeNet5, CompressionOfThePaperRanksMatchesTheBriefsDerivation) {
  // PSTRN-M on MNIST (paper Table 2): the brief derives 16.5x for the whole net, 18.2x with R7 fixed to 2.
  const auto m = models::parse_ranks("6,20,14,8,12,20,2,20,16,16,20,12,12,8,6,26,8,2,6,20", 20);
  models::TRLeNet5 net(m);
  EXPECT_EQ(net.dense_network_params(), 429100);
  EXPECT_EQ(net.num_parameters(), 25920);  // the reference's formulas, evaluated by hand in Python
  EXPECT_NEAR(net.network_compression(), 16.5, 0.1);
  models::TRLeNet5 fixed(m, {.c3_rank7_fixed_to_2 = true});
  EXPECT_NEAR(fixed.network_compression(), 18.2, 0.05);
  const auto s = models::parse_ranks("2,24,18,8,8,30,18,30,22,26,22,26,30,14,30,8,24,12,10,30", 20);
  EXPECT_NEAR(models::TRLeNet5(s).network_compression(), 6.5, 0.05);
  EXPECT_LT(net.min_compression(), net.network_compression());
  Tensor y = net.forward(test::randn32({3, 1, 28, 28}));
  EXPECT_EQ(y.shape(), (Shape{3, 10}));
}

TEST(DenseLeNet5, HasTheDenseCountOfTRLeNet5AndChecksItsInput) {
  models::DenseLeNet5 net(10);
  const auto m = models::parse_ranks("6,20,14,8,12,20,2,20,16,16,20,12,12,8,6,26,8,2,6,20", 20);
  EXPECT_EQ(net.num_parameters(), models::TRLeNet5(m).dense_network_params());
  Tensor x = test::randn32({2, 1, 28, 28});
  Tensor y = net.forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
  sum(mul(y, y)).backward();
  EXPECT_GT(sum(mul(net.c1->weight.grad(), net.c1->weight.grad())).item_double(), 0.0);
  test::expect_error(
      [&] {
        net.forward(test::randn32({2, 1, 32, 32}));
      },
      {"DenseLeNet5", "[N, 1, 28, 28]", "32"});
}

TEST(TRLinear, InitialisationKeepsTheInputVarianceTimesTheGain) {
  // lenet init: Var y = 2 Var x (He gain before a ReLU) whatever the ranks and factorisation.
  for (auto ranks : {std::vector<int64_t>{3, 4, 5, 6, 7}, std::vector<int64_t>{8, 2, 8, 2, 8}}) {
    double var_sum = 0;
    const int reps = 40;
    for (int r = 0; r < reps; ++r) {
      TRLinear layer({4, 5, 6}, {8, 8}, ranks, {.bias = false});
      Tensor y = layer.forward(test::randn32({64, 120}));
      var_sum += mean(mul(y, y)).item_double();
    }
    EXPECT_NEAR(var_sum / reps, 2.0, 0.35) << "ranks " << ranks[0];
  }
}

TEST(TRResNet, Depth20And32BuildRunAndCompress) {
  const auto m = models::parse_ranks("4,8,6,8,6,12,10", 7);
  models::TRResNet r20(m, {.depth = 20, .in_channels = 1});
  EXPECT_EQ(r20.tr_convs.size(), 19u);
  EXPECT_EQ(r20.dense_network_params(), 272474 - 3 * 9 * 16 + 1 * 9 * 16);  // models/resnet.h, 1 channel
  EXPECT_GT(r20.network_compression(), 5.0);
  Tensor y = r20.forward(test::randn32({2, 1, 16, 16}));
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
  models::TRResNet r32(m, {.depth = 32});
  EXPECT_EQ(r32.tr_convs.size(), 31u);
}

TEST(TRLayers, BadShapesRanksAndInputsAreErrors) {
  test::expect_error([] { TRLinear({2, 3}, {4}, {2, 3}); }, {"3 ranks", "got 2"});
  test::expect_error([] { TRLinear({2, 3}, {4}, {2, 0, 3}); }, {"rank", ">= 1", "[2,0,3]"});
  test::expect_error([] { TRConv2d({2}, {3}, {2}, {3}, 3); }, {"2 input ranks", "[2]"});
  test::expect_error([] { models::TRLeNet5(std::vector<int64_t>(19, 4)); }, {"20 ranks", "got 19"});
  test::expect_error([] { models::TRResNet(std::vector<int64_t>(7, 4), {.depth = 21}); }, {"6n + 2", "21"});
  test::expect_error([] { models::parse_ranks("4,x,5"); }, {"entry 2", "'x'"});
  test::expect_error([] { models::parse_ranks("4,0,5"); }, {"entry 2", "[1, 4096]"});
  test::expect_error([] { models::parse_ranks("4,5", 4); }, {"expected 4", "got 2"});
  TRLinear fc({2, 3}, {4}, {2, 3, 5});
  test::expect_error([&] { fc.forward(test::randn32({2, 5})); }, {"5 features", "expected 6"});
  test::expect_error([] { models::parse_tr_contraction("fast"); }, {"'fast'", "paper"});
}

// ---- CUDA parity (skips where there is no CUDA backend or device; the lead's GPU run takes it) ----
TEST(TRLeNet5Cuda, LogitsAndGradientsMatchTheCpuInEveryOrder) {
  // TR-Conv2d (c1, c3) and TR-Linear (fc5, fc6) through TR-LeNet5, f32 with TF32 off, each contraction order:
  // the logits and every core's gradient on the GPU equal the CPU's.
  if (!runtime::available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA backend or device";
  const bool tf32 = runtime::tf32_enabled();
  runtime::set_tf32_enabled(false);
  const auto ranks = models::parse_ranks("3,5,4,6,3,5,4,6,3,5,4,6,3,5,4,6,3,5,4,6", 20);
  for (auto order : {TRContraction::paper, TRContraction::full_weight, TRContraction::cheapest}) {
    models::TRLeNet5 cpu(ranks, {.layer = {.order = order}}), gpu(ranks, {.layer = {.order = order}});
    gpu.load_state_dict(cpu.state_dict());
    gpu.to(Device::cuda());
    Tensor x = test::randn32({6, 1, 28, 28}), y = test::randint64(0, 10, {6});
    Tensor lc = cpu.forward(x), lg = gpu.forward(x.to(Device::cuda()));
    expect_close(lg.to(Device::cpu()), lc, 1e-4);
    cross_entropy(lc, y).backward();
    cross_entropy(lg, y.to(Device::cuda())).backward();
    test::expect_same_gradients(cpu, gpu, 1e-6, 1e-4);
  }
  runtime::set_tf32_enabled(tf32);
}

}  // namespace
}  // namespace nabla

// TR-LSTM (models/tr_lstm.h) and its sequence task (algorithms/pstrn/sequences.h): the layer equals
// nn::LSTM whose input weight is the TR layer's reconstructed matrix (outputs, final state and every
// gradient, fresh random inputs and states, both contraction orders), f64 finite-difference gradient checks,
// the parameter count against the formula (hand case and random shapes), the planted signal of the data, a
// short training that learns the task, and bad shapes / ranks.
#include <omp.h>

#include <cmath>

#include "algorithms/pstrn/sequences.h"
#include "engine/device_runtime.h"
#include "models/nn/rnn.h"
#include "models/tr_lstm.h"
#include "pstrn_testing.h"
#include "testing.h"

namespace nabla {
namespace {

using models::TRContraction;
using models::TRLSTM;
using models::TRLSTMOptions;
using test::expect_close;

TRLSTMOptions f64_lstm(std::vector<int64_t> in, std::vector<int64_t> out, TRContraction order) {
  return {.in_shape = std::move(in),
          .out_shape = std::move(out),
          .layer = {.bias = true, .init = models::TRInit::resnet, .order = order, .dtype = DType::f64}};
}

void fill_random(const Tensor& t) {
  NoGradGuard ng;
  Tensor(t).copy_(test::randn64(t.shape(), false));
}

void check_against_dense_lstm(TRContraction order) {
  TRLSTM tr({3, 1, 4, 2}, f64_lstm({3, 4}, {4, 5}, order));  // I = 12, H = 5, ranks [3, 1, 4, 2]
  fill_random(tr.input->bias);
  nn::LSTM dense(12, 5, 0.0, DType::f64);
  {
    NoGradGuard ng;
    dense.cell->weight_ih.copy_(tr.input->full_weight());
    dense.cell->bias_ih.copy_(tr.input->bias);
    dense.cell->weight_hh.copy_(tr.weight_hh);
    dense.cell->bias_hh.copy_(tr.bias_hh);
  }
  Tensor x = test::randn64({6, 3, 12}), h0 = test::randn64({3, 5}, false), c0 = test::randn64({3, 5}, false);
  Tensor xd = x.detach().clone().requires_grad_();
  auto [y, s] = tr.forward_seq(x, {h0, c0});
  auto [yd, sd] = dense.forward_seq(xd, {h0, c0});
  expect_close(y, yd, 1e-12);
  expect_close(s.h, sd.h, 1e-12);
  expect_close(s.c, sd.c, 1e-12);
  // One loss through all outputs and the final cell state, with random weights.
  Tensor gy = test::randn64(y.shape(), false), gc = test::randn64(s.c.shape(), false);
  (sum(mul(y, gy)) + sum(mul(s.c, gc))).backward();
  (sum(mul(yd, gy)) + sum(mul(sd.c, gc))).backward();
  expect_close(x.grad(), xd.grad(), 1e-11);
  expect_close(tr.weight_hh.grad(), dense.cell->weight_hh.grad(), 1e-11);
  expect_close(tr.bias_hh.grad(), dense.cell->bias_hh.grad(), 1e-11);
  expect_close(tr.input->bias.grad(), dense.cell->bias_ih.grad(), 1e-11);
  // The cores' gradients are the chain rule through the reconstruction: d<dW_ih, W(cores)>/dcores.
  std::vector<Tensor> got;
  for (auto* cores : {&tr.input->in_cores, &tr.input->out_cores})
    for (auto& c : *cores) got.push_back(c.grad().clone());
  tr.zero_grad();
  sum(mul(tr.input->full_weight(), dense.cell->weight_ih.grad())).backward();
  size_t k = 0;
  for (auto* cores : {&tr.input->in_cores, &tr.input->out_cores})
    for (auto& c : *cores) expect_close(got[k++], c.grad(), 1e-11);
}

TEST(TRLSTM, PaperOrderEqualsDenseLSTMWithTheReconstructedInputWeight) {
  check_against_dense_lstm(TRContraction::paper);
}
TEST(TRLSTM, FullWeightOrderEqualsDenseLSTMWithTheReconstructedInputWeight) {
  check_against_dense_lstm(TRContraction::full_weight);
}

TEST(TRLSTM, GradientsMatchFiniteDifferences) {
  for (auto order : {TRContraction::paper, TRContraction::full_weight}) {
    TRLSTM tr({2, 3, 2, 2}, f64_lstm({2, 3}, {4, 2}, order));  // I = 6, H = 2
    fill_random(tr.input->bias);
    std::vector<Tensor> inputs = {test::randn64({3, 2, 6})};
    for (auto& p : tr.parameters()) inputs.push_back(p);
    test::expect_gradcheck(
        [&](const std::vector<Tensor>& in) {
          auto [y, s] = tr.forward_seq(in[0]);
          return cat({y.flatten(), s.c.flatten()}, 0);
        },
        inputs);
  }
}

TEST(TRLSTMClassifier, GradientsMatchFiniteDifferences) {
  models::TRLSTMClassifier net({2, 2, 3, 2}, 3, f64_lstm({3, 2}, {2, 4}, TRContraction::paper));
  std::vector<Tensor> inputs = {test::randn64({2, 4, 6})};  // [N, T, I]
  for (auto& p : net.parameters()) inputs.push_back(p);
  test::expect_gradcheck([&](const std::vector<Tensor>& in) { return net.forward(in[0]); }, inputs);
}

TEST(TRLSTM, ParameterCountMatchesTheFormula) {
  // Hand case (the defaults): I = [16, 16], 4H = [4, 16], ranks [2, 3, 4, 5]: cores 2*16*3 + 3*16*4 +
  // 4*4*5 + 5*16*2 = 528, + b_ih 64 + W_hh 64*16 + b_hh 64 = 1,680; the head adds 16*6 + 6 = 102.
  TRLSTM hand({2, 3, 4, 5}, {});
  EXPECT_EQ(hand.input->tr_params(), 528);
  EXPECT_EQ(hand.num_parameters(), 1680);
  EXPECT_EQ(TRLSTM::param_formula({16, 16}, {4, 16}, {2, 3, 4, 5}), 1680);
  EXPECT_NEAR(hand.compression(), 256.0 * 64.0 / 528.0, 1e-12);
  models::TRLSTMClassifier cls({2, 3, 4, 5}, 6);
  EXPECT_EQ(cls.num_parameters(), 1680 + 102);
  EXPECT_EQ(cls.dense_network_params(), 256 * 64 + 64 + 64 * 16 + 64 + 102);
  EXPECT_NEAR(cls.network_compression(), static_cast<double>(cls.dense_network_params()) / 1782, 1e-12);
  // Random shapes and ranks (1..3 input modes, 1..2 output modes).
  Generator g{test::next_seed(), 0};
  for (int trial = 0; trial < 12; ++trial) {
    auto draw = [&](int64_t lo, int64_t hi, int64_t n) {
      return randint(lo, hi, {n}, {}, &g).to_vector<int64_t>();
    };
    const int64_t a = draw(1, 4, 1)[0], b = draw(1, 3, 1)[0];
    std::vector<int64_t> in = draw(2, 6, a), out = draw(2, 6, b);
    out[0] *= 4;  // 4 H
    const auto ranks = draw(1, 7, a + b);
    TRLSTM layer(ranks, {.in_shape = in, .out_shape = out});
    EXPECT_EQ(layer.num_parameters(), TRLSTM::param_formula(in, out, ranks)) << "trial " << trial;
  }
}

TEST(TRLSTM, BadRanksShapesAndInputsAreErrors) {
  test::expect_error([] { TRLSTM({2, 3, 4}, {}); }, {"need 4 ranks", "got 3"});
  test::expect_error([] { TRLSTM({2, 3, 4, 5}, {.out_shape = {3, 5}}); }, {"4 x hidden", "got 15"});
  test::expect_error([] { TRLSTM({2, 2, 2, 2}, {.input_dropout = 1.0}); }, {"dropout", "[0, 1)"});
  TRLSTM ok({2, 2, 2, 2}, {});
  test::expect_error([&] { ok.forward_seq(test::randn32({3, 2, 60})); }, {"[T, N, 256]", "[3,2,60]"});
  models::TRLSTMClassifier cls({2, 2, 2, 2}, 6);
  test::expect_error([&] { cls.forward(test::randn32({2, 64})); }, {"[N, T, 256]"});
}

TEST(SequenceTask, ShapesLabelsAndThePlantedMotifs) {
  pstrn::SequenceTaskOptions o{.n_train = 3000,
                               .n_val = 50,
                               .n_test = 20,
                               .length = 12,
                               .rows = 8,
                               .cols = 8,
                               .amplitude = 3.0,
                               .seed = test::next_seed()};
  auto d = pstrn::make_sequence_task(o);
  EXPECT_EQ(d.classes, 6);
  EXPECT_EQ(d.x_train.shape(), (Shape{3000, 12, 64}));
  EXPECT_EQ(d.x_val.shape(), (Shape{50, 12, 64}));
  EXPECT_EQ(d.y_test.shape(), (Shape{20}));
  // Each motif has Frobenius norm `amplitude` (3).
  const auto m = d.motifs.to_double_vector();
  for (int64_t k = 0; k < 3; ++k) {
    double n2 = 0;
    for (int64_t f = 0; f < 64; ++f) n2 += m[k * 64 + f] * m[k * 64 + f];
    EXPECT_NEAR(std::sqrt(n2), 3.0, 1e-4);
  }
  // Class c = the ordered pair (a, b) in the order (0,1), (0,2), (1,0), (1,2), (2,0), (2,1). Motif a sits at
  // one step of the first half, b at one of the second: the projection onto a's unit direction, averaged
  // over the first half's 6 steps, is 3 / 6 = 0.5 in expectation (the noise has mean 0), and onto b over
  // the second half the same.
  const int pairs[6][2] = {{0, 1}, {0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}};
  const auto x = d.x_train.to_vector<float>();
  const auto y = d.y_train.to_vector<int64_t>();
  double first_a = 0, second_b = 0;
  std::vector<int64_t> count(6, 0);
  for (int64_t i = 0; i < 3000; ++i) {
    ASSERT_GE(y[i], 0);
    ASSERT_LT(y[i], 6);
    ++count[y[i]];
    const int a = pairs[y[i]][0], b = pairs[y[i]][1];
    for (int64_t t = 0; t < 12; ++t)
      for (int64_t f = 0; f < 64; ++f) {
        const double v = x[(i * 12 + t) * 64 + f] / 3.0 / 6.0;
        if (t < 6)
          first_a += v * m[a * 64 + f];
        else
          second_b += v * m[b * 64 + f];
      }
  }
  for (int64_t c = 0; c < 6; ++c) EXPECT_GT(count[c], 400) << "class " << c;  // 500 expected
  EXPECT_NEAR(first_a / 3000, 0.5, 0.05);
  EXPECT_NEAR(second_b / 3000, 0.5, 0.05);
  test::expect_error([] { pstrn::make_sequence_task({.motifs = 1}); }, {"motifs", "got 1"});
  test::expect_error([] { pstrn::make_sequence_task({.motif_rank = 17}); },
                     {"motif rank", "[1, 16]", "got 17"});
}

TEST(SequenceTask, ATRLSTMLearnsItAndThreadsDoNotChangeTheNumbers) {
  // The search's defaults (16 x 16 features, amplitude 5, 6 steps, 10 epochs, batch 50) on 1,500 sequences.
  auto d = pstrn::make_sequence_task({.n_val = 300, .n_test = 300, .seed = test::next_seed()});
  pstrn::SequenceTrainOptions o;
  // Small ops: one OpenMP thread per net (as search_pstrn --threads 1) is several times faster than two.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  auto r = pstrn::train_sequence(d, {6, 6, 6, 6}, o, true);
  omp_set_num_threads(threads);
  // Chance is 83.3% error (6 classes); ranks 6 reach 9-16% on the seeds tried (ranks 4: 18-40%).
  EXPECT_LT(r.best_val_error, 50.0);
  EXPECT_LT(r.test_error, 55.0);
  EXPECT_EQ(r.params, TRLSTM::param_formula({16, 16}, {4, 16}, {6, 6, 6, 6}) + 16 * 6 + 6);
  auto fit = pstrn::sequence_fitness(d, o, 2);
  auto two = fit({{2, 3, 2, 3}, {6, 6, 6, 6}});
  EXPECT_DOUBLE_EQ(two[1].error, r.best_val_error);  // threads and order do not change a net's numbers
  EXPECT_DOUBLE_EQ(two[1].compression, r.compression);
  EXPECT_NEAR(two[0].compression, 256.0 * 64 / (2 * 16 * 3 + 3 * 16 * 2 + 2 * 4 * 3 + 3 * 16 * 2), 1e-9);
}

// ---- CUDA (skipped where there is no CUDA backend or device; the lead's GPU run takes it) ----
TEST(TRLSTMCuda, LogitsAndGradientsMatchTheCpuInBothOrders) {
  if (!runtime::available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA backend or device";
  for (auto order : {TRContraction::paper, TRContraction::full_weight}) {
    TRLSTMOptions o{.layer = {.bias = true, .init = models::TRInit::resnet, .order = order}};
    models::TRLSTMClassifier cpu({3, 5, 4, 6}, 6, o), gpu({3, 5, 4, 6}, 6, o);
    gpu.load_state_dict(cpu.state_dict());
    gpu.to(Device::cuda());
    Tensor x = test::randn32({8, 6, 256}), y = test::randint64(0, 6, {8});
    Tensor lc = cpu.forward(x), lg = gpu.forward(x.to(Device::cuda()));
    // f32 GEMMs run in TF32 on the GPU by default: a loose tolerance.
    expect_close(lg.to(Device::cpu()), lc, 2e-2);
    cross_entropy(lc, y).backward();
    cross_entropy(lg, y.to(Device::cuda())).backward();
    test::expect_same_gradients(cpu, gpu, 1e-3, 3e-2);
  }
}

}  // namespace
}  // namespace nabla

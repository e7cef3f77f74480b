// models/nn/rnn.h: the LSTM cell against a hand-written reference of the gate equations, and its gradients
// (input, state and every parameter) against finite differences in f64, one step and over a sequence.
#include <cmath>

#include "models/nn/rnn.h"
#include "testing.h"

namespace nabla {
namespace {

double sigm(double v) { return 1 / (1 + std::exp(-v)); }

TEST(Lstm, CellMatchesTheGateEquationsOnRandomInput) {
  nn::LSTMCell cell(3, 2, 0.0, DType::f64);
  Tensor x = test::randn64({2, 3}, false), h = test::randn64({2, 2}, false), c = test::randn64({2, 2}, false);
  nn::LSTMState s = cell.forward_step(x, {h, c});
  auto W = cell.weight_ih.to_vector<double>(), U = cell.weight_hh.to_vector<double>();
  auto bi = cell.bias_ih.to_vector<double>(), bh = cell.bias_hh.to_vector<double>();
  auto xv = x.to_vector<double>(), hv = h.to_vector<double>(), cv = c.to_vector<double>();
  auto hs = s.h.to_vector<double>(), cs = s.c.to_vector<double>();
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 2; ++j) {
      double g[4];
      for (int k = 0; k < 4; ++k) {
        const int row = k * 2 + j;
        g[k] = bi[row] + bh[row];
        for (int i = 0; i < 3; ++i) g[k] += W[row * 3 + i] * xv[n * 3 + i];
        for (int i = 0; i < 2; ++i) g[k] += U[row * 2 + i] * hv[n * 2 + i];
      }
      const double c2 = sigm(g[1]) * cv[n * 2 + j] + sigm(g[0]) * std::tanh(g[2]);
      EXPECT_NEAR(cs[n * 2 + j], c2, 1e-12);
      EXPECT_NEAR(hs[n * 2 + j], sigm(g[3]) * std::tanh(c2), 1e-12);
    }
  EXPECT_THROW(cell.forward_step(test::randn64({2, 4}, false), {}), Error);
}

TEST(LstmGrad, CellMatchesFiniteDifferences) {
  nn::LSTMCell cell(3, 4, 0.0, DType::f64);
  std::vector<Tensor> in{test::randn64({2, 3}), test::randn64({2, 4}), test::randn64({2, 4})};
  for (auto& p : cell.parameters()) in.push_back(p);
  test::expect_gradcheck(
      [&](auto& v) {
        nn::LSTMState s = cell.forward_step(v[0], {v[1], v[2]});
        return s.h * 2.0 + s.c;
      },
      in);
}

TEST(LstmGrad, SequenceMatchesFiniteDifferences) {
  nn::LSTM lstm(2, 3, 0.5, DType::f64);
  std::vector<Tensor> in{test::randn64({4, 2, 2})};
  for (auto& p : lstm.parameters()) in.push_back(p);
  test::expect_gradcheck(
      [&](auto& v) {
        auto [ys, s] = lstm.forward_seq(v[0]);
        return ys + s.c;  // [T, N, H] + [N, H] broadcast
      },
      in);
}

}  // namespace
}  // namespace nabla

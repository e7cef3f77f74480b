// LSTM cell and a one-layer LSTM over a sequence (PyTorch's nn.LSTMCell / nn.LSTM gate layout).
//
//   gates = x W_ih^T + b_ih + h W_hh^T + b_hh          [N, 4H], chunks i, f, g, o (in that order)
//   c'    = sigmoid(f) * c + sigmoid(i) * tanh(g)
//   h'    = sigmoid(o) * tanh(c')
// Shapes: x [N, I], h and c [N, H]; LSTM runs x [T, N, I] -> outputs [T, N, H] and the final (h, c).
// Everything is built from differentiable ops (linear, narrow, sigmoid, tanh, mul, add), so the backward is
// autograd's; tests/models/test_lstm.cpp checks it by finite differences in f64. Initialisation as PyTorch:
// every weight and bias U(-1/sqrt(H), 1/sqrt(H)), or U(-init, init) when `init` > 0 (ENAS uses 0.1).
#pragma once
#include <utility>
#include <vector>

#include "models/nn/module.h"

namespace nabla::nn {

struct LSTMState {
  Tensor h, c;
};

class LSTMCell : public Module {
 public:
  LSTMCell(int64_t input_size, int64_t hidden_size, double init = 0.0, DType dtype = DType::f32);
  // state with undefined h/c starts from zeros
  LSTMState forward_step(const Tensor& x, const LSTMState& state);
  Tensor forward(const Tensor& x) override { return forward_step(x, {}).h; }
  Tensor weight_ih, weight_hh, bias_ih, bias_hh;  // [4H, I], [4H, H], [4H], [4H]
  int64_t input_size, hidden_size;
};

class LSTM : public Module {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, double init = 0.0, DType dtype = DType::f32);
  // x [T, N, I] -> ([T, N, H], final state)
  std::pair<Tensor, LSTMState> forward_seq(const Tensor& x, const LSTMState& state = {});
  Tensor forward(const Tensor& x) override { return forward_seq(x).first; }
  std::shared_ptr<LSTMCell> cell;
};

}  // namespace nabla::nn

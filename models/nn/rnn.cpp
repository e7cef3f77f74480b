// LSTM cell and layer (see rnn.h for the maths).
#include "models/nn/rnn.h"

#include <cmath>

#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"

namespace nabla::nn {

LSTMCell::LSTMCell(int64_t in, int64_t hidden, double init, DType dtype)
    : Module("LSTMCell"), input_size(in), hidden_size(hidden) {
  NABLA_CHECK(in > 0 && hidden > 0, "LSTMCell: sizes must be positive, got input ", in, " hidden ", hidden);
  const double b = init > 0 ? init : 1.0 / std::sqrt(static_cast<double>(hidden));
  auto p = [&](const Shape& s) { return uniform(s, -b, b, {.dtype = dtype, .requires_grad = true}); };
  weight_ih = register_parameter("weight_ih", p({4 * hidden, in}));
  weight_hh = register_parameter("weight_hh", p({4 * hidden, hidden}));
  bias_ih = register_parameter("bias_ih", p({4 * hidden}));
  bias_hh = register_parameter("bias_hh", p({4 * hidden}));
}

LSTMState LSTMCell::forward_step(const Tensor& x, const LSTMState& s) {
  NABLA_CHECK(x.dim() == 2 && x.size(1) == input_size, "LSTMCell: input must be [N, ", input_size, "], got ",
              x.shape());
  const int64_t n = x.size(0), hs = hidden_size;
  Tensor h = s.h.defined() ? s.h : zeros({n, hs}, {.dtype = x.dtype(), .device = x.device()});
  Tensor c = s.c.defined() ? s.c : zeros({n, hs}, {.dtype = x.dtype(), .device = x.device()});
  NABLA_CHECK(h.shape() == Shape({n, hs}) && c.shape() == Shape({n, hs}), "LSTMCell: state must be [", n,
              ", ", hs, "], got h ", h.shape(), " c ", c.shape());
  Tensor gates = linear(x, weight_ih, bias_ih) + linear(h, weight_hh, bias_hh);
  Tensor i = sigmoid(gates.narrow(1, 0, hs)), f = sigmoid(gates.narrow(1, hs, hs));
  Tensor g = tanh(gates.narrow(1, 2 * hs, hs)), o = sigmoid(gates.narrow(1, 3 * hs, hs));
  Tensor c2 = f * c + i * g;
  return {o * tanh(c2), c2};
}

LSTM::LSTM(int64_t in, int64_t hidden, double init, DType dtype) : Module("LSTM") {
  cell = register_module("cell", std::make_shared<LSTMCell>(in, hidden, init, dtype));
}

std::pair<Tensor, LSTMState> LSTM::forward_seq(const Tensor& x, const LSTMState& state) {
  NABLA_CHECK(x.dim() == 3, "LSTM: input must be [T, N, I], got ", x.shape());
  LSTMState s = state;
  std::vector<Tensor> outs;
  for (int64_t t = 0; t < x.size(0); ++t) {
    s = cell->forward_step(x.select(0, t), s);
    outs.push_back(s.h);
  }
  return {stack(outs, 0), s};
}

}  // namespace nabla::nn

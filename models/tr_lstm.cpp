// TR-LSTM and its sequence classifier: models/tr_lstm.h has the maths and the choices made.
#include "models/tr_lstm.h"

#include <cmath>

#include "engine/checked.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/nn.h"

namespace nabla::models {

namespace {

std::string join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

Tensor uniform_param(const Shape& s, double bound, const TRLayerOptions& o) {
  return uniform(s, -bound, bound, {.dtype = o.dtype, .requires_grad = true}, o.generator);
}

}  // namespace

TRLSTM::TRLSTM(const std::vector<int64_t>& ranks, TRLSTMOptions o)
    : Module("TRLSTM"), ranks_(ranks), dropout_(o.input_dropout) {
  const size_t n_ranks = o.in_shape.size() + o.out_shape.size();
  NABLA_CHECK(ranks.size() == n_ranks, "TRLSTM: input shape ", join(o.in_shape), " and gate shape ",
              join(o.out_shape), " need ", n_ranks, " ranks, got ", ranks.size(), " ", join(ranks));
  NABLA_CHECK(o.input_dropout >= 0 && o.input_dropout < 1, "TRLSTM: input dropout must be in [0, 1), got ",
              o.input_dropout);
  for (int64_t d : o.out_shape)
    NABLA_CHECK(d >= 1, "TRLSTM: gate shape ", join(o.out_shape), " has an entry < 1");
  const int64_t gates = checked_product(o.out_shape, "TRLSTM: gate features");
  NABLA_CHECK(gates % 4 == 0, "TRLSTM: the gate shape ", join(o.out_shape),
              " must multiply to 4 x hidden (the i, f, g, o gates), got ", gates);
  hidden_ = gates / 4;
  input = register_module("input", std::make_shared<TRLinear>(o.in_shape, o.out_shape, ranks, o.layer));
  const double b = 1.0 / std::sqrt(static_cast<double>(hidden_));
  weight_hh = register_parameter("weight_hh", uniform_param({gates, hidden_}, b, o.layer));
  bias_hh = register_parameter("bias_hh", uniform_param({gates}, b, o.layer));
}

int64_t TRLSTM::param_formula(const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape,
                              const std::vector<int64_t>& r) {
  std::vector<int64_t> n = in_shape;
  n.insert(n.end(), out_shape.begin(), out_shape.end());
  NABLA_CHECK(r.size() == n.size(), "TRLSTM::param_formula: ", n.size(), " modes need as many ranks, got ",
              r.size());
  int64_t cores = 0, gates = 1;
  for (size_t k = 0; k < n.size(); ++k) cores += r[k] * n[k] * r[(k + 1) % n.size()];
  for (int64_t d : out_shape) gates *= d;
  const int64_t hidden = gates / 4;
  return cores + gates + gates * hidden + gates;
}

std::pair<Tensor, nn::LSTMState> TRLSTM::forward_seq(const Tensor& x, const nn::LSTMState& state) {
  const int64_t in = input->in_features(), hs = hidden_;
  NABLA_CHECK(x.dim() == 3 && x.size(2) == in, "TRLSTM: input must be [T, N, ", in, "], got ", x.shape());
  const int64_t t_len = x.size(0), n = x.size(1);
  NABLA_CHECK(t_len >= 1 && n >= 1, "TRLSTM: empty sequence batch ", x.shape());
  Tensor xin = dropout_ > 0 ? dropout(x, dropout_, is_training()) : x;
  // The input projection of every step at once: it does not depend on the state.
  Tensor gx = input->forward(xin.reshape({t_len * n, in})).reshape({t_len, n, 4 * hs});
  Tensor h = state.h.defined() ? state.h : zeros({n, hs}, {.dtype = x.dtype(), .device = x.device()});
  Tensor c = state.c.defined() ? state.c : zeros({n, hs}, {.dtype = x.dtype(), .device = x.device()});
  NABLA_CHECK(h.shape() == Shape({n, hs}) && c.shape() == Shape({n, hs}), "TRLSTM: state must be [", n, ", ",
              hs, "], got h ", h.shape(), " c ", c.shape());
  std::vector<Tensor> outs;
  for (int64_t t = 0; t < t_len; ++t) {
    Tensor gates = gx.select(0, t) + linear(h, weight_hh, bias_hh);
    Tensor i = sigmoid(gates.narrow(1, 0, hs)), f = sigmoid(gates.narrow(1, hs, hs));
    Tensor g = tanh(gates.narrow(1, 2 * hs, hs)), o = sigmoid(gates.narrow(1, 3 * hs, hs));
    c = f * c + i * g;
    h = o * tanh(c);
    outs.push_back(h);
  }
  return {stack(outs, 0), {h, c}};
}

TRLSTMClassifier::TRLSTMClassifier(const std::vector<int64_t>& ranks, int64_t num_classes, TRLSTMOptions o)
    : Module("TRLSTMClassifier") {
  NABLA_CHECK(num_classes >= 1, "TRLSTMClassifier: num_classes must be >= 1, got ", num_classes);
  lstm = register_module("lstm", std::make_shared<TRLSTM>(ranks, o));
  const int64_t hs = lstm->hidden_size();
  const double b = 1.0 / std::sqrt(static_cast<double>(hs));
  head_weight = register_parameter("head_weight", uniform_param({num_classes, hs}, b, o.layer));
  head_bias = register_parameter("head_bias", uniform_param({num_classes}, b, o.layer));
}

Tensor TRLSTMClassifier::forward(const Tensor& x) {
  NABLA_CHECK(x.dim() == 3 && x.size(2) == lstm->input_size(), "TRLSTMClassifier: input must be [N, T, ",
              lstm->input_size(), "], got ", x.shape());
  auto [outs, state] = lstm->forward_seq(x.transpose(0, 1));
  return linear(state.h, head_weight, head_bias);
}

int64_t TRLSTMClassifier::dense_network_params() const {
  return num_parameters() - lstm->input->tr_params() + lstm->input->dense_params();
}

double TRLSTMClassifier::network_compression() const {
  return static_cast<double>(dense_network_params()) / num_parameters();
}

}  // namespace nabla::models

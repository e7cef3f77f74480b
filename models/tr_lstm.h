// TR-LSTM: an LSTM whose input-to-hidden weight is a tensor-ring layer (PSTRN's TR-LSTM for UCF11 / HMDB51,
// after Pan et al. 2019, "Compressing Recurrent Neural Networks with Tensor Ring for Action Recognition").
//
// The four gates' input projections are ONE TRLinear (models/tensor_ring.h) on the reshaped input; the
// recurrent weights stay dense, in PyTorch's gate layout (i, f, g, o):
//   gx_t  = TRLinear(x_t) = x_t W_ih^T + b_ih      W_ih [4H, I] = the TR layer's full_weight(), I = prod
//   in_shape,
//                                                  4H = prod out_shape (the output index row-major, so with
//                                                  out_shape [4, H] the first output mode is the gate)
//   gates = gx_t + h W_hh^T + b_hh                 [N, 4H], chunks i, f, g, o
//   c'    = sigmoid(f) * c + sigmoid(i) * tanh(g),  h' = sigmoid(o) * tanh(c')
// i.e. exactly nn::LSTM with weight_ih = full_weight() and bias_ih = the TR layer's bias (tested). The TR
// projection runs once over all T N rows (it does not depend on h), then T small recurrent steps.
//
// Ranks: in_shape.size() + out_shape.size() rank elements, the TRLinear ring R_0..R_{a+b-1}. What the
// authors' model file (model/cls_rnn_feature_tr.py, missing upstream) used is unknown beyond "4 ranks" for
// HMDB51 (so 2 input and 2 output modes); the shapes here are options. Our defaults for the small sequence
// task: I = 256 = [16, 16], H = 16, 4H = [4, 16] (the gate as its own mode): the input weight then dominates
// the layer (16,384 of 17,536 dense parameters), as with the video features the paper compresses.
//
// Initialisation: the TR layer with TRInit::resnet (Var gx = Var x, linear gain; the authors' "truncguass_3"
// is not in either repository), W_hh and b_hh as PyTorch's LSTM, U(-1/sqrt(H), 1/sqrt(H)); everything
// drawn from o.layer.generator, so a search evaluating nets on several threads stays deterministic.
// input_dropout (the authors' 0.25 input-to-hidden dropout for HMDB51) drops input features in training.
//
// Parameters: sum_k R_k n_k R_{k+1} (the ring) + 4H (b_ih) + 4H H + 4H (W_hh, b_hh) [+ H C + C, the head].
// Compression of the layer = I 4H / TR core elements (biases excluded, as TRLinear).
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "models/nn/layers.h"
#include "models/nn/rnn.h"
#include "models/tensor_ring.h"

namespace nabla::models {

struct TRLSTMOptions {
  std::vector<int64_t> in_shape{16, 16};  // I = 256
  std::vector<int64_t> out_shape{4, 16};  // 4H = 64: hidden 16
  double input_dropout = 0.0;
  TRLayerOptions layer{.bias = true, .init = TRInit::resnet};
};

class TRLSTM : public nn::Module {
 public:
  TRLSTM(const std::vector<int64_t>& ranks, TRLSTMOptions o = {});
  // x [T, N, I] -> (outputs [T, N, H], final state); an undefined state starts from zeros.
  std::pair<Tensor, nn::LSTMState> forward_seq(const Tensor& x, const nn::LSTMState& state = {});
  Tensor forward(const Tensor& x) override { return forward_seq(x).first; }

  int64_t input_size() const { return input->in_features(); }
  int64_t hidden_size() const { return hidden_; }
  int64_t num_ranks() const { return static_cast<int64_t>(ranks_.size()); }
  // The formula above (without a head), from the shapes and ranks alone.
  static int64_t param_formula(const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape,
                               const std::vector<int64_t>& ranks);
  double compression() const { return input->compression(); }

  std::shared_ptr<TRLinear> input;  // W_ih and b_ih
  Tensor weight_hh, bias_hh;        // [4H, H], [4H]

 private:
  std::vector<int64_t> ranks_;
  int64_t hidden_;
  double dropout_;
};

// The sequence classifier of the PSTRN search: TR-LSTM over the sequence, a dense linear head on the last
// hidden state. x [N, T, I] (batch first, as the data loaders give it) -> logits [N, classes].
class TRLSTMClassifier : public nn::Module {
 public:
  TRLSTMClassifier(const std::vector<int64_t>& ranks, int64_t num_classes, TRLSTMOptions o = {});
  Tensor forward(const Tensor& x) override;
  double min_compression() const { return lstm->compression(); }  // the one TR layer
  // All parameters (biases included) of the same classifier with a dense W_ih over this one's.
  int64_t dense_network_params() const;
  double network_compression() const;
  std::shared_ptr<TRLSTM> lstm;
  Tensor head_weight, head_bias;  // [classes, H], [classes]; PyTorch's Linear init from o.layer.generator
};

}  // namespace nabla::models

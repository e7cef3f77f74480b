// Tensor-ring (TR) layers and the TR networks of PSTRN (Li et al., "Heuristic Rank Selection with
// Progressively Searching Tensor Ring Network"; brief: shared/papers/abcp-pstrn-bdarts.md, section 2.3).
//
// A d-way tensor W[n_1, ..., n_d] in TR format has cores Z_k [R_{k-1}, n_k, R_k] with R_0 = R_d (the ring):
//   W(i_1, ..., i_d) = Tr( Z_1(i_1) Z_2(i_2) ... Z_d(i_d) ),   params = sum_k R_{k-1} n_k R_k.
//
// TRLinear (I = I_1...I_a inputs, O = O_1...O_b outputs, ranks R_0..R_{a+b-1}; node k uses (R_k, R_{k+1})
// with R_{a+b} = R_0; the input index is row-major with I_1 most significant, as x.view(B, I_1, ..., I_a)).
// Contraction order of the reference code ("paper"):
//   U = merge(Z_1..Z_a)  [R_0, I, R_a]:  U <- reshape(U, [., R_{j-1}]) @ reshape(Z_j, [R_{j-1}, I_j R_j])
//   U_mat = permute(U, (R_0, R_a, I)) -> [R_0 R_a, I]        t = x U_mat^T     [B, R_0 R_a]
//   V = merge(Z_{a+1}..Z_{a+b}) [R_a, O, R_0]; V_mat = permute(V, (O, R_0, R_a)) -> [O, R_0 R_a]
//   y = t V_mat^T + bias                                                         [B, O]
// so y = x W^T with W = V_mat U_mat [O, I], a rank <= R_0 R_a product. "full_weight" builds W first and
// runs one GEMM: the same numbers, fewer elements held when I O < R_0 R_a (I + O) + B R_0 R_a (fc6 of
// TR-LeNet5, small layers), more otherwise; "cheapest" picks the order with fewer intermediate elements.
//
// TRConv2d (C_in = I_1...I_a, C_out = O_1...O_b, input ranks R_0..R_a, output ranks R_{a+1}..R_{a+b},
// k x k kernel; the ring closes on R_0), after Wang et al. 2018 as the reference code runs it:
//   1 U = merge(input cores) [R_0, C_in, R_a] -> 1x1 conv with [R_0 R_a, C_in]:  [B, R_0 R_a, H, W]
//   2 reshape to [B R_0, R_a, H, W]
//   3 k x k conv (stride, padding) with the kernel core [R_{a+1}, R_a, k, k]:     [B R_0, R_{a+1}, H', W']
//   4 reshape to [B, R_0 R_{a+1}, H', W']
//   5 V = merge(output cores) [R_{a+1}, C_out, R_0] -> 1x1 conv with [C_out, R_0 R_{a+1}] + bias
//   params = sum_j R_{j-1} I_j R_j + k^2 R_a R_{a+1} + sum of the output cores' R O R
// "full_weight": W[o, c, p, q] = sum_{r, a, b} U[r, c, a] K[b, a, p, q] V[b, o, r], then one conv.
//
// Contractions run through matmul / linear / conv2d / einsum, so both backends run them and autograd
// differentiates them (nothing is saved here beyond what those ops save).
//
// Initialisation (the reference's "ours_lenet" / "ours_resnet"; all normal with mean 0, bias 0): the first
// input core std sqrt(1 / I), so that t = x U_mat^T keeps the input's variance whatever a and the ranks;
// every later core of a merge std 1 / sqrt(R_left) (Kaiming fan-in, linear gain: each merge step keeps the
// variance); the first output core std sqrt(g / (R_0 R_a)) (FC: g = 2 for lenet, 1 for resnet; conv: the
// ranks R_0 R_{a+1}, g = 1 for lenet, sqrt 2 for resnet); the conv kernel core Kaiming fan-in
// (R_a k^2) with ReLU gain (lenet) or linear gain (resnet). An FC layer thus starts with Var y = g Var x.
//
// Compression ratio of a layer = dense weight elements / TR weight elements (biases excluded, as in the
// reference's calculate_compression). Multiply-adds (macs) count the core merges once per forward plus the
// per-example contractions, for the order the layer runs.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/random.h"
#include "models/nn/layers.h"

namespace nabla::models {

enum class TRContraction { paper, full_weight, cheapest };
enum class TRInit { lenet, resnet };

// "paper", "full_weight" or "cheapest"; throws naming the choices otherwise.
TRContraction parse_tr_contraction(const std::string& name);

struct TRLayerOptions {
  bool bias = true;
  TRInit init = TRInit::lenet;
  TRContraction order = TRContraction::paper;
  DType dtype = DType::f32;        // f64 for gradient checks
  Generator* generator = nullptr;  // for the initial cores (nullptr: the default generator); a search
                                   // evaluating nets on several threads gives each its own
};

// Merges TR cores [R_{k-1}, n_k, R_k] left to right by GEMMs: [R_first, prod n_k, R_last].
Tensor tr_merge_cores(const std::vector<Tensor>& cores);

class TRLinear : public nn::Module {
 public:
  TRLinear(std::vector<int64_t> in_shape, std::vector<int64_t> out_shape, std::vector<int64_t> ranks,
           TRLayerOptions o = {});
  // x [*, I] -> [*, O].
  Tensor forward(const Tensor& x) override;
  // W [O, I] (nn::Linear's layout): the layer is linear(x, full_weight(), bias).
  Tensor full_weight() const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  int64_t tr_params() const;     // core elements
  int64_t dense_params() const;  // I O
  double compression() const { return static_cast<double>(dense_params()) / tr_params(); }
  // Multiply-adds of one forward over `batch` rows in `order` (cheapest: the order forward picks).
  int64_t macs(int64_t batch, TRContraction order) const;
  TRContraction resolved_order(int64_t batch) const;

  std::vector<Tensor> in_cores, out_cores;
  Tensor bias;
  TRLayerOptions options;

 protected:
  std::string extra_repr() const override;

 private:
  std::vector<int64_t> in_shape_, out_shape_, ranks_;
  int64_t in_features_, out_features_;
};

class TRConv2d : public nn::Module {
 public:
  // in_ranks: R_0..R_a (in_shape.size() + 1 values); out_ranks: R_{a+1}..R_{a+b} (out_shape.size()).
  TRConv2d(std::vector<int64_t> in_shape, std::vector<int64_t> out_shape, std::vector<int64_t> in_ranks,
           std::vector<int64_t> out_ranks, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
           TRLayerOptions o = {});
  // x [B, C_in, H, W] -> [B, C_out, H', W'].
  Tensor forward(const Tensor& x) override;
  // W [C_out, C_in, k, k] (nn::Conv2d's layout): the layer is conv2d(x, full_weight(), bias, stride, pad).
  Tensor full_weight() const;

  int64_t in_channels() const { return c_in_; }
  int64_t out_channels() const { return c_out_; }
  int64_t tr_params() const;
  int64_t dense_params() const;  // C_in C_out k^2
  double compression() const { return static_cast<double>(dense_params()) / tr_params(); }
  // Multiply-adds of one forward over a [batch, C_in, h, w] input.
  int64_t macs(int64_t batch, int64_t h, int64_t w, TRContraction order) const;
  TRContraction resolved_order(int64_t batch, int64_t h, int64_t w) const;
  int64_t out_size(int64_t in) const { return (in + 2 * padding_ - kernel_) / stride_ + 1; }

  std::vector<Tensor> in_cores, out_cores;
  Tensor kernel_core;  // [R_{a+1}, R_a, k, k]
  Tensor bias;
  TRLayerOptions options;

 protected:
  std::string extra_repr() const override;

 private:
  std::vector<int64_t> in_shape_, out_shape_, in_ranks_, out_ranks_;
  int64_t c_in_, c_out_, kernel_, stride_, padding_;
};

// ---- TR-LeNet5 (the reference's LeNet5_Mnist_Tensor_NANNAN_OURS), 20 ranks R0..R19 ----
//   c1 TR-Conv [1] -> [4,5] (1 -> 20), 5x5 pad 2, in ranks R0 R1, out R2 R3;  relu; maxpool 2
//   c3 TR-Conv [4,5] -> [5,10] (20 -> 50), 5x5, in ranks R4 R5 R6, out R7 R8;  relu; maxpool 2
//   fc5 TR-FC 1250 = [5,5,5,10] -> 320 = [5,8,8], ranks R9..R15;  relu
//   fc6 TR-FC 320 = [5,8,8] -> classes = [classes], ranks R16..R19
// The reference's search-time model hard-codes c3's first output rank to 2 (R7 unused);
// c3_rank7_fixed_to_2 reproduces that. Dense counterpart: 1-20-50-320-10, 429,100 parameters.
struct TRLeNet5Options {
  int64_t num_classes = 10;
  int64_t image_size = 28;  // must be 28 (fc5's 1250 inputs)
  bool c3_rank7_fixed_to_2 = false;
  TRLayerOptions layer{};
};

class TRLeNet5 : public nn::Module {
 public:
  static constexpr int64_t kNumRanks = 20;
  TRLeNet5(const std::vector<int64_t>& ranks, TRLeNet5Options o = {});
  Tensor forward(const Tensor& x) override;
  // The PSTRN search objective: the smallest of the four layers' compression ratios.
  double min_compression() const;
  // All parameters (biases included) of the dense LeNet-5 of the same shape over this net's.
  double network_compression() const;
  int64_t dense_network_params() const;
  std::shared_ptr<TRConv2d> c1, c3;
  std::shared_ptr<TRLinear> fc5, fc6;
};

// ---- the dense LeNet-5 of TR-LeNet5's shape: the baseline a TR-LeNet5 is compared with ----
//   c1 conv 1 -> 20, 5x5 pad 2; relu; maxpool 2 | c3 conv 20 -> 50, 5x5; relu; maxpool 2 | fc5 1250 -> 320;
//   relu | fc6 320 -> classes. 429,100 parameters for 10 classes (TRLeNet5::dense_network_params); the
//   layers' default initialisation (PyTorch's) from the global generator.
class DenseLeNet5 : public nn::Module {
 public:
  explicit DenseLeNet5(int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;  // x [N, 1, 28, 28]
  std::shared_ptr<nn::Conv2d> c1, c3;
  std::shared_ptr<nn::Linear> fc5, fc6;
};

// ---- TR-ResNet-20/32 on 32x32 inputs: a reconstruction (the authors' model file is missing) ----
// The CIFAR ResNet of models/resnet.h (16/32/64 channels, 3 stages of n = (depth - 2) / 6 basic blocks,
// option-B projection shortcuts, BN, global pool, fc) with every 3x3 conv a TRConv2d. 7 rank elements as
// the paper's tables: [r_stem, r1_in, r1_out, r2_in, r2_out, r3_in, r3_out]; the stem conv uses r_stem for
// all its ranks, a conv of stage s uses r_s_in for its input ranks (R_0..R_a, so also its kernel's input
// side) and r_s_out for its output ranks. Channels factor as 16 = [4,4], 32 = [4,8], 64 = [8,8], the input
// as [in_channels]. The 1x1 projections and the fc stay dense (2.7k and 650 parameters).
struct TRResNetOptions {
  int64_t depth = 20;  // 20 or 32 (any 6n + 2 works)
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  TRLayerOptions layer{.bias = false, .init = TRInit::resnet};
};

class TRResNet : public nn::Module {
 public:
  static constexpr int64_t kNumRanks = 7;
  TRResNet(const std::vector<int64_t>& ranks, TRResNetOptions o = {});
  Tensor forward(const Tensor& x) override;
  double min_compression() const;      // over the TR convs
  double network_compression() const;  // dense CIFAR ResNet (option B) parameters over this net's
  int64_t dense_network_params() const;
  std::vector<std::shared_ptr<TRConv2d>> tr_convs;

 private:
  std::shared_ptr<TRConv2d> stem_;
  std::shared_ptr<nn::BatchNorm> stem_bn_;
  std::vector<std::shared_ptr<nn::Module>> blocks_;
  std::shared_ptr<nn::Linear> fc_;
  TRResNetOptions o_;
};

// Parses "6,20,14,8" (commas or spaces) into ranks, each in [1, 4096]; `expected` > 0 also checks the
// count. Throws naming the position and what came.
std::vector<int64_t> parse_ranks(const std::string& text, int64_t expected = 0);

}  // namespace nabla::models

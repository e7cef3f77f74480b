// BCNN (the broad convolutional network of BNAS / B-DARTS) and the vanilla DARTS network, each as a search
// supernet (mixed operations, architecture parameters) and as an evaluation network from a genotype.
// Topology exactly as zixiangding/BNASv2 BNASv2CLR/model_search_b.py and model_b.py (brief §3.3);
// KE = knowledge embedding, a 1x1 ReLUConvBN on a broad connection; FR = FactorizedReduce.
//
// BCNN search (layers = 2 convolution blocks, en_layers = 1, C = 16 in the paper):
//   stem conv3x3 (in -> 3C) + BN
//   block i (i = 0..L-1): g_i = KE(s1) [-> C for i = 0, else C_curr]; earlier g's FR'ed to the new size;
//     in the last block every g is FR'ed once more; s0, s1 = s1, reduction cell (alpha_normal, C_curr *= 2);
//     e_i = KE(cell out) [-> C_curr, in the last block -> 4 C_curr]; earlier e's FR'ed
//   enhancement cell(s) (stride 1, alpha_reduce): the first takes (e_0, e_1), later ones (s0, s1);
//     o_j = KE(cell out) [-> C_curr, the last -> 4 C_curr]
//   concat(g..., o...) -> global average pool -> Linear      (L = 2: 3 cells, 19C features)
// BCNN evaluation (layers = 6, en_layers = 2, C = 48, pool_time = 2 in the paper):
//   pool_layers = {(p+1) L/pool_time - 1}: {2, 5}; all conv-block cells use genotype.normal, those in
//   pool_layers reduce (C_curr *= 2); after the cell before each reduction (cells 1, 4) a gap tap
//   KE(s1 -> C_curr), earlier taps FR'ed; after each reduction cell an enhancement tap KE(s1 -> C_curr, the
//   last -> 4 C_curr), earlier FR'ed, and after the last reduction every gap tap FR'ed once more;
//   en_layers enhancement cells (genotype.reduce, stride 1), the first on (e_0, e_1); KE on each output;
//   concat -> GAP -> Linear (23C features for 6 + 2 cells); drop-path inside the cells; no auxiliary head.
// DARTS (Liu et al. 2019, model_search.py / model.py NetworkCIFAR): stem conv3x3 (in -> 3C) + BN, `layers`
//   cells with reductions at L/3 and 2L/3 (search: alphas_reduce there; evaluation: genotype.reduce), GAP,
//   Linear. (The evaluation network's auxiliary head is not built: the BCNN recipe trains without one.)
//
// Choice where the code only works for its defaults: the first enhancement cell's pre-processing takes
// the channels of e_0 and e_1 (the code writes C_curr // 2 and C_prev, equal to them when L = 2).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/darts/cells.h"

namespace nabla::models {

struct BcnnOptions {
  int64_t c = 16;            // initial channels C
  int64_t num_classes = 10;  //
  int64_t in_channels = 3;   // 1 for (Fashion-)MNIST
  int64_t layers = 2;        // convolution blocks (search) / conv-block cells (evaluation)
  int64_t en_layers = 1;     // enhancement cells
  int64_t pool_time = 2;     // evaluation: reductions among the conv-block cells
};

class BcnnSearch : public darts::SearchNetwork {
 public:
  explicit BcnnSearch(BcnnOptions o);
  Tensor forward(const Tensor& x) override;
  BcnnOptions options;
  std::shared_ptr<nn::Conv2d> stem_conv;
  std::shared_ptr<nn::BatchNorm> stem_bn;
  std::vector<std::shared_ptr<darts::SearchCell>> conv_cells, en_cells;
  std::shared_ptr<nn::Sequential> gap_ke, gap_fr, en_ke, en_fr, out_ke;
  std::shared_ptr<nn::Linear> classifier;
};

class BcnnEval : public darts::EvalNetwork {
 public:
  BcnnEval(BcnnOptions o, darts::Genotype genotype);
  Tensor forward(const Tensor& x) override;
  BcnnOptions options;
  std::vector<int64_t> pool_layers;
  std::shared_ptr<nn::Conv2d> stem_conv;
  std::shared_ptr<nn::BatchNorm> stem_bn;
  std::vector<std::shared_ptr<darts::EvalCell>> conv_cells, en_cells;
  std::shared_ptr<nn::Sequential> gap_ke, gap_fr, en_ke, en_fr, out_ke;
  std::shared_ptr<nn::Linear> classifier;
};

struct DartsOptions {
  int64_t c = 16;
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  int64_t layers = 8;  // 8 in search, 20 in evaluation
};

class DartsSearch : public darts::SearchNetwork {
 public:
  explicit DartsSearch(DartsOptions o);
  Tensor forward(const Tensor& x) override;
  DartsOptions options;
  std::shared_ptr<nn::Conv2d> stem_conv;
  std::shared_ptr<nn::BatchNorm> stem_bn;
  std::vector<std::shared_ptr<darts::SearchCell>> cells;
  std::shared_ptr<nn::Linear> classifier;
};

class DartsEval : public darts::EvalNetwork {
 public:
  DartsEval(DartsOptions o, darts::Genotype genotype);
  Tensor forward(const Tensor& x) override;
  DartsOptions options;
  std::shared_ptr<nn::Conv2d> stem_conv;
  std::shared_ptr<nn::BatchNorm> stem_bn;
  std::vector<std::shared_ptr<darts::EvalCell>> cells;
  std::shared_ptr<nn::Linear> classifier;
};

// Multiply-adds per example of one forward pass on [1, in, size, size] (eval mode; every conv and linear).
int64_t count_macs(nn::Module& model, int64_t in_channels, int64_t image_size);

}  // namespace nabla::models

// DARTS cells (4 intermediate nodes, 14 edges, output = concat of the nodes), in their search form (every
// edge a MixedOp) and their evaluation form (two operations per node, from a genotype, with drop-path).
//
//   s0 = pre0(c_{k-2}), s1 = pre1(c_{k-1})         pre0 = FactorizedReduce if the previous cell reduced,
//                                                  else ReLUConvBN 1x1; pre1 = ReLUConvBN 1x1 (C channels)
//   search:     x_j = sum_{i<j} MixedOp_(i,j)(x_i, softmax(alpha)_(i,j)),   j = 2..5 (edges in order
//               (0,2) (1,2) (0,3) (1,3) (2,3) (0,4) ... (4,5): 14 edges for 4 steps)
//   evaluation: x_j = drop_path(op_a(x_ia)) + drop_path(op_b(x_ib)); identity edges are never dropped
//   output:     concat(x_2 .. x_5) on channels (multiplier x C)
// A reduction cell runs the edges leaving the two inputs (index < 2) with stride 2.
// Search cells use BN(affine=False) everywhere inside (pre-processing included), evaluation cells affine BN.
#pragma once
#include <memory>
#include <vector>

#include "models/darts/genotype.h"
#include "models/darts/operations.h"

namespace nabla::models::darts {

class SearchCell : public nn::Module {
 public:
  SearchCell(int steps, int multiplier, int64_t c_prev_prev, int64_t c_prev, int64_t c, bool reduction,
             bool reduction_prev);
  // weights: [edges, 8], each row a softmax over the operations.
  Tensor forward(const Tensor& s0, const Tensor& s1, const Tensor& weights);
  int steps, multiplier;
  bool reduction;
  std::shared_ptr<nn::Module> pre0, pre1;
  std::vector<std::shared_ptr<MixedOp>> edges;
};

class EvalCell : public nn::Module {
 public:
  EvalCell(const std::vector<Gene>& genes, const std::vector<int>& concat, int64_t c_prev_prev,
           int64_t c_prev, int64_t c, bool reduction, bool reduction_prev);
  Tensor forward(const Tensor& s0, const Tensor& s1, double drop_prob);
  int64_t multiplier() const { return static_cast<int64_t>(concat.size()); }
  std::vector<Gene> genes;
  std::vector<int> concat;
  bool reduction;
  std::shared_ptr<nn::Module> pre0, pre1;
  std::vector<std::shared_ptr<nn::Module>> ops;  // one per gene
};

// A search supernet: weights are its parameters(); the architecture parameters alphas_normal and
// alphas_reduce ([edges, 8], init 1e-3 N(0, 1)) are buffers (saved in state_dict, not in parameters(), so
// the weight optimizer never sees them) that require grad.
class SearchNetwork : public nn::Module {
 public:
  using nn::Module::Module;
  std::vector<Tensor> arch_parameters() const { return {alphas_normal, alphas_reduce}; }
  Genotype genotype() const { return derive_genotype(alphas_normal, alphas_reduce, steps, multiplier); }
  Tensor alphas_normal, alphas_reduce;
  int steps = 4, multiplier = 4;

 protected:
  void init_alphas();  // draws from the default generator
};

// An evaluation network built from a genotype; drop_path_prob is set by the training loop (ramped).
class EvalNetwork : public nn::Module {
 public:
  EvalNetwork(std::string name, Genotype g) : nn::Module(std::move(name)), genotype(std::move(g)) {}
  Genotype genotype;
  double drop_path_prob = 0.0;
};

}  // namespace nabla::models::darts

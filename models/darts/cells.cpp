// DARTS search and evaluation cells (cells.h).
#include "models/darts/cells.h"

#include "ops/factory.h"
#include "ops/index.h"
#include "ops/elementwise.h"

namespace nabla::models::darts {

namespace {
std::shared_ptr<nn::Module> preprocess0(int64_t c_prev_prev, int64_t c, bool reduction_prev, bool affine) {
  if (reduction_prev) return std::make_shared<FactorizedReduce>(c_prev_prev, c, affine);
  return std::make_shared<ReLUConvBN>(c_prev_prev, c, 1, 1, 0, affine);
}
}  // namespace

SearchCell::SearchCell(int steps_, int multiplier_, int64_t c_prev_prev, int64_t c_prev, int64_t c,
                       bool reduction_, bool reduction_prev)
    : Module("SearchCell"), steps(steps_), multiplier(multiplier_), reduction(reduction_) {
  NABLA_CHECK(steps >= 1 && multiplier >= 1 && multiplier <= steps, "SearchCell: need 1 <= multiplier (",
              multiplier, ") <= steps (", steps, ")");
  pre0 = register_module("pre0", preprocess0(c_prev_prev, c, reduction_prev, false));
  pre1 = register_module("pre1", std::make_shared<ReLUConvBN>(c_prev, c, 1, 1, 0, false));
  for (int i = 0; i < steps; ++i)
    for (int j = 0; j < 2 + i; ++j) {
      const int64_t stride = reduction && j < 2 ? 2 : 1;
      edges.push_back(
          register_module("edge" + std::to_string(edges.size()), std::make_shared<MixedOp>(c, stride)));
    }
}

Tensor SearchCell::forward(const Tensor& s0, const Tensor& s1, const Tensor& weights) {
  NABLA_CHECK(weights.dim() == 2 && weights.size(0) == static_cast<int64_t>(edges.size()) &&
                  weights.size(1) == kNumOps,
              "SearchCell: expected weights [", edges.size(), ", ", kNumOps, "], got ", weights.shape());
  std::vector<Tensor> states{pre0->forward(s0), pre1->forward(s1)};
  size_t offset = 0;
  for (int i = 0; i < steps; ++i) {
    Tensor s;
    for (size_t j = 0; j < states.size(); ++j) {
      Tensor y = edges[offset + j]->forward(states[j], weights.select(0, static_cast<int64_t>(offset + j)));
      s = s.defined() ? s + y : y;
    }
    offset += states.size();
    states.push_back(s);
  }
  return cat(std::vector<Tensor>(states.end() - multiplier, states.end()), 1);
}

EvalCell::EvalCell(const std::vector<Gene>& genes_, const std::vector<int>& concat_, int64_t c_prev_prev,
                   int64_t c_prev, int64_t c, bool reduction_, bool reduction_prev)
    : Module("EvalCell"), genes(genes_), concat(concat_), reduction(reduction_) {
  NABLA_CHECK(!genes.empty() && genes.size() % 2 == 0, "EvalCell: need 2 genes per node, got ", genes.size());
  pre0 = register_module("pre0", preprocess0(c_prev_prev, c, reduction_prev, true));
  pre1 = register_module("pre1", std::make_shared<ReLUConvBN>(c_prev, c, 1, 1, 0, true));
  for (const Gene& g : genes) {
    const int64_t stride = reduction && g.input < 2 ? 2 : 1;
    ops.push_back(register_module("op" + std::to_string(ops.size()), make_op(g.op, c, stride, true)));
  }
}

Tensor EvalCell::forward(const Tensor& s0, const Tensor& s1, double drop_prob) {
  std::vector<Tensor> states{pre0->forward(s0), pre1->forward(s1)};
  const size_t steps = genes.size() / 2;
  for (size_t i = 0; i < steps; ++i) {
    Tensor h[2];
    for (size_t k = 0; k < 2; ++k) {
      const size_t g = 2 * i + k;
      const int input = genes[g].input;
      NABLA_CHECK(input >= 0 && static_cast<size_t>(input) < states.size(), "EvalCell: gene ", g,
                  " reads state ", input, " but only ", states.size(), " exist");
      h[k] = ops[g]->forward(states[static_cast<size_t>(input)]);
      if (is_training() && drop_prob > 0 && ops[g]->type_name() != "Identity")
        h[k] = drop_path(h[k], drop_prob);
    }
    states.push_back(h[0] + h[1]);
  }
  std::vector<Tensor> out;
  for (int i : concat) out.push_back(states.at(static_cast<size_t>(i)));
  return cat(out, 1);
}

void SearchNetwork::init_alphas() {
  const int64_t k = static_cast<int64_t>(steps) * (steps + 3) / 2;
  alphas_normal = register_buffer("alphas_normal", randn({k, kNumOps}) * 1e-3);
  alphas_reduce = register_buffer("alphas_reduce", randn({k, kNumOps}) * 1e-3);
  alphas_normal.requires_grad_(true);
  alphas_reduce.requires_grad_(true);
}

}  // namespace nabla::models::darts

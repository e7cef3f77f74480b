// Adagrad (Duchi et al. 2011), as torch.optim.Adagrad (the DLRM reference's --optimizer adagrad):
//
//   g = g + wd w
//   lr_t = lr / (1 + (t - 1) lr_decay)
//   sum = sum + g^2                       (starts at initial_accumulator_value)
//   w -= lr_t g / (sqrt(sum) + eps)
//
// Dense: every element of every parameter with a gradient. (TorchRec's row-wise Adagrad keeps one sum per
// embedding row and updates only the rows of the batch; Nabla's sparse tables take plain SGD only:
// models/dlrm.h.) Checkpoint state: "group<G>.param<P>.sum" and ".step", as the other optimizers.
#pragma once
#include "algorithms/optim/optimizer.h"

namespace nabla::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

class Adagrad : public Optimizer {
 public:
  Adagrad(std::vector<ParamGroup> groups, AdagradOptions o = {});
  Adagrad(std::vector<Tensor> params, AdagradOptions o = {});
  void step() override;

 protected:
  std::vector<std::string> buffer_names() const override { return {"sum"}; }

 private:
  AdagradOptions o_;
};

}  // namespace nabla::optim

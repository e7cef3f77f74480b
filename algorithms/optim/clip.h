// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_ (p = 2):
//
//   norm = sqrt(sum over parameters with a grad of ||g||^2)
//   when norm > max_norm:  g *= max_norm / (norm + 1e-6)     (in place, every grad)
//
// Returns the norm before clipping. A non-finite norm (inf or nan) clips nothing, where PyTorch would fill
// the grads with nan: check the result to skip such steps. Parameters without a grad are skipped.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace nabla::optim {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace nabla::optim

// A team of frozen teachers for distillation (docs/skd.md): several models held in memory at once, each in
// evaluation mode with every parameter's requires_grad off, run only under NoGradGuard, so that nothing a
// student step does can change them (tests/algorithms/test_distill.cpp checks their bytes).
//
//   distill::TeacherTeam team([](nn::Module& m, const Tensor& x) { return my_forward(m, x); });
//   team.add("t0", model0); team.add("t1", model1);            // both frozen here
//   Tensor z = team.logits(k, inputs);                          // f32 [B, C], no graph
//   Tensor p = team.weighted_soft_labels(inputs, w, T);         // WKD: sum_k w_k softmax(z_k / T)
//   Tensor q = team.ensemble_probabilities(inputs);             // mean_k softmax(z_k): the ensemble baseline
//
// Teachers run under the caller's autocast (bf16 with --amp bf16 on CUDA: the weights stay f32, the matmuls
// run in bf16); the logits come back in f32.
//
// Logit cache: a teacher in evaluation mode is a fixed function of its input, so its logits over a fixed
// training set, row i for example i, can be computed once (all_logits) and looked up by example index for
// any data order. With a cache path they go to a safetensors file (written atomically) tagged with a
// fingerprint string (the caller's: teacher file, data file, sequence length, ...); a file whose fingerprint
// differs is recomputed, never used.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/nn/module.h"

namespace nabla::distill {

// Evaluation mode, requires_grad off and no gradient for every parameter.
void freeze(nn::Module& model);

using TeacherForward = std::function<Tensor(nn::Module& model, const Tensor& inputs)>;

class TeacherTeam {
 public:
  explicit TeacherTeam(TeacherForward forward) : forward_(std::move(forward)) {}

  void add(std::string name, std::shared_ptr<nn::Module> model);
  int64_t size() const { return static_cast<int64_t>(models_.size()); }
  const std::string& name(int64_t k) const;
  nn::Module& model(int64_t k) const;

  // Teacher k's logits, f32, detached (evaluation mode, no gradients).
  Tensor logits(int64_t k, const Tensor& inputs) const;
  // sum_k w_k softmax(z_k / T); `weights` (one per teacher) are normalised to sum 1.
  Tensor weighted_soft_labels(const Tensor& inputs, const std::vector<double>& weights,
                              double temperature) const;
  // mean_k softmax(z_k): the average-of-teachers ensemble.
  Tensor ensemble_probabilities(const Tensor& inputs) const;

  // Teacher k's logits for every row of `inputs` ([N, ...] on the host), `batch` rows at a time on `device`,
  // f32 [N, C] on the host; read from / written to `cache_path` when it is not empty (see above).
  Tensor all_logits(int64_t k, const Tensor& inputs, int64_t batch, Device device,
                    const std::string& cache_path, const std::string& fingerprint) const;

 private:
  void check_index(int64_t k) const;
  TeacherForward forward_;
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<nn::Module>> models_;
};

}  // namespace nabla::distill

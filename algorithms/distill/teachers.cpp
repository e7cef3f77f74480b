// Frozen teachers, their soft labels and the on-disk logit cache (teachers.h).
#include "algorithms/distill/teachers.h"

#include <filesystem>

#include "algorithms/distill/kd_loss.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/nn.h"

namespace nabla::distill {

namespace {
constexpr const char* kFingerprintKey = "nabla.distill.fingerprint";
}

void freeze(nn::Module& model) {
  model.eval();
  for (Tensor& p : model.parameters()) {
    p.zero_grad();  // a gradient left from its own training is dropped
    p.requires_grad_(false);
  }
}

void TeacherTeam::add(std::string name, std::shared_ptr<nn::Module> model) {
  NABLA_CHECK(model != nullptr, "TeacherTeam::add: teacher '", name, "' is null");
  freeze(*model);
  names_.push_back(std::move(name));
  models_.push_back(std::move(model));
}

void TeacherTeam::check_index(int64_t k) const {
  NABLA_CHECK(k >= 0 && k < size(), "TeacherTeam: teacher ", k, ", expected an index in [0, ", size(), ")");
}

const std::string& TeacherTeam::name(int64_t k) const {
  check_index(k);
  return names_[static_cast<size_t>(k)];
}

nn::Module& TeacherTeam::model(int64_t k) const {
  check_index(k);
  return *models_[static_cast<size_t>(k)];
}

Tensor TeacherTeam::logits(int64_t k, const Tensor& inputs) const {
  nn::Module& m = model(k);
  if (m.is_training()) m.eval();  // whoever switched it back: a teacher never runs dropout
  NoGradGuard ng;
  Tensor z = forward_(m, inputs);
  NABLA_CHECK(z.dim() == 2, "teacher '", name(k), "': logits ", z.shape(), ", expected [batch, classes]");
  return z.detach().to(DType::f32);
}

Tensor TeacherTeam::weighted_soft_labels(const Tensor& inputs, const std::vector<double>& weights,
                                         double temperature) const {
  NABLA_CHECK(static_cast<int64_t>(weights.size()) == size(), "weighted soft labels: ", weights.size(),
              " weights for ", size(), " teachers");
  double total = 0;
  for (double w : weights) {
    NABLA_CHECK(std::isfinite(w) && w >= 0, "weighted soft labels: weight ", w, ", expected >= 0");
    total += w;
  }
  NABLA_CHECK(total > 0, "weighted soft labels: the weights sum to 0");
  NoGradGuard ng;
  Tensor p;
  for (int64_t k = 0; k < size(); ++k) {
    const double w = weights[static_cast<size_t>(k)] / total;
    if (w == 0) continue;
    Tensor q = soft_labels(logits(k, inputs), temperature) * w;
    p = p.defined() ? p + q : q;
  }
  return p;
}

Tensor TeacherTeam::ensemble_probabilities(const Tensor& inputs) const {
  return weighted_soft_labels(inputs, std::vector<double>(static_cast<size_t>(size()), 1.0), 1.0);
}

Tensor TeacherTeam::all_logits(int64_t k, const Tensor& inputs, int64_t batch, Device device,
                               const std::string& cache_path, const std::string& fingerprint) const {
  check_index(k);
  NABLA_CHECK(batch >= 1, "teacher logits: batch ", batch, ", expected >= 1");
  const int64_t n = inputs.size(0);
  if (!cache_path.empty() && std::filesystem::exists(cache_path)) {
    SafetensorsFile f = load_safetensors(cache_path);
    auto it = f.metadata.find(kFingerprintKey);
    if (it != f.metadata.end() && it->second == fingerprint && f.contains("logits")) {
      Tensor z = f.get("logits");
      NABLA_CHECK(z.dim() == 2 && z.size(0) == n && z.dtype() == DType::f32, "teacher logit cache ",
                  cache_path, ": logits ", z.shape(), ", expected f32 [", n, ", classes]");
      return z;
    }
  }
  std::vector<Tensor> parts;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t m = std::min(batch, n - first);
    parts.push_back(logits(k, inputs.narrow(0, first, m).to(device)).to(Device::cpu()));
  }
  Tensor z = cat(parts, 0).contiguous();
  if (!cache_path.empty()) {
    const std::filesystem::path dir = std::filesystem::path(cache_path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    save_safetensors(cache_path, {{"logits", z}}, {{kFingerprintKey, fingerprint}});
  }
  return z;
}

}  // namespace nabla::distill

// LoRA adapters, their merge, and PEFT-format files (see lora.h).
#include "models/nn/lora.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/nn.h"

namespace nabla::nn {
namespace {

const char* kPeftPrefix = "base_model.model.";

std::string read_text(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), what, ": cannot open ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), "lora: cannot write ", path);
  f << text;
  NABLA_CHECK(f.good(), "lora: writing ", path, " failed");
}

bool matches_target(const std::string& name, const std::string& target) {
  return name == target || (name.size() > target.size() &&
                            name.compare(name.size() - target.size(), target.size(), target) == 0 &&
                            name[name.size() - target.size() - 1] == '.');
}

}  // namespace

// ---- config ----
std::string LoraConfig::to_json() const {
  nlohmann::json j;
  j["peft_type"] = "LORA";
  j["task_type"] = task_type;
  j["r"] = r;
  j["lora_alpha"] = lora_alpha;
  j["lora_dropout"] = lora_dropout;
  j["target_modules"] = target_modules;
  j["fan_in_fan_out"] = fan_in_fan_out;
  j["bias"] = "none";
  j["inference_mode"] = true;
  j["base_model_name_or_path"] =
      base_model_name_or_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(base_model_name_or_path);
  j["modules_to_save"] = nullptr;
  j["init_lora_weights"] = true;
  j["use_rslora"] = false;
  j["use_dora"] = false;
  return j.dump(2) + "\n";
}

LoraConfig LoraConfig::from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    ::nabla::fail("lora: ", source, ": not valid JSON: ", e.what());
  }
  NABLA_CHECK(j.is_object(), "lora: ", source, ": expected a JSON object");
  LoraConfig c;
  try {
    if (j.contains("peft_type") && !j["peft_type"].is_null())
      NABLA_CHECK(j["peft_type"].get<std::string>() == "LORA", "lora: ", source, ": peft_type is ",
                  j["peft_type"].dump(), ", expected \"LORA\"");
    for (const char* flag : {"use_rslora", "use_dora"})
      NABLA_CHECK(!j.contains(flag) || j[flag].is_null() || !j[flag].get<bool>(), "lora: ", source, ": ",
                  flag, " true is not supported");
    if (j.contains("bias") && !j["bias"].is_null())
      NABLA_CHECK(j["bias"].get<std::string>() == "none", "lora: ", source, ": bias ", j["bias"].dump(),
                  " is not supported (expected \"none\")");
    c.r = j.at("r").get<int64_t>();
    c.lora_alpha = j.at("lora_alpha").get<double>();
    if (j.contains("lora_dropout")) c.lora_dropout = j["lora_dropout"].get<double>();
    const auto& t = j.at("target_modules");
    if (t.is_string())
      c.target_modules = {t.get<std::string>()};
    else
      c.target_modules = t.get<std::vector<std::string>>();
    if (j.contains("fan_in_fan_out")) c.fan_in_fan_out = j["fan_in_fan_out"].get<bool>();
    if (j.contains("task_type") && j["task_type"].is_string())
      c.task_type = j["task_type"].get<std::string>();
    if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
      c.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    ::nabla::fail("lora: ", source, ": ", e.what());
  }
  NABLA_CHECK(c.r > 0, "lora: ", source, ": r must be positive, got ", c.r);
  NABLA_CHECK(c.lora_dropout >= 0 && c.lora_dropout < 1, "lora: ", source,
              ": lora_dropout must be in [0, 1), got ", c.lora_dropout);
  return c;
}

// ---- adapter ----
LoraAdapter::LoraAdapter(int64_t in, int64_t out, const LoraConfig& c, uint64_t seed)
    : Module("LoraAdapter"), scaling(c.scaling()), dropout_p(c.lora_dropout) {
  NABLA_CHECK(c.r > 0, "lora: r must be positive, got ", c.r);
  lora_A = register_module("lora_A", std::make_shared<Linear>(in, c.r, false));
  lora_B = register_module("lora_B", std::make_shared<Linear>(c.r, out, false));
  NoGradGuard ng;
  Generator g{seed, 0};
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));  // kaiming_uniform(a = sqrt 5)
  uniform_(lora_A->weight, -bound, bound, &g);
  lora_B->weight.zero_();
}

Tensor LoraAdapter::forward(const Tensor& x) {
  // The layer registers lora_A and lora_B (not this object) as its children, so they carry the mode.
  Tensor h = (dropout_p > 0 && lora_A->is_training()) ? dropout(x, dropout_p, true) : x;
  return lora_B->forward(lora_A->forward(h)) * scaling;
}

Tensor LoraAdapter::delta_weight() const {
  NoGradGuard ng;
  return matmul(lora_B->weight, lora_A->weight) * scaling;
}

// ---- layer ----
Tensor LoraLinear::forward(const Tensor& x) {
  Tensor y = Linear::forward(x);
  if (adapter_ && !merged_) y = y + adapter_->forward(x);
  return y;
}

void LoraLinear::attach(std::shared_ptr<LoraAdapter> adapter) {
  NABLA_CHECK(!adapter_, "lora: this layer already has an adapter");
  NABLA_CHECK(
      adapter->lora_A->weight.size(1) == weight.size(1) && adapter->lora_B->weight.size(0) == weight.size(0),
      "lora: adapter maps ", adapter->lora_A->weight.size(1), " -> ", adapter->lora_B->weight.size(0),
      ", the layer ", weight.size(1), " -> ", weight.size(0));
  adapter->to(weight.device());
  register_module("lora_A", adapter->lora_A);
  register_module("lora_B", adapter->lora_B);
  adapter_ = std::move(adapter);
  adapter_->train(is_training());
}

void LoraLinear::merge() {
  NABLA_CHECK(adapter_, "lora: merge on a layer without an adapter");
  if (merged_) return;
  NoGradGuard ng;
  weight.copy_(weight + adapter_->delta_weight().to(weight.dtype()));
  merged_ = true;
}

void LoraLinear::unmerge() {
  NABLA_CHECK(adapter_, "lora: unmerge on a layer without an adapter");
  if (!merged_) return;
  NoGradGuard ng;
  weight.copy_(weight - adapter_->delta_weight().to(weight.dtype()));
  merged_ = false;
}

// ---- model-level ----
std::vector<std::pair<std::string, std::shared_ptr<LoraLinear>>> lora_layers(const Module& model) {
  std::vector<std::pair<std::string, std::shared_ptr<LoraLinear>>> out;
  for (auto& [name, m] : model.named_modules())
    if (auto l = std::dynamic_pointer_cast<LoraLinear>(m); l && l->adapter()) out.emplace_back(name, l);
  return out;
}

std::vector<std::string> apply_lora(Module& model, const LoraConfig& config) {
  NABLA_CHECK(!config.target_modules.empty(), "lora: target_modules is empty");
  NABLA_CHECK(lora_layers(model).empty(), "lora: the model already has adapters");
  std::vector<std::pair<std::string, std::shared_ptr<LoraLinear>>> chosen;
  for (const auto& target : config.target_modules) {
    bool found = false;
    for (auto& [name, m] : model.named_modules()) {
      if (!matches_target(name, target)) continue;
      auto l = std::dynamic_pointer_cast<LoraLinear>(m);
      NABLA_CHECK(l, "lora: target '", target, "' matches '", name, "', a ", m->type_name(),
                  ", which cannot take an adapter (expected an nn::LoraLinear)");
      found = true;
      bool seen = false;
      for (auto& c : chosen) seen = seen || c.first == name;
      if (!seen) chosen.emplace_back(name, l);
    }
    NABLA_CHECK(found, "lora: target '", target, "' matches no module of the model");
  }
  for (Tensor& p : model.parameters()) p.requires_grad_(false);
  std::vector<std::string> names;
  uint64_t i = 0;
  for (auto& [name, l] : chosen) {
    l->attach(std::make_shared<LoraAdapter>(l->weight.size(1), l->weight.size(0), config,
                                            config.seed * 0x9E3779B97F4A7C15ull + (++i)));
    names.push_back(name);
  }
  return names;
}

void merge_lora(Module& model) {
  for (auto& [name, l] : lora_layers(model)) l->merge();
}
void unmerge_lora(Module& model) {
  for (auto& [name, l] : lora_layers(model)) l->unmerge();
}

NamedTensors lora_state_dict(const Module& model) {
  NamedTensors out;
  for (auto& [name, l] : lora_layers(model)) {
    out.emplace_back(kPeftPrefix + name + ".lora_A.weight", l->adapter()->lora_A->weight);
    out.emplace_back(kPeftPrefix + name + ".lora_B.weight", l->adapter()->lora_B->weight);
  }
  return out;
}

void save_lora(const Module& model, const LoraConfig& config, const std::string& dir) {
  NamedTensors t = lora_state_dict(model);
  NABLA_CHECK(!t.empty(), "lora: save_lora: the model has no adapters");
  std::filesystem::create_directories(dir);
  save_safetensors(dir + "/adapter_model.safetensors", t, {{"format", "pt"}});
  write_text(dir + "/adapter_config.json", config.to_json());
}

LoraConfig load_lora(Module& model, const std::string& dir) {
  const std::string cfg_path = dir + "/adapter_config.json";
  LoraConfig c = LoraConfig::from_json(read_text(cfg_path, "lora"), cfg_path);
  SafetensorsFile f = load_safetensors(dir + "/adapter_model.safetensors");
  apply_lora(model, c);
  NamedTensors ours = lora_state_dict(model);
  std::string problems;
  for (auto& [name, t] : ours) {
    if (!f.contains(name)) {
      problems += "\n  missing: " + name;
      continue;
    }
    Tensor src = f.get(name);
    if (src.shape() != t.shape()) {
      std::ostringstream s;
      s << "\n  shape mismatch: " << name << ": file " << src.shape() << ", model " << t.shape();
      problems += s.str();
    }
  }
  for (auto& [name, t] : f.tensors) {
    bool known = false;
    for (auto& o : ours) known = known || o.first == name;
    if (!known) problems += "\n  unexpected: " + name;
  }
  NABLA_CHECK(problems.empty(), "lora: ", dir,
              "/adapter_model.safetensors does not fit the model:", problems);
  NoGradGuard ng;
  for (auto& [name, t] : ours) t.copy_(f.get(name).to(t.dtype()).to(t.device()));
  return c;
}

}  // namespace nabla::nn

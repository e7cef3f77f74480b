// GPT-2 in transformers' checkpoint format (see gpt.h, "HF layout"): the state dict with Conv1D weights
// [in, out], and the save_pretrained directory (model.safetensors + config.json).
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/gpt.h"

namespace nabla::models {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The four Conv1D weights of a block, stored [in, out] by transformers.
bool is_conv1d_weight(const std::string& name) {
  return ends_with(name, ".attn.c_attn.weight") || ends_with(name, ".attn.c_proj.weight") ||
         ends_with(name, ".mlp.c_fc.weight") || ends_with(name, ".mlp.c_proj.weight");
}

bool is_adapter(const std::string& name) { return name.find(".lora_") != std::string::npos; }

std::string shape_text(const Shape& s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

}  // namespace

NamedTensors GPT::hf_state_dict() const {
  NamedTensors out;
  for (auto& [name, t] : state_dict()) {
    if (is_adapter(name)) continue;
    out.emplace_back(name, is_conv1d_weight(name) ? t.t().contiguous() : t);
  }
  return out;
}

void GPT::load_hf_state_dict(const NamedTensors& state_in, bool strict) {
  bool has_prefix = false;
  for (auto& [name, t] : state_in) has_prefix = has_prefix || name.rfind("transformer.", 0) == 0;
  std::map<std::string, Tensor> state;
  Tensor lm_head;
  for (auto& [name_in, t] : state_in) {
    std::string name = name_in;
    if (name == "lm_head.weight") {
      lm_head = t;
      continue;
    }
    if (!has_prefix) name = "transformer." + name;
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"))
      continue;  // causal-mask buffers
    state[name] = t;
  }
  std::string problems;
  NamedTensors ours;
  for (auto& [name, t] : state_dict())
    if (!is_adapter(name)) ours.emplace_back(name, t);
  std::set<std::string> known;
  for (auto& [name, t] : ours) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) {
      problems += "\n  missing: " + name;
      continue;
    }
    const Shape expect = is_conv1d_weight(name) ? Shape{t.size(1), t.size(0)} : t.shape();
    if (it->second.shape() != expect)
      problems += "\n  shape mismatch: " + name + ": file " + shape_text(it->second.shape()) + ", expected " +
                  shape_text(expect) + (is_conv1d_weight(name) ? " (Conv1D layout [in, out])" : "");
  }
  for (auto& [name, t] : state)
    if (!known.count(name)) problems += "\n  unexpected: " + name;
  if (lm_head.defined()) {
    auto wte = state.find("transformer.wte.weight");
    if (wte != state.end() && lm_head.shape() == wte->second.shape()) {
      Tensor a = lm_head.to(DType::f64), b = wte->second.to(DType::f64);
      const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
      NABLA_CHECK(va == vb,
                  "GPT: lm_head.weight differs from transformer.wte.weight: untied heads are not "
                  "supported (GPT-2 ties them)");
    } else if (wte != state.end()) {
      problems += "\n  shape mismatch: lm_head.weight: file " + shape_text(lm_head.shape()) + ", expected " +
                  shape_text(wte->second.shape());
    }
  }
  if (strict) NABLA_CHECK(problems.empty(), "GPT: the state dict does not fit the model:", problems);
  NoGradGuard ng;
  for (auto& [name, t] : ours) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    Tensor src = is_conv1d_weight(name) ? it->second.t() : it->second;
    if (src.shape() != t.shape()) continue;  // reported above (non-strict: skipped)
    t.copy_(src.to(t.dtype()).to(t.device()));
  }
}

void GPT::save_pretrained(const std::string& dir) const {
  std::filesystem::create_directories(dir);
  save_safetensors(dir + "/model.safetensors", hf_state_dict(), {{"format", "pt"}});
  std::ofstream f(dir + "/config.json", std::ios::binary);
  NABLA_CHECK(f.good(), "GPT: cannot write ", dir, "/config.json");
  f << config_.to_json();
  NABLA_CHECK(f.good(), "GPT: writing ", dir, "/config.json failed");
}

std::shared_ptr<GPT> GPT::from_pretrained(const std::string& dir) {
  auto model = std::make_shared<GPT>(GPTConfig::from_file(dir + "/config.json"));
  SafetensorsFile f = load_safetensors(dir + "/model.safetensors");
  model->load_hf_state_dict(f.tensors);
  return model;
}

}  // namespace nabla::models

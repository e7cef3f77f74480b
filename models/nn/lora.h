// LoRA: low-rank adapters on Linear layers (Hu et al. 2021), with PEFT's conventions so adapter files
// load in `peft` (PeftModel.from_pretrained) and theirs load here.
//
//   y = x W^T + b + s * B(A(dropout(x)))       A [r, in], B [out, r], s = lora_alpha / r
//   init (as PEFT): A kaiming-uniform(a = sqrt 5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0, so a fresh
//   adapter leaves the model's outputs unchanged.
//   merge:   W += s * B A      (the layer then runs at base cost; the adapter path is skipped)
//   unmerge: W -= s * B A      (equal to the original W up to rounding)
//
// A layer can take an adapter when it is an nn::LoraLinear: an nn::Linear with an adapter slot (same
// parameters, same forward when no adapter is attached). The adapter's tensors are children of the layer,
// named as PEFT names them: "<layer>.lora_A.weight", "<layer>.lora_B.weight".
//
// apply_lora(model, config) attaches adapters to every LoraLinear whose dotted name equals a target or ends
// with "." + target (PEFT's rule: "c_proj" adapts both attn.c_proj and mlp.c_proj) and sets requires_grad
// false on every other parameter of the model, so an optimizer over model.parameters() trains only A and B.
//
// Files (PEFT's save_pretrained layout), in a directory:
//   adapter_model.safetensors  "base_model.model.<layer>.lora_A.weight" [r, in] and ".lora_B.weight" [out, r]
//   adapter_config.json        peft_type "LORA", r, lora_alpha, lora_dropout, target_modules, fan_in_fan_out
//                              (true for GPT-2, whose HF layers are Conv1D: the A/B shapes are the same
//                              either way; PEFT transposes only when merging), bias "none", task_type.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/nn/layers.h"

namespace nabla::nn {

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 16;
  double lora_dropout = 0.0;
  std::vector<std::string> target_modules{};
  bool fan_in_fan_out = false;  // written to adapter_config.json (true for GPT-2's Conv1D layers)
  std::string task_type = "CAUSAL_LM";
  std::string base_model_name_or_path{};  // informational, written to adapter_config.json
  uint64_t seed = 0;                      // for A's init
  double scaling() const { return lora_alpha / static_cast<double>(r); }

  std::string to_json() const;
  // PEFT's adapter_config.json; refuses peft_type other than LORA, use_rslora / use_dora true, bias other
  // than "none", naming them.
  static LoraConfig from_json(const std::string& text, const std::string& source = "adapter_config.json");
};

// The two matrices of one adapter.
class LoraAdapter : public Module {
 public:
  LoraAdapter(int64_t in, int64_t out, const LoraConfig& c, uint64_t seed);
  // s * B(A(dropout(x))): [*, in] -> [*, out].
  Tensor forward(const Tensor& x) override;
  // s * B A [out, in] (no autograd).
  Tensor delta_weight() const;
  std::shared_ptr<Linear> lora_A, lora_B;
  double scaling, dropout_p;
};

class LoraLinear : public Linear {
 public:
  LoraLinear(int64_t in_features, int64_t out_features, bool bias = true)
      : Linear(in_features, out_features, bias) {}
  Tensor forward(const Tensor& x) override;
  // Registers `adapter` as children "lora_A" / "lora_B" of this layer. Once per layer.
  void attach(std::shared_ptr<LoraAdapter> adapter);
  void merge();    // W += s B A; forward skips the adapter path
  void unmerge();  // W -= s B A
  bool merged() const { return merged_; }
  const std::shared_ptr<LoraAdapter>& adapter() const { return adapter_; }

 private:
  std::shared_ptr<LoraAdapter> adapter_;
  bool merged_ = false;
};

// Attaches adapters (see above) and freezes the rest; returns the adapted layers' names. Throws when a
// target matches no layer, or matches a module that is not a LoraLinear (naming it and its type).
std::vector<std::string> apply_lora(Module& model, const LoraConfig& config);
// Every adapted layer of the model, with its dotted name.
std::vector<std::pair<std::string, std::shared_ptr<LoraLinear>>> lora_layers(const Module& model);
void merge_lora(Module& model);
void unmerge_lora(Module& model);
// Only the adapter tensors, with PEFT's names ("base_model.model." + name).
NamedTensors lora_state_dict(const Module& model);
// dir/adapter_model.safetensors + dir/adapter_config.json (creates dir).
void save_lora(const Module& model, const LoraConfig& config, const std::string& dir);
// Reads dir's config, applies it to `model` (which must not have adapters yet) and loads the tensors; every
// adapter tensor must be in the file and nothing else (one Error lists missing / unexpected / mismatched).
LoraConfig load_lora(Module& model, const std::string& dir);

}  // namespace nabla::nn

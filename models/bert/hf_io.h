// Hugging Face checkpoints for the BERT models: reading a state dict written by `transformers`
// (model.safetensors from save_pretrained) into our modules, and writing ours so that transformers reads it.
//
// Our parameter names are transformers' (model.h, heads.h), so most keys map one to one. The rules for the
// rest:
//   - prefix: a bare BertModel's keys ("embeddings...") load into a head model ("bert.embeddings..."), and a
//     head model's "bert.*" keys load into a bare BertModel (its "cls.*" / "classifier.*" keys are then
//     unexpected: load with strict = false);
//   - ignored: the buffers "embeddings.position_ids" / "embeddings.token_type_ids" that older transformers
//     saved, and the tied copies "cls.predictions.decoder.weight" (must equal the word embedding, when the
//     config ties them) and "cls.predictions.decoder.bias" (must equal "cls.predictions.bias"; stands in
//     for it when that key is absent);
//   - old TensorFlow-converted names "LayerNorm.gamma" / "LayerNorm.beta" read as ".weight" / ".bias";
//   - floating tensors of another dtype (an f16 checkpoint) are converted to the parameter's dtype.
// A shape mismatch always throws, naming the key and both shapes. Missing and unexpected keys throw when
// strict (listing each with its shape), and are reported otherwise. Nothing is written unless the whole
// state passes.
//
// Writing: model.state_dict() under the same names (tied tensors once, as transformers' save_pretrained
// writes them), with the metadata {"format": "pt"} that transformers requires, and config.json.
#pragma once
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "models/bert/config.h"
#include "models/nn/module.h"

namespace nabla::models {

struct BertLoadReport {
  std::vector<std::string> missing;     // "name [shape]": in the model, not in the file
  std::vector<std::string> unexpected;  // "name [shape]": in the file, not in the model
  std::vector<std::string> ignored;     // keys skipped by the rules above, with the reason
  bool clean() const { return missing.empty() && unexpected.empty(); }
  std::string str() const;  // one line per non-empty list
};

// Loads `state` (transformers' names) into `model` (any BERT module: BertModel or a head model).
// `tie_word_embeddings`: whether the model's MLM decoder is the word embedding (checks the tied copy).
BertLoadReport load_bert_state_dict(nn::Module& model, const NamedTensors& state, bool strict = true,
                                    bool tie_word_embeddings = true,
                                    const std::string& source = "state dict");
BertLoadReport load_bert_safetensors(nn::Module& model, const std::string& path, bool strict = true,
                                     bool tie_word_embeddings = true);

// model.safetensors with {"format": "pt"}.
void save_bert_safetensors(const nn::Module& model, const std::string& path);
// dir/config.json + dir/model.safetensors (dir is created when missing).
void save_bert_pretrained(const nn::Module& model, const BertConfig& config, const std::string& architecture,
                          const std::string& dir);

}  // namespace nabla::models

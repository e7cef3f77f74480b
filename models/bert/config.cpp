// BertConfig: presets, validation and Hugging Face config.json reading and writing (see config.h).
#include "models/bert/config.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/error.h"

namespace nabla::models {
namespace {

using Json = nlohmann::json;

const char* const kActs[] = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};

// j[key] as T when present and not null; throws naming the field and the JSON type it found.
template <class T>
void read_field(const Json& j, const char* key, T& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("BertConfig: ", source, ": field '", key, "' has the wrong type (", it->type_name(), ": ",
         it->dump(), ")");
  }
}

}  // namespace

void BertConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    NABLA_CHECK(v > 0, "BertConfig: ", name, " must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("type_vocab_size", type_vocab_size);
  positive("num_labels", num_labels);
  NABLA_CHECK(attention_impl == "composed" || attention_impl == "fused",
              "BertConfig: attention_impl must be composed or fused, got '", attention_impl, "'");
  NABLA_CHECK(hidden_size % num_attention_heads == 0, "BertConfig: hidden_size ", hidden_size,
              " is not a multiple of num_attention_heads ", num_attention_heads);
  auto prob = [](const char* name, double p) {
    NABLA_CHECK(p >= 0.0 && p < 1.0, "BertConfig: ", name, " must be in [0, 1), got ", p);
  };
  prob("hidden_dropout_prob", hidden_dropout_prob);
  prob("attention_probs_dropout_prob", attention_probs_dropout_prob);
  if (classifier_dropout >= 0) prob("classifier_dropout", classifier_dropout);
  NABLA_CHECK(layer_norm_eps > 0, "BertConfig: layer_norm_eps must be positive, got ", layer_norm_eps);
  NABLA_CHECK(initializer_range >= 0, "BertConfig: initializer_range must be >= 0, got ", initializer_range);
  NABLA_CHECK(pad_token_id >= -1 && pad_token_id < vocab_size, "BertConfig: pad_token_id ", pad_token_id,
              " is outside the vocabulary [0, ", vocab_size, ") (use -1 for none)");
  bool known = false;
  for (const char* a : kActs) known = known || hidden_act == a;
  NABLA_CHECK(known, "BertConfig: hidden_act '", hidden_act,
              "' is not supported (expected gelu, gelu_new, gelu_pytorch_tanh or relu)");
}

BertConfig BertConfig::bert_base() { return BertConfig{}; }

BertConfig BertConfig::bert_large() {
  BertConfig c;
  c.hidden_size = 1024;
  c.num_hidden_layers = 24;
  c.num_attention_heads = 16;
  c.intermediate_size = 4096;
  return c;
}

BertConfig BertConfig::bert_6l_768() {
  BertConfig c;
  c.num_hidden_layers = 6;
  return c;
}

BertConfig BertConfig::bert_4l_312() {
  BertConfig c;
  c.hidden_size = 312;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 12;
  c.intermediate_size = 1200;
  return c;
}

BertConfig BertConfig::bert_tiny() {
  BertConfig c;
  c.hidden_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 512;
  return c;
}

BertConfig BertConfig::preset(const std::string& name) {
  std::string n = name;
  for (const char* suffix : {"-uncased", "-cased"})
    if (n.size() > std::string(suffix).size() && n.ends_with(suffix))
      n.resize(n.size() - std::string(suffix).size());
  if (n == "bert-base") return bert_base();
  if (n == "bert-large") return bert_large();
  if (n == "6L-768") return bert_6l_768();
  if (n == "4L-312") return bert_4l_312();
  if (n == "bert-tiny") return bert_tiny();
  fail("BertConfig: unknown preset '", name,
       "' (expected bert-base, bert-large, 6L-768, 4L-312 or bert-tiny)");
}

BertConfig BertConfig::from_json(const std::string& text, const std::string& source) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("BertConfig: ", source, ": not valid JSON (", e.what(), ")");
  }
  NABLA_CHECK(j.is_object(), "BertConfig: ", source, ": expected a JSON object, got ", j.type_name());
  std::string model_type = "bert";
  read_field(j, "model_type", model_type, source);
  NABLA_CHECK(model_type == "bert", "BertConfig: ", source, ": model_type is '", model_type,
              "', expected 'bert'");
  std::string position_type = "absolute";
  read_field(j, "position_embedding_type", position_type, source);
  NABLA_CHECK(position_type == "absolute", "BertConfig: ", source, ": position_embedding_type '",
              position_type, "' is not supported (only 'absolute')");
  for (const char* flag : {"is_decoder", "add_cross_attention"}) {
    bool on = false;
    read_field(j, flag, on, source);
    NABLA_CHECK(!on, "BertConfig: ", source, ": ", flag, " = true is not supported (encoder only)");
  }
  BertConfig c;
  read_field(j, "vocab_size", c.vocab_size, source);
  read_field(j, "hidden_size", c.hidden_size, source);
  read_field(j, "num_hidden_layers", c.num_hidden_layers, source);
  read_field(j, "num_attention_heads", c.num_attention_heads, source);
  read_field(j, "intermediate_size", c.intermediate_size, source);
  read_field(j, "hidden_act", c.hidden_act, source);
  read_field(j, "hidden_dropout_prob", c.hidden_dropout_prob, source);
  read_field(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, source);
  read_field(j, "max_position_embeddings", c.max_position_embeddings, source);
  read_field(j, "type_vocab_size", c.type_vocab_size, source);
  read_field(j, "layer_norm_eps", c.layer_norm_eps, source);
  read_field(j, "pad_token_id", c.pad_token_id, source);
  read_field(j, "initializer_range", c.initializer_range, source);
  read_field(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  if (auto it = j.find("id2label"); it != j.end() && it->is_object() && !it->empty())
    c.num_labels = static_cast<int64_t>(it->size());
  read_field(j, "num_labels", c.num_labels, source);
  read_field(j, "classifier_dropout", c.classifier_dropout, source);
  try {
    c.validate();
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }
  return c;
}

BertConfig BertConfig::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NABLA_CHECK(in.good(), "BertConfig: cannot open '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return from_json(ss.str(), path);
}

std::string BertConfig::to_json(const std::string& architecture) const {
  nlohmann::ordered_json j;
  j["architectures"] = {architecture};
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["pad_token_id"] = pad_token_id;
  j["initializer_range"] = initializer_range;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["position_embedding_type"] = "absolute";
  if (classifier_dropout < 0)
    j["classifier_dropout"] = nullptr;
  else
    j["classifier_dropout"] = classifier_dropout;
  // transformers derives num_labels from id2label.
  nlohmann::ordered_json id2label, label2id;
  for (int64_t i = 0; i < num_labels; ++i) {
    id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
    label2id["LABEL_" + std::to_string(i)] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  return j.dump(2) + "\n";
}

void BertConfig::save(const std::string& path, const std::string& architecture) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    NABLA_CHECK(out.good(), "BertConfig: cannot write '", tmp, "'");
    out << to_json(architecture);
    out.flush();
    NABLA_CHECK(out.good(), "BertConfig: writing '", tmp, "' failed");
  }
  NABLA_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "BertConfig: cannot rename '", tmp, "' to '", path,
              "'");
}

}  // namespace nabla::models

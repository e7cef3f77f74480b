// Loading Hugging Face BERT state dicts into our modules and writing ours for transformers (hf_io.h).
#include "models/bert/hf_io.h"

#include <filesystem>
#include <map>
#include <sstream>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace nabla::models {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string with_shape(const std::string& name, const Tensor& t) {
  return name + " " + dtype_name(t.dtype()) + " " + shape_str(t.shape());
}

// Exactly equal values (tied copies are the same tensor written twice).
bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  NoGradGuard ng;
  if (a.dtype() == b.dtype() && is_floating(a.dtype())) return amax(abs(a - b)).item() == 0.0;
  return amax(abs(a.to(DType::f64) - b.to(DType::f64))).item() == 0.0;
}

void list(std::ostringstream& os, const char* what, const std::vector<std::string>& v) {
  if (v.empty()) return;
  os << "\n  " << what << " (" << v.size() << "):";
  for (const auto& s : v) os << "\n    " << s;
}

}  // namespace

std::string BertLoadReport::str() const {
  std::ostringstream os;
  list(os, "missing from the file", missing);
  list(os, "unexpected in the file", unexpected);
  list(os, "ignored", ignored);
  std::string s = os.str();
  return s.empty() ? "all keys matched" : s.substr(1);
}

BertLoadReport load_bert_state_dict(nn::Module& model, const NamedTensors& state, bool strict,
                                    bool tie_word_embeddings, const std::string& source) {
  const NamedTensors ours = model.state_dict();
  std::map<std::string, Tensor> our_map(ours.begin(), ours.end());
  auto any_prefixed = [](const auto& named) {
    for (const auto& [n, t] : named)
      if (starts_with(n, "bert.")) return true;
    return false;
  };
  const bool ours_prefixed = any_prefixed(ours), file_prefixed = any_prefixed(state);
  const std::string prefix = ours_prefixed ? "bert." : "";
  BertLoadReport report;

  // 1. The file's names in ours: old LayerNorm names, the "bert." prefix.
  std::map<std::string, Tensor> given;
  for (const auto& [name, t] : state) {
    std::string n = name;
    if (ends_with(n, "LayerNorm.gamma")) n = n.substr(0, n.size() - 5) + "weight";
    if (ends_with(n, "LayerNorm.beta")) n = n.substr(0, n.size() - 4) + "bias";
    if (ours_prefixed && !file_prefixed && !starts_with(n, "cls.") && !starts_with(n, "classifier."))
      n = "bert." + n;
    else if (!ours_prefixed && file_prefixed && starts_with(n, "bert."))
      n = n.substr(5);
    NABLA_CHECK(given.emplace(n, t).second, "load BERT weights from ", source,
                ": two keys of the file map to '", n, "' (the second is '", name, "')");
  }

  // 2. Keys that carry nothing of their own.
  for (auto it = given.begin(); it != given.end();) {
    if (ends_with(it->first, "embeddings.position_ids") ||
        ends_with(it->first, "embeddings.token_type_ids")) {
      report.ignored.push_back(it->first + " (a buffer of transformers' BertEmbeddings, not a parameter)");
      it = given.erase(it);
    } else {
      ++it;
    }
  }
  const std::string dec_w = "cls.predictions.decoder.weight", dec_b = "cls.predictions.decoder.bias",
                    mlm_bias = "cls.predictions.bias", word = prefix + "embeddings.word_embeddings.weight";
  const bool has_mlm_head = our_map.count(mlm_bias) > 0;
  if (auto it = given.find(dec_w); it != given.end() && has_mlm_head && tie_word_embeddings) {
    if (auto w = given.find(word); w != given.end())
      NABLA_CHECK(same_values(it->second, w->second), "load BERT weights from ", source, ": ", dec_w,
                  " differs from ", word,
                  " but the config ties them (tie_word_embeddings true); set "
                  "tie_word_embeddings to false in config.json to load an untied decoder");
    report.ignored.push_back(dec_w + " (tied to " + word + ")");
    given.erase(it);
  }
  if (auto it = given.find(dec_b); it != given.end() && has_mlm_head) {
    if (auto b = given.find(mlm_bias); b != given.end()) {
      NABLA_CHECK(same_values(it->second, b->second), "load BERT weights from ", source, ": ", dec_b,
                  " differs from ", mlm_bias, " (transformers ties them)");
      report.ignored.push_back(dec_b + " (tied to " + mlm_bias + ")");
    } else {
      given.emplace(mlm_bias, it->second);
      report.ignored.push_back(dec_b + " (read as " + mlm_bias + ")");
    }
    given.erase(dec_b);
  }

  // 3. Match every parameter of the model.
  std::vector<std::string> mismatched;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (const auto& [name, dst] : ours) {
    auto it = given.find(name);
    if (it == given.end()) {
      report.missing.push_back(with_shape(name, dst));
      continue;
    }
    const Tensor& src = it->second;
    if (src.shape() != dst.shape())
      mismatched.push_back(name + ": the model has " + shape_str(dst.shape()) + ", the file " +
                           shape_str(src.shape()));
    else if (src.dtype() != dst.dtype() && !(is_floating(src.dtype()) && is_floating(dst.dtype())))
      mismatched.push_back(name + ": the model has " + dtype_name(dst.dtype()) + ", the file " +
                           dtype_name(src.dtype()));
    else
      copies.emplace_back(dst, src);
    given.erase(it);
  }
  for (const auto& [name, t] : given) report.unexpected.push_back(with_shape(name, t));

  if (!mismatched.empty() || (strict && !report.clean())) {
    std::ostringstream os;
    os << "load BERT weights from " << source << " into " << model.type_name()
       << ": the file does not match the model";
    list(os, "shape or dtype mismatch", mismatched);
    list(os, "missing from the file", report.missing);
    list(os, "unexpected in the file", report.unexpected);
    if (mismatched.empty())
      os << "\n  (load with strict = false to keep the missing parameters as initialised)";
    throw Error(os.str());
  }
  NoGradGuard ng;
  for (auto& [dst, src] : copies) {
    Tensor s = src.dtype() == dst.dtype() ? src : src.to(dst.dtype());
    dst.copy_(s.device() == dst.device() ? s : s.to(dst.device()));
  }
  return report;
}

BertLoadReport load_bert_safetensors(nn::Module& model, const std::string& path, bool strict,
                                     bool tie_word_embeddings) {
  SafetensorsFile f = load_safetensors(path);
  return load_bert_state_dict(model, f.tensors, strict, tie_word_embeddings, path);
}

void save_bert_safetensors(const nn::Module& model, const std::string& path) {
  save_safetensors(path, model.state_dict(), {{"format", "pt"}});
}

void save_bert_pretrained(const nn::Module& model, const BertConfig& config, const std::string& architecture,
                          const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  NABLA_CHECK(!ec, "save BERT: cannot create the folder '", dir, "' (", ec.message(), ")");
  config.save(dir + "/config.json", architecture);
  save_bert_safetensors(model, dir + "/model.safetensors");
}

}  // namespace nabla::models

// GPT-2 (see gpt.h): config, causal attention, blocks, the LM head and its loss.
#include "models/gpt.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/autograd.h"
#include "engine/dtype_limits.h"
#include "engine/error.h"
#include "ops/attention.h"
#include "ops/autocast.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/loss.h"
#include "ops/nn.h"

namespace nabla::models {
// ---- config ----
void GPTConfig::validate() const {
  NABLA_CHECK(vocab_size > 0, "GPTConfig: vocab_size must be positive, got ", vocab_size);
  NABLA_CHECK(n_positions > 0, "GPTConfig: n_positions must be positive, got ", n_positions);
  NABLA_CHECK(n_layer > 0, "GPTConfig: n_layer must be positive, got ", n_layer);
  NABLA_CHECK(n_embd > 0 && n_head > 0 && n_embd % n_head == 0, "GPTConfig: n_embd ", n_embd,
              " must be a positive multiple of n_head ", n_head);
  NABLA_CHECK(n_inner >= 0, "GPTConfig: n_inner must be >= 0 (0: 4 * n_embd), got ", n_inner);
  for (double p : {resid_pdrop, embd_pdrop, attn_pdrop})
    NABLA_CHECK(p >= 0 && p < 1, "GPTConfig: dropout probabilities must be in [0, 1), got ", p);
  NABLA_CHECK(layer_norm_epsilon > 0, "GPTConfig: layer_norm_epsilon must be positive, got ",
              layer_norm_epsilon);
}

GPTConfig GPTConfig::gpt2() { return GPTConfig{}; }

GPTConfig GPTConfig::gpt2_medium() {
  GPTConfig c;
  c.n_embd = 1024, c.n_layer = 24, c.n_head = 16;
  return c;
}

GPTConfig GPTConfig::gpt2_large() {
  GPTConfig c;
  c.n_embd = 1280, c.n_layer = 36, c.n_head = 20;
  return c;
}

GPTConfig GPTConfig::tiny() {
  GPTConfig c;
  c.vocab_size = 96, c.n_positions = 32, c.n_embd = 32, c.n_layer = 2, c.n_head = 4;
  c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0.0;
  c.bos_token_id = c.eos_token_id = 95;
  return c;
}

GPTConfig GPTConfig::preset(const std::string& name) {
  if (name == "gpt2") return gpt2();
  if (name == "gpt2-medium") return gpt2_medium();
  if (name == "gpt2-large") return gpt2_large();
  if (name == "tiny") return tiny();
  fail("GPTConfig: unknown preset '", name, "' (expected gpt2, gpt2-medium, gpt2-large or tiny)");
}

GPTConfig GPTConfig::from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("GPTConfig: ", source, ": not valid JSON: ", e.what());
  }
  NABLA_CHECK(j.is_object(), "GPTConfig: ", source, ": expected a JSON object");
  GPTConfig c;
  try {
    if (j.contains("model_type") && j["model_type"].is_string())
      NABLA_CHECK(j["model_type"].get<std::string>() == "gpt2", "GPTConfig: ", source, ": model_type is ",
                  j["model_type"].dump(), ", expected \"gpt2\"");
    auto get_int = [&](const char* key, int64_t& v) {
      if (j.contains(key) && !j[key].is_null()) v = j[key].get<int64_t>();
    };
    auto get_double = [&](const char* key, double& v) {
      if (j.contains(key) && !j[key].is_null()) v = j[key].get<double>();
    };
    get_int("vocab_size", c.vocab_size);
    get_int("n_positions", c.n_positions);
    get_int("n_embd", c.n_embd);
    get_int("n_layer", c.n_layer);
    get_int("n_head", c.n_head);
    get_int("n_inner", c.n_inner);
    get_int("bos_token_id", c.bos_token_id);
    get_int("eos_token_id", c.eos_token_id);
    get_double("resid_pdrop", c.resid_pdrop);
    get_double("embd_pdrop", c.embd_pdrop);
    get_double("attn_pdrop", c.attn_pdrop);
    get_double("layer_norm_epsilon", c.layer_norm_epsilon);
    get_double("initializer_range", c.initializer_range);
    if (j.contains("activation_function") && !j["activation_function"].is_null()) {
      const auto act = j["activation_function"].get<std::string>();
      NABLA_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh", "GPTConfig: ", source,
                  ": activation_function \"", act, "\" is not supported (expected gelu_new)");
    }
    auto refuse = [&](const char* key, bool bad_value) {
      if (j.contains(key) && j[key].is_boolean())
        NABLA_CHECK(j[key].get<bool>() != bad_value, "GPTConfig: ", source, ": ", key, " ",
                    bad_value ? "true" : "false", " is not supported");
    };
    refuse("scale_attn_weights", false);
    refuse("scale_attn_by_inverse_layer_idx", true);
    refuse("reorder_and_upcast_attn", true);
    refuse("tie_word_embeddings", false);
  } catch (const nlohmann::json::exception& e) {
    fail("GPTConfig: ", source, ": ", e.what());
  }
  c.validate();
  return c;
}

GPTConfig GPTConfig::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), "GPTConfig: cannot open ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), path);
}

std::string GPTConfig::to_json() const {
  nlohmann::json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = vocab_size;
  j["n_positions"] = n_positions;
  j["n_ctx"] = n_positions;
  j["n_embd"] = n_embd;
  j["n_layer"] = n_layer;
  j["n_head"] = n_head;
  j["n_inner"] = n_inner > 0 ? nlohmann::json(n_inner) : nlohmann::json(nullptr);
  j["activation_function"] = "gelu_new";
  j["resid_pdrop"] = resid_pdrop;
  j["embd_pdrop"] = embd_pdrop;
  j["attn_pdrop"] = attn_pdrop;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["initializer_range"] = initializer_range;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["tie_word_embeddings"] = true;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

int64_t gpt_num_parameters(const GPTConfig& c) {
  const int64_t e = c.n_embd, f = c.inner();
  const int64_t block = 2 * 2 * e + (e * 3 * e + 3 * e) + (e * e + e) + (e * f + f) + (f * e + e);
  return c.vocab_size * e + c.n_positions * e + c.n_layer * block + 2 * e;
}

// ---- attention ----
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask,
                        double dropout_p, bool training) {
  NABLA_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "causal_attention: expected q, k, v of shape [B, H, S, D], got ", q.shape(), ", ", k.shape(),
              ", ", v.shape());
  NABLA_CHECK(
      q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3) && k.shape() == v.shape(),
      "causal_attention: q ", q.shape(), ", k ", k.shape(), " and v ", v.shape(),
      " disagree (expected q [B, H, Sq, D], k and v [B, H, Sk, D])");
  const int64_t sq = q.size(2), sk = k.size(2);
  NABLA_CHECK(sq <= sk, "causal_attention: ", sq, " queries but only ", sk,
              " keys (queries are the last positions)");
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor scores = matmul(q, k.transpose(-1, -2)) * scale;  // [B, H, Sq, Sk]
  const double lowest = lowest_finite(scores.dtype());
  const TensorOptions io{.dtype = DType::i64, .device = q.device()};
  Tensor key_pos = arange(sk, io).reshape({1, sk});
  Tensor query_pos = (arange(sq, io) + static_cast<double>(sk - sq)).reshape({sq, 1});
  scores = masked_fill(scores, gt(key_pos, query_pos), lowest);  // future keys
  if (key_mask.defined()) {
    NABLA_CHECK(key_mask.dim() == 2 && key_mask.size(0) == q.size(0) && key_mask.size(1) == sk,
                "causal_attention: key_mask must be [B, Sk] = [", q.size(0), ", ", sk, "], got ",
                key_mask.shape());
    Tensor pad = eq(key_mask, scalar_like(0.0, key_mask)).reshape({q.size(0), 1, 1, sk});
    scores = masked_fill(scores, pad, lowest);
  }
  Tensor p = softmax(scores, -1);
  if (training && dropout_p > 0) p = dropout(p, dropout_p, true);
  return matmul(p, v);
}

KVCache KVCache::allocate(const GPTConfig& c, int64_t batch, int64_t capacity, DType dtype, Device device) {
  NABLA_CHECK(batch > 0 && capacity > 0, "KVCache: batch and capacity must be positive, got ", batch, " and ",
              capacity);
  NABLA_CHECK(capacity <= c.n_positions, "KVCache: capacity ", capacity, " exceeds n_positions ",
              c.n_positions);
  KVCache cache;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    cache.k.push_back(zeros({batch, c.n_head, capacity, c.head_size()}, {.dtype = dtype, .device = device}));
    cache.v.push_back(zeros({batch, c.n_head, capacity, c.head_size()}, {.dtype = dtype, .device = device}));
  }
  return cache;
}

// ---- layers ----
GPTAttention::GPTAttention(const GPTConfig& c)
    : Module("GPT2Attention"),
      n_head(c.n_head),
      attn_pdrop(c.attn_pdrop),
      resid_pdrop(c.resid_pdrop),
      fused_attention(c.fused_attention) {
  c_attn = register_module("c_attn", std::make_shared<nn::LoraLinear>(c.n_embd, 3 * c.n_embd));
  c_proj = register_module("c_proj", std::make_shared<nn::LoraLinear>(c.n_embd, c.n_embd));
}

Tensor GPTAttention::forward(const Tensor& x, const Tensor& key_mask, KVCache* cache, int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1), e = x.size(2), d = e / n_head;
  std::vector<Tensor> qkv = split(c_attn->forward(x), e, -1);
  auto heads = [&](const Tensor& y) { return y.reshape({b, t, n_head, d}).permute({0, 2, 1, 3}); };
  Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
  if (cache) {
    NABLA_CHECK(!k.requires_grad(), "GPT: the KV cache is for inference: run under NoGradGuard");
    const int64_t past = cache->length;
    NABLA_CHECK(layer < static_cast<int64_t>(cache->k.size()) && cache->batch() == b,
                "GPT: the KV cache holds ", cache->k.size(), " layers of batch ", cache->batch(), ", layer ",
                layer, " of batch ", b, " came");
    NABLA_CHECK(past + t <= cache->capacity(), "GPT: the KV cache holds ", cache->capacity(), " positions; ",
                past, " are filled and ", t, " more came");
    Tensor kd = cache->k[layer].narrow(2, past, t), vd = cache->v[layer].narrow(2, past, t);
    kd.copy_(k.to(kd.dtype()));
    vd.copy_(v.to(vd.dtype()));
    k = cache->k[layer].narrow(2, 0, past + t);
    v = cache->v[layer].narrow(2, 0, past + t);
    if (k.dtype() != q.dtype()) k = k.to(q.dtype()), v = v.to(q.dtype());
  }
  Tensor y;
  if (fused_attention) {
    Tensor keep = key_mask.defined() ? ne(key_mask, scalar_like(0.0, key_mask)) : Tensor();
    y = scaled_dot_product_attention(q, k, v, keep, /*causal=*/true, attn_pdrop, is_training());
  } else {
    y = causal_attention(q, k, v, key_mask, attn_pdrop, is_training());
  }
  y = c_proj->forward(y.permute({0, 2, 1, 3}).reshape({b, t, e}));
  return dropout(y, resid_pdrop, is_training());
}

GPTMLP::GPTMLP(const GPTConfig& c) : Module("GPT2MLP"), resid_pdrop(c.resid_pdrop) {
  c_fc = register_module("c_fc", std::make_shared<nn::LoraLinear>(c.n_embd, c.inner()));
  c_proj = register_module("c_proj", std::make_shared<nn::LoraLinear>(c.inner(), c.n_embd));
}

Tensor GPTMLP::forward(const Tensor& x) {
  return dropout(c_proj->forward(gelu_tanh(c_fc->forward(x))), resid_pdrop, is_training());
}

GPTBlock::GPTBlock(const GPTConfig& c) : Module("GPT2Block") {
  ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(Shape{c.n_embd}, c.layer_norm_epsilon));
  attn = register_module("attn", std::make_shared<GPTAttention>(c));
  ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(Shape{c.n_embd}, c.layer_norm_epsilon));
  mlp = register_module("mlp", std::make_shared<GPTMLP>(c));
}

Tensor GPTBlock::forward(const Tensor& x, const Tensor& key_mask, KVCache* cache, int64_t layer) {
  Tensor h = x + attn->forward(ln_1->forward(x), key_mask, cache, layer);
  return h + mlp->forward(ln_2->forward(h));
}

GPTTransformer::GPTTransformer(const GPTConfig& c) : Module("GPT2Model") {
  wte = register_module("wte", std::make_shared<nn::Embedding>(c.vocab_size, c.n_embd));
  wpe = register_module("wpe", std::make_shared<nn::Embedding>(c.n_positions, c.n_embd));
  h = register_module("h", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) blocks.push_back(h->push_back(std::make_shared<GPTBlock>(c)));
  ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(Shape{c.n_embd}, c.layer_norm_epsilon));
}

// ---- the LM ----
GPT::GPT(const GPTConfig& config, uint64_t seed) : Module("GPT2LMHeadModel"), config_(config) {
  config_.validate();
  transformer = register_module("transformer", std::make_shared<GPTTransformer>(config_));
  NoGradGuard ng;
  Generator g{seed, 0};
  const double std0 = config_.initializer_range;
  const double std_proj = std0 / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  normal_(transformer->wte->weight, 0.0, std0, &g);
  normal_(transformer->wpe->weight, 0.0, std0, &g);
  for (auto& blk : transformer->blocks) {
    for (auto* l :
         {blk->attn->c_attn.get(), blk->attn->c_proj.get(), blk->mlp->c_fc.get(), blk->mlp->c_proj.get()}) {
      const bool proj = l == blk->attn->c_proj.get() || l == blk->mlp->c_proj.get();
      normal_(l->weight, 0.0, proj ? std_proj : std0, &g);
      l->bias.zero_();
    }
  }
}

Tensor GPT::hidden(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& position_ids,
                   KVCache* cache) {
  NABLA_CHECK(input_ids.dim() == 2 && input_ids.dtype() == DType::i64,
              "GPT: input_ids must be i64 [B, T], got ", input_ids.dtype(), " ", input_ids.shape());
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  NABLA_CHECK(past + t <= config_.n_positions, "GPT: ", past + t, " positions exceed n_positions ",
              config_.n_positions);
  Tensor key_mask;
  if (attention_mask.defined()) {
    NABLA_CHECK(
        attention_mask.dim() == 2 && attention_mask.size(0) == b && attention_mask.size(1) == past + t,
        "GPT: attention_mask must be [B, past + T] = [", b, ", ", past + t, "], got ",
        attention_mask.shape());
    key_mask = attention_mask;
  }
  Tensor pos = position_ids;
  if (!pos.defined())
    pos = (arange(t, {.dtype = DType::i64, .device = input_ids.device()}) + static_cast<double>(past))
              .reshape({1, t})
              .expand({b, t});
  NABLA_CHECK(pos.shape() == input_ids.shape(), "GPT: position_ids must be ", input_ids.shape(), ", got ",
              pos.shape());
  Tensor x = transformer->wte->forward(input_ids) + transformer->wpe->forward(pos);
  x = dropout(x, config_.embd_pdrop, is_training());
  for (size_t l = 0; l < transformer->blocks.size(); ++l)
    x = transformer->blocks[l]->forward(x, key_mask, cache, static_cast<int64_t>(l));
  if (cache) cache->length += t;
  return transformer->ln_f->forward(x);
}

Tensor GPT::logits(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& position_ids,
                   KVCache* cache) {
  return linear(hidden(input_ids, attention_mask, position_ids, cache), transformer->wte->weight);
}

Tensor GPT::loss(const Tensor& input_ids, const Tensor& labels, const Tensor& attention_mask,
                 int64_t ignore_index) {
  NABLA_CHECK(labels.shape() == input_ids.shape() && labels.dtype() == DType::i64, "GPT: labels must be i64 ",
              input_ids.shape(), ", got ", labels.dtype(), " ", labels.shape());
  const int64_t t = input_ids.size(1);
  NABLA_CHECK(t >= 2, "GPT: the loss needs sequences of at least 2 tokens, got ", t);
  // The last position predicts nothing: drop it from the hidden states ([b, t - 1, n_embd], cheap) rather
  // than from the logits (a copy of b (t - 1) x vocab values, 1.6 GB for GPT-2 at B 16 x T 1024).
  return classifier_loss(hidden(input_ids, attention_mask).narrow(1, 0, t - 1), labels.narrow(1, 1, t - 1),
                         ignore_index);
}

Tensor GPT::classifier_loss(const Tensor& h, const Tensor& targets, int64_t ignore_index) {
  NABLA_CHECK(h.dim() >= 2 && h.size(-1) == config_.n_embd && targets.dtype() == DType::i64 &&
                  targets.numel() * config_.n_embd == h.numel(),
              "GPT: classifier_loss expects hidden states [..., ", config_.n_embd,
              "] and i64 targets with one per position, got ", h.shape(), " and ", targets.dtype(), " ",
              targets.shape());
  const int64_t n = targets.numel();
  const Tensor& w = transformer->wte->weight;
  const int64_t v = config_.vocab_size, vp = (v + 63) / 64 * 64;
  Tensor pred;
  if (vp != v &&
      (h.device().is_cuda() || pad_loss_vocab_)) {  // llm.c's padded vocabulary, for the loss: the classifier
                                                    // runs on wte with zero rows appended up to a
    // multiple of 64 (GPT-2: 50,257 -> 50,304), so every GEMM has aligned leading dimensions (unaligned ones
    // have only slow cuBLAS kernels: 30 ms of a 100 ms step on an H200), and a bias of -30,000 on the padded
    // columns keeps them out of the softmax (exp(-30000 - max) is 0 in f32), so the loss and every gradient
    // are those of the 50,257-way classifier. The padded logits are contiguous, so the cross entropy reads
    // them in place (a view of the first 50,257 columns would need strided copies).
    const TensorOptions o{.dtype = w.dtype(), .device = w.device()};
    Tensor wp = cat({w, zeros({vp - v, w.size(1)}, o)}, 0);
    Tensor bias = cat({zeros({v}, o), full({vp - v}, -30000.0, o)}, 0);
    pred = linear(h, wp, bias).reshape({n, vp});
  } else {
    pred = linear(h, w).reshape({n, v});
  }
  return cross_entropy(pred, targets.contiguous().reshape({n}), {.ignore_index = ignore_index});
}

}  // namespace nabla::models

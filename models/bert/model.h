// The BERT encoder (Devlin et al. 2019) as Hugging Face's `BertModel` builds it, module for module, so that
// parameter names are those of its state dict ("embeddings.word_embeddings.weight",
// "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.output.LayerNorm.weight",
// "pooler.dense.weight", ...; under a head model they gain the prefix "bert.").
//
// Inputs: input_ids and token_type_ids i64 [B, S], attention_mask [B, S] (1 = token, 0 = padding) or
// undefined (no padding); token_type_ids undefined means all 0. S <= max_position_embeddings.
// config.attention_impl picks the attention: "composed" (attention.h) or "fused" (ops/attention.h).
//
//   embeddings  e = dropout(LayerNorm(word[ids] + type[types] + position[0..S)))               [B, S, H]
//   layer (post-LN), m the additive key-padding mask (attention.h):
//     q, k, v = x Wq + bq, x Wk + bk, x Wv + bv, split into A heads of size D = H / A           [B, A, S, D]
//     a = LayerNorm(x + dropout(attention(q, k, v, m) Wo + bo))             "attention.self" / ".output"
//     y = LayerNorm(a + dropout(act(a Wi + bi) Wo2 + bo2))                  "intermediate" / "output"
//   pooler      tanh(y[:, 0] Wp + bp)                                                           [B, H]
// act is the exact GELU x Phi(x) unless the config says otherwise.
//
// Initialisation as transformers' _init_weights: Linear and Embedding weights N(0, initializer_range), biases
// 0, the padding row of the word embedding 0, LayerNorm weight 1 and bias 0.
#pragma once
#include <memory>
#include <vector>

#include "models/bert/config.h"
#include "models/nn/layers.h"

namespace nabla::models {

class BertEmbeddings : public nn::Module {
 public:
  explicit BertEmbeddings(const BertConfig& c);
  // token_type_ids may be undefined (all segment 0).
  Tensor forward(const Tensor& input_ids, const Tensor& token_type_ids);
  std::shared_ptr<nn::Embedding> word_embeddings, position_embeddings, token_type_embeddings;
  std::shared_ptr<nn::LayerNorm> layer_norm;  // "LayerNorm"
  std::shared_ptr<nn::Dropout> dropout;
};

// "attention.self": the q, k, v projections and the attention itself; returns the heads concatenated.
class BertSelfAttention : public nn::Module {
 public:
  explicit BertSelfAttention(const BertConfig& c);
  // x [B, S, H], mask undefined or (composed) additive [B, 1, 1, S], (fused) u8 [B, S] with 1 = attend
  // -> [B, S, H] (before the output projection).
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::shared_ptr<nn::Linear> query, key, value;
  int64_t num_heads, head_size;
  double dropout_p;
  bool fused;  // config.attention_impl == "fused"
};

// "attention.output" and "output": LayerNorm(residual + dropout(dense(h))).
class BertResidualOutput : public nn::Module {
 public:
  BertResidualOutput(const BertConfig& c, int64_t in_features);
  Tensor forward(const Tensor& h, const Tensor& residual);
  std::shared_ptr<nn::Linear> dense;
  std::shared_ptr<nn::LayerNorm> layer_norm;  // "LayerNorm"
  std::shared_ptr<nn::Dropout> dropout;
};

class BertAttention : public nn::Module {
 public:
  explicit BertAttention(const BertConfig& c);
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::shared_ptr<BertSelfAttention> self;  // "self"
  std::shared_ptr<BertResidualOutput> output;
};

// "intermediate": act(dense(x)), H -> I.
class BertIntermediate : public nn::Module {
 public:
  explicit BertIntermediate(const BertConfig& c);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Linear> dense;
  std::string act;
};

class BertLayer : public nn::Module {
 public:
  explicit BertLayer(const BertConfig& c);
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::shared_ptr<BertAttention> attention;
  std::shared_ptr<BertIntermediate> intermediate;
  std::shared_ptr<BertResidualOutput> output;
};

// "encoder" with its children "layer.0" .. "layer.{L-1}".
class BertEncoder : public nn::Module {
 public:
  explicit BertEncoder(const BertConfig& c);
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::vector<std::shared_ptr<BertLayer>> layers;
};

class BertPooler : public nn::Module {
 public:
  explicit BertPooler(const BertConfig& c);
  Tensor forward(const Tensor& sequence_output) override;  // [B, S, H] -> [B, H]
  std::shared_ptr<nn::Linear> dense;
};

struct BertModelOutput {
  Tensor sequence_output;  // [B, S, H], the last layer
  Tensor pooled_output;    // [B, H], undefined without a pooler
};

class BertModel : public nn::Module {
 public:
  explicit BertModel(const BertConfig& c, bool add_pooling_layer = true);
  BertModelOutput forward(const Tensor& input_ids, const Tensor& token_type_ids = Tensor(),
                          const Tensor& attention_mask = Tensor());
  BertConfig config;
  std::shared_ptr<BertEmbeddings> embeddings;
  std::shared_ptr<BertEncoder> encoder;
  std::shared_ptr<BertPooler> pooler;  // null when add_pooling_layer is false
};

// The activation `name` of a config (gelu, gelu_new, gelu_pytorch_tanh, relu) applied to x.
Tensor bert_activation(const std::string& name, const Tensor& x);
// transformers' _init_weights on every Linear, Embedding and LayerNorm below `m` (and m itself).
void init_bert_weights(nn::Module& m, double initializer_range);
// Converts every parameter and buffer of floating dtype to `dtype` in place (handles stay valid, so tied
// weights stay tied; gradients are dropped). f64 for gradient checks.
void cast_parameters(nn::Module& m, DType dtype);

}  // namespace nabla::models

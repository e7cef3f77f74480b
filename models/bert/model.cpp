// The BERT encoder: embeddings, post-LN layers, pooler (see model.h).
#include "models/bert/model.h"

#include "autograd/autograd.h"
#include "engine/error.h"
#include "models/bert/attention.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/nn.h"

namespace nabla::models {
using nn::Module;

Tensor bert_activation(const std::string& name, const Tensor& x) {
  if (name == "gelu") return gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return gelu_tanh(x);
  if (name == "relu") return relu(x);
  fail("BERT: hidden_act '", name, "' is not supported (expected gelu, gelu_new, gelu_pytorch_tanh or relu)");
}

// ---- embeddings ----
BertEmbeddings::BertEmbeddings(const BertConfig& c) : Module("BertEmbeddings") {
  word_embeddings = register_module(
      "word_embeddings", std::make_shared<nn::Embedding>(c.vocab_size, c.hidden_size, c.pad_token_id));
  position_embeddings = register_module(
      "position_embeddings", std::make_shared<nn::Embedding>(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings",
                                          std::make_shared<nn::Embedding>(c.type_vocab_size, c.hidden_size));
  layer_norm =
      register_module("LayerNorm", std::make_shared<nn::LayerNorm>(Shape{c.hidden_size}, c.layer_norm_eps));
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertEmbeddings::forward(const Tensor& input_ids, const Tensor& token_type_ids) {
  NABLA_CHECK(input_ids.dim() == 2 && (input_ids.dtype() == DType::i64 || input_ids.dtype() == DType::i32),
              "BertEmbeddings: expected input_ids of integers [batch, sequence], got ", input_ids.dtype(),
              " ", input_ids.shape());
  const int64_t s = input_ids.size(1), max_s = position_embeddings->weight.size(0);
  NABLA_CHECK(s <= max_s, "BertEmbeddings: sequence length ", s, " exceeds max_position_embeddings ", max_s);
  Tensor types = token_type_ids;
  if (!types.defined()) types = zeros(input_ids.shape(), {.dtype = DType::i64, .device = input_ids.device()});
  NABLA_CHECK(types.shape() == input_ids.shape(), "BertEmbeddings: token_type_ids ", types.shape(),
              " must have the shape of input_ids ", input_ids.shape());
  Tensor positions = arange(s, {.dtype = DType::i64, .device = input_ids.device()});
  // The order of the sums is transformers': (word + type) + position.
  Tensor e = word_embeddings->forward(input_ids) + token_type_embeddings->forward(types);
  e = e + position_embeddings->forward(positions);
  return dropout->forward(layer_norm->forward(e));
}

// ---- attention ----
BertSelfAttention::BertSelfAttention(const BertConfig& c)
    : Module("BertSelfAttention"),
      num_heads(c.num_attention_heads),
      head_size(c.head_size()),
      dropout_p(c.attention_probs_dropout_prob),
      fused(c.attention_impl == "fused") {
  query = register_module("query", std::make_shared<nn::Linear>(c.hidden_size, c.hidden_size));
  key = register_module("key", std::make_shared<nn::Linear>(c.hidden_size, c.hidden_size));
  value = register_module("value", std::make_shared<nn::Linear>(c.hidden_size, c.hidden_size));
}

Tensor BertSelfAttention::forward(const Tensor& x, const Tensor& mask) {
  NABLA_CHECK(x.dim() == 3 && x.size(2) == num_heads * head_size,
              "BertSelfAttention: expected [batch, sequence, ", num_heads * head_size, "], got ", x.shape());
  const int64_t b = x.size(0), s = x.size(1);
  auto heads = [&](const Tensor& t) { return t.reshape({b, s, num_heads, head_size}).permute({0, 2, 1, 3}); };
  Tensor q = heads(query->forward(x)), k = heads(key->forward(x)), v = heads(value->forward(x));
  Tensor ctx = fused ? scaled_dot_product_attention(q, k, v, mask, false, dropout_p, is_training())
                     : attention(q, k, v, mask, dropout_p, is_training());
  return ctx.permute({0, 2, 1, 3}).contiguous().reshape({b, s, num_heads * head_size});
}

BertResidualOutput::BertResidualOutput(const BertConfig& c, int64_t in_features) : Module("BertOutput") {
  dense = register_module("dense", std::make_shared<nn::Linear>(in_features, c.hidden_size));
  layer_norm =
      register_module("LayerNorm", std::make_shared<nn::LayerNorm>(Shape{c.hidden_size}, c.layer_norm_eps));
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertResidualOutput::forward(const Tensor& h, const Tensor& residual) {
  return layer_norm->forward(dropout->forward(dense->forward(h)) + residual);
}

BertAttention::BertAttention(const BertConfig& c) : Module("BertAttention") {
  self = register_module("self", std::make_shared<BertSelfAttention>(c));
  output = register_module("output", std::make_shared<BertResidualOutput>(c, c.hidden_size));
}

Tensor BertAttention::forward(const Tensor& x, const Tensor& mask) {
  return output->forward(self->forward(x, mask), x);
}

// ---- feed-forward and layer ----
BertIntermediate::BertIntermediate(const BertConfig& c) : Module("BertIntermediate"), act(c.hidden_act) {
  dense = register_module("dense", std::make_shared<nn::Linear>(c.hidden_size, c.intermediate_size));
}

Tensor BertIntermediate::forward(const Tensor& x) { return bert_activation(act, dense->forward(x)); }

BertLayer::BertLayer(const BertConfig& c) : Module("BertLayer") {
  attention = register_module("attention", std::make_shared<BertAttention>(c));
  intermediate = register_module("intermediate", std::make_shared<BertIntermediate>(c));
  output = register_module("output", std::make_shared<BertResidualOutput>(c, c.intermediate_size));
}

Tensor BertLayer::forward(const Tensor& x, const Tensor& mask) {
  Tensor a = attention->forward(x, mask);
  return output->forward(intermediate->forward(a), a);
}

BertEncoder::BertEncoder(const BertConfig& c) : Module("BertEncoder") {
  auto list = std::make_shared<nn::Sequential>();  // only for the names "layer.0", "layer.1", ...
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(std::make_shared<BertLayer>(c));
    list->add(layers.back());
  }
  register_module("layer", list);
}

Tensor BertEncoder::forward(const Tensor& x, const Tensor& mask) {
  Tensor h = x;
  for (auto& l : layers) h = l->forward(h, mask);
  return h;
}

BertPooler::BertPooler(const BertConfig& c) : Module("BertPooler") {
  dense = register_module("dense", std::make_shared<nn::Linear>(c.hidden_size, c.hidden_size));
}

Tensor BertPooler::forward(const Tensor& sequence_output) {
  return tanh(dense->forward(sequence_output.select(1, 0)));
}

// ---- the model ----
BertModel::BertModel(const BertConfig& c, bool add_pooling_layer) : Module("BertModel"), config(c) {
  config.validate();
  embeddings = register_module("embeddings", std::make_shared<BertEmbeddings>(c));
  encoder = register_module("encoder", std::make_shared<BertEncoder>(c));
  if (add_pooling_layer) pooler = register_module("pooler", std::make_shared<BertPooler>(c));
  init_bert_weights(*this, c.initializer_range);
}

BertModelOutput BertModel::forward(const Tensor& input_ids, const Tensor& token_type_ids,
                                   const Tensor& attention_mask) {
  Tensor x = embeddings->forward(input_ids, token_type_ids);
  Tensor mask;
  if (attention_mask.defined()) {
    NABLA_CHECK(attention_mask.shape() == input_ids.shape(), "BertModel: attention_mask ",
                attention_mask.shape(), " must have the shape of input_ids ", input_ids.shape());
    // The fused op takes the key-padding mask itself (1 = attend), the composition an additive one.
    mask = config.attention_impl == "fused"
               ? ne(attention_mask, scalar_like(0.0, attention_mask)).to(DType::u8).contiguous()
               : additive_key_padding_mask(attention_mask, x.dtype());
  }
  BertModelOutput out;
  out.sequence_output = encoder->forward(x, mask);
  if (pooler) out.pooled_output = pooler->forward(out.sequence_output);
  return out;
}

// ---- initialisation and dtype ----
void init_bert_weights(Module& root, double std) {
  NoGradGuard ng;
  auto init = [std](Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) {
      normal_(l->weight, 0.0, std);
      if (l->bias.defined()) l->bias.zero_();
    } else if (auto* e = dynamic_cast<nn::Embedding*>(&m)) {
      normal_(e->weight, 0.0, std);
      if (e->padding_idx >= 0) e->weight.select(0, e->padding_idx).zero_();
    } else if (auto* n = dynamic_cast<nn::LayerNorm*>(&m)) {
      if (n->weight.defined()) n->weight.fill_(1.0);
      if (n->bias.defined()) n->bias.zero_();
    }
  };
  init(root);
  for (auto& [name, m] : root.named_modules()) init(*m);
}

void cast_parameters(Module& m, DType dtype) {
  NoGradGuard ng;
  for (auto& [name, t] : m.state_dict()) {
    if (!is_floating(t.dtype()) || t.dtype() == dtype) continue;
    t.zero_grad();
    t.set_data(t.detach().to(dtype));
  }
}

}  // namespace nabla::models

// BERT's pretraining, sequence-classification and token-classification heads and their losses (heads.h).
#include "models/bert/heads.h"

#include "engine/error.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/loss.h"

namespace nabla::models {
using nn::Module;

// ---- MLM and NSP heads ----
BertPredictionHeadTransform::BertPredictionHeadTransform(const BertConfig& c)
    : Module("BertPredictionHeadTransform"), act(c.hidden_act) {
  dense = register_module("dense", std::make_shared<nn::Linear>(c.hidden_size, c.hidden_size));
  layer_norm =
      register_module("LayerNorm", std::make_shared<nn::LayerNorm>(Shape{c.hidden_size}, c.layer_norm_eps));
}

Tensor BertPredictionHeadTransform::forward(const Tensor& h) {
  return layer_norm->forward(bert_activation(act, dense->forward(h)));
}

BertLMPredictionHead::BertLMPredictionHead(const BertConfig& c, const Tensor& word_embedding_weight)
    : Module("BertLMPredictionHead") {
  transform = register_module("transform", std::make_shared<BertPredictionHeadTransform>(c));
  if (c.tie_word_embeddings) {
    decoder_weight = word_embedding_weight;
  } else {
    decoder = register_module("decoder", std::make_shared<nn::Linear>(c.hidden_size, c.vocab_size, false));
    decoder_weight = decoder->weight;
  }
  bias = register_parameter("bias", zeros({c.vocab_size}));
}

Tensor BertLMPredictionHead::forward(const Tensor& h) {
  return linear(transform->forward(h), decoder_weight, bias);
}

BertPreTrainingHeads::BertPreTrainingHeads(const BertConfig& c, const Tensor& word_embedding_weight)
    : Module("BertPreTrainingHeads") {
  predictions =
      register_module("predictions", std::make_shared<BertLMPredictionHead>(c, word_embedding_weight));
  seq_relationship = register_module("seq_relationship", std::make_shared<nn::Linear>(c.hidden_size, 2));
}

Tensor bert_pretraining_loss(const Tensor& mlm_logits, const Tensor& nsp_logits, const Tensor& mlm_labels,
                             const Tensor& nsp_labels) {
  NABLA_CHECK(mlm_logits.dim() >= 2 && mlm_labels.numel() * mlm_logits.size(-1) == mlm_logits.numel(),
              "bert_pretraining_loss: mlm_labels ", mlm_labels.shape(), " do not match mlm_logits ",
              mlm_logits.shape(), " (expected the logits' shape without the last dim)");
  const int64_t v = mlm_logits.size(-1);
  Tensor loss = cross_entropy(mlm_logits.reshape({-1, v}), mlm_labels.reshape({-1}), {.ignore_index = -100});
  if (nsp_labels.defined()) loss = loss + cross_entropy(nsp_logits, nsp_labels.reshape({-1}));
  return loss;
}

// ---- BertForPreTraining ----
BertForPreTraining::BertForPreTraining(const BertConfig& c) : Module("BertForPreTraining"), config(c) {
  bert = register_module("bert", std::make_shared<BertModel>(c, true));
  cls = register_module("cls",
                        std::make_shared<BertPreTrainingHeads>(c, bert->embeddings->word_embeddings->weight));
  init_bert_weights(*cls, c.initializer_range);
}

BertPreTrainingOutput BertForPreTraining::forward(const Tensor& input_ids, const Tensor& token_type_ids,
                                                  const Tensor& attention_mask) {
  BertModelOutput h = bert->forward(input_ids, token_type_ids, attention_mask);
  return {cls->predictions->forward(h.sequence_output), cls->seq_relationship->forward(h.pooled_output)};
}

Tensor BertForPreTraining::loss(const Tensor& input_ids, const Tensor& token_type_ids,
                                const Tensor& attention_mask, const Tensor& mlm_labels,
                                const Tensor& nsp_labels) {
  NABLA_CHECK(mlm_labels.shape() == input_ids.shape(), "BertForPreTraining::loss: mlm_labels ",
              mlm_labels.shape(), " must have the shape of input_ids ", input_ids.shape());
  BertModelOutput h = bert->forward(input_ids, token_type_ids, attention_mask);
  const int64_t hidden = h.sequence_output.size(-1);
  Tensor labels = mlm_labels.reshape({-1});
  // The labelled positions, found on the host.
  std::vector<int64_t> host = labels.to(DType::i64).to_vector<int64_t>();
  std::vector<double> rows;
  for (size_t i = 0; i < host.size(); ++i)
    if (host[i] != -100) rows.push_back(static_cast<double>(i));
  Tensor loss;
  if (!rows.empty()) {
    Tensor idx = from_vector(rows, {static_cast<int64_t>(rows.size())},
                             {.dtype = DType::i64, .device = input_ids.device()});
    Tensor picked = index_select(h.sequence_output.reshape({-1, hidden}), 0, idx);
    Tensor target = index_select(labels, 0, idx);
    loss = cross_entropy(cls->predictions->forward(picked), target);
  }
  if (nsp_labels.defined()) {
    Tensor nsp = cross_entropy(cls->seq_relationship->forward(h.pooled_output), nsp_labels.reshape({-1}));
    loss = loss.defined() ? loss + nsp : nsp;
  }
  NABLA_CHECK(loss.defined(),
              "BertForPreTraining::loss: no position has an MLM label (all are -100) and there "
              "are no NSP labels: nothing to learn from");
  return loss;
}

// ---- BertForSequenceClassification ----
BertForSequenceClassification::BertForSequenceClassification(const BertConfig& c)
    : Module("BertForSequenceClassification"), config(c) {
  bert = register_module("bert", std::make_shared<BertModel>(c, true));
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(c.classifier_dropout_prob()));
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c.hidden_size, c.num_labels));
  init_bert_weights(*classifier, c.initializer_range);
}

Tensor BertForSequenceClassification::forward(const Tensor& input_ids, const Tensor& token_type_ids,
                                              const Tensor& attention_mask) {
  return classifier->forward(
      dropout->forward(bert->forward(input_ids, token_type_ids, attention_mask).pooled_output));
}

Tensor BertForSequenceClassification::loss(const Tensor& logits, const Tensor& labels) const {
  NABLA_CHECK(logits.dim() == 2 && labels.numel() == logits.size(0),
              "BertForSequenceClassification::loss: expected ", "logits [B, num_labels] and labels [B], got ",
              logits.shape(), " and ", labels.shape());
  if (config.num_labels == 1) return mse_loss(logits.reshape({-1}), labels.reshape({-1}).to(logits.dtype()));
  return cross_entropy(logits, labels.reshape({-1}));
}

// ---- BertForTokenClassification ----
BertForTokenClassification::BertForTokenClassification(const BertConfig& c)
    : Module("BertForTokenClassification"), config(c) {
  bert = register_module("bert", std::make_shared<BertModel>(c, false));
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(c.classifier_dropout_prob()));
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c.hidden_size, c.num_labels));
  init_bert_weights(*classifier, c.initializer_range);
}

Tensor BertForTokenClassification::forward(const Tensor& input_ids, const Tensor& token_type_ids,
                                           const Tensor& attention_mask) {
  return classifier->forward(
      dropout->forward(bert->forward(input_ids, token_type_ids, attention_mask).sequence_output));
}

Tensor BertForTokenClassification::loss(const Tensor& logits, const Tensor& labels) const {
  NABLA_CHECK(logits.dim() == 3 && labels.numel() * logits.size(2) == logits.numel(),
              "BertForTokenClassification::loss: expected logits [B, S, num_labels] and labels [B, S], got ",
              logits.shape(), " and ", labels.shape());
  return cross_entropy(logits.reshape({-1, logits.size(2)}), labels.reshape({-1}), {.ignore_index = -100});
}

// ---- checkpoints ----
namespace {

template <class M>
std::shared_ptr<M> load_pretrained(const std::string& dir, bool strict, BertLoadReport* report) {
  BertConfig c = BertConfig::from_file(dir + "/config.json");
  auto m = std::make_shared<M>(c);
  BertLoadReport r = load_bert_safetensors(*m, dir + "/model.safetensors", strict, c.tie_word_embeddings);
  if (report) *report = r;
  return m;
}

}  // namespace

std::shared_ptr<BertForPreTraining> BertForPreTraining::from_pretrained(const std::string& dir, bool strict,
                                                                        BertLoadReport* report) {
  return load_pretrained<BertForPreTraining>(dir, strict, report);
}
void BertForPreTraining::save_pretrained(const std::string& dir) const {
  save_bert_pretrained(*this, config, "BertForPreTraining", dir);
}

std::shared_ptr<BertForSequenceClassification> BertForSequenceClassification::from_pretrained(
    const std::string& dir, bool strict, BertLoadReport* report) {
  return load_pretrained<BertForSequenceClassification>(dir, strict, report);
}
void BertForSequenceClassification::save_pretrained(const std::string& dir) const {
  save_bert_pretrained(*this, config, "BertForSequenceClassification", dir);
}

std::shared_ptr<BertForTokenClassification> BertForTokenClassification::from_pretrained(
    const std::string& dir, bool strict, BertLoadReport* report) {
  return load_pretrained<BertForTokenClassification>(dir, strict, report);
}
void BertForTokenClassification::save_pretrained(const std::string& dir) const {
  save_bert_pretrained(*this, config, "BertForTokenClassification", dir);
}

}  // namespace nabla::models

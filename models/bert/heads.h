// BERT with its task heads, named as in Hugging Face's state dicts:
//
//   BertForPreTraining            "bert" (BertModel with pooler) and "cls":
//     cls.predictions             MLM head: logits = LayerNorm(act(h Wt + bt)) E^T + b              [B, S, V]
//                                 "transform.dense", "transform.LayerNorm", "bias" (b, [V]); the decoder
//                                 matrix E is the word embedding (tied, not stored), or its own
//                                 "decoder.weight" when the config unties it
//     cls.seq_relationship        NSP head: pooled Wn + bn                                           [B, 2]
//     loss = CE(mlm logits, mlm_labels; ignore -100, mean over the labelled positions)
//          + CE(nsp logits, nsp_labels)                                  (transformers' total_loss)
//   BertForSequenceClassification "bert" (with pooler), "classifier": dropout(pooled) Wc + bc   [B,
//   num_labels]
//     loss = CE(logits, labels), or MSE for num_labels == 1 (regression, as transformers)
//   BertForTokenClassification    "bert" (no pooler), "classifier": dropout(h) Wc + bc       [B, S,
//   num_labels]
//     loss = CE over the positions whose label is not -100
//
// Every head model has from_pretrained(dir) and save_pretrained(dir) (config.json + model.safetensors that
// transformers' from_pretrained reads; hf_io.h has the rules for keys). from_pretrained fills `report`, when
// given, with the keys that were missing, unexpected or ignored.
#pragma once
#include <memory>
#include <string>

#include "models/bert/hf_io.h"
#include "models/bert/model.h"

namespace nabla::models {

// "cls.predictions.transform": LayerNorm(act(dense(h))).
class BertPredictionHeadTransform : public nn::Module {
 public:
  explicit BertPredictionHeadTransform(const BertConfig& c);
  Tensor forward(const Tensor& h) override;
  std::shared_ptr<nn::Linear> dense;
  std::shared_ptr<nn::LayerNorm> layer_norm;  // "LayerNorm"
  std::string act;
};

// "cls.predictions". decoder_weight is the word embedding's weight (the same handle) when tied.
class BertLMPredictionHead : public nn::Module {
 public:
  BertLMPredictionHead(const BertConfig& c, const Tensor& word_embedding_weight);
  Tensor forward(const Tensor& h) override;  // [..., H] -> [..., V]
  std::shared_ptr<BertPredictionHeadTransform> transform;
  std::shared_ptr<nn::Linear> decoder;  // only when untied ("decoder.weight", no bias)
  Tensor decoder_weight;                // [V, H]: the tied word embedding or decoder->weight
  Tensor bias;                          // [V]
};

class BertPreTrainingHeads : public nn::Module {
 public:
  BertPreTrainingHeads(const BertConfig& c, const Tensor& word_embedding_weight);
  std::shared_ptr<BertLMPredictionHead> predictions;
  std::shared_ptr<nn::Linear> seq_relationship;
};

struct BertPreTrainingOutput {
  Tensor mlm_logits;  // [B, S, V]
  Tensor nsp_logits;  // [B, 2]
};

class BertForPreTraining : public nn::Module {
 public:
  explicit BertForPreTraining(const BertConfig& c);
  BertPreTrainingOutput forward(const Tensor& input_ids, const Tensor& token_type_ids = Tensor(),
                                const Tensor& attention_mask = Tensor());
  // The pretraining loss with the MLM head run only on the labelled positions (label != -100), which is
  // what training wants (about 15% of the positions): the same value and gradients as
  // pretraining_loss(forward(...), ...), without the [B, S, V] logits. The labelled positions are read on
  // the host (a device-to-host copy of the labels). nsp_labels may be undefined (MLM loss only).
  Tensor loss(const Tensor& input_ids, const Tensor& token_type_ids, const Tensor& attention_mask,
              const Tensor& mlm_labels, const Tensor& nsp_labels);

  static std::shared_ptr<BertForPreTraining> from_pretrained(const std::string& dir, bool strict = true,
                                                             BertLoadReport* report = nullptr);
  void save_pretrained(const std::string& dir) const;

  BertConfig config;
  std::shared_ptr<BertModel> bert;
  std::shared_ptr<BertPreTrainingHeads> cls;
};

class BertForSequenceClassification : public nn::Module {
 public:
  explicit BertForSequenceClassification(const BertConfig& c);
  Tensor forward(const Tensor& input_ids, const Tensor& token_type_ids = Tensor(),
                 const Tensor& attention_mask = Tensor());  // [B, num_labels]
  // labels: i64 [B] class indices, or float [B] targets when num_labels == 1.
  Tensor loss(const Tensor& logits, const Tensor& labels) const;

  // strict = false is the usual fine-tuning start from a pretraining checkpoint: "cls.*" is left out and
  // "classifier.*" keeps its fresh initialisation; the report lists both.
  static std::shared_ptr<BertForSequenceClassification> from_pretrained(const std::string& dir,
                                                                        bool strict = true,
                                                                        BertLoadReport* report = nullptr);
  void save_pretrained(const std::string& dir) const;

  BertConfig config;
  std::shared_ptr<BertModel> bert;
  std::shared_ptr<nn::Dropout> dropout;
  std::shared_ptr<nn::Linear> classifier;
};

class BertForTokenClassification : public nn::Module {
 public:
  explicit BertForTokenClassification(const BertConfig& c);
  Tensor forward(const Tensor& input_ids, const Tensor& token_type_ids = Tensor(),
                 const Tensor& attention_mask = Tensor());        // [B, S, num_labels]
  Tensor loss(const Tensor& logits, const Tensor& labels) const;  // labels i64 [B, S], -100 ignored

  static std::shared_ptr<BertForTokenClassification> from_pretrained(const std::string& dir,
                                                                     bool strict = true,
                                                                     BertLoadReport* report = nullptr);
  void save_pretrained(const std::string& dir) const;

  BertConfig config;
  std::shared_ptr<BertModel> bert;
  std::shared_ptr<nn::Dropout> dropout;
  std::shared_ptr<nn::Linear> classifier;
};

// MLM cross-entropy (ignore index -100, mean over the labelled positions) plus, when nsp_labels is
// defined, the NSP cross-entropy. mlm_logits [B, S, V] (or [N, V]) with mlm_labels i64 [B, S] (or [N]).
Tensor bert_pretraining_loss(const Tensor& mlm_logits, const Tensor& nsp_logits, const Tensor& mlm_labels,
                             const Tensor& nsp_labels);

}  // namespace nabla::models

// What the BERT binaries share (train_bert, distill_bert): the model shape from options, the optimizer and
// schedule of BERT fine-tuning, GLUE-style TSV data encoded once into tensors, and evaluation of a sequence
// classifier on a dev set (accuracy, F1, Matthews, or Pearson for regression); and the same for a token
// tagger (BIO-tagged words, data/token_tagging.h: token accuracy and span micro-F1).
//
// A batch travels through apps::TrainStep packed into one tensor, so that its eager, VR (micro-batch
// partitions) and data-parallel forms work unchanged:
//   inputs  i64 [B, 3, L]  input_ids, token_type_ids, attention_mask
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "algorithms/optim/schedule.h"
#include "data/glue_tsv.h"
#include "data/token_tagging.h"
#include "data/tokenizer/wordpiece.h"
#include "models/bert/heads.h"

namespace nabla::apps {

// The model shape: a preset, then each non-zero field overrides it (hidden alone makes the feed-forward
// 4 x hidden unless intermediate is given).
struct BertShape {
  std::string preset = "bert-tiny", attention = "fused";
  int64_t layers = 0, hidden = 0, heads = 0, intermediate = 0, max_position = 0;
  double dropout = 0.1;
};
models::BertConfig make_bert_config(const BertShape& s, int64_t vocab_size);

// --attention on a model loaded from a checkpoint (config.json does not carry it).
void set_bert_attention(models::BertModel& bert, const std::string& impl);

// adamw | lamb | vr-adamw | vr-lamb over two groups (no weight decay on biases and LayerNorm).
std::unique_ptr<optim::Optimizer> make_bert_optimizer(const std::string& kind, const nn::Module& model,
                                                      double lr, double weight_decay, double gsnr_gamma);
// Linear warm-up to `lr`, then polynomial decay (power 1: linear) to 0 at the run's last step.
optim::Schedule make_bert_schedule(double lr, int64_t warmup_steps, double power, int64_t total_steps);

// Inputs [B, 3, L] from the three [B, L] tensors, and back.
Tensor pack_bert_inputs(const Tensor& ids, const Tensor& types, const Tensor& mask);
struct BertInputs {
  Tensor ids, types, mask;
};
BertInputs unpack_bert_inputs(const Tensor& inputs);

// A GLUE-style set tokenized once.
struct EncodedGlue {
  Tensor inputs;  // i64 [N, 3, L]
  Tensor labels;  // i64 [N]: classes, or the example index for regression
  std::vector<int64_t> classes;
  std::vector<double> targets;
};
// Pairs are truncated by `rule` (data/tokenizer/wordpiece.h; Hugging Face tokenizers' by default).
EncodedGlue encode_glue(const data::GlueExamples& ex, const data::BertTokenizer& tok, int64_t seq_len,
                        bool regression, data::PairTruncation rule = data::PairTruncation::hf_tokenizers);
// The first n examples (n <= 0 or >= the size: all).
EncodedGlue first_examples(const EncodedGlue& e, int64_t n);

struct DevResult {
  double accuracy = 0, f1 = 0, matthews = 0, pearson = 0, loss = 0;
  double metric(const std::string& name) const {
    return name == "f1" ? f1 : name == "matthews" ? matthews : name == "pearson" ? pearson : accuracy;
  }
};

// In evaluation mode without gradients (the model's mode is restored afterwards), under bf16 autocast with
// `amp`, `batch` examples at a time on `dev`.
DevResult evaluate_bert_classifier(models::BertForSequenceClassification& model, const EncodedGlue& dev_set,
                                   int64_t batch, Device dev, bool amp, bool regression);
// The metrics of class predictions (argmax of probabilities or logits [N, C], any device) against `classes`.
DevResult classification_metrics(const Tensor& scores, const std::vector<int64_t>& classes);

// ---- token tagging (train_bert --head token) ----

// A tagged-sentence set tokenized once: the labels sit on each word's first piece (-100 elsewhere).
struct EncodedTags {
  Tensor inputs;  // i64 [N, 3, L]
  Tensor labels;  // i64 [N, L]
};
// Tags outside `label_set` throw naming the sentence and the tag.
EncodedTags encode_tagging(const data::TaggedSentences& s, const std::vector<std::string>& label_set,
                           const data::BertTokenizer& tok, int64_t seq_len);
EncodedTags first_examples(const EncodedTags& e, int64_t n);

struct TaggerResult {
  double loss = 0, token_accuracy = 0, precision = 0, recall = 0, f1 = 0;  // over the labelled positions
};
// Token accuracy over the first pieces; span micro P/R/F1 of the BIO spans (exact begin, end and type)
// decoded from the first pieces' predictions.
TaggerResult evaluate_bert_tagger(models::BertForTokenClassification& model, const EncodedTags& set,
                                  const std::vector<std::string>& label_set, int64_t batch, Device dev,
                                  bool amp);

// The label set stored next to a token-classification checkpoint: <dir>/labels.txt, one a line, in id order.
void save_tag_labels(const std::string& dir, const std::vector<std::string>& labels);
std::vector<std::string> load_tag_labels(const std::string& dir);

}  // namespace nabla::apps

// BertConfig: the hyper-parameters of a BERT encoder, with the names and defaults of Hugging Face's
// `BertConfig` (transformers/models/bert/configuration_bert.py), so that a `config.json` written by
// `transformers` reads here and ours reads there.
//
//   vocab_size               V, rows of the word embedding (and columns of the MLM logits)
//   hidden_size              H, the width of the residual stream
//   num_hidden_layers        L, post-LN encoder blocks
//   num_attention_heads      A, heads of each self-attention; H % A == 0, head size H / A
//   intermediate_size        I, the feed-forward width (4 H in the published models)
//   hidden_act               "gelu" (exact erf form, BERT's), "gelu_new" / "gelu_pytorch_tanh" (tanh form),
//                            or "relu"
//   hidden_dropout_prob      dropout after the embeddings, each attention output and each feed-forward output
//   attention_probs_dropout_prob  dropout on the attention probabilities
//   max_position_embeddings  rows of the learned position embedding (the longest sequence)
//   type_vocab_size          rows of the token-type (segment) embedding
//   layer_norm_eps           eps of every LayerNorm (1e-12 in BERT)
//   pad_token_id             the word embedding's padding row (initialised to 0, gets no gradient)
//   initializer_range        std of the N(0, std) initialisation of every Linear and Embedding weight
//   tie_word_embeddings      the MLM decoder uses the word embedding matrix (true in every published BERT)
//   num_labels               outputs of the classification heads (2 unless the config has id2label)
//   classifier_dropout       dropout before the classification heads; < 0 (JSON null) means
//                            hidden_dropout_prob, as in transformers
//
// Presets (the published shapes; vocabulary 30,522 = bert-base-uncased's WordPiece vocabulary):
//   bert-base 12L-768H-12A-3072I, bert-large 24L-1024H-16A-4096I, 6L-768 (DistilBERT-sized, 12 heads,
//   3072), 4L-312 (TinyBERT-4: 12 heads, 1200), bert-tiny 2L-128H-2A-512I (Turc et al.'s BERT-Tiny).
#pragma once
#include <cstdint>
#include <string>

namespace nabla::models {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  double initializer_range = 0.02;
  bool tie_word_embeddings = true;
  int64_t num_labels = 2;
  double classifier_dropout = -1.0;  // < 0: hidden_dropout_prob
  // Not a Hugging Face field (not in config.json): how self-attention runs. "composed": matmul, softmax,
  // dropout (models/bert/attention.h, the reference); "fused": the fused op of ops/attention.h (no [S, S]
  // scores stored; the same maths, and the same dropout draws for the same generator). Default "fused": its
  // tensor-core kernel is 3.5x the composition at BERT-base's shape on the H200 (docs/attention.md).
  std::string attention_impl = "fused";

  int64_t head_size() const { return hidden_size / num_attention_heads; }
  double classifier_dropout_prob() const {
    return classifier_dropout < 0 ? hidden_dropout_prob : classifier_dropout;
  }
  // Throws nabla::Error naming the first field that is out of range (or H % A != 0, or an unknown act).
  void validate() const;

  // Named presets: "bert-base", "bert-large", "6L-768", "4L-312", "bert-tiny" (also accepted with the
  // "-uncased" suffix of the Hugging Face model names). Unknown names throw, listing the known ones.
  static BertConfig preset(const std::string& name);
  static BertConfig bert_base();
  static BertConfig bert_large();
  static BertConfig bert_6l_768();
  static BertConfig bert_4l_312();
  static BertConfig bert_tiny();

  // Hugging Face config.json: reads the fields above (absent ones keep their defaults; num_labels also from
  // the size of id2label), refuses model_type other than "bert", position_embedding_type other than
  // "absolute" and is_decoder / add_cross_attention true (not implemented), naming the field. `source`
  // names the text in errors.
  static BertConfig from_json(const std::string& json_text, const std::string& source = "config.json");
  static BertConfig from_file(const std::string& path);
  // The config.json that transformers' BertConfig.from_pretrained reads back to this config
  // (`architecture` goes to "architectures", e.g. "BertForPreTraining").
  std::string to_json(const std::string& architecture = "BertForPreTraining") const;
  void save(const std::string& path, const std::string& architecture = "BertForPreTraining") const;
};

}  // namespace nabla::models

// The BERT binaries' shared pieces: model shape, optimizer, schedule, GLUE data, dev evaluation
// (bert_task.h), and the token tagger's data and evaluation.
#include "apps/common/bert_task.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "algorithms/metrics/classification.h"
#include "algorithms/metrics/sentiment.h"
#include "algorithms/optim/optimizer.h"
#include "algorithms/vrgd/vr_optimizer.h"
#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/autocast.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/nn.h"
#include "ops/reduce.h"

namespace nabla::apps {

models::BertConfig make_bert_config(const BertShape& s, int64_t vocab_size) {
  models::BertConfig c = models::BertConfig::preset(s.preset);
  if (s.layers > 0) c.num_hidden_layers = s.layers;
  if (s.hidden > 0) {
    c.hidden_size = s.hidden;
    if (s.intermediate == 0) c.intermediate_size = 4 * s.hidden;
  }
  if (s.heads > 0) c.num_attention_heads = s.heads;
  if (s.intermediate > 0) c.intermediate_size = s.intermediate;
  if (s.max_position > 0) c.max_position_embeddings = s.max_position;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = s.dropout;
  c.vocab_size = vocab_size;
  c.attention_impl = s.attention;
  c.validate();
  return c;
}

void set_bert_attention(models::BertModel& bert, const std::string& impl) {
  bert.config.attention_impl = impl;
  for (auto& layer : bert.encoder->layers) layer->attention->self->fused = impl == "fused";
}

std::unique_ptr<optim::Optimizer> make_bert_optimizer(const std::string& kind, const nn::Module& model,
                                                      double lr, double weight_decay, double gsnr_gamma) {
  auto groups = optim::split_decay_groups(model.named_parameters(), weight_decay, lr);
  if (vrgd::is_vr_optimizer_kind(kind))
    return vrgd::make_vr_optimizer(kind, groups,
                                   {.lr = lr, .weight_decay = weight_decay, .gsnr = {.gamma = gsnr_gamma}});
  if (kind == "adamw")
    return std::make_unique<optim::AdamW>(groups,
                                          optim::AdamWOptions{.lr = lr, .weight_decay = weight_decay});
  if (kind == "lamb")
    return std::make_unique<optim::Lamb>(groups, optim::LambOptions{.lr = lr, .weight_decay = weight_decay});
  fail("unknown optimizer '", kind, "' (expected adamw, lamb, vr-adamw or vr-lamb)");
}

optim::Schedule make_bert_schedule(double lr, int64_t warmup_steps, double power, int64_t total_steps) {
  const int64_t warmup = std::min(warmup_steps, std::max<int64_t>(0, total_steps - 1));
  return optim::Schedule({.kind = optim::ScheduleKind::polynomial,
                          .base_lr = lr,
                          .total_steps = total_steps,
                          .end_lr = 0.0,
                          .power = power,
                          .warmup_steps = warmup});
}

Tensor pack_bert_inputs(const Tensor& ids, const Tensor& types, const Tensor& mask) {
  return stack({ids, types, mask}, 1).contiguous();
}

BertInputs unpack_bert_inputs(const Tensor& inputs) {
  return {inputs.select(1, 0).contiguous(), inputs.select(1, 1).contiguous(),
          inputs.select(1, 2).contiguous()};
}

EncodedGlue encode_glue(const data::GlueExamples& ex, const data::BertTokenizer& tok, int64_t seq_len,
                        bool regression, data::PairTruncation rule) {
  const int64_t n = ex.size(), l = seq_len;
  EncodedGlue e;
  e.inputs = Tensor::empty({n, 3, l}, DType::i64);
  e.labels = Tensor::empty({n}, DType::i64);
  int64_t* p = e.inputs.data<int64_t>();
  const data::BertEncodeOptions eo{
      .max_length = static_cast<int>(l), .pad_to_max_length = true, .pair_truncation = rule};
  for (int64_t i = 0; i < n; ++i) {
    data::BertEncoding enc = ex.text_b.empty() ? tok.encode(ex.text_a[static_cast<size_t>(i)], eo)
                                               : tok.encode_pair(ex.text_a[static_cast<size_t>(i)],
                                                                 ex.text_b[static_cast<size_t>(i)], eo);
    for (const auto* v : {&enc.input_ids, &enc.token_type_ids, &enc.attention_mask})
      p = std::copy(v->begin(), v->end(), p);
    e.labels.data<int64_t>()[i] = regression ? i : ex.labels[static_cast<size_t>(i)];
  }
  e.classes = ex.labels;
  e.targets = ex.targets;
  return e;
}

EncodedGlue first_examples(const EncodedGlue& e, int64_t n) {
  if (n <= 0 || n >= e.inputs.size(0)) return e;
  EncodedGlue out;
  out.inputs = e.inputs.narrow(0, 0, n).contiguous();
  out.labels = e.labels.narrow(0, 0, n).contiguous();
  if (!e.classes.empty()) out.classes.assign(e.classes.begin(), e.classes.begin() + n);
  if (!e.targets.empty()) out.targets.assign(e.targets.begin(), e.targets.begin() + n);
  return out;
}

DevResult classification_metrics(const Tensor& scores, const std::vector<int64_t>& classes) {
  const std::vector<int64_t> pred = argmax(scores, -1).to(Device::cpu()).to_vector<int64_t>();
  DevResult r;
  r.accuracy = metrics::accuracy(pred, classes);
  r.f1 = metrics::f1_binary(pred, classes);
  r.matthews = metrics::matthews_corrcoef(pred, classes);
  return r;
}

DevResult evaluate_bert_classifier(models::BertForSequenceClassification& model, const EncodedGlue& dev_set,
                                   int64_t batch, Device dev, bool amp, bool regression) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  AutocastGuard autocast(DType::bf16, amp);
  const int64_t n = dev_set.inputs.size(0);
  std::vector<int64_t> pred;
  std::vector<double> scores;
  double loss_sum = 0;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t m = std::min(batch, n - first);
    BertInputs u = unpack_bert_inputs(dev_set.inputs.narrow(0, first, m).to(dev));
    Tensor logits = model.forward(u.ids, u.types, u.mask).to(DType::f32);
    if (regression) {
      for (float v : logits.reshape({-1}).to(Device::cpu()).to_vector<float>()) scores.push_back(v);
    } else {
      Tensor y = dev_set.labels.narrow(0, first, m).to(dev);
      loss_sum += cross_entropy(logits, y, {.reduction = Reduction::sum}).item();
      for (int64_t v : argmax(logits, -1).to(Device::cpu()).to_vector<int64_t>()) pred.push_back(v);
    }
  }
  model.train(was_training);
  DevResult r;
  if (regression) {
    r.pearson = metrics::pearson(scores, dev_set.targets);
    return r;
  }
  r.loss = loss_sum / static_cast<double>(n);
  r.accuracy = metrics::accuracy(pred, dev_set.classes);
  r.f1 = metrics::f1_binary(pred, dev_set.classes);
  r.matthews = metrics::matthews_corrcoef(pred, dev_set.classes);
  return r;
}

}  // namespace nabla::apps

// ---- token tagging ----
namespace nabla::apps {

EncodedTags encode_tagging(const data::TaggedSentences& s, const std::vector<std::string>& label_set,
                           const data::BertTokenizer& tok, int64_t seq_len) {
  const int64_t n = s.size(), l = seq_len;
  EncodedTags e;
  e.inputs = zeros({n, 3, l}, {.dtype = DType::i64});
  e.labels = Tensor::empty({n, l}, DType::i64);
  int64_t* in = e.inputs.data<int64_t>();
  int64_t* lab = e.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> ids;
    for (const std::string& t : s.tags[static_cast<size_t>(i)]) {
      const auto it = std::find(label_set.begin(), label_set.end(), t);
      NABLA_CHECK(it != label_set.end(), "sentence ", i + 1, ": tag '", t, "' is not among the model's ",
                  label_set.size(), " labels");
      ids.push_back(it - label_set.begin());
    }
    const data::TaggedEncoding enc = data::encode_tagged_words(tok, s.words[static_cast<size_t>(i)], ids, l);
    std::copy(enc.input_ids.begin(), enc.input_ids.end(), in + i * 3 * l);  // token types stay 0
    std::copy(enc.attention_mask.begin(), enc.attention_mask.end(), in + i * 3 * l + 2 * l);
    std::copy(enc.labels.begin(), enc.labels.end(), lab + i * l);
  }
  return e;
}

EncodedTags first_examples(const EncodedTags& e, int64_t n) {
  if (n <= 0 || n >= e.inputs.size(0)) return e;
  return {e.inputs.narrow(0, 0, n).contiguous(), e.labels.narrow(0, 0, n).contiguous()};
}

TaggerResult evaluate_bert_tagger(models::BertForTokenClassification& model, const EncodedTags& set,
                                  const std::vector<std::string>& label_set, int64_t batch, Device dev,
                                  bool amp) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  AutocastGuard autocast(DType::bf16, amp);
  const int64_t n = set.inputs.size(0), l = set.inputs.size(2);
  double loss_sum = 0, hits = 0, labelled = 0;
  std::vector<std::vector<std::string>> gold_items, pred_items;
  auto items = [&](const std::vector<int64_t>& ids) {
    std::vector<std::string> tags, out;
    for (int64_t id : ids) tags.push_back(label_set[static_cast<size_t>(id)]);
    for (const data::TagSpan& sp : data::bio_spans(tags))
      out.push_back(str_cat(sp.begin, ":", sp.end, ":", sp.type));
    return out;
  };
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t m = std::min(batch, n - first);
    BertInputs u = unpack_bert_inputs(set.inputs.narrow(0, first, m).to(dev));
    Tensor y = set.labels.narrow(0, first, m).contiguous();
    Tensor logits = model.forward(u.ids, u.types, u.mask).to(DType::f32);
    const std::vector<int64_t> pred = argmax(logits, -1).to(Device::cpu()).to_vector<int64_t>();
    const std::vector<int64_t> gold = y.to_vector<int64_t>();
    const auto count =
        static_cast<double>(std::count_if(gold.begin(), gold.end(), [](int64_t v) { return v != -100; }));
    if (count > 0) loss_sum += model.loss(logits, y.to(dev)).item() * count;
    for (int64_t r = 0; r < m; ++r) {
      std::vector<int64_t> g, p;
      for (int64_t k = r * l; k < (r + 1) * l; ++k)
        if (gold[static_cast<size_t>(k)] != -100) {
          g.push_back(gold[static_cast<size_t>(k)]);
          p.push_back(
              std::min<int64_t>(pred[static_cast<size_t>(k)], static_cast<int64_t>(label_set.size()) - 1));
          hits += g.back() == p.back();
        }
      labelled += static_cast<double>(g.size());
      gold_items.push_back(items(g));
      pred_items.push_back(items(p));
    }
  }
  model.train(was_training);
  TaggerResult r;
  if (labelled > 0) r.loss = loss_sum / labelled, r.token_accuracy = hits / labelled;
  const metrics::PrfScores s = metrics::micro_prf(gold_items, pred_items);
  r.precision = s.precision, r.recall = s.recall, r.f1 = s.f1;
  return r;
}

void save_tag_labels(const std::string& dir, const std::vector<std::string>& labels) {
  std::filesystem::create_directories(dir);
  std::ofstream f(dir + "/labels.txt");
  NABLA_CHECK(f, "cannot write ", dir, "/labels.txt");
  for (const auto& l : labels) f << l << '\n';
}

std::vector<std::string> load_tag_labels(const std::string& dir) {
  std::ifstream f(dir + "/labels.txt");
  NABLA_CHECK(f, dir,
              "/labels.txt is missing: expected the tag labels of a token-classification model "
              "(train_bert --head token writes them)");
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);)
    if (!l.empty()) out.push_back(l);
  NABLA_CHECK(!out.empty(), dir, "/labels.txt holds no labels");
  return out;
}

}  // namespace nabla::apps

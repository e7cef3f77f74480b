// BERT (models/bert.h): config and presets, shapes, the key-padding mask, f64 gradient checks of attention,
// an encoder layer and a whole small model, parameter counts of the published sizes, transformers' state-dict
// names, save -> load round trips, transformers-style checkpoints (prefixes, tied copies, old names, errors),
// and a short MLM training run on a synthetic language.
//
// BertHfOracle.LogitsLossAndGradientsMatchTransformers compares with Hugging Face transformers on files that
// benchmarks/bert_hf_oracle.py writes; it is skipped unless NABLA_BERT_ORACLE_DIR names that folder
// (docs/bert.md has the commands). BertHfOracle.BothDirectionsAgainstThePlainPyTorchReference runs the same
// script against its plain-PyTorch BERT where /usr/bin/python3 has torch. BertCuda.* compares the GPU with
// the CPU and is skipped without a CUDA device.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "algorithms/optim/optimizer.h"
#include "models/bert.h"
#include "testing.h"

namespace nabla {
namespace {
using namespace models;
namespace fs = std::filesystem;

// A small config for fast tests: vocabulary 50, hidden 16, 2 heads, 2 layers.
BertConfig small_config() {
  BertConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 32;
  c.max_position_embeddings = 24;
  c.type_vocab_size = 2;
  c.num_labels = 3;
  return c;
}

// Fresh ids in [lo, vocab), and a padding mask whose row b has lengths[b] real tokens (ids 0 after them).
struct Batch {
  Tensor ids, types, mask;
};
Batch random_batch(int64_t vocab, int64_t s, const std::vector<int64_t>& lengths) {
  const int64_t b = static_cast<int64_t>(lengths.size());
  std::vector<double> ids = test::randint64(5, vocab, {b, s}).to_vector();
  std::vector<double> types(b * s, 0.0), mask(b * s, 0.0);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < s; ++j) {
      const bool real = j < lengths[i];
      mask[i * s + j] = real;
      types[i * s + j] = real && j >= lengths[i] / 2;
      if (!real) ids[i * s + j] = 0;
    }
  TensorOptions i64{.dtype = DType::i64};
  return {from_vector(ids, {b, s}, i64), from_vector(types, {b, s}, i64), from_vector(mask, {b, s}, i64)};
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return amax(abs(a.detach().to(DType::f64) - b.detach().to(DType::f64))).item();
}

// Perturbs every parameter (LayerNorm weights and biases included, which start at 1 and 0), so that a test
// that loads or compares weights sees every one of them.
void perturb(nn::Module& m, double scale = 0.05) {
  NoGradGuard ng;
  for (auto& p : m.parameters()) add_(p, test::randn32(p.shape()).to(p.dtype()), scale);
}

// One OpenMP thread for the tests that run thousands of tiny ops: with ctest running tests side by side on
// two cores, every op's parallel region would wait for a descheduled thread (135 s instead of 5 s for the
// training test on the loaded 2-core machine).
struct SingleThreadScope {
  int saved = omp_get_max_threads();
  SingleThreadScope() { omp_set_num_threads(1); }
  ~SingleThreadScope() { omp_set_num_threads(saved); }
};

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("nabla_bert_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// ---- config ----
TEST(BertConfig, PresetsHaveThePublishedShapes) {
  auto shape = [](const BertConfig& c) {
    return std::vector<int64_t>{c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
                                c.intermediate_size};
  };
  EXPECT_EQ(shape(BertConfig::preset("bert-base")), (std::vector<int64_t>{12, 768, 12, 3072}));
  EXPECT_EQ(shape(BertConfig::preset("bert-base-uncased")), (std::vector<int64_t>{12, 768, 12, 3072}));
  EXPECT_EQ(shape(BertConfig::preset("bert-large")), (std::vector<int64_t>{24, 1024, 16, 4096}));
  EXPECT_EQ(shape(BertConfig::preset("6L-768")), (std::vector<int64_t>{6, 768, 12, 3072}));
  EXPECT_EQ(shape(BertConfig::preset("4L-312")), (std::vector<int64_t>{4, 312, 12, 1200}));
  EXPECT_EQ(shape(BertConfig::preset("bert-tiny")), (std::vector<int64_t>{2, 128, 2, 512}));
  BertConfig b = BertConfig::bert_base();
  EXPECT_EQ(b.vocab_size, 30522);
  EXPECT_EQ(b.hidden_act, "gelu");
  EXPECT_DOUBLE_EQ(b.layer_norm_eps, 1e-12);
  test::expect_error([] { BertConfig::preset("bert-huge"); }, {"bert-huge", "bert-base", "4L-312"});
}

TEST(BertConfig, ReadsTransformersConfigJsonAndWritesItBack) {
  const std::string json = R"({"architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 1000,
    "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 100,
    "hidden_act": "gelu_new", "hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.05,
    "max_position_embeddings": 128, "type_vocab_size": 3, "layer_norm_eps": 1e-07, "pad_token_id": 1,
    "initializer_range": 0.01, "classifier_dropout": null, "id2label": {"0": "neg", "1": "neu", "2": "pos"},
    "position_embedding_type": "absolute", "use_cache": true, "transformers_version": "5.0.0"})";
  BertConfig c = BertConfig::from_json(json);
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 100);
  EXPECT_EQ(c.hidden_act, "gelu_new");
  EXPECT_DOUBLE_EQ(c.hidden_dropout_prob, 0.2);
  EXPECT_DOUBLE_EQ(c.attention_probs_dropout_prob, 0.05);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.type_vocab_size, 3);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-7);
  EXPECT_EQ(c.pad_token_id, 1);
  EXPECT_DOUBLE_EQ(c.initializer_range, 0.01);
  EXPECT_EQ(c.num_labels, 3);
  EXPECT_DOUBLE_EQ(c.classifier_dropout_prob(), 0.2);
  BertConfig back = BertConfig::from_json(c.to_json("BertForSequenceClassification"));
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_NE(c.to_json().find("\"model_type\": \"bert\""), std::string::npos);

  test::expect_error(
      [] { BertConfig::from_json(R"({"hidden_size": 100, "num_attention_heads": 3})", "cfg.json"); },
      {"cfg.json", "hidden_size 100", "num_attention_heads 3"});
  test::expect_error([] { BertConfig::from_json(R"({"model_type": "gpt2"})"); },
                     {"model_type", "gpt2", "bert"});
  test::expect_error([] { BertConfig::from_json(R"({"position_embedding_type": "relative_key"})"); },
                     {"relative_key", "absolute"});
  test::expect_error([] { BertConfig::from_json(R"({"hidden_size": "big"})"); }, {"hidden_size", "string"});
  test::expect_error([] { BertConfig::from_json(R"({"hidden_act": "swish"})"); }, {"swish", "gelu"});
  test::expect_error([] { BertConfig::from_json("{oops"); }, {"not valid JSON"});
}

// ---- shapes and names ----
TEST(Bert, ForwardShapesOfEveryHeadOnBertTiny) {
  BertConfig c = BertConfig::bert_tiny();
  c.num_labels = 5;
  Batch in = random_batch(c.vocab_size, 9, {9, 6});
  BertForPreTraining pre(c);
  BertPreTrainingOutput o = pre.forward(in.ids, in.types, in.mask);
  EXPECT_EQ(o.mlm_logits.shape(), (Shape{2, 9, 30522}));
  EXPECT_EQ(o.nsp_logits.shape(), (Shape{2, 2}));
  BertModelOutput h = pre.bert->forward(in.ids);
  EXPECT_EQ(h.sequence_output.shape(), (Shape{2, 9, 128}));
  EXPECT_EQ(h.pooled_output.shape(), (Shape{2, 128}));
  EXPECT_LE(amax(abs(h.pooled_output)).item(), 1.0);  // tanh
  BertForSequenceClassification seq(c);
  EXPECT_EQ(seq.forward(in.ids, in.types, in.mask).shape(), (Shape{2, 5}));
  BertForTokenClassification tok(c);
  EXPECT_EQ(tok.forward(in.ids, in.types, in.mask).shape(), (Shape{2, 9, 5}));
  EXPECT_EQ(tok.bert->pooler, nullptr);

  test::expect_error([&] { pre.forward(randint(0, 10, {1, 513})); }, {"513", "max_position_embeddings 512"});
  test::expect_error([&] { pre.forward(in.ids, in.types, in.mask.narrow(1, 0, 4)); },
                     {"attention_mask", "[2,4]"});
  test::expect_error([&] { pre.forward(test::randn32({2, 9})); }, {"input_ids", "f32"});
}

TEST(Bert, StateDictNamesAreThoseOfTransformers) {
  BertConfig c = small_config();
  BertForPreTraining pre(c);
  std::vector<std::string> names;
  for (auto& [n, t] : pre.state_dict()) names.push_back(n);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const char* n : {"bert.embeddings.word_embeddings.weight",
                        "bert.embeddings.position_embeddings.weight",
                        "bert.embeddings.token_type_embeddings.weight",
                        "bert.embeddings.LayerNorm.weight",
                        "bert.embeddings.LayerNorm.bias",
                        "bert.encoder.layer.0.attention.self.query.weight",
                        "bert.encoder.layer.0.attention.self.query.bias",
                        "bert.encoder.layer.0.attention.self.key.weight",
                        "bert.encoder.layer.0.attention.self.value.bias",
                        "bert.encoder.layer.0.attention.output.dense.weight",
                        "bert.encoder.layer.0.attention.output.LayerNorm.weight",
                        "bert.encoder.layer.1.intermediate.dense.weight",
                        "bert.encoder.layer.1.output.dense.bias",
                        "bert.encoder.layer.1.output.LayerNorm.bias",
                        "bert.pooler.dense.weight",
                        "bert.pooler.dense.bias",
                        "cls.predictions.bias",
                        "cls.predictions.transform.dense.weight",
                        "cls.predictions.transform.LayerNorm.weight",
                        "cls.seq_relationship.weight",
                        "cls.seq_relationship.bias"})
    EXPECT_TRUE(has(n)) << n;
  // 5 embedding tensors + 16 per layer + 2 pooler + 3 + 2 transform + 1 bias + 2 NSP; the decoder is tied.
  EXPECT_EQ(names.size(), 5u + 16u * 2 + 2 + 5 + 2);
  EXPECT_FALSE(has("cls.predictions.decoder.weight"));
  EXPECT_TRUE(pre.cls->predictions->decoder_weight.is_same(pre.bert->embeddings->word_embeddings->weight));

  BertConfig untied = c;
  untied.tie_word_embeddings = false;
  BertForPreTraining pre2(untied);
  EXPECT_EQ(pre2.state_dict().size(), names.size() + 1);
  bool found = false;
  for (auto& [n, t] : pre2.state_dict())
    found = found || (n == "cls.predictions.decoder.weight" && t.shape() == Shape{50, 16});
  EXPECT_TRUE(found);

  BertForSequenceClassification seq(c);
  EXPECT_EQ(seq.state_dict().back().first, "classifier.bias");
  EXPECT_EQ(seq.classifier->weight.shape(), (Shape{3, 16}));
  BertForTokenClassification tok(c);
  for (auto& [n, t] : tok.state_dict()) EXPECT_EQ(n.find("pooler"), std::string::npos) << n;
  BertModel bare(c);
  EXPECT_EQ(bare.state_dict().front().first, "embeddings.word_embeddings.weight");
}

TEST(Bert, InitialisationFollowsTransformers) {
  BertConfig c = small_config();
  c.vocab_size = 400;
  c.hidden_size = 64;
  c.num_attention_heads = 4;
  c.intermediate_size = 128;
  BertForPreTraining m(c);
  auto& w = m.bert->embeddings->word_embeddings->weight;
  EXPECT_NEAR(std_dev(w).item(), 0.02, 0.002);
  EXPECT_EQ(amax(abs(w.select(0, c.pad_token_id))).item(), 0.0);
  EXPECT_NEAR(std_dev(m.bert->encoder->layers[1]->intermediate->dense->weight).item(), 0.02, 0.002);
  EXPECT_EQ(amax(abs(m.bert->encoder->layers[0]->attention->self->query->bias)).item(), 0.0);
  EXPECT_EQ(amin(m.bert->encoder->layers[0]->output->layer_norm->weight).item(), 1.0);
  EXPECT_EQ(amax(abs(m.cls->predictions->bias)).item(), 0.0);
  EXPECT_NEAR(std_dev(m.cls->seq_relationship->weight).item(), 0.02, 0.006);
}

TEST(Bert, ParameterCountsOfThePublishedSizes) {
  // transformers: BertModel.from_pretrained("bert-base-uncased").num_parameters() == 109,482,240 and
  // BertForPreTraining's 110,106,428 (the tied decoder counted once).
  BertForPreTraining base(BertConfig::bert_base());
  EXPECT_EQ(base.bert->num_parameters(), 109482240);
  EXPECT_EQ(base.num_parameters(), 110106428);
  BertModel tiny(BertConfig::bert_tiny());
  EXPECT_EQ(tiny.num_parameters(), 4385920);  // google/bert_uncased_L-2_H-128_A-2
  BertModel tinybert4(BertConfig::bert_4l_312());
  EXPECT_EQ(tinybert4.num_parameters(), 14350248);  // huawei-noah/TinyBERT_General_4L_312D
}

// ---- attention and the mask ----
TEST(BertAttention, MatchesTheSoftmaxFormulaAndMasksKeys) {
  Tensor q = test::randn64({2, 3, 4, 5}, false), k = test::randn64({2, 3, 6, 5}, false),
         v = test::randn64({2, 3, 6, 7}, false);
  Tensor keep = from_vector({1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, {2, 6}, {.dtype = DType::i64});
  Tensor mask = additive_key_padding_mask(keep, DType::f64);
  EXPECT_EQ(mask.shape(), (Shape{2, 1, 1, 6}));
  Tensor out = attention(q, k, v, mask, 0.0, false);
  ASSERT_EQ(out.shape(), (Shape{2, 3, 4, 7}));
  // Element by element: out[b,h,i,:] = sum_j p_j v[b,h,j,:], p = softmax over the kept keys only.
  auto Q = q.to_vector(), K = k.to_vector(), V = v.to_vector(), O = out.to_vector(), M = keep.to_vector();
  for (int b = 0; b < 2; ++b)
    for (int h = 0; h < 3; ++h)
      for (int i = 0; i < 4; ++i) {
        std::vector<double> w(6, 0.0);
        double z = 0;
        for (int j = 0; j < 6; ++j) {
          if (M[b * 6 + j] == 0) continue;
          double dot = 0;
          for (int d = 0; d < 5; ++d)
            dot += Q[((b * 3 + h) * 4 + i) * 5 + d] * K[((b * 3 + h) * 6 + j) * 5 + d];
          w[j] = std::exp(dot / std::sqrt(5.0));
          z += w[j];
        }
        for (int e = 0; e < 7; ++e) {
          double ref = 0;
          for (int j = 0; j < 6; ++j) ref += w[j] / z * V[((b * 3 + h) * 6 + j) * 7 + e];
          EXPECT_NEAR(O[((b * 3 + h) * 4 + i) * 7 + e], ref, 1e-12);
        }
      }
  // Without a mask every key counts.
  EXPECT_GT(max_abs_diff(attention(q, k, v, Tensor(), 0.0, false), out), 1e-3);
  // A row with every key masked averages v uniformly (finite, as transformers' eager attention).
  Tensor none = additive_key_padding_mask(zeros({2, 6}, {.dtype = DType::i64}), DType::f64);
  Tensor avg = attention(q, k, v, none, 0.0, false);
  test::expect_close(avg.select(2, 1), mean(v, {2}), 1e-9);
  test::expect_error([&] { attention(q, k.narrow(3, 0, 4), v, mask, 0.0, false); },
                     {"attention", "[2,3,6,4]"});
}

TEST(BertAttention, DropoutActsOnlyInTraining) {
  Tensor q = test::randn32({1, 2, 8, 4}), k = test::randn32({1, 2, 8, 4}), v = test::randn32({1, 2, 8, 4});
  Tensor eval_out = attention(q, k, v, Tensor(), 0.5, false);
  test::expect_close(eval_out, attention(q, k, v, Tensor(), 0.0, true), 1e-6);
  EXPECT_GT(max_abs_diff(attention(q, k, v, Tensor(), 0.5, true), eval_out), 1e-3);
}

TEST(BertGrad, AttentionWithMaskedKeysMatchesFiniteDifferences) {
  Tensor q = test::randn64({2, 2, 3, 4}), k = test::randn64({2, 2, 5, 4}), v = test::randn64({2, 2, 5, 3});
  Tensor keep = from_vector({1, 1, 1, 0, 0, 1, 1, 1, 1, 0}, {2, 5}, {.dtype = DType::i64});
  Tensor mask = additive_key_padding_mask(keep, DType::f64);
  test::expect_gradcheck([&](auto& in) { return attention(in[0], in[1], in[2], mask, 0.0, false); },
                         {q, k, v});
}

TEST(Bert, PaddingDoesNotChangeTheRealTokensOutputs) {
  BertConfig c = small_config();
  BertModel m(c);
  perturb(m);
  m.eval();
  Batch in = random_batch(c.vocab_size, 10, {10, 6, 3});
  Tensor before = m.forward(in.ids, in.types, in.mask).sequence_output;
  // Other ids and token types at every padded position.
  Tensor pad = eq(in.mask, scalar_like(0.0, in.mask));
  Tensor ids2 = where(pad, test::randint64(1, c.vocab_size, {3, 10}), in.ids);
  Tensor types2 = where(pad, ones({3, 10}, {.dtype = DType::i64}), in.types);
  ASSERT_GT(amax(abs((ids2 - in.ids).to(DType::f64))).item(), 0.0);
  Tensor after = m.forward(ids2, types2, in.mask).sequence_output;
  const int64_t lengths[] = {10, 6, 3};
  for (int64_t b = 0; b < 3; ++b)
    EXPECT_LT(max_abs_diff(after.select(0, b).narrow(0, 0, lengths[b]),
                           before.select(0, b).narrow(0, 0, lengths[b])),
              1e-6)
        << "row " << b;
  // Without the mask the same change reaches the real tokens.
  Tensor unmasked = m.forward(ids2, types2).sequence_output;
  EXPECT_GT(max_abs_diff(unmasked.select(0, 1).narrow(0, 0, 6), before.select(0, 1).narrow(0, 0, 6)), 1e-3);
}

// ---- gradient checks in f64 ----
// Both attention paths of the layer: the composition takes an additive mask, the fused op (the default) the
// key-padding mask itself (what BertModel::forward hands each).
class BertLayerGrad : public ::testing::TestWithParam<const char*> {};

TEST_P(BertLayerGrad, EncoderLayerMatchesFiniteDifferences) {
  SingleThreadScope one_thread;
  BertConfig c = small_config();
  c.attention_impl = GetParam();
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.layer_norm_eps = 1e-5;  // 1e-12 would make LayerNorm's finite differences needlessly stiff
  BertLayer layer(c);
  perturb(layer, 0.3);
  cast_parameters(layer, DType::f64);
  layer.eval();
  Tensor x = test::randn64({2, 4, 8});
  Tensor keep = from_vector({1, 1, 1, 1, 1, 1, 0, 0}, {2, 4}, {.dtype = DType::i64});
  Tensor mask =
      c.attention_impl == "fused" ? keep.to(DType::u8) : additive_key_padding_mask(keep, DType::f64);
  std::vector<Tensor> inputs{x};
  for (auto& p : layer.parameters()) inputs.push_back(p);
  EXPECT_EQ(inputs.size(), 17u);
  test::expect_gradcheck([&](auto& in) { return layer.forward(in[0], mask); }, inputs);
}
INSTANTIATE_TEST_SUITE_P(Attention, BertLayerGrad, ::testing::Values("composed", "fused"));

TEST(BertGrad, WholePretrainingLossMatchesFiniteDifferences) {
  SingleThreadScope one_thread;
  BertConfig c = small_config();
  c.vocab_size = 9;
  c.hidden_size = 6;
  c.num_hidden_layers = 1;
  c.intermediate_size = 8;
  c.max_position_embeddings = 5;
  c.layer_norm_eps = 1e-5;
  BertForPreTraining m(c);
  perturb(m, 0.3);
  cast_parameters(m, DType::f64);
  m.eval();
  EXPECT_EQ(m.cls->predictions->decoder_weight.dtype(), DType::f64);  // still tied after the cast
  Batch in = random_batch(c.vocab_size, 5, {5, 3});
  Tensor labels = from_vector({-100, 7, -100, 2, 8, 5, -100, 6, -100, -100}, {2, 5}, {.dtype = DType::i64});
  Tensor nsp = from_vector({1, 0}, {2}, {.dtype = DType::i64});
  auto params = m.parameters();
  test::expect_gradcheck(
      [&](auto&) {
        BertPreTrainingOutput o = m.forward(in.ids, in.types, in.mask);
        return bert_pretraining_loss(o.mlm_logits, o.nsp_logits, labels, nsp);
      },
      params);
}

TEST(Bert, SparseMlmLossEqualsTheDenseLossAndItsGradients) {
  BertConfig c = small_config();
  BertForPreTraining m(c);
  perturb(m);
  cast_parameters(m, DType::f64);
  m.eval();
  Batch in = random_batch(c.vocab_size, 8, {8, 5, 7});
  Tensor u = test::rand64({3, 8}, 0, 1, false);
  Tensor labels = where(lt(u, scalar_like(0.3, u)), in.ids, full({3, 8}, -100, {.dtype = DType::i64}));
  labels = where(eq(in.mask, scalar_like(0, in.mask)), full({3, 8}, -100, {.dtype = DType::i64}), labels);
  Tensor nsp = test::randint64(0, 2, {3});
  BertPreTrainingOutput o = m.forward(in.ids, in.types, in.mask);
  Tensor dense = bert_pretraining_loss(o.mlm_logits, o.nsp_logits, labels, nsp);
  dense.backward();
  std::vector<Tensor> dense_grads;
  for (auto& p : m.parameters()) dense_grads.push_back(p.grad().clone());
  m.zero_grad();
  Tensor sparse = m.loss(in.ids, in.types, in.mask, labels, nsp);
  EXPECT_NEAR(sparse.item(), dense.item(), 1e-12);
  sparse.backward();
  auto params = m.named_parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_LT(max_abs_diff(params[i].second.grad(), dense_grads[i]), 1e-12) << params[i].first;
  test::expect_error(
      [&] {
        m.loss(in.ids, in.types, in.mask, full({3, 8}, -100, {.dtype = DType::i64}), Tensor());
      },
      {"no position has an MLM label"});
}

TEST(Bert, FusedAttentionGivesTheComposedLossAndGradientsWithPaddingAndDropout) {
  // The whole pretraining loss, f64, padded sequences, dropout on: config.attention_impl "fused" (ops/
  // attention.h) against "composed" (attention.h) with the same weights and the same generator state (the
  // fused op draws attention dropout at the composition's element indices).
  BertConfig c = small_config();
  c.attention_probs_dropout_prob = 0.2;
  BertConfig cf = c;
  cf.attention_impl = "fused";
  BertForPreTraining composed(c), fused(cf);
  perturb(composed);
  fused.load_state_dict(composed.state_dict());
  cast_parameters(composed, DType::f64);
  cast_parameters(fused, DType::f64);
  Batch in = random_batch(c.vocab_size, 8, {8, 5, 7});
  Tensor u = test::rand64({3, 8}, 0, 1, false);
  Tensor labels = where(lt(u, scalar_like(0.4, u)), in.ids, full({3, 8}, -100, {.dtype = DType::i64}));
  labels = where(eq(in.mask, scalar_like(0, in.mask)), full({3, 8}, -100, {.dtype = DType::i64}), labels);
  Tensor nsp = test::randint64(0, 2, {3});
  const Generator start = default_generator();
  Tensor a = composed.loss(in.ids, in.types, in.mask, labels, nsp);
  default_generator() = start;
  Tensor b = fused.loss(in.ids, in.types, in.mask, labels, nsp);
  EXPECT_NEAR(a.item(), b.item(), 1e-10);
  a.backward();
  b.backward();
  auto pa = composed.named_parameters(), pb = fused.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i].first, pb[i].first);
    if (!pa[i].second.grad().defined()) continue;
    EXPECT_LT(max_abs_diff(pa[i].second.grad(), pb[i].second.grad()), 1e-9) << pa[i].first;
  }
}

TEST(Bert, ClassificationLossesAreTransformers) {
  BertConfig c = small_config();
  BertForSequenceClassification seq(c);
  seq.eval();
  Batch in = random_batch(c.vocab_size, 6, {6, 4});
  Tensor logits = seq.forward(in.ids, in.types, in.mask);
  Tensor y = from_vector({2, 0}, {2}, {.dtype = DType::i64});
  auto lp = log_softmax(logits, 1).to_vector();
  EXPECT_NEAR(seq.loss(logits, y).item(), -(lp[2] + lp[3]) / 2, 1e-6);
  BertConfig reg = c;
  reg.num_labels = 1;
  BertForSequenceClassification r(reg);
  Tensor out = r.forward(in.ids, in.types, in.mask);
  Tensor target = from_vector({0.5, -1.0}, {2});
  auto ov = out.to_vector();
  EXPECT_NEAR(r.loss(out, target).item(), ((ov[0] - 0.5) * (ov[0] - 0.5) + (ov[1] + 1) * (ov[1] + 1)) / 2,
              1e-6);
  BertForTokenClassification tok(c);
  tok.eval();
  Tensor tl = tok.forward(in.ids, in.types, in.mask);
  Tensor labels = from_vector({0, 1, 2, 1, 0, 2, 1, 1, 0, 2, -100, -100}, {2, 6}, {.dtype = DType::i64});
  auto tlp = log_softmax(tl, 2).to_vector();
  auto lv = labels.to_vector();
  double sum = 0;
  for (int i = 0; i < 10; ++i) sum -= tlp[i * 3 + static_cast<int>(lv[i])];
  EXPECT_NEAR(tok.loss(tl, labels).item(), sum / 10, 1e-6);
}

// ---- checkpoints ----
TEST(BertCheckpoint, SaveThenLoadGivesIdenticalLogits) {
  for (bool tie : {true, false}) {
    BertConfig c = small_config();
    c.tie_word_embeddings = tie;
    c.hidden_act = tie ? "gelu" : "gelu_new";
    BertForPreTraining a(c);
    perturb(a);
    a.eval();
    fs::path dir = temp_dir(tie ? "tied" : "untied");
    a.save_pretrained(dir.string());
    SafetensorsFile f = load_safetensors((dir / "model.safetensors").string());
    EXPECT_EQ(f.metadata.at("format"), "pt");
    EXPECT_EQ(f.contains("cls.predictions.decoder.weight"), !tie);
    EXPECT_TRUE(f.contains("bert.encoder.layer.1.attention.output.LayerNorm.bias"));
    BertLoadReport report;
    auto b = BertForPreTraining::from_pretrained(dir.string(), true, &report);
    EXPECT_TRUE(report.clean()) << report.str();
    EXPECT_EQ(b->config.to_json(), c.to_json());
    b->eval();
    Batch in = random_batch(c.vocab_size, 7, {7, 2});
    auto oa = a.forward(in.ids, in.types, in.mask), ob = b->forward(in.ids, in.types, in.mask);
    EXPECT_EQ(max_abs_diff(oa.mlm_logits, ob.mlm_logits), 0.0);
    EXPECT_EQ(max_abs_diff(oa.nsp_logits, ob.nsp_logits), 0.0);
    EXPECT_EQ(b->cls->predictions->decoder_weight.is_same(b->bert->embeddings->word_embeddings->weight), tie);
    fs::remove_all(dir);
  }
  BertConfig c = small_config();
  BertForSequenceClassification s(c);
  perturb(s);
  s.eval();
  fs::path dir = temp_dir("seq");
  s.save_pretrained(dir.string());
  auto s2 = BertForSequenceClassification::from_pretrained(dir.string());
  s2->eval();
  Batch in = random_batch(c.vocab_size, 5, {5, 5});
  EXPECT_EQ(max_abs_diff(s.forward(in.ids, in.types, in.mask), s2->forward(in.ids, in.types, in.mask)), 0.0);
  fs::remove_all(dir);
}

TEST(BertCheckpoint, ReadsTransformersKeysTiedCopiesBuffersAndOldNames) {
  BertConfig c = small_config();
  BertForPreTraining src(c);
  perturb(src);
  src.eval();
  // What transformers may write: the tied copies, the position_ids buffer, TF-era LayerNorm names.
  NamedTensors state;
  for (auto& [n, t] : src.state_dict()) {
    std::string name = n;
    if (name == "bert.embeddings.LayerNorm.weight") name = "bert.embeddings.LayerNorm.gamma";
    if (name == "bert.embeddings.LayerNorm.bias") name = "bert.embeddings.LayerNorm.beta";
    if (name != "cls.predictions.bias") state.emplace_back(name, t.detach().clone());
  }
  state.emplace_back("cls.predictions.decoder.weight",
                     src.bert->embeddings->word_embeddings->weight.detach().clone());
  state.emplace_back("cls.predictions.decoder.bias",
                     src.cls->predictions->bias.detach().clone());  // stands in
  state.emplace_back("bert.embeddings.position_ids", arange(c.max_position_embeddings).reshape({1, -1}));
  BertForPreTraining dst(c);
  dst.eval();
  BertLoadReport r = load_bert_state_dict(dst, state);
  EXPECT_TRUE(r.clean()) << r.str();
  EXPECT_EQ(r.ignored.size(), 3u) << r.str();
  Batch in = random_batch(c.vocab_size, 6, {6, 3});
  EXPECT_EQ(max_abs_diff(src.forward(in.ids, in.types, in.mask).mlm_logits,
                         dst.forward(in.ids, in.types, in.mask).mlm_logits),
            0.0);

  // A bare BertModel's keys (no "bert.") start a classifier; strict loading names what is missing.
  BertModel bare(c);
  perturb(bare);
  BertForSequenceClassification cls(c);
  test::expect_error([&] { load_bert_state_dict(cls, bare.state_dict(), true, true, "bare.safetensors"); },
                     {"bare.safetensors", "missing from the file (2)", "classifier.weight f32 [3,16]",
                      "classifier.bias f32 [3]", "strict = false"});
  r = load_bert_state_dict(cls, bare.state_dict(), false);
  EXPECT_EQ(r.missing.size(), 2u);
  EXPECT_EQ(max_abs_diff(cls.bert->pooler->dense->weight, bare.pooler->dense->weight), 0.0);
  // A pretraining file into a bare BertModel: "bert." is stripped and the heads are unexpected.
  BertModel bare2(c);
  r = load_bert_state_dict(bare2, src.state_dict(), false);
  EXPECT_TRUE(r.missing.empty()) << r.str();
  EXPECT_EQ(r.unexpected.size(), 7u) << r.str();
  EXPECT_EQ(max_abs_diff(bare2.encoder->layers[1]->output->dense->weight,
                         src.bert->encoder->layers[1]->output->dense->weight),
            0.0);
  // f64 and f16 files convert to the model's dtype.
  NamedTensors half;
  for (auto& [n, t] : src.state_dict()) half.emplace_back(n, t.detach().to(DType::f16));
  BertForPreTraining from_half(c);
  load_bert_state_dict(from_half, half);
  EXPECT_LT(max_abs_diff(from_half.cls->seq_relationship->weight, src.cls->seq_relationship->weight), 1e-3);
}

TEST(BertCheckpoint, MismatchesNameTheKeyAndBothShapes) {
  BertConfig c = small_config();
  BertConfig wide = c;
  wide.vocab_size = 60;
  BertForPreTraining small(c), big(wide);
  Tensor before = small.cls->seq_relationship->weight.clone();
  test::expect_error(
      [&] { load_bert_state_dict(small, big.state_dict(), true, true, "big.safetensors"); },
      {"big.safetensors", "bert.embeddings.word_embeddings.weight: the model has [50,16], the file [60,16]",
       "cls.predictions.bias: the model has [50], the file [60]"});
  EXPECT_EQ(max_abs_diff(small.cls->seq_relationship->weight, before), 0.0);  // nothing written
  NamedTensors extra = small.state_dict();
  extra.emplace_back("bert.encoder.layer.7.output.dense.weight", zeros({16, 32}));
  test::expect_error([&] { load_bert_state_dict(small, extra); },
                     {"unexpected in the file (1)", "bert.encoder.layer.7.output.dense.weight f32 [16,32]"});
  NamedTensors untied = small.state_dict();
  untied.emplace_back("cls.predictions.decoder.weight", test::randn32({50, 16}));
  test::expect_error([&] { load_bert_state_dict(small, untied); },
                     {"cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings.weight",
                      "tie_word_embeddings"});
  test::expect_error([&] { load_bert_safetensors(small, "/nonexistent/model.safetensors"); },
                     {"/nonexistent/model.safetensors"});
}

// ---- training ----
// A synthetic language: token i+1 = f(token i) for a fixed permutation f of K content tokens. 15% of the
// positions are masked ([MASK] = 1) and predicted; the loss must fall far below the uniform ln(V) (ln 18 =
// 2.89; this recipe reached held-out losses of 0.04-0.28 with manual_seed 1-4, 0.13 with 7).
TEST(BertTraining, MlmLossFallsFarBelowUniformOnASyntheticLanguage) {
  SingleThreadScope one_thread;
  manual_seed(7);
  const int64_t k = 16, vocab = k + 2, seq = 8, batch = 32;
  BertConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 64;
  c.max_position_embeddings = seq;
  c.hidden_dropout_prob = 0.0;
  c.attention_probs_dropout_prob = 0.0;
  BertForPreTraining m(c);
  Generator gen{2024, 0};
  auto make_batch = [&](Tensor& ids, Tensor& labels) {
    std::vector<double> first = randint(0, k, {batch}, {.dtype = DType::i64}, &gen).to_vector();
    std::vector<double> u = rand({batch, seq}, {}, &gen).to_vector();
    std::vector<double> in(batch * seq), lab(batch * seq, -100);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t t = static_cast<int64_t>(first[b]);
      for (int64_t j = 0; j < seq; ++j) {
        if (j > 0) t = (t * 5 + 3) % k;
        in[b * seq + j] = static_cast<double>(t + 2);
        if (u[b * seq + j] < 0.15) {
          lab[b * seq + j] = static_cast<double>(t + 2);
          in[b * seq + j] = 1;
        }
      }
      lab[b * seq + 5] = in[b * seq + 5] == 1 ? lab[b * seq + 5] : in[b * seq + 5];  // at least one label
      in[b * seq + 5] = 1;
    }
    ids = from_vector(in, {batch, seq}, {.dtype = DType::i64});
    labels = from_vector(lab, {batch, seq}, {.dtype = DType::i64});
  };
  optim::Adam opt(m.parameters(), {.lr = 5e-3});
  Tensor ids, labels;
  double first_loss = 0;
  for (int step = 0; step < 300; ++step) {
    make_batch(ids, labels);
    Tensor loss = m.loss(ids, Tensor(), Tensor(), labels, Tensor());
    if (step == 0) first_loss = loss.item();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  m.eval();
  double held_out = 0;
  for (int i = 0; i < 4; ++i) {
    make_batch(ids, labels);
    NoGradGuard ng;
    held_out += bert_pretraining_loss(m.forward(ids).mlm_logits, Tensor(), labels, Tensor()).item() / 4;
  }
  const double uniform = std::log(static_cast<double>(vocab));
  EXPECT_NEAR(first_loss, uniform, 0.5);
  EXPECT_LT(held_out, 0.25 * uniform) << "first loss " << first_loss << ", uniform " << uniform;
}

// ---- CUDA (skipped where there is no CUDA backend or device; the lead's GPU run takes it) ----
bool cuda_usable() {
  try {
    return zeros({1}, {.device = Device::cuda()}).device().is_cuda();
  } catch (const std::exception&) {
    return false;
  }
}

// Relative to the reference's largest magnitude (at least 1): TF32 GEMMs (the CUDA default for f32) and bf16
// autocast round differently from the CPU, so the bounds are loose; a wrong mask or a wrong gradient is off
// by O(1).
double scaled_diff(const Tensor& a, const Tensor& ref) {
  return max_abs_diff(a.to(Device::cpu()), ref) / std::max(1.0, amax(abs(ref.detach())).item());
}

TEST(BertCuda, LossLogitsAndGradientsMatchTheCpu) {
  if (!cuda_usable()) GTEST_SKIP() << "no CUDA backend or device";
  BertConfig c = small_config();
  BertForPreTraining cpu(c), gpu(c);
  perturb(cpu);
  load_bert_state_dict(gpu, cpu.state_dict());
  gpu.to(Device::cuda());
  EXPECT_TRUE(gpu.cls->predictions->decoder_weight.is_same(gpu.bert->embeddings->word_embeddings->weight));
  cpu.eval();
  gpu.eval();
  Batch in = random_batch(c.vocab_size, 12, {12, 7, 3});
  Tensor u = test::rand64({3, 12}, 0, 1, false);
  Tensor labels = where(lt(u, scalar_like(0.3, u)), in.ids, full({3, 12}, -100, {.dtype = DType::i64}));
  labels = where(eq(in.mask, scalar_like(0, in.mask)), full({3, 12}, -100, {.dtype = DType::i64}), labels);
  Tensor nsp = test::randint64(0, 2, {3});
  auto cuda = [](const Tensor& t) { return t.to(Device::cuda()); };

  BertPreTrainingOutput oc = cpu.forward(in.ids, in.types, in.mask);
  BertPreTrainingOutput og = gpu.forward(cuda(in.ids), cuda(in.types), cuda(in.mask));
  EXPECT_TRUE(og.mlm_logits.device().is_cuda());
  EXPECT_LT(scaled_diff(og.mlm_logits, oc.mlm_logits), 1e-2);
  EXPECT_LT(scaled_diff(og.nsp_logits, oc.nsp_logits), 1e-2);

  Tensor lc = cpu.loss(in.ids, in.types, in.mask, labels, nsp);
  Tensor lg = gpu.loss(cuda(in.ids), cuda(in.types), cuda(in.mask), cuda(labels), cuda(nsp));
  EXPECT_NEAR(lg.item(), lc.item(), 1e-2 * std::max(1.0, std::abs(lc.item())));
  lc.backward();
  lg.backward();
  auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i)
    EXPECT_LT(scaled_diff(pg[i].second.grad(), pc[i].second.grad()), 2e-2) << pc[i].first;

  {  // bf16 autocast: the f32 mask meets bf16 scores (promoted), softmax and LayerNorm in f32
    AutocastGuard guard(DType::bf16);
    BertPreTrainingOutput ob = gpu.forward(cuda(in.ids), cuda(in.types), cuda(in.mask));
    EXPECT_LT(scaled_diff(ob.mlm_logits.to(DType::f32), oc.mlm_logits), 0.1);
    EXPECT_LT(scaled_diff(ob.nsp_logits.to(DType::f32), oc.nsp_logits), 0.1);
  }
  // Dropout (training) runs on the device and changes the outputs.
  gpu.train();
  BertPreTrainingOutput od = gpu.forward(cuda(in.ids), cuda(in.types), cuda(in.mask));
  EXPECT_GT(scaled_diff(od.mlm_logits, oc.mlm_logits), 1e-3);
}

// ---- Hugging Face oracle (files from benchmarks/bert_hf_oracle.py) ----
// Compares with the folder `dir` written by bert_hf_oracle.py --out, then writes dir/ours for --check-ours.
void check_oracle_folder(const fs::path& dir) {
  BertLoadReport report;
  auto m = BertForPreTraining::from_pretrained(dir.string(), true, &report);
  std::cout << "oracle: " << (dir / "model.safetensors").string() << ": " << report.str() << "\n";
  m->eval();
  SafetensorsFile in = load_safetensors((dir / "inputs.safetensors").string());
  SafetensorsFile ref = load_safetensors((dir / "outputs.safetensors").string());
  if (ref.metadata.count("reference"))
    std::cout << "oracle: reference " << ref.metadata.at("reference") << "\n";
  Tensor ids = in.get("input_ids"), types = in.get("token_type_ids"), mask = in.get("attention_mask");
  Tensor labels = in.get("labels"), nsp = in.get("next_sentence_label");
  BertPreTrainingOutput o = m->forward(ids, types, mask);
  Tensor loss = bert_pretraining_loss(o.mlm_logits, o.nsp_logits, labels, nsp);
  const double d_mlm = max_abs_diff(o.mlm_logits, ref.get("prediction_logits"));
  const double d_nsp = max_abs_diff(o.nsp_logits, ref.get("seq_relationship_logits"));
  const double d_loss = std::abs(loss.item() - ref.get("loss").item());
  std::cout << "oracle: max |diff| MLM logits " << d_mlm << ", NSP logits " << d_nsp << ", loss " << d_loss
            << "\n";
  EXPECT_LT(d_mlm, 1e-4);
  EXPECT_LT(d_nsp, 1e-4);
  EXPECT_LT(d_loss, 1e-4);
  loss.backward();
  int compared = 0;
  double worst = 0;
  std::string worst_name;
  for (auto& [name, p] : m->named_parameters()) {
    if (!ref.contains("grad." + name)) continue;
    Tensor g = ref.get("grad." + name);
    EXPECT_EQ(g.shape(), p.shape()) << name;
    if (g.shape() != p.shape()) continue;
    const double scale = std::max(1.0, amax(abs(g)).item());
    const double d = max_abs_diff(p.grad(), g) / scale;
    EXPECT_LT(d, 1e-4) << "gradient of " << name;
    if (d > worst) worst = d, worst_name = name;
    ++compared;
  }
  std::cout << "oracle: " << compared << " gradients compared, worst " << worst << " (" << worst_name
            << ")\n";
  EXPECT_GE(compared, 5);

  // The other way: a model of ours (the same config, its own weights) for --check-ours.
  manual_seed(99);
  BertForPreTraining ours(m->config);
  perturb(ours);
  ours.eval();
  const fs::path out = dir / "ours";
  ours.save_pretrained(out.string());
  BertPreTrainingOutput oo = ours.forward(ids, types, mask);
  Tensor our_loss = bert_pretraining_loss(oo.mlm_logits, oo.nsp_logits, labels, nsp);
  save_safetensors((out / "inputs.safetensors").string(), in.tensors);
  save_safetensors((out / "ours_outputs.safetensors").string(),
                   {{"prediction_logits", oo.mlm_logits.detach()},
                    {"seq_relationship_logits", oo.nsp_logits.detach()},
                    {"loss", our_loss.detach()}});
  std::cout << "oracle: wrote " << out.string() << " for bert_hf_oracle.py --check-ours\n";
}

TEST(BertHfOracle, LogitsLossAndGradientsMatchTransformers) {
  const char* env = std::getenv("NABLA_BERT_ORACLE_DIR");
  if (env == nullptr || *env == 0)
    GTEST_SKIP() << "set NABLA_BERT_ORACLE_DIR to the folder of bert_hf_oracle.py --out";
  check_oracle_folder(env);
}

// The same round trip against the script's plain-PyTorch BERT (Debian's python3-torch, no transformers), so
// that CI exercises the script, the file formats and both directions wherever torch is installed.
constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-torch; never the one on PATH

TEST(BertHfOracle, BothDirectionsAgainstThePlainPyTorchReference) {
  if (std::system((std::string(kPython) + " -c 'import torch, numpy' >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << kPython << " cannot import torch and numpy";
  const fs::path dir = temp_dir("torch_oracle");
  const std::string script = std::string(NABLA_SOURCE_DIR) + "/benchmarks/bert_hf_oracle.py";
  std::string cmd = std::string(kPython) + " " + script +
                    " --reference torch --layers 2 --hidden 32 --heads 4 " +
                    "--intermediate 48 --vocab 300 --seq 12 --out " + dir.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "failed: " << cmd;
  check_oracle_folder(dir);
  cmd = std::string(kPython) + " " + script + " --reference torch --check-ours " + (dir / "ours").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "failed: " << cmd;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace nabla

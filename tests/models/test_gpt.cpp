// GPT-2 (models/gpt.h, models/generate.h): shapes, causality, gradients, parameter names and counts,
// Hugging Face checkpoint layout, a short training run, and KV-cache generation against full recomputation.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>

#include "algorithms/optim/optimizer.h"
#include "gpt_testing.h"
#include "models/generate.h"

namespace nabla::test {
namespace {

using models::GenerationConfig;
using models::GPT;
using models::GPTConfig;

GPTConfig tiny_config() { return GPTConfig::tiny(); }

// Casts every parameter of `m` to f64 in place (handles stay valid).
void to_f64(nn::Module& m) {
  for (Tensor& p : m.parameters()) p.set_data(p.detach().to(DType::f64));
}

TEST(GptConfig, PresetsHaveHuggingFaceParameterCounts) {
  EXPECT_EQ(models::gpt_num_parameters(GPTConfig::gpt2()), 124439808);
  EXPECT_EQ(models::gpt_num_parameters(GPTConfig::gpt2_medium()), 354823168);
  // The formula against the modules built (small widths keep the random init cheap; the full 124M model
  // takes ~15 s to draw on one loaded core).
  for (GPTConfig c : {GPTConfig::tiny(), GPTConfig::gpt2()}) {
    c.n_embd = 48, c.n_head = 4, c.n_layer = 3;
    GPT model(c);
    EXPECT_EQ(model.num_parameters(), models::gpt_num_parameters(c));
    c.n_inner = 100;
    EXPECT_EQ(GPT(c).num_parameters(), models::gpt_num_parameters(c));
  }
}

TEST(GptConfig, JsonRoundTripAndRefusals) {
  GPTConfig c = tiny_config();
  c.n_inner = 48;
  c.layer_norm_epsilon = 1e-6;
  GPTConfig d = GPTConfig::from_json(c.to_json());
  EXPECT_EQ(d.vocab_size, c.vocab_size);
  EXPECT_EQ(d.n_embd, 32);
  EXPECT_EQ(d.n_inner, 48);
  EXPECT_EQ(d.layer_norm_epsilon, 1e-6);
  // transformers' own config.json of gpt2 (the fields that matter), n_inner null.
  GPTConfig h = GPTConfig::from_json(
      R"({"activation_function": "gelu_new", "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
          "n_inner": null, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257, "resid_pdrop": 0.1})");
  EXPECT_EQ(h.inner(), 3072);
  expect_error([] { GPTConfig::from_json(R"({"activation_function": "relu"})", "x.json"); },
               {"x.json", "activation_function", "relu"});
  expect_error([] { GPTConfig::from_json(R"({"n_embd": 30, "n_head": 4})"); }, {"n_embd 30", "n_head 4"});
  expect_error([] { GPTConfig::from_json(R"({"tie_word_embeddings": false})"); }, {"tie_word_embeddings"});
  expect_error([] { GPTConfig::preset("gpt5"); }, {"gpt5", "gpt2-medium"});
}

TEST(Gpt, ShapesAndLossOfAFreshModelIsNearLogV) {
  GPT model(tiny_config(), 1);
  Tensor ids = random_ids(3, 10, 96);
  Tensor lg = model.logits(ids);
  EXPECT_EQ(lg.shape(), (Shape{3, 10, 96}));
  EXPECT_EQ(model.hidden(ids).shape(), (Shape{3, 10, 32}));
  const double loss = model.loss(ids, ids).item();
  EXPECT_NEAR(loss, std::log(96.0), 0.3);  // init std 0.02: nearly uniform predictions
  expect_error([&] { model.logits(random_ids(1, 33, 96)); }, {"33 positions", "n_positions 32"});
  expect_error([&] { model.logits(ids.to(DType::f32)); }, {"input_ids must be i64"});
}

TEST(Gpt, LossEqualsShiftedCrossEntropyAndIgnoresMinus100) {
  GPT model(tiny_config(), 2);
  Tensor ids = random_ids(2, 7, 96);
  Tensor lg = model.logits(ids);
  auto l = lg.to_double_vector();
  auto idv = ids.to_vector<int64_t>();
  // Reference by hand, the second row's labels ignored from position 4 on.
  std::vector<double> labels(idv.begin(), idv.end());
  for (int i = 4; i < 7; ++i) labels[7 + i] = -100;
  double sum = 0;
  int n = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 6; ++t) {
      const int64_t y = static_cast<int64_t>(labels[b * 7 + t + 1]);
      if (y == -100) continue;
      const double* row = &l[(b * 7 + t) * 96];
      double m = *std::max_element(row, row + 96), z = 0;
      for (int c = 0; c < 96; ++c) z += std::exp(row[c] - m);
      sum += m + std::log(z) - row[y];
      ++n;
    }
  Tensor lab = from_vector(labels, {2, 7}, {.dtype = DType::i64});
  EXPECT_NEAR(model.loss(ids, lab).item(), sum / n, 1e-5);
}

// The loss on the padded vocabulary (what CUDA runs: 96 -> 128 classes, the extra ones masked by a -30,000
// bias) equals the plain 96-way loss, and so do the gradients of every parameter (wte included).
TEST(Gpt, PaddedVocabularyLossAndGradientsEqualThePlainOnes) {
  GPT model(tiny_config(), 4);
  Tensor ids = random_ids(3, 9, 96);
  Tensor labels = ids.clone();
  labels.narrow(1, 5, 2).fill_(-100.0);
  auto run = [&](bool pad) {
    model.set_pad_loss_vocab(pad);
    for (Tensor& p : model.parameters()) p.zero_grad();
    Tensor loss = model.loss(ids, labels);
    loss.backward();
    std::vector<std::vector<double>> grads;
    for (Tensor& p : model.parameters()) grads.push_back(p.grad().to_double_vector());
    return std::make_pair(loss.item(), grads);
  };
  auto [plain, g_plain] = run(false);
  auto [padded, g_padded] = run(true);
  EXPECT_NEAR(padded, plain, 1e-6);
  ASSERT_EQ(g_plain.size(), g_padded.size());
  for (size_t i = 0; i < g_plain.size(); ++i) {
    ASSERT_EQ(g_plain[i].size(), g_padded[i].size());
    for (size_t k = 0; k < g_plain[i].size(); ++k)
      ASSERT_NEAR(g_padded[i][k], g_plain[i][k], 1e-6) << "parameter " << i << " element " << k;
  }
}

TEST(Gpt, ChangingTokenTLeavesEarlierLogitsUnchanged) {
  GPT model(tiny_config(), 3);
  model.eval();
  for (int64_t t : {0, 4, 11}) {
    Tensor ids = random_ids(2, 12, 96);
    auto v = ids.to_vector<int64_t>();
    v[t] = (v[t] + 17) % 96;
    v[12 + t] = (v[12 + t] + 5) % 96;
    Tensor ids2 = from_vector(std::vector<double>(v.begin(), v.end()), {2, 12}, {.dtype = DType::i64});
    Tensor a = model.logits(ids), b = model.logits(ids2);
    if (t > 0) {
      EXPECT_LT(max_abs_diff(a.narrow(1, 0, t), b.narrow(1, 0, t)), 1e-6) << "t = " << t;
    }
    EXPECT_GT(max_abs_diff(a.narrow(1, t, 12 - t), b.narrow(1, t, 12 - t)), 1e-4) << "t = " << t;
  }
}

TEST(GptGrad, BlockMatchesFiniteDifferencesInF64) {
  SingleThreadScope one_thread;
  GPTConfig c = tiny_config();
  c.n_embd = 8, c.n_head = 2;
  auto block = std::make_shared<models::GPTBlock>(c);
  // Fresh random non-trivial LayerNorm affine and biases (the default init has them at 1 and 0).
  {
    NoGradGuard ng;
    for (Tensor& p : block->parameters()) p.copy_(randn32(p.shape()) * 0.5);
  }
  to_f64(*block);
  Tensor x = randn64({2, 5, 8});
  std::vector<Tensor> inputs{x};
  for (Tensor& p : block->parameters()) inputs.push_back(p);
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return block->forward(in[0], Tensor(), nullptr, 0); },
                   inputs, {.eps = 1e-6, .atol = 1e-5, .rtol = 1e-4});
}

TEST(GptGrad, CausalAttentionWithKeyMaskMatchesFiniteDifferences) {
  SingleThreadScope one_thread;
  Tensor q = randn64({2, 2, 3, 4}), k = randn64({2, 2, 5, 4}), v = randn64({2, 2, 5, 4});
  Tensor mask = from_vector({0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5}, {.dtype = DType::i64});
  EXPECT_GRADCHECK(
      [&](const std::vector<Tensor>& in) { return models::causal_attention(in[0], in[1], in[2], mask); },
      {q, k, v});
}

TEST(Gpt, CausalAttentionEqualsExplicitSoftmaxReference) {
  Tensor q = randn64({1, 1, 2, 3}, false), k = randn64({1, 1, 4, 3}, false), v = randn64({1, 1, 4, 3}, false);
  Tensor y = models::causal_attention(q, k, v);
  auto qv = q.to_double_vector(), kv = k.to_double_vector(), vv = v.to_double_vector(),
       yv = y.to_double_vector();
  for (int i = 0; i < 2; ++i) {
    const int last = i + 2;  // queries are the last two of four positions
    std::vector<double> s(last + 1);
    double m = -1e300, z = 0;
    for (int j = 0; j <= last; ++j) {
      s[j] = 0;
      for (int d = 0; d < 3; ++d) s[j] += qv[i * 3 + d] * kv[j * 3 + d] / std::sqrt(3.0);
      m = std::max(m, s[j]);
    }
    for (int j = 0; j <= last; ++j) z += s[j] = std::exp(s[j] - m);
    for (int d = 0; d < 3; ++d) {
      double ref = 0;
      for (int j = 0; j <= last; ++j) ref += s[j] / z * vv[j * 3 + d];
      EXPECT_NEAR(yv[i * 3 + d], ref, 1e-12);
    }
  }
}

TEST(GptState, NamesAndLayoutsAreHuggingFaces) {
  GPT model(tiny_config(), 4);
  std::vector<std::string> expect{"transformer.wte.weight", "transformer.wpe.weight"};
  for (int l = 0; l < 2; ++l)
    for (const char* s : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                          "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      expect.push_back("transformer.h." + std::to_string(l) + "." + s);
  expect.push_back("transformer.ln_f.weight");
  expect.push_back("transformer.ln_f.bias");
  NamedTensors hf = model.hf_state_dict();
  std::vector<std::string> names;
  for (auto& [n, t] : hf) names.push_back(n);
  EXPECT_EQ(names, expect);
  auto find = [&](const std::string& n) {
    for (auto& [k, t] : hf)
      if (k == n) return t;
    return Tensor();
  };
  EXPECT_EQ(find("transformer.h.0.attn.c_attn.weight").shape(), (Shape{32, 96}));  // Conv1D [in, out]
  EXPECT_EQ(find("transformer.h.1.mlp.c_fc.weight").shape(), (Shape{32, 128}));
  EXPECT_EQ(find("transformer.h.1.mlp.c_proj.weight").shape(), (Shape{128, 32}));
  EXPECT_TRUE(bitwise_equal(find("transformer.h.0.attn.c_attn.weight"),
                            model.transformer->blocks[0]->attn->c_attn->weight.t().contiguous()));
}

TEST(GptState, SavePretrainedRoundTripGivesIdenticalLogits) {
  TempDir dir("gpt_roundtrip");
  GPTConfig c = tiny_config();
  c.n_inner = 40;
  GPT model(c, 5);
  model.save_pretrained(dir.str());
  auto loaded = GPT::from_pretrained(dir.str());
  EXPECT_EQ(loaded->config().n_inner, 40);
  Tensor ids = random_ids(2, 9, 96);
  EXPECT_TRUE(bitwise_equal(model.logits(ids), loaded->logits(ids)));
  SafetensorsFile f = load_safetensors(dir.str() + "/model.safetensors");
  EXPECT_FALSE(f.contains("lm_head.weight"));  // tied: saved once, as transformers does
  EXPECT_EQ(f.get("transformer.h.0.mlp.c_fc.weight").shape(), (Shape{32, 40}));
}

TEST(GptState, LoadsBareGpt2ModelKeysWithMaskBuffersAndTiedHead) {
  GPT src(tiny_config(), 6);
  NamedTensors bare;
  for (auto& [n, t] : src.hf_state_dict()) bare.emplace_back(n.substr(std::string("transformer.").size()), t);
  bare.emplace_back("h.0.attn.bias", ones({1, 1, 32, 32}));  // the causal-mask buffer of old checkpoints
  bare.emplace_back("h.0.attn.masked_bias", full({}, -1e4));
  bare.emplace_back("lm_head.weight", src.transformer->wte->weight.detach().clone());
  for (auto& [n, t] : bare)
    if (n == "wpe.weight") t = t.to(DType::f64);  // other dtypes are converted
  GPT dst(tiny_config(), 7);
  dst.load_hf_state_dict(bare);
  Tensor ids = random_ids(1, 8, 96);
  EXPECT_TRUE(bitwise_equal(src.logits(ids), dst.logits(ids)));
}

TEST(GptState, LoadReportsMissingUnexpectedAndMismatchedKeys) {
  GPT src(tiny_config(), 8);
  NamedTensors s;
  for (auto& [n, t] : src.hf_state_dict()) {
    if (n == "transformer.ln_f.bias") continue;
    if (n == "transformer.h.1.attn.c_attn.weight") {
      s.emplace_back(n, t.t().contiguous());  // nn.Linear layout instead of Conv1D
      continue;
    }
    s.emplace_back(n, t);
  }
  s.emplace_back("transformer.h.9.ln_1.weight", ones({32}));
  GPT dst(tiny_config(), 9);
  expect_error(
      [&] { dst.load_hf_state_dict(s); },
      {"missing: transformer.ln_f.bias", "unexpected: transformer.h.9.ln_1.weight",
       "shape mismatch: transformer.h.1.attn.c_attn.weight: file [96,32], expected [32,96]", "Conv1D"});
  NamedTensors untied = src.hf_state_dict();
  untied.emplace_back("lm_head.weight", randn32({96, 32}));
  expect_error([&] { dst.load_hf_state_dict(untied); }, {"lm_head.weight differs", "untied"});
}

// A fully predictable sequence task: x_i = (s + 3 i) mod V with a random start s. After the first token the
// next one is determined, so the loss must fall far below ln V.
TEST(GptTraining, ArithmeticSequenceLossFallsFarBelowLogV) {
  SingleThreadScope one_thread;
  GPTConfig c = tiny_config();
  c.vocab_size = 64;
  GPT model(c, 10);
  optim::AdamW opt(model.parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  Generator g{4242, 0};
  double first = 0, last = 0;
  for (int step = 0; step < 80; ++step) {
    Tensor start = randint(0, 64, {8, 1}, {.dtype = DType::i64}, &g);
    Tensor ids = (start + arange(16, {.dtype = DType::i64}).reshape({1, 16}) * 3.0);
    auto v = ids.to_vector<int64_t>();
    for (auto& x : v) x %= 64;
    ids = from_vector(std::vector<double>(v.begin(), v.end()), {8, 16}, {.dtype = DType::i64});
    Tensor loss = model.loss(ids, ids);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  EXPECT_NEAR(first, std::log(64.0), 0.3);
  // The first prediction of each row (from s alone) carries ln V / 15 ~ 0.28 of irreducible loss.
  EXPECT_LT(last, 0.25 * std::log(64.0)) << "first loss " << first;
  std::printf("arithmetic sequence: loss %.4f -> %.4f (ln V = %.4f)\n", first, last, std::log(64.0));
}

// ---- generation ----
std::vector<std::vector<int64_t>> random_prompts(const std::vector<int>& lengths, int64_t vocab) {
  std::vector<std::vector<int64_t>> p;
  for (int len : lengths) p.push_back(random_ids(1, len, vocab).to_vector<int64_t>());
  return p;
}

TEST(GptGenerate, KvCacheMatchesFullRecomputationGreedy) {
  SingleThreadScope one_thread;
  GPT model(tiny_config(), 11);
  auto prompts = random_prompts({5}, 96);
  GenerationConfig c{.max_new_tokens = 20, .return_logits = true};
  auto cached = models::generate(model, prompts, c);
  c.use_cache = false;
  auto full = models::generate(model, prompts, c);
  ASSERT_EQ(cached.tokens[0].size(), 20u);
  EXPECT_EQ(cached.tokens, full.tokens);
  ASSERT_EQ(cached.step_logits.size(), full.step_logits.size());
  for (size_t s = 0; s < cached.step_logits.size(); ++s)
    EXPECT_LT(max_abs_diff(cached.step_logits[s], full.step_logits[s]), 1e-5) << "step " << s;
  // The cached logits are the model's own logits of the whole generated sequence.
  std::vector<int64_t> seq = prompts[0];
  seq.insert(seq.end(), cached.tokens[0].begin(), cached.tokens[0].end() - 1);
  Tensor all = model.logits(from_vector(std::vector<double>(seq.begin(), seq.end()), {1, (int64_t)seq.size()},
                                        {.dtype = DType::i64}));
  EXPECT_LT(max_abs_diff(cached.step_logits.back(), all.select(1, all.size(1) - 1)), 1e-5);
  EXPECT_TRUE(model.is_training());  // the mode is restored
}

TEST(GptGenerate, LeftPaddedBatchGivesEachRowItsOwnTokens) {
  SingleThreadScope one_thread;
  GPT model(tiny_config(), 12);
  auto prompts = random_prompts({3, 9, 6}, 96);
  GenerationConfig c{.max_new_tokens = 12, .return_logits = true};
  auto batch = models::generate(model, prompts, c);
  auto batch_full = models::generate(model, prompts, {.max_new_tokens = 12, .use_cache = false});
  EXPECT_EQ(batch.tokens, batch_full.tokens);
  for (size_t r = 0; r < prompts.size(); ++r) {
    auto alone = models::generate(model, {prompts[r]}, c);
    EXPECT_EQ(batch.tokens[r], alone.tokens[0]) << "row " << r;
    for (size_t s = 0; s < alone.step_logits.size(); ++s)
      EXPECT_LT(max_abs_diff(batch.step_logits[s].select(0, r), alone.step_logits[s].select(0, 0)), 1e-5);
  }
}

TEST(GptGenerate, SamplingIsDeterministicUnderASeedAndTopK1IsGreedy) {
  SingleThreadScope one_thread;
  GPT model(tiny_config(), 13);
  {
    NoGradGuard ng;  // sharper logits than the 0.02 init, so that sampling has something to choose
    model.transformer->wte->weight.copy_(randn32({96, 32}) * 0.3);
  }
  auto prompts = random_prompts({4, 7}, 96);
  GenerationConfig c{
      .max_new_tokens = 16, .do_sample = true, .temperature = 1.5, .top_k = 40, .top_p = 0.95, .seed = 77};
  auto a = models::generate(model, prompts, c);
  auto b = models::generate(model, prompts, c);
  EXPECT_EQ(a.tokens, b.tokens);
  c.seed = 78;
  auto other = models::generate(model, prompts, c);
  EXPECT_NE(a.tokens, other.tokens);
  auto greedy = models::generate(model, prompts, {.max_new_tokens = 16});
  c.top_k = 1;
  EXPECT_EQ(models::generate(model, prompts, c).tokens, greedy.tokens);
}

TEST(GptGenerate, ChooseTokenFollowsTopKTopPAndTemperature) {
  std::vector<double> l{1.0, 3.0, 2.0, 0.0};
  GenerationConfig g;
  EXPECT_EQ(models::choose_token(l, g, 0.9), 1);
  GenerationConfig s{.do_sample = true, .top_k = 2};
  // Kept: 1 (e^3) and 2 (e^2): P(1) = e / (e + 1) = 0.731.
  EXPECT_EQ(models::choose_token(l, s, 0.70), 1);
  EXPECT_EQ(models::choose_token(l, s, 0.75), 2);
  GenerationConfig p{.do_sample = true, .top_p = 0.5};  // P(1) = 0.64 >= 0.5: only token 1
  EXPECT_EQ(models::choose_token(l, p, 0.99), 1);
  // Temperature flattens: with T = 100 the draw at u follows nearly uniform bins over 1, 2, 0, 3.
  GenerationConfig t{.do_sample = true, .temperature = 100};
  EXPECT_EQ(models::choose_token(l, t, 0.99), 3);
  EXPECT_EQ(models::choose_token(l, t, 0.30), 2);
  // Empirical frequencies match softmax(l) over many draws.
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 20000; ++i)
    counts[models::choose_token(l, GenerationConfig{.do_sample = true}, philox_uniform(5, 0, i))]++;
  double z = std::exp(1) + std::exp(3) + std::exp(2) + 1;
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(counts[k] / 20000.0, std::exp(l[k]) / z, 0.012) << "token " << k;
  expect_error([&] { models::choose_token(l, GenerationConfig{.do_sample = true, .temperature = 0}, 0.5); },
               {"temperature"});
}

TEST(GptGenerate, StopTokensAndStopStrings) {
  SingleThreadScope one_thread;
  GPT model(tiny_config(), 14);
  auto prompts = random_prompts({4, 6}, 96);
  auto free_run = models::generate(model, prompts, {.max_new_tokens = 10});
  // Stop at row 0's fourth token: row 0 ends before it (not included); other rows end where it occurs.
  const int64_t stop = free_run.tokens[0][3];
  auto r = models::generate(model, prompts, {.max_new_tokens = 10, .stop_token_ids = {stop}});
  auto expect_row = [&](size_t row) {
    std::vector<int64_t> e;
    for (int64_t t : free_run.tokens[row]) {
      if (t == stop) return std::make_pair(e, std::string("stop"));
      e.push_back(t);
    }
    return std::make_pair(e, std::string("length"));
  };
  for (size_t row = 0; row < 2; ++row) {
    EXPECT_EQ(r.tokens[row], expect_row(row).first);
    EXPECT_EQ(r.finish_reasons[row], expect_row(row).second);
  }
  // Stop strings through a decode function: each id as "<id>".
  auto decode = [](const std::vector<int64_t>& ids) {
    std::string s;
    for (int64_t i : ids) s += "<" + std::to_string(i) + ">";
    return s;
  };
  const std::string needle = "<" + std::to_string(free_run.tokens[1][2]) + ">";
  auto s = models::generate(model, {prompts[1]},
                            {.max_new_tokens = 10, .stop_strings = {needle}, .decode = decode});
  const std::string full = decode(free_run.tokens[1]);
  EXPECT_EQ(s.finish_reasons[0], "stop");
  EXPECT_EQ(s.texts[0], full.substr(0, full.find(needle)));
  EXPECT_LE(s.tokens[0].size(), 3u);
  expect_error([&] { models::generate(model, {prompts[0]}, {.stop_strings = {"x"}}); }, {"decode"});
  expect_error([&] { models::generate(model, {{1, 2}}, {.max_new_tokens = 31}); }, {"33", "n_positions 32"});
  expect_error([&] { models::generate(model, {{1, 200}}, {}); }, {"token id 200"});
}

// ---- Hugging Face oracle (benchmarks/gpt_hf_oracle.py; docs/gpt.md) ----
// Writes dir/ours/: a seeded model of `config` (save_pretrained), a LoRA adapter on c_attn, c_proj and c_fc
// with random B (PEFT files), and io.safetensors with input_ids, logits_base and logits_lora.
void write_ours(const std::string& dir, const GPTConfig& config, const Tensor& ids) {
  GPT ours(config, 99);
  {
    NoGradGuard ng;  // biases and LayerNorms away from 0 and 1, so that a wrong layout cannot hide
    for (auto& [name, p] : ours.named_parameters())
      if (p.dim() == 1) p.copy_(p + randn32(p.shape()) * 0.05);
  }
  ours.eval();
  std::filesystem::create_directories(dir + "/ours");
  ours.save_pretrained(dir + "/ours/model");
  Tensor base_logits = ours.logits(ids);
  nn::LoraConfig lc{
      .r = 4, .lora_alpha = 8, .target_modules = {"c_attn", "c_proj", "c_fc"}, .fan_in_fan_out = true};
  nn::apply_lora(ours, lc);
  for (auto& [name, l] : nn::lora_layers(ours)) {
    NoGradGuard ng;
    l->adapter()->lora_B->weight.copy_(randn32(l->adapter()->lora_B->weight.shape()) * 0.1);
  }
  nn::save_lora(ours, lc, dir + "/ours/adapter");
  save_safetensors(dir + "/ours/io.safetensors",
                   {{"input_ids", ids}, {"logits_base", base_logits}, {"logits_lora", ours.logits(ids)}});
}

TEST(GptHfOracle, LogitsAndLossEqualTransformers) {
  const char* env = std::getenv("NABLA_GPT_ORACLE_DIR");
  if (!env) GTEST_SKIP() << "set NABLA_GPT_ORACLE_DIR (benchmarks/gpt_hf_oracle.py --make DIR)";
  const std::string dir = env;
  auto model = GPT::from_pretrained(dir + "/hf_model");
  model->eval();
  SafetensorsFile io = load_safetensors(dir + "/hf_io.safetensors");
  Tensor ids = io.get("input_ids");
  Tensor lg = model->logits(ids);
  EXPECT_LT(max_abs_diff(lg, io.get("logits")), 1e-4);
  EXPECT_NEAR(model->loss(ids, ids).item(), io.get("loss").item(), 1e-4);
  // Left-padded rows with HF's attention mask and position ids: compare the real positions only.
  Tensor mask = io.get("attention_mask"), pos = io.get("position_ids");
  Tensor lm = model->logits(io.get("padded_ids"), mask, pos);
  Tensor ref = io.get("padded_logits");
  auto mv = mask.to_vector<int64_t>();
  const int64_t t = mask.size(1);
  double worst = 0;
  for (int64_t b = 0; b < mask.size(0); ++b)
    for (int64_t i = 0; i < t; ++i)
      if (mv[b * t + i])
        worst = std::max(worst, max_abs_diff(lm.select(0, b).select(0, i), ref.select(0, b).select(0, i)));
  EXPECT_LT(worst, 1e-4);

  write_ours(dir, model->config(), ids);
}

// Our model, LoRA adapter and logits checked by an independent plain-torch GPT-2 (transformers' maths,
// Conv1D layout, PEFT's LoRA formula) through Debian's python3-torch; skipped when it is absent.
TEST(GptTorchReference, SavedModelAndAdapterGiveOurLogits) {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy not found";
  TempDir dir("gpt_torch_ref");
  GPTConfig c;
  c.vocab_size = 300, c.n_positions = 32, c.n_embd = 64, c.n_layer = 2, c.n_head = 4;
  write_ours(dir.str(), c, random_ids(2, 13, 300));
  const std::string cmd = std::string("/usr/bin/python3 ") + NABLA_SOURCE_DIR +
                          "/benchmarks/gpt_hf_oracle.py --reference-ours " + dir.str();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace nabla::test

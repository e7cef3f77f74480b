// The chat template and instruction data (data/chat.h), and what SFT trains: the loss counts only the
// response tokens, and with LoRA only the adapters get gradients.
#include "gpt_testing.h"
#include "models/generate.h"
#include "models/nn/lora.h"

namespace nabla::test {
namespace {

TEST(ChatTemplate, FormatsTurnsWithMarkersAndAGenerationPrompt) {
  const std::string t =
      data::format_chat({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}}, true);
  EXPECT_EQ(
      t, "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n<|assistant|>\n");
  data::ChatTokens ct;
  auto tok = fixture_tokenizer(&ct);
  EXPECT_EQ(ct.system, 271);
  EXPECT_EQ(ct.end, 274);
  EXPECT_EQ(ct.eot, 270);
  // The template's text, tokenized whole, gives the same ids as tokenize_chat's turn-by-turn encoding.
  auto ex = data::tokenize_chat(tok, ct, {{"user", "Hi there"}, {"assistant", "Hello, friend"}});
  auto whole = tok.encode(data::format_chat({{"user", "Hi there"}, {"assistant", "Hello, friend"}}, false));
  EXPECT_EQ(std::vector<int64_t>(whole.begin(), whole.end()), ex.ids);
}

TEST(ChatTemplate, LabelsCoverExactlyTheAssistantTextAndItsEnd) {
  data::ChatTokens ct;
  auto tok = fixture_tokenizer(&ct);
  const std::string reply = "the answer is here", reply2 = "more";
  auto ex = data::tokenize_chat(tok, ct,
                                {{"system", "s"},
                                 {"user", "question <|end|> text"},
                                 {"assistant", reply},
                                 {"user", "q2"},
                                 {"assistant", reply2}});
  ASSERT_EQ(ex.ids.size(), ex.labels.size());
  std::vector<int32_t> targets;
  for (size_t i = 0; i < ex.ids.size(); ++i) {
    if (ex.labels[i] == -100) continue;
    EXPECT_EQ(ex.labels[i], ex.ids[i]);
    targets.push_back(static_cast<int32_t>(ex.ids[i]));
  }
  std::vector<int32_t> expect = tok.encode(reply, false);
  expect.push_back(ct.end);
  for (int32_t id : tok.encode(reply2, false)) expect.push_back(id);
  expect.push_back(ct.end);
  EXPECT_EQ(targets, expect);
  // A marker spelt in the user's text is text, not a marker: only the 5 real <|end|> ids appear.
  EXPECT_EQ(std::count(ex.ids.begin(), ex.ids.end(), ct.end), 5);
}

TEST(InstructionData, ParsesBothShapesAndNamesTheLineOfAnError) {
  auto a = data::parse_instruction_line(R"({"instruction":"Sum","input":"1 2","output":"3"})", "f:1");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].content, "Sum\n\n1 2");
  EXPECT_EQ(a[1].role, "assistant");
  auto b = data::parse_instruction_line(
      R"({"messages":[{"role":"system","content":"x"},{"role":"user","content":"y"},{"role":"assistant","content":"z"}]})",
      "f:2");
  EXPECT_EQ(b.size(), 3u);
  for (const char* bad : {R"({"instruction":"x"})", R"({"messages":[{"role":"bot","content":"x"}]})",
                          R"({"messages":[{"role":"user","content":"x"}]})", R"([1,2])",
                          R"({"instruction": 3, "output":"x"})", "{not json"}) {
    std::string e;
    try {
      data::parse_instruction_line(bad, "data.jsonl:7");
    } catch (const Error& err) {
      e = err.what();
    }
    EXPECT_EQ(e.rfind("data.jsonl:7: ", 0), 0u) << bad << " -> " << e;
  }
}

TEST(InstructionData, PackingCutsPadsAndDropsExamplesWithoutTargets) {
  data::SftExample a{{1, 2, 3, 4, 5}, {-100, -100, 3, 4, 5}},
      b{{1, 2, 3, 4, 5, 6}, {-100, -100, -100, -100, 5, 6}};
  int64_t dropped = 0;
  auto d = data::pack_sft_examples({a, b}, 4, 9, &dropped);
  EXPECT_EQ(d.rows, 1);
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(d.ids, (std::vector<int64_t>{1, 2, 3, 4}));
  d = data::pack_sft_examples({a}, 7, 9);
  EXPECT_EQ(d.ids, (std::vector<int64_t>{1, 2, 3, 4, 5, 9, 9}));
  EXPECT_EQ(d.labels, (std::vector<int64_t>{-100, -100, 3, 4, 5, -100, -100}));
}

TEST(Sft, LossIsTheMeanOverResponseTokensAndOnlyLoraGetsGradients) {
  data::ChatTokens ct;
  auto tok = fixture_tokenizer(&ct);
  auto ex = data::tokenize_chat(tok, ct, {{"user", "say something long"}, {"assistant", "ok then"}});
  const auto n = static_cast<int64_t>(ex.ids.size());
  models::GPT model(tiny_config(64), next_seed());
  nn::LoraConfig lc;
  lc.r = 4;
  lc.target_modules = {"c_attn", "c_proj"};
  lc.seed = next_seed();
  nn::apply_lora(model, lc);
  // Non-zero B, so the adapters matter in the forward.
  {
    NoGradGuard ng;
    for (auto& [name, layer] : nn::lora_layers(model)) {
      Generator g{next_seed(), 0};
      layer->adapter()->lora_B->weight.copy_(randn(layer->adapter()->lora_B->weight.shape(), {}, &g) * 0.1);
    }
  }
  std::vector<double> idv(ex.ids.begin(), ex.ids.end()), lv(ex.labels.begin(), ex.labels.end());
  Tensor ids = from_vector(idv, {1, n}, {.dtype = DType::i64}),
         labels = from_vector(lv, {1, n}, {.dtype = DType::i64});
  Tensor loss = model.loss(ids, labels);
  // By hand: -log softmax(logits[i])[ids[i+1]] averaged over the positions whose next label is a target.
  Tensor logp = log_softmax(model.logits(ids).detach(), -1);
  auto lp = logp.contiguous().to_vector<float>();
  double sum = 0;
  int count = 0;
  for (int64_t i = 0; i + 1 < n; ++i)
    if (ex.labels[i + 1] != -100) sum -= lp[i * 320 + ex.ids[i + 1]], ++count;
  EXPECT_GT(count, 2);
  EXPECT_NEAR(loss.item_double(), sum / count, 1e-5);
  // The same ids with every prompt position labelled: a different loss (the mask is what excluded them).
  Tensor all = model.loss(ids, ids);
  EXPECT_GT(std::abs(all.item_double() - loss.item_double()), 1e-4);
  loss.backward();
  int lora_grads = 0;
  for (auto& [name, p] : model.named_parameters()) {
    const bool is_lora = name.find(".lora_") != std::string::npos;
    EXPECT_EQ(p.requires_grad(), is_lora) << name;
    if (is_lora) {
      ASSERT_TRUE(p.grad().defined()) << name;
      lora_grads += abs(p.grad()).sum().item_double() > 0;
    } else {
      EXPECT_FALSE(p.grad().defined()) << name;
    }
  }
  EXPECT_EQ(lora_grads, 2 * 3 * 2);  // 2 blocks x (c_attn, attn.c_proj, mlp.c_proj) x (A, B)
}

}  // namespace
}  // namespace nabla::test

namespace nabla::test {
namespace {

// GPTConfig::fused_attention swaps causal_attention's composition for the fused op: the same logits,
// gradients and cached generation (left-padded batch: the key mask path) on the CPU.
TEST(GptFusedAttention, GivesTheComposedLogitsGradientsAndGeneration) {
  models::GPTConfig c = tiny_config(48);
  const uint64_t seed = next_seed();
  models::GPT composed(c, seed);
  c.fused_attention = true;
  models::GPT fused(c, seed);
  Generator g{next_seed(), 0};
  Tensor ids = randint(0, 320, {3, 20}, {.dtype = DType::i64}, &g);
  Tensor a = composed.loss(ids, ids), b = fused.loss(ids, ids);
  EXPECT_NEAR(a.item_double(), b.item_double(), 1e-5);
  a.backward();
  b.backward();
  auto pa = composed.named_parameters(), pb = fused.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    auto x = pa[i].second.grad().to_vector<float>(), y = pb[i].second.grad().to_vector<float>();
    double worst = 0;
    for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::abs(static_cast<double>(x[k] - y[k])));
    EXPECT_LT(worst, 1e-5) << pa[i].first;
  }
  models::GenerationConfig gc;
  gc.max_new_tokens = 10;
  const std::vector<std::vector<int64_t>> prompts = {{5, 9, 200, 17, 3}, {44}, {8, 8, 8}};
  EXPECT_EQ(models::generate(composed, prompts, gc).tokens, models::generate(fused, prompts, gc).tokens);
}

}  // namespace
}  // namespace nabla::test

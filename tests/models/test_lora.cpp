// LoRA (models/nn/lora.h) on the tiny GPT: fresh adapters leave logits unchanged, training moves only the
// adapters, merge/unmerge, dropout, PEFT-named files and their round trip, and clear errors.
#include <fstream>
#include <nlohmann/json.hpp>

#include "algorithms/optim/optimizer.h"
#include "gpt_testing.h"

namespace nabla::test {
namespace {

using models::GPT;
using models::GPTConfig;

nn::LoraConfig gpt_lora(std::vector<std::string> targets = {"c_attn", "c_proj"}) {
  return {.r = 4,
          .lora_alpha = 8,
          .lora_dropout = 0.0,
          .target_modules = std::move(targets),
          .fan_in_fan_out = true,
          .seed = next_seed()};
}

std::vector<Tensor> trainable(const nn::Module& m) {
  std::vector<Tensor> out;
  for (Tensor p : m.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

// A few AdamW steps on random sequences, so that both A and B move away from their init.
void train_steps(GPT& model, int steps) {
  SingleThreadScope one_thread;
  optim::AdamW opt(trainable(model), {.lr = 1e-2, .weight_decay = 0.0});
  for (int i = 0; i < steps; ++i) {
    Tensor ids = random_ids(4, 12, 96);
    Tensor loss = model.loss(ids, ids);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

TEST(Lora, FreshAdaptersLeaveLogitsUnchangedAndFreezeTheBase) {
  GPT model(GPTConfig::tiny(), 1);
  Tensor ids = random_ids(2, 10, 96);
  Tensor base = model.logits(ids);
  auto names = nn::apply_lora(model, gpt_lora());
  std::vector<std::string> expect{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn",
                                  "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
                                  "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"};
  EXPECT_EQ(names, expect);
  EXPECT_TRUE(bitwise_equal(model.logits(ids), base));  // B = 0
  int64_t n_trainable = 0;
  for (auto& [name, p] : model.named_parameters()) {
    const bool adapter = name.find(".lora_") != std::string::npos;
    EXPECT_EQ(p.requires_grad(), adapter) << name;
    if (adapter) n_trainable += p.numel();
  }
  // c_attn 32 -> 96 and c_proj 32 -> 32 / 128 -> 32, r = 4: A [4, in], B [out, 4].
  EXPECT_EQ(n_trainable, 2 * (4 * 32 + 96 * 4) + 2 * (4 * 32 + 32 * 4) + 2 * (4 * 128 + 32 * 4));
  auto a = model.transformer->blocks[0]->attn->c_attn->adapter();
  EXPECT_EQ(a->lora_A->weight.shape(), (Shape{4, 32}));
  EXPECT_EQ(a->lora_B->weight.shape(), (Shape{96, 4}));
  // A ~ U(-1/sqrt(in), 1/sqrt(in)) and not all zero.
  auto av = a->lora_A->weight.to_double_vector();
  double amax = 0;
  for (double x : av) amax = std::max(amax, std::abs(x));
  EXPECT_LE(amax, 1.0 / std::sqrt(32.0));
  EXPECT_GT(amax, 0.5 / std::sqrt(32.0));
}

TEST(Lora, TrainingChangesOnlyAdapterTensors) {
  GPT model(GPTConfig::tiny(), 2);
  nn::apply_lora(model, gpt_lora({"c_attn", "c_fc"}));
  NamedTensors before;
  for (auto& [n, p] : model.named_parameters()) before.emplace_back(n, p.detach().clone());
  train_steps(model, 3);
  auto after = model.named_parameters();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    const bool adapter = after[i].first.find(".lora_") != std::string::npos;
    if (adapter)
      EXPECT_FALSE(bitwise_equal(after[i].second, before[i].second)) << after[i].first << " did not move";
    else
      EXPECT_TRUE(bitwise_equal(after[i].second, before[i].second)) << after[i].first << " changed";
  }
}

TEST(Lora, MergedModelGivesTheAdapterLogitsAndUnmergeRestoresTheBase) {
  GPT model(GPTConfig::tiny(), 3);
  Tensor ids = random_ids(2, 11, 96);
  Tensor base = model.logits(ids);
  Tensor w0 = model.transformer->blocks[1]->mlp->c_proj->weight.detach().clone();
  nn::apply_lora(model, gpt_lora({"c_attn", "c_proj", "c_fc"}));
  train_steps(model, 3);
  model.eval();
  Tensor adapted = model.logits(ids);
  EXPECT_GT(max_abs_diff(adapted, base), 1e-3);  // the adapters do something
  nn::merge_lora(model);
  EXPECT_TRUE(model.transformer->blocks[0]->attn->c_attn->merged());
  EXPECT_LT(max_abs_diff(model.logits(ids), adapted), 1e-5);
  EXPECT_GT(max_abs_diff(model.transformer->blocks[1]->mlp->c_proj->weight, w0), 1e-4);
  nn::unmerge_lora(model);
  EXPECT_LT(max_abs_diff(model.transformer->blocks[1]->mlp->c_proj->weight, w0), 1e-6);
  EXPECT_LT(max_abs_diff(model.logits(ids), adapted), 1e-5);
  // The merged HF state dict is a plain GPT-2 giving the adapted logits.
  nn::merge_lora(model);
  GPT plain(GPTConfig::tiny(), 4);
  plain.load_hf_state_dict(model.hf_state_dict());
  EXPECT_LT(max_abs_diff(plain.logits(ids), adapted), 1e-5);
}

TEST(Lora, DropoutActsOnlyOnTheAdapterPathInTraining) {
  GPT model(GPTConfig::tiny(), 5);
  auto cfg = gpt_lora({"c_attn"});
  cfg.lora_dropout = 0.5;
  nn::apply_lora(model, cfg);
  for (auto& [n, l] : nn::lora_layers(model)) {
    NoGradGuard ng;
    l->adapter()->lora_B->weight.copy_(randn32(l->adapter()->lora_B->weight.shape()));
  }
  Tensor ids = random_ids(1, 8, 96);
  model.eval();
  Tensor e1 = model.logits(ids), e2 = model.logits(ids);
  EXPECT_TRUE(bitwise_equal(e1, e2));
  model.train();
  Tensor t1 = model.logits(ids), t2 = model.logits(ids);
  EXPECT_GT(max_abs_diff(t1, t2), 1e-4);  // different dropout masks
}

TEST(Lora, SaveLoadRoundTripWithPeftNamesAndConfig) {
  TempDir dir("lora");
  GPT model(GPTConfig::tiny(), 6);
  auto cfg = gpt_lora({"c_attn", "c_proj"});
  cfg.base_model_name_or_path = "tiny-gpt";
  nn::apply_lora(model, cfg);
  train_steps(model, 2);
  model.eval();
  Tensor ids = random_ids(2, 9, 96);
  Tensor adapted = model.logits(ids);
  nn::save_lora(model, cfg, dir.str());

  SafetensorsFile f = load_safetensors(dir.str() + "/adapter_model.safetensors");
  EXPECT_EQ(f.tensors.size(), 12u);  // 6 layers x (A, B): nothing of the base
  EXPECT_EQ(f.get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight").shape(), (Shape{4, 32}));
  EXPECT_EQ(f.get("base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight").shape(), (Shape{32, 4}));
  std::ifstream cf(dir.str() + "/adapter_config.json");
  auto j = nlohmann::json::parse(cf);
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["r"], 4);
  EXPECT_EQ(j["lora_alpha"], 8.0);
  EXPECT_EQ(j["fan_in_fan_out"], true);
  EXPECT_EQ(j["target_modules"], nlohmann::json({"c_attn", "c_proj"}));
  EXPECT_EQ(j["base_model_name_or_path"], "tiny-gpt");

  GPT fresh(GPTConfig::tiny(), 6);  // the same base
  auto loaded = nn::load_lora(fresh, dir.str());
  EXPECT_EQ(loaded.r, 4);
  EXPECT_TRUE(loaded.fan_in_fan_out);
  fresh.eval();
  EXPECT_TRUE(bitwise_equal(fresh.logits(ids), adapted));

  // An adapter for other layers does not fit: every problem is listed.
  GPT other(GPTConfig::tiny(), 7);
  {
    std::ofstream o(dir.str() + "/adapter_config.json");
    auto j2 = j;
    j2["target_modules"] = {"c_attn", "c_fc"};
    o << j2.dump();
  }
  expect_error([&] { nn::load_lora(other, dir.str()); },
               {"missing: base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight",
                "unexpected: base_model.model.transformer.h.0.attn.c_proj.lora_A.weight"});
}

TEST(Lora, ErrorsNameTheTargetAndTheConfigField) {
  GPT model(GPTConfig::tiny(), 8);
  expect_error([&] { nn::apply_lora(model, gpt_lora({"q_proj"})); }, {"'q_proj' matches no module"});
  expect_error([&] { nn::apply_lora(model, gpt_lora({"ln_1"})); }, {"'ln_1'", "LayerNorm", "LoraLinear"});
  nn::apply_lora(model, gpt_lora({"c_fc"}));
  expect_error([&] { nn::apply_lora(model, gpt_lora({"c_attn"})); }, {"already has adapters"});
  expect_error(
      [] {
        nn::LoraConfig::from_json(R"({"peft_type": "IA3", "r": 4, "lora_alpha": 8, "target_modules": []})");
      },
      {"peft_type", "IA3"});
  expect_error(
      [] {
        nn::LoraConfig::from_json(
            R"({"r": 4, "lora_alpha": 8, "target_modules": "c_attn", "use_dora": true})");
      },
      {"use_dora"});
  expect_error([] { nn::LoraConfig::from_json(R"({"lora_alpha": 8})", "a.json"); }, {"a.json", "r"});
  auto c =
      nn::LoraConfig::from_json(R"({"r": 2, "lora_alpha": 4, "target_modules": "c_attn", "bias": "none"})");
  EXPECT_EQ(c.target_modules, std::vector<std::string>{"c_attn"});
  EXPECT_DOUBLE_EQ(c.scaling(), 2.0);
}

}  // namespace
}  // namespace nabla::test

// End-to-end tests of the train_gpt binary on synthetic shards: the loss falls below the unigram entropy,
// a stopped and resumed run is bit-identical to an uninterrupted one, and SFT trains only LoRA adapters
// and saves them in PEFT's layout. The binaries run with --threads 1: on a machine whose cores are all busy,
// OpenMP's spinning threads make a tiny model's step 20x slower.
#include <filesystem>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "engine/safetensors.h"
#include "gpt_testing.h"

namespace nabla::test {
namespace {

namespace fs = std::filesystem;

class TrainGpt : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/train_gpt")) GTEST_SKIP() << "train_gpt was not built";
    const uint64_t seed = next_seed();
    data::write_token_shard(dir.file("train_000.bin"), markov_tokens(20000, 64, seed), 64, -1);
    data::write_token_shard(dir.file("val_000.bin"), markov_tokens(3000, 64, seed + 99), 64, -1);
  }
  std::string base_args() const {
    return "--model tiny --train-data " + dir.file("train_000.bin") + " --val-data " +
           dir.file("val_000.bin") +
           " --encoder none --context 32 --batch-size 8 --threads 1 --no-progress --val-batches 4 ";
  }
  TempDir dir;
};

double last_val_loss(const std::string& out) {
  std::regex re("val loss ([0-9.]+)");
  double v = -1;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    v = std::stod((*it)[1]);
  return v;
}

TEST_F(TrainGpt, ValidationLossFallsWellBelowTheUnigramEntropy) {
  auto r =
      run_binary("train_gpt", base_args() + "--max-steps 120 --lr 1e-2 --warmup-steps 10 --val-every 120");
  ASSERT_EQ(r.code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("entropy of the training tokens ([0-9.]+)")))
      << r.output;
  const double unigram = std::stod(m[1]);
  EXPECT_GT(unigram, 3.9);  // about ln 64 = 4.16
  const double val = last_val_loss(r.output);
  EXPECT_GT(val, 0.6) << r.output;  // cannot beat the chain's ln 2 = 0.69 by much
  EXPECT_LT(val, unigram - 2.0) << r.output;
}

TEST_F(TrainGpt, StoppedAndResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const std::string common =
      base_args() + "--max-steps 8 --lr 3e-3 --warmup-steps 2 --val-every 4 --dropout 0.1 ";
  auto a = run_binary("train_gpt", common + "--checkpoint " + dir.file("a.safetensors"));
  ASSERT_EQ(a.code, 0) << a.output;
  auto b1 = run_binary("train_gpt", common + "--stop-at-step 5 --checkpoint " + dir.file("b.safetensors"));
  ASSERT_EQ(b1.code, 143) << b1.output;
  auto b2 = run_binary("train_gpt", common + "--resume " + dir.file("b.safetensors") + " --checkpoint " +
                                        dir.file("b.safetensors"));
  ASSERT_EQ(b2.code, 0) << b2.output;
  EXPECT_NE(b2.output.find("resumed from"), std::string::npos);
  auto fa = load_safetensors(dir.file("a.safetensors")), fb = load_safetensors(dir.file("b.safetensors"));
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    ASSERT_EQ(fa.tensors[i].first, fb.tensors[i].first);
    const Tensor& x = fa.tensors[i].second;
    const Tensor& y = fb.tensors[i].second;
    ASSERT_EQ(x.shape(), y.shape());
    EXPECT_EQ(std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * itemsize(x.dtype())), 0)
        << fa.tensors[i].first << " differs";
  }
  EXPECT_EQ(fa.metadata.at("step"), "8");
  EXPECT_EQ(last_val_loss(a.output), last_val_loss(b2.output));
}

TEST_F(TrainGpt, SftTrainsOnlyTheAdaptersAndSavesThemInPeftLayout) {
  // A base model for the fixture tokenizer with exactly its 275 ids (train_gpt pads the embedding to 320
  // rows, as it pads GPT-2's 50,257 to 50,304), and instruction data in both shapes.
  models::GPTConfig bc = tiny_config(64);
  bc.vocab_size = 275;
  models::GPT base(bc, next_seed());
  base.save_pretrained(dir.file("base"));
  {
    std::ofstream f(dir.file("chat.jsonl"));
    for (int i = 0; i < 6; ++i) {
      f << R"({"instruction":"repeat )" << i << R"(","input":"","output":"the word )" << i << "\"}\n";
      f << R"({"messages":[{"role":"user","content":"hello )" << i
        << R"("},{"role":"assistant","content":"hi there"}]})"
        << "\n";
    }
  }
  auto r = run_binary("train_gpt", "--mode sft --init-from " + dir.file("base") + " --sft-data " +
                                       dir.file("chat.jsonl") + " --encoder " + kEncoder + " --vocab-bpe " +
                                       kVocabBpe + " --context 40 --batch-size 4 --max-steps 6 --lr 1e-2 " +
                                       "--warmup-steps 1 --lora-r 4 --threads 1 --no-progress --checkpoint " +
                                       dir.file("ck.safetensors") + " --adapter-out " + dir.file("adapter"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("sft data: 12 examples"), std::string::npos) << r.output;
  auto adapter = load_safetensors(dir.file("adapter/adapter_model.safetensors"));
  EXPECT_EQ(adapter.tensors.size(), 2u * 2 * 3);
  for (auto& [name, t] : adapter.tensors) {
    EXPECT_EQ(name.rfind("base_model.model.transformer.h.", 0), 0u) << name;
    EXPECT_TRUE(name.find(".lora_A.weight") != std::string::npos ||
                name.find(".lora_B.weight") != std::string::npos)
        << name;
    if (name.find("lora_B") != std::string::npos) {
      EXPECT_GT(abs(t).sum().item_double(), 0) << name;
    }
  }
  EXPECT_TRUE(fs::exists(dir.file("adapter/adapter_config.json")));
  // The base weights in the checkpoint are exactly the base model's.
  auto ck = load_safetensors(dir.file("ck.safetensors"));
  int compared = 0;
  for (auto& [name, t] : base.state_dict()) {
    for (auto& [cname, ct] : ck.tensors)
      if (cname == "model." + name) {
        ASSERT_EQ(ct.size(0), name == "transformer.wte.weight" ? 320 : t.size(0)) << name;
        EXPECT_EQ(std::memcmp(t.data_ptr(), ct.data_ptr(), t.numel() * 4), 0) << name << " changed";
        ++compared;
      }
  }
  EXPECT_EQ(compared, static_cast<int>(base.state_dict().size()));
}

TEST_F(TrainGpt, BadOptionsAndDataGiveOneLineAndTheRightExitCode) {
  auto r = run_binary("train_gpt", "--mode sft --sft-data x.jsonl");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--init-from"), std::string::npos) << r.output;
  r = run_binary("train_gpt", "--train-data " + dir.file("nothing_*.bin") + " --max-steps 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("names no shard"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace nabla::test

namespace nabla::test {
namespace {

// Every example in the --help of the GPT binaries parses (run with --print-config, which checks the options
// and exits 0 without running).
TEST(GptBinaries, EveryHelpExampleParses) {
  int examples = 0;
  for (const std::string bin : {"train_gpt", "gpt_tokenize", "serve_gpt"}) {
    if (!std::filesystem::exists(std::string(NABLA_BINARY_DIR) + "/" + bin)) continue;
    const Exec help = run_binary(bin, "--help");
    ASSERT_EQ(help.code, 0) << help.output;
    std::istringstream lines(help.output);
    std::string line;
    while (std::getline(lines, line)) {
      const std::string prefix = "  " + bin + " ";
      if (line.rfind(prefix, 0) != 0) continue;
      std::string args = line.substr(prefix.size());
      // Globs in the examples must reach the binary unexpanded.
      for (size_t at = 0; (at = args.find('*', at)) != std::string::npos; at += 2) args.insert(at, "\\");
      const Exec r = run_binary(bin, args + " --print-config");
      EXPECT_EQ(r.code, 0) << bin << " " << args << ": " << r.output;
      ++examples;
    }
  }
  EXPECT_GE(examples, 6);
}

}  // namespace
}  // namespace nabla::test

// End-to-end tests of the train_bert binary on files written here: a 105-token vocabulary, a corpus whose
// sentences repeat one random word (w17 w17 w17 ...: a masked word is in its context, about uniform
// without it, so a working MLM beats the unigram baseline by far in a few dozen steps), and a TSV sentiment
// task decided by one marker word, and a tagging task of marker words. A 1-layer, 32-wide BERT keeps every
// run to a second or two on the CPU.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& args) {
  std::string cmd = std::string(NABLA_BINARY_DIR) + "/train_bert " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

class TrainBert : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/train_bert"))
      GTEST_SKIP() << "train_bert was not built (ninja train_bert)";
  }
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("nabla_train_bert_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    {
      std::ofstream v(dir_ / "vocab.txt");
      for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) v << s << "\n";
      for (int i = 0; i < 100; ++i) v << "w" << i << "\n";
    }
    std::mt19937_64 g(test::next_seed());
    auto corpus = [&](const fs::path& p, int docs) {
      std::ofstream out(p);
      for (int d = 0; d < docs; ++d) {
        for (int s = 0, n = 4 + static_cast<int>(g() % 6); s < n; ++s) {
          const int word = static_cast<int>(g() % 100), len = 5 + static_cast<int>(g() % 8);
          for (int i = 0; i < len; ++i) out << (i ? " " : "") << "w" << word;
          out << "\n";
        }
        out << "\n";
      }
    };
    corpus(dir_ / "train.txt", 150);
    corpus(dir_ / "heldout.txt", 20);
    // Sentiment: 6-10 words from w10..w99 with w0 (positive) or w1 (negative) somewhere.
    auto tsv = [&](const fs::path& p, int n) {
      std::ofstream out(p);
      out << "sentence\tlabel\n";
      for (int i = 0; i < n; ++i) {
        const int label = static_cast<int>(g() % 2), len = 6 + static_cast<int>(g() % 5),
                  at = static_cast<int>(g() % len);
        for (int j = 0; j < len; ++j)
          out << (j ? " " : "") << "w" << (j == at ? (label ? 0 : 1) : 10 + static_cast<int>(g() % 90));
        out << " \t" << label << "\n";
      }
    };
    tsv(dir_ / "train.tsv", 480);
    tsv(dir_ / "dev.tsv", 120);
    // Tagging: 6-10 words from w10..w99 with "w0 w2" (B-POS I-POS) and w1 (B-NEG) at random places.
    auto tags = [&](const fs::path& p, int n) {
      std::ofstream out(p);
      out << "tokens\ttags\n";
      for (int i = 0; i < n; ++i) {
        std::vector<std::string> w, t;
        for (int j = 0, len = 6 + static_cast<int>(g() % 5); j < len; ++j)
          w.push_back("w" + std::to_string(10 + g() % 90)), t.push_back("O");
        const size_t a = g() % (w.size() - 1), b = (a + 2 + g() % (w.size() - 2)) % w.size();
        w[a] = "w0", w[a + 1] = "w2", t[a] = "B-POS", t[a + 1] = "I-POS";
        if (b != a && b != a + 1) w[b] = "w1", t[b] = "B-NEG";
        for (size_t j = 0; j < w.size(); ++j) out << (j ? " " : "") << w[j];
        out << "\t";
        for (size_t j = 0; j < t.size(); ++j) out << (j ? " " : "") << t[j];
        out << "\n";
      }
    };
    tags(dir_ / "tags_train.tsv", 480);
    tags(dir_ / "tags_dev.tsv", 120);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string common() {
    return "--vocab " + (dir_ / "vocab.txt").string() +
           " --layers 1 --hidden 32 --heads 2 --intermediate 64 " +
           "--max-position 64 --threads 1 --no-progress ";
  }
  static std::string pretrain() {
    return common() + "--mode pretrain --train-files " + (dir_ / "train.txt").string() + " --heldout-file " +
           (dir_ / "heldout.txt").string() + " --seq-len 32 --batch-size 16 ";
  }
  static std::string finetune() {
    return common() + "--mode finetune --train-tsv " + (dir_ / "train.tsv").string() + " --dev-tsv " +
           (dir_ / "dev.tsv").string() + " --seq-len 16 ";
  }
  static fs::path dir_;
};
fs::path TrainBert::dir_;

TEST_F(TrainBert, MlmLossFallsBelowTheUnigramBaselineOnASmallCorpus) {
  const fs::path metrics = dir_ / "pretrain.jsonl";
  Result r = run(pretrain() +
                 "--max-steps 200 --lr 1e-2 --warmup-steps 10 --eval-every 100 --eval-examples 128 "
                 "--dropout 0 --metrics " +
                 metrics.string() + " --save-pretrained " + (dir_ / "pre").string());
  ASSERT_EQ(r.code, 0) << r.output;
  double unigram = 0;
  std::vector<double> mlm;
  for (const auto& j : read_jsonl(metrics)) {
    if (j["kind"] == "baseline") unigram = j["unigram_nats"];
    if (j["kind"] == "eval") mlm.push_back(j["mlm_loss"]);
  }
  ASSERT_EQ(mlm.size(), 2u) << r.output;
  EXPECT_NEAR(unigram, std::log(100.0), 0.1);  // the words are about uniform
  EXPECT_LT(mlm[1], mlm[0]) << r.output;
  EXPECT_LT(mlm[1], unigram - 1.0) << r.output;  // the context tells the masked word
  EXPECT_TRUE(fs::exists(dir_ / "pre" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "pre" / "config.json"));
}

TEST_F(TrainBert, ResumedPretrainingIsBitIdenticalToAnUninterruptedRun) {
  const std::string args = pretrain() + "--max-steps 6 --lr 1e-3 --warmup-steps 2 --eval-examples 16 ";
  const fs::path ck = dir_ / "resume_ck.safetensors";
  ASSERT_EQ(run(args + "--save-pretrained " + (dir_ / "whole").string()).code, 0);
  Result a = run(args + "--stop-at-step 4 --checkpoint " + ck.string());
  ASSERT_EQ(a.code, 0) << a.output;
  Result b = run(args + "--resume " + ck.string() + " --save-pretrained " + (dir_ / "resumed").string());
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_NE(b.output.find("resumed from"), std::string::npos) << b.output;
  const std::string whole = read_bytes(dir_ / "whole" / "model.safetensors");
  ASSERT_GT(whole.size(), 10000u);
  EXPECT_TRUE(whole == read_bytes(dir_ / "resumed" / "model.safetensors"));
  // And with gradient accumulation under LAMB, and VR-LAMB over the same 2 micro-batches (its GSNR state is
  // in the checkpoint too).
  for (const char* opt : {"lamb", "vr-lamb"}) {
    const std::string acc = args + "--accum 2 --optimizer " + opt + " ";
    const fs::path whole = dir_ / (std::string("whole_") + opt),
                   resumed = dir_ / (std::string("resumed_") + opt);
    Result w = run(acc + "--save-pretrained " + whole.string());
    ASSERT_EQ(w.code, 0) << w.output;
    ASSERT_EQ(run(acc + "--stop-at-step 3 --checkpoint " + ck.string()).code, 0);
    ASSERT_EQ(run(acc + "--resume " + ck.string() + " --save-pretrained " + resumed.string()).code, 0);
    EXPECT_TRUE(read_bytes(whole / "model.safetensors") == read_bytes(resumed / "model.safetensors")) << opt;
  }
}

// VR-LAMB's GSNR partitions are train_bert's accumulation micro-batches: with --gsnr-gamma 1 the GSNR
// multiplier is exactly 1, so VR-LAMB must be LAMB over the same micro-batches bit for bit (the mean of 4
// micro-batch gradients, a power of two, is exact either way). Any other split of the batch into partitions
// gives other dropout masks and other per-partition MLM means, so other bytes. With the default gamma the
// GSNR acts.
TEST_F(TrainBert, VrLambPartitionsAreTheAccumulationMicroBatches) {
  const std::string args =
      pretrain() + "--max-steps 3 --lr 1e-3 --warmup-steps 1 --eval-examples 16 --accum 4 --dropout 0.1 ";
  const fs::path lamb = dir_ / "micro_lamb", vr1 = dir_ / "micro_vr1", vr = dir_ / "micro_vr";
  Result a = run(args + "--optimizer lamb --save-pretrained " + lamb.string());
  ASSERT_EQ(a.code, 0) << a.output;
  Result b = run(args + "--optimizer vr-lamb --gsnr-gamma 1 --save-pretrained " + vr1.string());
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_NE(b.output.find("VRGD: 4 partitions of 4 examples per step (micro-batches)"), std::string::npos)
      << b.output;
  const std::string base = read_bytes(lamb / "model.safetensors");
  ASSERT_GT(base.size(), 10000u);
  EXPECT_TRUE(base == read_bytes(vr1 / "model.safetensors"));
  Result c = run(args + "--optimizer vr-lamb --save-pretrained " + vr.string());
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_FALSE(base == read_bytes(vr / "model.safetensors"));
  // Another split (2 micro-batches of 8) is another run.
  Result d = run(pretrain() +
                 "--max-steps 3 --lr 1e-3 --warmup-steps 1 --eval-examples 16 --accum 2 "
                 "--dropout 0.1 --optimizer vr-lamb --gsnr-gamma 1 --save-pretrained " +
                 (dir_ / "micro_vr2").string());
  ASSERT_EQ(d.code, 0) << d.output;
  EXPECT_FALSE(base == read_bytes(dir_ / "micro_vr2" / "model.safetensors"));
}

TEST_F(TrainBert, FineTunesASeparableTaskKeepsTheBestAndPredicts) {
  const fs::path best = dir_ / "best", metrics = dir_ / "finetune.jsonl";
  Result r =
      run(finetune() + "--epochs 3 --batch-size 16 --lr 3e-3 --warmup-steps 5 --eval-every 30 --best-dir " +
          best.string() + " --metrics " + metrics.string() + " --test-tsv " + (dir_ / "dev.tsv").string());
  ASSERT_EQ(r.code, 0) << r.output;
  double best_acc = 0, test_acc = 0;
  for (const auto& j : read_jsonl(metrics)) {
    if (j["kind"] == "eval") best_acc = std::max(best_acc, j["accuracy"].get<double>());
    if (j["kind"] == "test") test_acc = j["accuracy"].get<double>();
  }
  EXPECT_GE(best_acc, 0.95) << r.output;
  EXPECT_DOUBLE_EQ(test_acc, best_acc) << r.output;  // --test-tsv is the dev file here: the best model again
  ASSERT_TRUE(fs::exists(best / "model.safetensors")) << r.output;
  const fs::path in = dir_ / "predict.txt";
  std::ofstream(in) << "w20 w0 w33 w41\nw55 w61 w1 w12\n";
  Result p =
      run(common() + "--mode predict --seq-len 16 --init-from " + best.string() + " --input " + in.string());
  ASSERT_EQ(p.code, 0) << p.output;
  std::istringstream lines(p.output);
  std::string l1, l2;
  std::getline(lines, l1);
  std::getline(lines, l2);
  EXPECT_EQ(l1.substr(0, 2), "1\t") << p.output;  // label, then the two probabilities
  EXPECT_EQ(l2.substr(0, 2), "0\t") << p.output;
  EXPECT_NE(l1.find("w20 w0 w33 w41"), std::string::npos);
}

// --head token: a token tagger learns where "w0 w2" (B-POS I-POS) and w1 (B-NEG) are, keeps the best dev span
// F1 with labels.txt, and predicts one tag per word.
TEST_F(TrainBert, FineTunesATokenTaggerAndPredictsTags) {
  const fs::path best = dir_ / "best_tags", metrics = dir_ / "tags.jsonl";
  Result r =
      run(common() + "--mode finetune --head token --text-a tokens --label tags --metric f1 --train-tsv " +
          (dir_ / "tags_train.tsv").string() + " --dev-tsv " + (dir_ / "tags_dev.tsv").string() +
          " --seq-len 16 --epochs 3 --batch-size 16 --lr 3e-3 --warmup-steps 5 --best-dir " + best.string() +
          " --metrics " + metrics.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("4 labels (O B-NEG B-POS I-POS)"), std::string::npos) << r.output;
  double best_f1 = 0;
  for (const auto& j : read_jsonl(metrics))
    if (j["kind"] == "eval") best_f1 = std::max(best_f1, j["f1"].get<double>());
  EXPECT_GE(best_f1, 0.95) << r.output;
  EXPECT_EQ(read_bytes(best / "labels.txt"), "O\nB-NEG\nB-POS\nI-POS\n");
  const fs::path in = dir_ / "predict_tags.txt";
  std::ofstream(in) << "w20 w0 w2 w41 w1\nw55 w61 w12\n";
  Result p = run(common() + "--mode predict --head token --seq-len 16 --init-from " + best.string() +
                 " --input " + in.string());
  ASSERT_EQ(p.code, 0) << p.output;
  EXPECT_NE(p.output.find("O B-POS I-POS O B-NEG\tw20 w0 w2 w41 w1\nO O O\tw55 w61 w12\n"), std::string::npos)
      << p.output;
  // a sequence classifier's checkpoint has no labels.txt; a tag outside BIO names the file and line
  Result no_labels = run(common() + "--mode predict --head token --init-from " + (dir_ / "best").string() +
                         " --input " + in.string());
  EXPECT_EQ(no_labels.code, 1);
  const fs::path bad = dir_ / "bad_tags.tsv";
  std::ofstream(bad) << "tokens\ttags\nw3 w4\tO B-POS\nw5 w6\tO POS\n";
  Result b =
      run(common() + "--mode finetune --head token --text-a tokens --label tags --metric f1 --train-tsv " +
          bad.string() + " --dev-tsv " + bad.string());
  EXPECT_EQ(b.code, 1) << b.output;
  EXPECT_NE(b.output.find(bad.string() + ":3: tag 'POS'"), std::string::npos) << b.output;
  EXPECT_EQ(run("--head token --text-b sentence2 --mode finetune").code, 2);
}

TEST_F(TrainBert, FineTuningFromThePretrainedEncoderLoadsIt) {
  Result pre =
      run(pretrain() + "--max-steps 2 --eval-examples 8 --save-pretrained " + (dir_ / "pre2").string());
  ASSERT_EQ(pre.code, 0) << pre.output;
  Result r =
      run(finetune() + "--epochs 1 --max-steps 3 --batch-size 16 --init-from " + (dir_ / "pre2").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(from " + (dir_ / "pre2").string() + ")"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("classifier"), std::string::npos) << r.output;  // reported as newly initialised
}

TEST_F(TrainBert, BadTsvNamesTheFileAndLine) {
  const fs::path bad = dir_ / "bad.tsv";
  std::ofstream(bad) << "sentence\tlabel\nw3 w4\t1\nw5 w6\tpositive\n";
  Result r = run(common() + "--mode finetune --train-tsv " + bad.string() + " --dev-tsv " + bad.string());
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(bad.string() + ":3: label 'positive'"), std::string::npos) << r.output;
}

TEST_F(TrainBert, BadOptionsExitTwoWithOneLine) {
  for (const char* args :
       {"--mode bogus", "--batch-size 0", "--batch-size 30 --accum 4", "--mode pretrain --epochs 2",
        "--preset bert-huge", "--mode predict", "--hidden 100 --heads 3", "--lr nan", "--attention flash"}) {
    Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("train_bert: "), std::string::npos) << args << "\n" << r.output;
  }
  Result h = run("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.output.find("--phase2-seq-len"), std::string::npos);
}

TEST_F(TrainBert, HelpExamplesAndDocCommandLinesParse) {
  Result help = run("--help");
  ASSERT_EQ(help.code, 0) << help.output;
  std::istringstream lines(help.output.substr(help.output.find("\nExamples:")));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("  train_bert", 0) != 0) continue;
    Result r = run(line.substr(std::string("  train_bert").size()) + " --print-config");
    EXPECT_EQ(r.code, 0) << "example:" << line << "\n" << r.output;
    ++checked;
  }
  EXPECT_GE(checked, 5);
  // Command lines in docs/bert.md's code blocks, continuation lines joined, up to a comment or an operator.
  std::ifstream f(std::string(NABLA_SOURCE_DIR) + "/docs/bert.md");
  bool code = false;
  int doc_lines = 0;
  while (std::getline(f, line)) {
    if (line.rfind("```", 0) == 0) code = !code;
    const size_t at = line.find("./build/train_bert");
    if (!code || at == std::string::npos) continue;
    std::string cmd = line.substr(at + std::string("./build/train_bert").size());
    while (!cmd.empty() && cmd.back() == '\\' && std::getline(f, line))
      cmd = cmd.substr(0, cmd.size() - 1) + line;
    for (const char* stop : {" #", "&&", " | ", ";"})
      if (size_t s = cmd.find(stop); s != std::string::npos) cmd = cmd.substr(0, s);
    Result r = run(cmd + " --print-config");
    EXPECT_EQ(r.code, 0) << "docs/bert.md: ./build/train_bert" << cmd << "\n" << r.output;
    ++doc_lines;
  }
  EXPECT_GE(doc_lines, 5);
}

}  // namespace
}  // namespace nabla

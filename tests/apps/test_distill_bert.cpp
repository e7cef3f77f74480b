// End-to-end tests of the distill_bert binary on files written here: the marker-word sentiment task of
// test_train_bert.cpp (6-10 random words with w0 = positive or w1 = negative somewhere), two 1-layer BERT
// teachers fine-tuned by train_bert, and 1-layer 16-wide students; every run is a second or two on the CPU.
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

Result run_binary(const std::string& binary, const std::string& args) {
  std::string cmd = std::string(NABLA_BINARY_DIR) + "/" + binary + " " + args + " 2>&1";
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

double best_dev(const fs::path& metrics) {
  double best = 0;
  for (const auto& j : read_jsonl(metrics))
    if (j["kind"] == "eval") best = std::max(best, j["accuracy"].get<double>());
  return best;
}

class DistillBert : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* b : {"distill_bert", "train_bert"})
      if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/" + b)) GTEST_SKIP() << b << " was not built";
    ASSERT_TRUE(teachers_ok_) << teacher_log_;
  }
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("nabla_distill_bert_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    {
      std::ofstream v(dir_ / "vocab.txt");
      for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) v << s << "\n";
      for (int i = 0; i < 100; ++i) v << "w" << i << "\n";
    }
    std::mt19937_64 g(test::next_seed());
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
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/train_bert")) return;
    teachers_ok_ = true;
    for (const char* hidden : {"32", "48"}) {
      Result r = run_binary("train_bert",
                            "--vocab " + (dir_ / "vocab.txt").string() + " --layers 1 --hidden " + hidden +
                                " --heads 2 --max-position 64 --threads 1 --no-progress "
                                "--mode finetune --seq-len 16 --epochs 3 --batch-size 16 --lr 3e-3 "
                                "--warmup-steps 5 --train-tsv " +
                                (dir_ / "train.tsv").string() + " --dev-tsv " + (dir_ / "dev.tsv").string() +
                                " --best-dir " + (dir_ / (std::string("t") + hidden)).string());
      teachers_ok_ = teachers_ok_ && r.code == 0;
      teacher_log_ += r.output;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string teachers() { return (dir_ / "t32").string() + "," + (dir_ / "t48").string(); }
  static Result run(const std::string& args) { return run_binary("distill_bert", args); }
  // A 1-layer student on the task, 32 wide unless `hidden` says otherwise.
  static std::string student(const std::string& hidden = "32") {
    return "--vocab " + (dir_ / "vocab.txt").string() + " --train-tsv " + (dir_ / "train.tsv").string() +
           " --dev-tsv " + (dir_ / "dev.tsv").string() + " --layers 1 --hidden " + hidden +
           " --heads 2 --max-position 64 --seq-len 16 --batch-size 16 --lr 3e-3 "
           "--warmup-steps 5 --threads 1 --no-progress ";
  }
  static fs::path dir_;
  static bool teachers_ok_;
  static std::string teacher_log_;
};
fs::path DistillBert::dir_;
bool DistillBert::teachers_ok_ = false;
std::string DistillBert::teacher_log_;

TEST_F(DistillBert, EnsembleEvalScoresEachTeacherAndTheirAverage) {
  const fs::path m = dir_ / "ensemble.jsonl";
  Result r = run(student() + "--mode ensemble-eval --teachers " + teachers() + " --metrics " + m.string());
  ASSERT_EQ(r.code, 0) << r.output;
  int teachers = 0, ensembles = 0;
  for (const auto& j : read_jsonl(m)) {
    if (j["kind"] != "teacher" && j["kind"] != "ensemble") continue;
    ++(j["kind"] == "teacher" ? teachers : ensembles);
    EXPECT_GE(j["accuracy"].get<double>(), 0.9) << r.output;
  }
  EXPECT_EQ(teachers, 2);
  EXPECT_EQ(ensembles, 1);
}

TEST_F(DistillBert, SkdWkdAndKdStudentsLearnTheTaskAndSkdLogsEachDraw) {
  // SKD by the teachers' measured dev ranks (TRD, linear): p = (1/3, 2/3) or its mirror, or 1/2 each on a
  // tie.
  const fs::path skd = dir_ / "skd.jsonl";
  Result r = run(student() + "--mode skd --sampling trd --epochs 2 --teachers " + teachers() +
                 " --temperature 2 --metrics " + skd.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GE(best_dev(skd), 0.9) << r.output;
  std::vector<int64_t> drawn(2);
  std::vector<double> p;
  int64_t draws = 0, last_step = 0;
  for (const auto& j : read_jsonl(skd)) {
    if (j["kind"] == "teacher_distribution") p = j["p"].get<std::vector<double>>();
    if (j["kind"] == "draw") {
      ++drawn.at(j["teacher"].get<size_t>()), ++draws;
      EXPECT_EQ(j["step"].get<int64_t>(), ++last_step);
    }
  }
  EXPECT_EQ(draws, 60);  // 2 epochs of 30 steps: one record per step
  ASSERT_EQ(p.size(), 2u);
  EXPECT_NEAR(p[0] + p[1], 1.0, 1e-12);
  EXPECT_TRUE(std::abs(p[0] - 1.0 / 3) < 1e-9 || std::abs(p[0] - 2.0 / 3) < 1e-9 ||
              std::abs(p[0] - 0.5) < 1e-9);
  EXPECT_GT(drawn[0], 0);
  EXPECT_GT(drawn[1], 0);
  // WKD with SRD weights given, teacher logits cached; single-teacher KD.
  const fs::path wkd = dir_ / "wkd.jsonl", kd = dir_ / "kd.jsonl";
  Result w = run(student() + "--mode wkd --sampling srd --scores 0.9,0.95 --epochs 2 --teachers " +
                 teachers() + " --logit-cache " + (dir_ / "cache").string() + " --metrics " + wkd.string());
  ASSERT_EQ(w.code, 0) << w.output;
  EXPECT_GE(best_dev(wkd), 0.9) << w.output;
  EXPECT_NE(w.output.find("p = 0.333 0.667"), std::string::npos) << w.output;
  Result k =
      run(student() + "--mode kd --epochs 2 --teachers " + (dir_ / "t48" / "model.safetensors").string() +
          " --hard-weight 0.5 --metrics " + kd.string());
  ASSERT_EQ(k.code, 0) << k.output;
  EXPECT_GE(best_dev(kd), 0.9) << k.output;
}

TEST_F(DistillBert, ResumedSkdIsBitIdenticalToAnUninterruptedRunWithAndWithoutTheLogitCache) {
  for (const std::string& cache : {std::string(), " --logit-cache " + (dir_ / "cache2").string()}) {
    const std::string base =
        student() + "--mode skd --epochs 1 --max-steps 6 --teachers " + teachers() + cache;
    Result full = run(base + " --save-pretrained " + (dir_ / "full").string());
    ASSERT_EQ(full.code, 0) << full.output;
    const fs::path ck = dir_ / "ck.safetensors";
    Result part = run(base + " --stop-at-step 4 --checkpoint " + ck.string());
    ASSERT_EQ(part.code, 0) << part.output;
    Result rest =
        run(base + " --resume " + ck.string() + " --save-pretrained " + (dir_ / "resumed").string());
    ASSERT_EQ(rest.code, 0) << rest.output;
    EXPECT_EQ(read_bytes(dir_ / "full" / "model.safetensors"),
              read_bytes(dir_ / "resumed" / "model.safetensors"))
        << "cache:" << cache;
    fs::remove(ck);
  }
}

TEST_F(DistillBert, TakdIsKdRunTwiceThroughAnAssistant) {
  const fs::path assistant = dir_ / "assistant", m = dir_ / "takd.jsonl";
  Result a = run(student("48") + "--mode kd --epochs 2 --teachers " + (dir_ / "t48").string() +
                 " --best-dir " + assistant.string());
  ASSERT_EQ(a.code, 0) << a.output;
  Result s = run(student() + "--mode kd --epochs 2 --teachers " + assistant.string() + " --metrics " +
                 m.string() + " --test-tsv " + (dir_ / "dev.tsv").string());
  ASSERT_EQ(s.code, 0) << s.output;
  EXPECT_GE(best_dev(m), 0.9) << s.output;
  EXPECT_NE(s.output.find("best dev model"), std::string::npos) << s.output;
}

TEST_F(DistillBert, BadOptionsExitTwoAndMissingTeachersExitOneWithOneLine) {
  const std::string two = " --teachers " + teachers();
  for (const std::string& args :
       {"--mode kd" + two, "--mode skd --teachers " + (dir_ / "t32").string(),
        "--mode skd --sampling srd" + two, "--mode skd --sampling trd --scores 0.9" + two,
        "--mode skd --sampling trd --scores 0.9,abc" + two, "--mode student" + two,
        "--mode kd --sampling trd --teachers " + (dir_ / "t32").string(),
        "--mode skd --sampling ud --scores 0.9,0.8" + two, std::string("--mode ensemble-eval"),
        std::string("--mode skd --sampling xrd") + two, "--mode wkd --hard-weight 2" + two,
        "--mode skd --temperature 0" + two}) {
    Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("distill_bert: ", 0), 0u) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
  }
  Result missing = run(student() + "--mode kd --teachers " + (dir_ / "nowhere").string());
  EXPECT_EQ(missing.code, 1) << missing.output;
  EXPECT_NE(missing.output.find("'" + (dir_ / "nowhere").string() + "' does not exist"), std::string::npos)
      << missing.output;
  fs::create_directories(dir_ / "empty");
  Result empty = run(student() + "--mode kd --teachers " + (dir_ / "empty").string());
  EXPECT_EQ(empty.code, 1) << empty.output;
  EXPECT_NE(empty.output.find("no config.json"), std::string::npos) << empty.output;
}

TEST_F(DistillBert, HelpExamplesParse) {
  Result help = run("--help");
  ASSERT_EQ(help.code, 0) << help.output;
  std::istringstream lines(help.output.substr(help.output.find("\nExamples:")));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("  distill_bert", 0) != 0) continue;
    Result r = run(line.substr(std::string("  distill_bert").size()) + " --print-config");
    EXPECT_EQ(r.code, 0) << "example:" << line << "\n" << r.output;
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

}  // namespace
}  // namespace nabla

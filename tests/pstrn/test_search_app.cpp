// End-to-end tests of the search_pstrn binary: bad command lines (exit 2 naming the option), the --help
// examples parse, a TR-LeNet5 retrain and a tiny search with a checkpoint on a small Fashion-MNIST-format
// set written here (each class a bright square on noise), the synthetic task on the shared data, and the
// TR-LSTM task end to end (search with per-phase Pareto fronts, resume, retrain, the equal-rank baseline).
#include <algorithm>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/data.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& args) {
  std::string cmd = std::string(NABLA_BINARY_DIR) + "/search_pstrn " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

void write_split(const fs::path& dir, const std::string& prefix, int64_t n, uint64_t seed) {
  Generator g{seed, 0};
  Tensor labels = randint(0, 10, {n}, {}, &g);
  auto noise = uniform({n, 28, 28}, 0, 60, {}, &g).to_vector<float>();
  auto vl = labels.to_vector<int64_t>();
  Tensor images = Tensor::empty({n, 28, 28}, DType::u8);
  uint8_t* px = images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    int c = static_cast<int>(vl[i]), top = (c / 4) * 7, left = (c % 4) * 7;
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const bool on = y >= top && y < top + 7 && x >= left && x < left + 7;
        const float v = noise[(i * 28 + y) * 28 + x];
        px[(i * 28 + y) * 28 + x] = static_cast<uint8_t>(on ? 200 + v / 2 : v);
      }
  }
  data::write_idx((dir / (prefix + "-images-idx3-ubyte")).string(), images);
  data::write_idx((dir / (prefix + "-labels-idx1-ubyte")).string(), labels.to(DType::u8));
}

class SearchPstrn : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/search_pstrn"))
      GTEST_SKIP() << "search_pstrn was not built (ninja search_pstrn)";
    dir_ = fs::temp_directory_path() / ("pstrn_app_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(SearchPstrn, BadCommandLinesExitTwoNamingTheOption) {
  auto r = run("--task alexnet");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--task"), std::string::npos) << r.output;
  r = run("--retrain 4,x,6 --print-config");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("entry 2 'x'"), std::string::npos) << r.output;
  r = run("--task lenet5 --baseline grid --print-config");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--baseline needs --task synthetic"), std::string::npos) << r.output;
  r = run("--pop-size -3");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--pop-size"), std::string::npos) << r.output;
  r = run("--steps 5,2,1 --generations 3,3 --task synthetic --data-dir " + dir_.string());
  EXPECT_EQ(r.code, 1);  // the data folder is empty: the file is named
  EXPECT_NE(r.output.find("fc_144x144.txt"), std::string::npos) << r.output;
}

TEST_F(SearchPstrn, BenchTrainsNetsInOneProcessEachAsTheRetrain) {
  write_split(dir_, "train", 300, 3);
  write_split(dir_, "t10k", 100, 4);
  const std::string common = "--task lenet5 --data-dir " + dir_.string() +
                             " --val-size 50 --batch-size 50 --lr 0.01 --threads 1 --epochs 1 "
                             "--retrain 3,5,4,6,3,5,4,6,3,5,4,6,3,5,4,6,3,5,4,6";
  auto one = run(common + " --metrics " + (dir_ / "one.jsonl").string());
  ASSERT_EQ(one.code, 0) << one.output;
  std::ifstream in1(dir_ / "one.jsonl");
  const auto retrain = nlohmann::json::parse(in1);
  auto r = run(common + " --bench 3 --metrics " + (dir_ / "bench.jsonl").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("s/net (median of 2"), std::string::npos) << r.output;
  std::ifstream in(dir_ / "bench.jsonl");
  std::vector<double> secs;
  nlohmann::json summary;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("bench_summary")) {
      summary = j;
      continue;
    }
    // Every net is the search's evaluation from the same seed: the same result as one --retrain.
    EXPECT_EQ(j["test_error"].get<double>(), retrain["test_error"].get<double>()) << line;
    EXPECT_EQ(j["params"], retrain["params"]);
    secs.push_back(j["seconds"].get<double>());
  }
  ASSERT_EQ(secs.size(), 3u);
  ASSERT_FALSE(summary.is_null()) << r.output;
  EXPECT_EQ(summary["median_seconds"].get<double>(), std::max(secs[1], secs[2]));  // of 2: the upper
  EXPECT_EQ(summary["first_seconds"].get<double>(), secs[0]);

  auto bad = run("--task lenet5 --bench 3 --print-config");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("--bench needs --retrain"), std::string::npos) << bad.output;
  bad = run(common + " --bench 1 --print-config");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("at least 2 networks"), std::string::npos) << bad.output;
}

TEST_F(SearchPstrn, HelpExamplesParse) {
  auto help = run("--help");
  ASSERT_EQ(help.code, 0);
  size_t at = 0;
  int examples = 0;
  // Example lines read "  search_pstrn ARGS" in the help's Examples section.
  while ((at = help.output.find("\n  search_pstrn", at)) != std::string::npos) {
    const size_t end = help.output.find('\n', at + 1);
    std::string args = help.output.substr(at + 15, end - at - 15);
    auto r = run(args + " --print-config");
    EXPECT_EQ(r.code, 0) << args << "\n" << r.output;
    ++examples;
    at = end;
  }
  EXPECT_GE(examples, 4);
}

TEST_F(SearchPstrn, DenseLeNet5IsTheBaselineOfTheSameShape) {
  // --dense trains the dense 1-20-50-320-10 LeNet-5 through the same evaluation as --retrain: it learns the
  // written classes (chance is 90% error) with TR-LeNet5's dense parameter count; bad combinations exit 2.
  write_split(dir_, "train", 400, 5);
  write_split(dir_, "t10k", 100, 6);
  const std::string common =
      "--task lenet5 --data-dir " + dir_.string() + " --val-size 50 --batch-size 50 --lr 0.01 --threads 1";
  auto r = run(common + " --epochs 2 --dense --metrics " + (dir_ / "d.jsonl").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("dense LeNet-5: test error"), std::string::npos) << r.output;
  std::ifstream in(dir_ / "d.jsonl");
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["params"].get<int64_t>(), 429100);
  EXPECT_LT(j["test_error"].get<double>(), 60.0) << r.output;
  auto bad = run(common + " --dense --retrain 4,4 --print-config");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("--dense trains the dense net"), std::string::npos) << bad.output;
  bad = run("--task resnet20 --dense --print-config");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("--dense needs --task lenet5"), std::string::npos) << bad.output;
}

TEST_F(SearchPstrn, RetrainsTRLeNet5AndSearchesWithACheckpoint) {
  write_split(dir_, "train", 400, 1);
  write_split(dir_, "t10k", 100, 2);
  const std::string common =
      "--task lenet5 --data-dir " + dir_.string() + " --val-size 50 --batch-size 50 --lr 0.01 --threads 1";
  auto r = run(common + " --epochs 2 --retrain 4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4 --metrics " +
               (dir_ / "r.jsonl").string());
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(dir_ / "r.jsonl");
  auto j = nlohmann::json::parse(in);
  EXPECT_LT(j["test_error"].get<double>(), 60.0) << r.output;  // 10 classes: chance is 90%
  EXPECT_GT(j["network_compression"].get<double>(), 50.0);

  const std::string search =
      common + " --train-size 100 --epochs 1 --steps 5,2 --generations 1,1 --pop-size 2 --checkpoint " +
      (dir_ / "s.ckpt").string();
  r = run(search);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("best: ranks"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(dir_ / "s.ckpt"));
  EXPECT_FALSE(fs::exists(dir_ / "s.ckpt.tmp"));
  std::ifstream ck(dir_ / "s.ckpt");
  auto st = nlohmann::json::parse(ck);
  EXPECT_EQ(st["format"], "pstrn-search-1");
  EXPECT_EQ(st["phase"], 2);  // finished
  auto again = run(search + " --resume " + (dir_ / "s.ckpt").string());
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(r.output.substr(r.output.find("best: ranks")),
            again.output.substr(again.output.find("best: ranks")));
  auto bad =
      run(common + " --train-size 100 --epochs 1 --steps 5,2 --generations 1,1 --pop-size 3 --resume " +
          (dir_ / "s.ckpt").string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("pop_size is 2"), std::string::npos) << bad.output;
}

TEST_F(SearchPstrn, TRLSTMSearchRetrainAndBaselineRunEndToEnd) {
  const std::string common =
      "--task lstm --seq-sizes 500,200,100 --seq-amplitude 10 --epochs 6 --milestones 5 --batch-size 20 "
      "--lr 0.02 --threads 1 --eval-threads 2";
  auto bad = run("--task lstm --lstm-gate-shape 3,5 --print-config");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("4 x hidden, got 15"), std::string::npos) << bad.output;
  bad = run("--task lstm --baseline grid --print-config");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("--baseline grid needs --task synthetic"), std::string::npos) << bad.output;
  bad = run("--task lstm --retrain 4,4,4 --seq-sizes 10,10,10");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("lstm has 4 ranks, got 3"), std::string::npos) << bad.output;

  const std::string search = common + " --pop-size 4 --generations 1,1,1 --metrics " +
                             (dir_ / "s.jsonl").string() + " --checkpoint " + (dir_ / "s.ckpt").string();
  auto r = run(search);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("TR-LSTM task: 500 / 200 / 100 sequences"), std::string::npos) << r.output;
  const size_t at = r.output.find("best: ranks");
  ASSERT_NE(at, std::string::npos) << r.output;
  // One record per generation, each phase with a non-empty, mutually non-dominated Pareto front.
  std::ifstream in(dir_ / "s.jsonl");
  std::string line;
  std::vector<nlohmann::json> recs;
  while (std::getline(in, line)) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 3u);
  for (size_t g = 0; g < 3; ++g) {
    EXPECT_EQ(recs[g]["phase"], g + 1);
    const auto& front = recs[g]["pareto_front"];
    ASSERT_FALSE(front.empty());
    for (auto& p : front)
      for (auto& q : front) {
        const double pe = p["error"], qe = q["error"], pc = p["compression"], qc = q["compression"];
        EXPECT_FALSE(qe <= pe && qc >= pc && (qe < pe || qc > pc)) << front.dump();
      }
  }
  const double best = recs.back()["best"]["error"];
  EXPECT_LT(best, 60.0) << r.output;  // 6 classes: chance is 83.3%
  auto again = run(search + " --resume " + (dir_ / "s.ckpt").string());
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(r.output.substr(at), again.output.substr(again.output.find("best: ranks")));

  std::vector<int64_t> ranks = recs.back()["best"]["ranks"];
  std::string rs;
  for (auto v : ranks) rs += (rs.empty() ? "" : ",") + std::to_string(v);
  r = run(common + " --retrain " + rs + " --metrics " + (dir_ / "r.jsonl").string());
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream rin(dir_ / "r.jsonl");
  auto j = nlohmann::json::parse(rin);
  EXPECT_DOUBLE_EQ(j["best_val_error"].get<double>(), best);  // the same net, trained the same way
  EXPECT_LT(j["test_error"].get<double>(), 70.0);
  EXPECT_GT(j["compression"].get<double>(), 1.0);

  r = run(common + " --baseline equal --baseline-max-rank 4 --metrics " + (dir_ / "e.jsonl").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("baseline equal: 3 evaluations"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace nabla

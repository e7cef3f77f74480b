// End-to-end tests of the train_dlrm binary on synthetic Criteo with a planted teacher (a small file written
// once per test run): it learns (loss falls, validation AUC above 0.7), it resumes bit for bit from a
// checkpoint (also with sparse row-wise Adagrad tables), it trains on the text sample after converting it,
// --model-parallel in one process is the plain run (metrics, checkpoint; each resumes the other's), and bad
// options exit with 2. (--model-parallel on 2 ranks: tests/dist/train_dlrm_mpirun.sh.)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& args) {
  // One thread: the model is tiny, and OpenMP threads only wait on each other for ops this small.
  std::string cmd = std::string(NABLA_BINARY_DIR) + "/train_dlrm --threads 1 " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

class TrainDlrm : public ::testing::Test {
 protected:
  static fs::path dir() {
    static fs::path d = [] {
      fs::path p = fs::temp_directory_path() / ("nabla_train_dlrm_" + std::to_string(getpid()));
      fs::create_directories(p);
      return p;
    }();
    return d;
  }
  // 60k synthetic rows (tables capped at 200), written by the first run that needs them.
  static std::string data_args() {
    return "--data-path " + (dir() / "synthetic.bin").string() +
           " --synthetic-rows 60000 --synthetic-cap 200 ";
  }
  static void TearDownTestSuite() { fs::remove_all(dir()); }
};

std::string metadata_or_empty(const std::string& path, const std::string& key) {
  SafetensorsFile f = load_safetensors(path);
  auto it = f.metadata.find(key);
  return it == f.metadata.end() ? std::string() : it->second;
}

std::vector<std::string> lines_with(const std::string& text, const std::string& key) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(key) != std::string::npos) out.push_back(line);
  return out;
}

TEST_F(TrainDlrm, LossFallsAndAucPassesPointSeven) {
  const std::string metrics = (dir() / "learn.jsonl").string();
  Result r =
      run(data_args() +
          "--optimizer adagrad --batch-size 256 --lr 0.05 --max-steps 300 --eval-every 150 --limit-val 4000 "
          "--no-progress --metrics " +
          metrics);
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(metrics);
  std::vector<double> losses, aucs;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.value("kind", "") == "eval") aucs.push_back(j["auc"].get<double>());
    if (j.contains("loss") && j.value("kind", "") != "eval") losses.push_back(j["loss"].get<double>());
  }
  ASSERT_EQ(aucs.size(), 2u) << r.output;
  ASSERT_GE(losses.size(), 10u) << r.output;
  double first = (losses[0] + losses[1]) / 2,
         last = (losses[losses.size() - 1] + losses[losses.size() - 2]) / 2;
  EXPECT_LT(last, first - 0.02) << r.output;
  EXPECT_GT(aucs.back(), 0.7) << r.output;
}

// 30 steps in one go equal 12 steps, a checkpoint, and 18 more after --resume: every tensor of the model and
// of Adagrad's state bit for bit (constant schedule after a 4-step warm-up, so the stop changes no lr).
TEST_F(TrainDlrm, ResumesExactly) {
  const std::string a = (dir() / "a.safetensors").string(), b = (dir() / "b.safetensors").string(),
                    c = (dir() / "c.safetensors").string();
  const std::string common = data_args() +
                             "--batch-size 128 --lr 0.05 --optimizer adagrad --warmup-steps 4 "
                             "--limit-val 500 --no-progress ";
  Result whole = run(common + "--max-steps 30 --checkpoint " + a);
  ASSERT_EQ(whole.code, 0) << whole.output;
  Result first = run(common + "--max-steps 12 --checkpoint " + b);
  ASSERT_EQ(first.code, 0) << first.output;
  Result rest = run(common + "--max-steps 30 --resume " + b + " --checkpoint " + c);
  ASSERT_EQ(rest.code, 0) << rest.output;
  SafetensorsFile fa = load_safetensors(a), fc = load_safetensors(c), fb = load_safetensors(b);
  ASSERT_EQ(fa.tensors.size(), fc.tensors.size());
  int compared = 0;
  for (auto& [name, t] : fa.tensors) {
    EXPECT_EQ(t.to_double_vector(), fc.get(name).to_double_vector()) << name;
    ++compared;
  }
  EXPECT_GT(compared, 20);
  EXPECT_NE(fa.get("model.top_l.0.weight").to_double_vector(),
            fb.get("model.top_l.0.weight").to_double_vector());
  EXPECT_EQ(lines_with(whole.output, "validation AUC").back(),
            lines_with(rest.output, "validation AUC").back());
}

// Sparse tables with row-wise Adagrad (--sparse --optimizer adagrad): the accumulators are in the
// checkpoint (emb_adagrad.<f>, one per table row, some non-zero, none negative), and 30 steps equal 12 +
// resume + 18 bit for bit, the tables and their accumulators included.
TEST_F(TrainDlrm, SparseRowwiseAdagradResumesExactly) {
  const std::string a = (dir() / "sa.safetensors").string(), b = (dir() / "sb.safetensors").string(),
                    c = (dir() / "sc.safetensors").string();
  const std::string common = data_args() +
                             "--sparse --batch-size 128 --lr 0.05 --optimizer adagrad --warmup-steps 4 "
                             "--limit-val 500 --no-progress ";
  Result whole = run(common + "--max-steps 30 --checkpoint " + a);
  ASSERT_EQ(whole.code, 0) << whole.output;
  EXPECT_NE(whole.output.find("sparse row-wise Adagrad tables"), std::string::npos) << whole.output;
  Result first = run(common + "--max-steps 12 --checkpoint " + b);
  ASSERT_EQ(first.code, 0) << first.output;
  Result rest = run(common + "--max-steps 30 --resume " + b + " --checkpoint " + c);
  ASSERT_EQ(rest.code, 0) << rest.output;
  SafetensorsFile fa = load_safetensors(a), fc = load_safetensors(c), fb = load_safetensors(b);
  ASSERT_EQ(fa.tensors.size(), fc.tensors.size());
  int states = 0;
  for (auto& [name, t] : fa.tensors) {
    EXPECT_EQ(t.to_double_vector(), fc.get(name).to_double_vector()) << name;
    if (name.rfind("model.emb_adagrad.", 0) != 0) continue;
    ++states;
    const std::vector<double> v = t.to_double_vector();
    EXPECT_EQ(static_cast<int64_t>(v.size()),
              fa.get("model.emb_l." + name.substr(18) + ".weight").shape()[0]);
    EXPECT_GE(*std::min_element(v.begin(), v.end()), 0.0) << name;
    EXPECT_GT(*std::max_element(v.begin(), v.end()), 0.0) << name;
  }
  EXPECT_EQ(states, 26);
  EXPECT_NE(fa.get("model.emb_adagrad.3").to_double_vector(),
            fb.get("model.emb_adagrad.3").to_double_vector());
  EXPECT_NE(fa.get("model.emb_l.3.weight").to_double_vector(),
            fb.get("model.emb_l.3.weight").to_double_vector());
  EXPECT_EQ(lines_with(whole.output, "validation AUC").back(),
            lines_with(rest.output, "validation AUC").back());
}

// VR-SGD (algorithms/vrgd) over 4 micro-batches: it runs, writes GSNR records, and the loss stays finite.
TEST_F(TrainDlrm, RunsVrSgdWithGsnrRecords) {
  const std::string metrics = (dir() / "vr.jsonl").string();
  Result r = run(data_args() +
                 "--optimizer vr-sgd --gsnr-partitions 4 --batch-size 512 --lr 1 --warmup-steps 2 "
                 "--max-steps 10 --limit-val 500 --no-progress --metrics " +
                 metrics);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("VRGD: 4 partitions of 128 examples"), std::string::npos) << r.output;
  std::ifstream in(metrics);
  int gsnr = 0, eval = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    gsnr += j.value("kind", "") == "gsnr";
    if (j.value("kind", "") == "eval") {
      ++eval;
      EXPECT_LT(j["log_loss"].get<double>(), 0.7);  // the click rate alone gives about 0.56
    }
  }
  EXPECT_GE(gsnr, 1);
  EXPECT_EQ(eval, 1);
}

TEST_F(TrainDlrm, TrainsOnTheTextSample) {
  const fs::path sample =
      fs::path(NABLA_SOURCE_DIR) / ".." / "shared" / "data" / "criteo-sample" / "criteo_sample.txt";
  if (!fs::exists(sample)) GTEST_SKIP() << "no " << sample;
  const fs::path copy = dir() / "criteo_sample.txt";
  fs::copy_file(sample, copy, fs::copy_options::overwrite_existing);
  Result r = run("--data text --data-path " + copy.string() +
                 " --hash-size 1000 --batch-size 32 --max-steps 8 "
                 "--no-progress");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(copy.string() + ".nbcriteo"));
  EXPECT_EQ(lines_with(r.output, "validation AUC").size(), 1u) << r.output;
  Result p = run("--data text --data-path " + copy.string() + " --prepare " + (dir() / "s.bin").string());
  ASSERT_EQ(p.code, 0) << p.output;
  EXPECT_NE(p.output.find("200 rows"), std::string::npos) << p.output;
}

// Every example of --help and every ./build/train_dlrm command line of docs/dlrm.md parses (--print-config).
TEST_F(TrainDlrm, HelpExamplesAndDocCommandLinesParse) {
  Result help = run("--help");
  ASSERT_EQ(help.code, 0) << help.output;
  std::vector<std::string> commands;
  std::istringstream lines(help.output.substr(help.output.find("\nExamples:")));
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("  train_dlrm", 0) == 0)
      commands.push_back(line.substr(std::string("  train_dlrm").size()));
  EXPECT_GE(commands.size(), 4u) << help.output;
  std::ifstream f(std::string(NABLA_SOURCE_DIR) + "/docs/dlrm.md");
  bool code = false;
  int from_doc = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("```", 0) == 0) code = !code;
    const size_t at = line.find("./build/train_dlrm");
    if (!code || at == std::string::npos) continue;
    std::string cmd = line.substr(at + std::string("./build/train_dlrm").size());
    while (!cmd.empty() && cmd.back() == '\\' && std::getline(f, line))
      cmd = cmd.substr(0, cmd.size() - 1) + line;
    commands.push_back(cmd);
    ++from_doc;
  }
  EXPECT_GE(from_doc, 5);
  for (const std::string& c : commands) {
    Result r = run(c + " --print-config");
    EXPECT_EQ(r.code, 0) << c << "\n" << r.output;
  }
}

// --data synthetic --prepare OUT writes the rows once and exits; training on that file with --eval-rows test
// evaluates on the test half of the last day (the teacher too).
TEST_F(TrainDlrm, PreparesSyntheticRowsAndEvaluatesOnTestRows) {
  const std::string file = (dir() / "prepared.bin").string();
  Result w = run("--prepare " + file + " --synthetic-rows 7000 --synthetic-cap 50");
  ASSERT_EQ(w.code, 0) << w.output;
  EXPECT_NE(w.output.find("7000 synthetic rows"), std::string::npos) << w.output;
  ASSERT_TRUE(fs::exists(file));
  Result r = run("--data-path " + file +
                 " --synthetic-rows 7000 --synthetic-cap 50 --batch-size 64 --max-steps 3 --eval-rows test "
                 "--no-progress");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(lines_with(r.output, "writing").size(), 0u) << r.output;  // the prepared file was used
  EXPECT_EQ(lines_with(r.output, "teacher (the planted truth) on the test rows").size(), 1u) << r.output;
  EXPECT_EQ(lines_with(r.output, "test AUC").size(), 1u) << r.output;
}

// --model-parallel on one process (W = 1: every table on the one rank, computed table by table through
// ShardedDlrm) is the plain run: the same metrics and the same checkpoint tensors (sparse row-wise Adagrad
// tables); its checkpoint is a plain one, so a plain run stopped at step 12 and resumed with --model-parallel
// ends where both end.
TEST_F(TrainDlrm, ModelParallelOnOneProcessIsThePlainRun) {
  const std::string common = data_args() +
                             "--sparse --optimizer adagrad --batch-size 128 --lr 0.05 --warmup-steps 4 "
                             "--eval-every 15 --limit-val 500 --no-progress ";
  auto path = [](const std::string& name) { return (dir() / name).string(); };
  Result plain =
      run(common + "--max-steps 30 --checkpoint " + path("p.ckpt") + " --metrics " + path("p.jsonl"));
  ASSERT_EQ(plain.code, 0) << plain.output;
  Result mp = run(common + "--max-steps 30 --model-parallel --checkpoint " + path("m.ckpt") + " --metrics " +
                  path("m.jsonl"));
  ASSERT_EQ(mp.code, 0) << mp.output;
  EXPECT_EQ(lines_with(mp.output, "model-parallel: 1 rank | 26 tables whole").size(), 1u) << mp.output;
  Result first = run(common + "--max-steps 12 --checkpoint " + path("h.ckpt"));
  ASSERT_EQ(first.code, 0) << first.output;
  Result rest = run(common + "--max-steps 30 --model-parallel --resume " + path("h.ckpt") + " --checkpoint " +
                    path("r.ckpt"));
  ASSERT_EQ(rest.code, 0) << rest.output;
  auto records = [](const std::string& file) {
    std::vector<double> v;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      for (const char* k : {"loss", "auc", "log_loss"})
        if (j.contains(k)) v.push_back(j[k].get<double>());
    }
    return v;
  };
  const std::vector<double> rp = records(path("p.jsonl")), rm = records(path("m.jsonl"));
  ASSERT_EQ(rp.size(), rm.size());
  ASSERT_GE(rp.size(), 7u);  // losses at steps 10, 20, 30; AUC and log loss at 15 and 30
  for (size_t i = 0; i < rp.size(); ++i)
    EXPECT_NEAR(rm[i], rp[i], 1e-6 * std::max(1.0, std::abs(rp[i]))) << i;
  SafetensorsFile fp = load_safetensors(path("p.ckpt"));
  for (const char* other : {"m.ckpt", "r.ckpt"}) {
    SafetensorsFile fo = load_safetensors(path(other));
    ASSERT_EQ(fp.tensors.size(), fo.tensors.size()) << other;
    int states = 0;
    for (auto& [name, t] : fp.tensors) {
      const std::vector<double> a = t.to_double_vector(), b = fo.get(name).to_double_vector();
      ASSERT_EQ(a.size(), b.size()) << other << " " << name;
      double worst = 0;
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
      EXPECT_LE(worst, 1e-5) << other << " " << name;
      states += name.rfind("model.emb_adagrad.", 0) == 0;
    }
    EXPECT_EQ(states, 26) << other;
  }
  EXPECT_EQ(metadata_or_empty(path("m.ckpt"), "model_parallel_world"), "1");
}

// --sparse-lr-scale s: the tables' first sparse SGD step is s times the plain one (t_s = t0 - s lr g, so t1 +
// t3 = 2 t2, and the touched rows move), the MLPs' step is the plain one.
TEST_F(TrainDlrm, SparseLrScaleScalesTheTablesStepOnly) {
  auto path = [](const std::string& name) { return (dir() / name).string(); };
  std::vector<SafetensorsFile> ck;
  for (const char* scale : {"1", "2", "3"}) {
    Result r =
        run(data_args() + "--sparse --optimizer sgd --lr 0.5 --batch-size 256 --max-steps 1 --no-progress " +
            "--sparse-lr-scale " + scale + " --checkpoint " + path(std::string("s") + scale + ".ckpt"));
    ASSERT_EQ(r.code, 0) << r.output;
    ck.push_back(load_safetensors(path(std::string("s") + scale + ".ckpt")));
  }
  int tables = 0, mlps = 0;
  for (auto& [name, t] : ck[0].tensors) {
    if (name.find("model.") != 0) continue;  // the model's tensors (not the schedule's or the loader's state)
    const std::vector<double> a = t.to_double_vector(), b = ck[1].get(name).to_double_vector(),
                              c = ck[2].get(name).to_double_vector();
    ASSERT_EQ(a.size(), c.size()) << name;
    const bool table = name.find("emb") != std::string::npos;
    double moved = 0, off_line = 0, apart = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      moved = std::max(moved, std::abs(b[i] - a[i]));
      off_line = std::max(off_line, std::abs(a[i] + c[i] - 2 * b[i]));
      apart = std::max(apart, std::abs(c[i] - a[i]));
    }
    if (table) {
      ++tables;
      EXPECT_GT(moved, 1e-6) << name;  // every table has rows in the batch
      EXPECT_LE(off_line, 1e-6 + 1e-5 * moved) << name;
    } else {
      ++mlps;
      EXPECT_EQ(apart, 0) << name;
    }
  }
  EXPECT_EQ(tables, 26);
  EXPECT_GT(mlps, 0);
}

TEST_F(TrainDlrm, BadOptionsExitWithTwo) {
  for (const char* bad :
       {"--batch-size 0", "--optimizer adam", "--sparse --optimizer vr-sgd", "--mlp-top 1-x-1",
        "--data binary", "--lr nan", "--interaction sum", "--data binary --data-path x.bin --prepare out.bin",
        "--eval-rows train", "--model-parallel --optimizer vr-sgd", "--row-wise-min-rows 100",
        "--model-parallel --row-wise-min-rows -1", "--sparse-lr-scale 5", "--sparse --sparse-lr-scale 0"}) {
    Result r = run(bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.output;
    EXPECT_EQ(lines_with(r.output, "train_dlrm").size(), 1u) << bad << ": " << r.output;
  }
  // The message names the option that cannot be combined.
  EXPECT_NE(run("--model-parallel --optimizer vr-sgd")
                .output.find("--model-parallel takes --optimizer sgd or "
                             "adagrad; got --optimizer vr-sgd"),
            std::string::npos);
  EXPECT_NE(run("--row-wise-min-rows 100").output.find("add --model-parallel"), std::string::npos);
  EXPECT_NE(run("--sparse-lr-scale 5").output.find("it needs --sparse"), std::string::npos);
  Result missing = run("--data binary --data-path /nonexistent/kaggle.bin");
  EXPECT_EQ(missing.code, 1) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/kaggle.bin"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace nabla

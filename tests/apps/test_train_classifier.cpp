// End-to-end tests of the train_classifier binary on a small Fashion-MNIST-format dataset written here:
// each class is a bright 7x7 square at its own place on a noisy 28x28 canvas, so a working LeNet-5 learns
// it in a few dozen steps.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/data.h"
#include "engine/device_runtime.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& args, const std::string& env = "") {
  std::string cmd = env + " " + std::string(NABLA_BINARY_DIR) + "/train_classifier " + args + " 2>&1";
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
  Tensor noise = uniform({n, 28, 28}, 0, 60, {}, &g);
  std::vector<uint8_t> px(n * 28 * 28);
  auto vn = noise.to_vector();
  auto vl = labels.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    int c = static_cast<int>(vl[i]), top = (c / 4) * 7, left = (c % 4) * 7;
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        bool on = y >= top && y < top + 7 && x >= left && x < left + 7;
        px[(i * 28 + y) * 28 + x] =
            static_cast<uint8_t>(on ? 200 + vn[(i * 28 + y) * 28 + x] / 2 : vn[(i * 28 + y) * 28 + x]);
      }
  }
  Tensor images = Tensor::empty({n, 28, 28}, DType::u8);
  std::copy(px.begin(), px.end(), images.data<uint8_t>());
  data::write_idx((dir / (prefix + "-images-idx3-ubyte")).string(), images);
  data::write_idx((dir / (prefix + "-labels-idx1-ubyte")).string(), labels.to(DType::u8), /*gzip=*/true);
}

class TrainClassifier : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/train_classifier"))
      GTEST_SKIP() << "train_classifier was not built (ninja train_classifier)";
  }
  static void SetUpTestSuite() {
    // One folder per process: ctest runs each test of this suite in its own process, in parallel.
    dir_ = fs::temp_directory_path() / ("nabla_train_classifier_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_split(dir_, "train", 640, 1);
    write_split(dir_, "t10k", 200, 2);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path dir_;
};
fs::path TrainClassifier::dir_;

TEST_F(TrainClassifier, LearnsWritesMetricsAndResumes) {
  std::string ck = (dir_ / "ck.safetensors").string(), metrics = (dir_ / "m.jsonl").string();
  std::string common =
      "--data-dir " + dir_.string() + " --batch-size 32 --lr 0.05 --warmup-steps 5 --threads 2 --no-progress";
  Result r = run(common + " --epochs 2 --checkpoint " + ck + " --metrics " + metrics);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 2/2"), std::string::npos) << r.output;
  // The last epoch's test accuracy is far above chance (10%).
  auto pos = r.output.rfind("test acc ");
  ASSERT_NE(pos, std::string::npos) << r.output;
  double acc = std::stod(r.output.substr(pos + 9));
  EXPECT_GT(acc, 60.0) << r.output;
  EXPECT_TRUE(fs::exists(ck));
  EXPECT_FALSE(fs::exists(ck + ".tmp"));
  std::ifstream m(metrics);
  std::string line;
  int epochs = 0;
  while (std::getline(m, line)) epochs += line.find("\"kind\":\"epoch\"") != std::string::npos;
  EXPECT_EQ(epochs, 2);

  Result again = run(common + " --epochs 3 --resume " + ck);
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("resumed from"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("epoch 3/3"), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("epoch 1/3"), std::string::npos) << again.output;  // epochs 1-2 are not redone
}

TEST_F(TrainClassifier, BadOptionsEndWithOneLineAndNonZeroExit) {
  Result r = run("--bogus");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("bogus"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--help"), std::string::npos) << r.output;
  r = run("--data-dir /no/such/dir");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("/no/such/dir"), std::string::npos) << r.output;
  r = run("--data-dir " + dir_.string() + " --optimizer rmsprop");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("rmsprop"), std::string::npos) << r.output;
  r = run("--data-dir " + dir_.string() + " --batch-size 0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("batch-size"), std::string::npos) << r.output;
  r = run("--data-dir " + dir_.string() + " --resume " + (dir_ / "missing.safetensors").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("missing.safetensors"), std::string::npos) << r.output;
  r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt :
       {"--model", "--optimizer", "--schedule", "--checkpoint", "--resume", "--metrics", "--seed"})
    EXPECT_NE(r.output.find(opt), std::string::npos) << opt;
  EXPECT_NE(r.output.find("(=lenet5)"), std::string::npos) << "defaults are listed";
}

TEST_F(TrainClassifier, CorruptDataFileNamesTheFileAndOffset) {
  fs::path bad = dir_ / "bad";
  fs::create_directories(bad);
  for (auto& e : fs::directory_iterator(dir_))
    if (e.is_regular_file() && e.path().filename().string().find("idx") != std::string::npos)
      fs::copy_file(e.path(), bad / e.path().filename(), fs::copy_options::overwrite_existing);
  fs::resize_file(bad / "train-images-idx3-ubyte", 5000);  // truncated pixels
  Result r = run("--data-dir " + bad.string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("train-images-idx3-ubyte"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("byte 16"), std::string::npos) << r.output;
}

// CIFAR-10 binary files (5 train batches of `per_file` images, one test batch): class c is a colour of its
// own (one of 10 corners and edges of the RGB cube) under uniform noise, which a ResNet's global average
// pool picks up within a few steps.
void write_cifar(const fs::path& dir, int64_t per_file, int64_t test_n) {
  static const int kColours[10][3] = {{200, 40, 40},   {40, 200, 40},  {40, 40, 200},   {200, 200, 40},
                                      {200, 40, 200},  {40, 200, 200}, {200, 200, 200}, {40, 40, 40},
                                      {120, 120, 200}, {200, 120, 40}};
  auto make = [](int64_t n, uint64_t seed) {
    Generator g{seed, 0};
    Tensor labels = randint(0, 10, {n}, {}, &g);
    auto noise = uniform({n, 32, 32, 3}, -40, 40, {}, &g).to_vector();
    auto vl = labels.to_vector();
    Tensor images = Tensor::empty({n, 32, 32, 3}, DType::u8);
    uint8_t* px = images.data<uint8_t>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = 0; p < 32 * 32 * 3; ++p)
        px[i * 3072 + p] =
            static_cast<uint8_t>(kColours[static_cast<int>(vl[i])][p % 3] + noise[i * 3072 + p]);
    return data::LabeledImages{images, labels};
  };
  for (int b = 1; b <= 5; ++b)
    data::write_cifar_file((dir / ("data_batch_" + std::to_string(b) + ".bin")).string(),
                           make(per_file, 10 + b));
  data::write_cifar_file((dir / "test_batch.bin").string(), make(test_n, 20));
}

// The train_loss of each epoch record in a metrics file.
std::vector<double> epoch_losses(const std::string& metrics) {
  std::ifstream m(metrics);
  std::string line;
  std::vector<double> out;
  while (std::getline(m, line)) {
    if (line.find("\"kind\":\"epoch\"") == std::string::npos) continue;
    auto pos = line.find("\"train_loss\":");
    if (pos != std::string::npos) out.push_back(std::stod(line.substr(pos + 13)));
  }
  return out;
}

TEST_F(TrainClassifier, Resnet20OnCifarFormatFilesLowersTheLoss) {
  fs::path cifar = dir_ / "cifar";
  fs::create_directories(cifar);
  write_cifar(cifar, 10, 20);  // 50 train images: 6 steps of 8 per epoch
  std::string metrics = (dir_ / "cifar.jsonl").string();
  Result r = run("--dataset cifar10 --data-dir " + cifar.string() +
                 " --model resnet20 --batch-size 8 --epochs 2 --lr 0.02 --warmup-steps 1 --threads 2"
                 " --no-progress --metrics " +
                 metrics);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("model resnet20: 272,474 parameters"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("top-5"), std::string::npos) << "10 classes: top-5 is reported\n" << r.output;
  EXPECT_NE(r.output.find("throughput:"), std::string::npos) << r.output;
  auto losses = epoch_losses(metrics);
  ASSERT_EQ(losses.size(), 2u) << r.output;
  EXPECT_LT(losses[1], losses[0]) << r.output;
  EXPECT_LT(losses[1], 2.0) << "well below chance level (ln 10 = 2.30)\n" << r.output;
}

// LeNet-5 is built for the padded size (32), so unpadded data would not even fit its classifier layer;
// the ResNet path is the test above (resnet20 costs seconds per hundred images on the CPU).
TEST_F(TrainClassifier, PadFeedsFashionMnistToTheCifarResnets) {
  Result r = run("--data-dir " + dir_.string() +
                 " --model lenet5 --pad 32 --augment --limit-train 64 --batch-size 16 --epochs 1 --threads 2"
                 " --no-progress");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 1/1"), std::string::npos) << r.output;
  r = run("--data-dir " + dir_.string() + " --pad 20");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--pad 20: the images are already 28 x 28"), std::string::npos) << r.output;
}

TEST_F(TrainClassifier, SyntheticDataTrainsOnOneDeviceBatchAndReportsThroughput) {
  std::string metrics = (dir_ / "synthetic.jsonl").string();
  Result r =
      run("--dataset synthetic --model lenet5 --image-size 28 --channels 1 --classes 10 --batch-size 32"
          " --limit-train 320 --epochs 3 --lr 0.05 --warmup-steps 3 --threads 2 --no-progress --amp bf16"
          " --metrics " +
          metrics);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(
      r.output.find("dataset synthetic: 32 images of 1x28x28, 10 classes, made on cpu | 10 steps/epoch"),
      std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("changes nothing on the CPU"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("throughput:"), std::string::npos) << r.output;
  auto losses = epoch_losses(metrics);
  ASSERT_EQ(losses.size(), 3u) << r.output;
  EXPECT_LT(losses[2], losses[0]) << "the one batch is being memorised\n" << r.output;
  std::ifstream m(metrics);
  std::string line, last;
  while (std::getline(m, line)) last = line;
  EXPECT_NE(last.find("\"kind\":\"summary\""), std::string::npos) << last;
  r = run("--dataset synthetic --amp f8");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--amp f8: expected off or bf16"), std::string::npos) << r.output;
}

TEST_F(TrainClassifier, CudaGraphTrainsAsTheEagerRunDoes) {
#ifdef NABLA_HAS_CUDA
  if (!runtime::available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA device";
  // ResNet-20 (batch norm, residual adds) on padded 28² images; 100 examples make 3 batches of 32 an epoch
  // (the loader drops the last partial batch): the run's first step is eager, the other 8 are replays. TF32
  // off and cuDNN's heuristic algorithm choice (NABLA_CUDNN_FIND=0) instead of its timing, which could pick
  // other algorithms (other roundings) in each process: the two runs then run the same kernels.
  const std::string common = "--data-dir " + dir_.string() +
                             " --model resnet20 --pad 32 --device cuda --batch-size 32 --limit-train 100 "
                             "--epochs 3 --lr 0.05 --warmup-steps 2 --no-progress";
  const std::string m_eager = (dir_ / "eager.jsonl").string(), m_graph = (dir_ / "graph.jsonl").string();
  const std::string env = "NABLA_TF32=0 NABLA_CUDNN_FIND=0";
  Result eager = run(common + " --metrics " + m_eager, env);
  ASSERT_EQ(eager.code, 0) << eager.output;
  Result graph = run(common + " --cuda-graph --metrics " + m_graph, env);
  ASSERT_EQ(graph.code, 0) << graph.output;
  EXPECT_NE(graph.output.find("cuda graph: the forward and backward captured as"), std::string::npos)
      << graph.output;
  const auto le = epoch_losses(m_eager), lg = epoch_losses(m_graph);
  ASSERT_EQ(le.size(), 3u) << eager.output;
  ASSERT_EQ(lg.size(), 3u) << graph.output;
  for (size_t i = 0; i < 3; ++i)
    EXPECT_NEAR(lg[i], le[i], 1e-4 * le[i]) << "epoch " << i + 1 << "\n" << eager.output << graph.output;
  EXPECT_LT(lg[2], lg[0]) << graph.output;

  Result bad = run("--cuda-graph --max-steps 1");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("--cuda-graph needs --device cuda"), std::string::npos) << bad.output;
  bad = run("--device cuda --cuda-graph --optimizer vr-lars --max-steps 1");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("--optimizer lars or leave out --cuda-graph"), std::string::npos) << bad.output;
#else
  GTEST_SKIP() << "a build without CUDA";
#endif
}

}  // namespace
}  // namespace nabla

// ---- the command line (apps/common/options.h) and hostile inputs (issue 15) ------------------------------
#include <sys/wait.h>

#include <csignal>

#include "engine/safetensors.h"

namespace nabla {
namespace {

// The exit code and output of `binary args`, parse only when `args` ends with --print-config.
Result run_binary(const std::string& binary, const std::string& args) {
  std::string cmd = std::string(NABLA_BINARY_DIR) + "/" + binary + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

TEST_F(TrainClassifier, EachBadOptionClassExitsWith2AndOneLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--bogus", "unrecognised option '--bogus'"},
      {"--lr", "the required argument for option '--lr' is missing"},
      {"--lr --epochs 3",
       "option '--lr' needs a value, got the option '--epochs' (write --lr=VALUE for a value that starts "
       "with --)"},
      {"--lr fast", "option '--lr': 'fast' is not a number (expected a number > 0)"},
      {"--batch-size 0",
       "option '--batch-size': '0' is out of range (expected an integer in [1, 1073741824])"},
      {"--lr nan", "option '--lr': 'nan' is not a finite number"},
      {"--epochs -3", "option '--epochs': '-3' is out of range (expected an integer >= 1)"},
      {"--momentum 5", "option '--momentum': '5' is out of range (expected a number in [0, 1))"},
      {"--clip -1", "option '--clip': '-1' is out of range (expected a number >= 0)"},
      {"--threads 4294967297",
       "option '--threads': '4294967297' is out of range (expected an integer in [0, 4096])"},
      {"--workers 4294967296",
       "option '--workers': '4294967296' is out of range (expected an integer in [0, 256])"},
      {"--seed -1", "option '--seed': '-1' is out of range (expected a non-negative integer)"},
      {"--model vgg",
       "option '--model': 'vgg' is not one of lenet5, mlp, resnet18, resnet34, resnet50, resnet101, "
       "resnet152, "
       "resnet20, resnet32, resnet44, resnet56, resnet110"},
      {"--schedule step:size=10",
       "schedule 'step:size=10': unknown key 'size' for step (keys: lr, warmup, "
       "warmup_start, every, gamma)"},
      {"--schedule cosine:end=inf", "schedule 'cosine:end=inf': end=inf is not a finite number"},
      {"--cuda-graph", "--cuda-graph needs --device cuda (got --device cpu)"},
      {"--device gpu", "option '--device': 'gpu' is not a device (expected cpu, cuda or cuda:N)"},
      {"stray",
       "unexpected argument 'stray' (options start with --; this program takes no positional arguments)"},
  };
  for (const auto& [args, message] : cases) {
    Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output, "train_classifier: " + message + " (see --help)\n") << args;
  }
}

// Every example of every binary's --help, and every train_classifier command line in the README and the
// docs, parses (--print-config: parse and check, no training).
TEST_F(TrainClassifier, HelpExamplesAndReadmeCommandLinesParse) {
  int checked = 0;
  for (const std::string binary : {"train_classifier", "vrgd_linreg", "demo_mlp", "search_darts", "train_darts"}) {
    Result help = run_binary(binary, "--help");
    ASSERT_EQ(help.code, 0) << binary << "\n" << help.output;
    EXPECT_NE(help.output.find("Usage: " + binary + " [options]"), std::string::npos) << help.output;
    std::istringstream lines(help.output.substr(help.output.find("\nExamples:")));
    std::string line;
    int examples = 0;
    while (std::getline(lines, line)) {
      const std::string prefix = "  " + binary;
      if (line.rfind(prefix, 0) != 0) continue;
      Result r = run_binary(binary, line.substr(prefix.size()) + " --print-config");
      EXPECT_EQ(r.code, 0) << binary << " example:" << line << "\n" << r.output;
      ++examples, ++checked;
    }
    EXPECT_GE(examples, 1) << binary;
  }
  // Command lines in fenced code blocks, continuation lines joined, up to a comment or a shell operator.
  for (const char* doc : {"README.md", "docs/vrgd.md", "docs/distributed.md", "docs/cuda_graphs.md"}) {
    std::ifstream f(std::string(NABLA_SOURCE_DIR) + "/" + doc);
    std::string line;
    bool code = false;
    while (std::getline(f, line)) {
      if (line.rfind("```", 0) == 0) code = !code;
      const size_t at = line.find("./build/train_classifier");
      if (!code || at == std::string::npos) continue;
      std::string cmd = line.substr(at + std::string("./build/train_classifier").size());
      while (!cmd.empty() && cmd.back() == '\\' && std::getline(f, line))
        cmd = cmd.substr(0, cmd.size() - 1) + line;
      for (const char* stop : {" #", "&&", " | ", ";"})
        if (size_t s = cmd.find(stop); s != std::string::npos) cmd = cmd.substr(0, s);
      if (cmd.find("...") != std::string::npos || cmd.find("train_classifier") != std::string::npos) continue;
      Result r = run(cmd + " --print-config");
      EXPECT_EQ(r.code, 0) << doc << ": ./build/train_classifier" << cmd << "\n" << r.output;
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
}

TEST_F(TrainClassifier, ConfigFileRunsAsTheCommandLine) {
  const fs::path cfg = dir_ / "run.cfg";
  std::ofstream(cfg)
      << "# a config\nmodel = mlp\nlr = 0.01\nnesterov = true\nschedule = step:every=5,gamma=0.5\n";
  Result a = run("--config " + cfg.string() + " --epochs 2 --print-config");
  Result b =
      run("--model mlp --lr 0.01 --nesterov --schedule step:every=5,gamma=0.5 --epochs 2 --print-config");
  ASSERT_EQ(a.code, 0) << a.output;
  EXPECT_EQ(a.output, b.output);
  EXPECT_NE(a.output.find("model = mlp\n"), std::string::npos) << a.output;
}

Result run_in(const fs::path& data, const std::string& args) {
  return run("--data-dir " + data.string() + " " + args);
}

// The line `train_classifier: <message>` is in the output.
bool has_error(const Result& r, const std::string& message) {
  return r.output.find("train_classifier: " + message + "\n") != std::string::npos;
}

TEST_F(TrainClassifier, HostileSizesAndDataSetsGetOneClearLine) {
  const std::string quick = " --threads 2 --no-progress --batch-size 32";
  // --epochs times the steps per epoch must not wrap.
  Result r = run_in(dir_, "--epochs 9223372036854775807" + quick);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(has_error(r,
                        "--epochs 9223372036854775807 x 20 steps per epoch does not fit a 64-bit step count "
                        "(give fewer --epochs, or --max-steps)"))
      << r.output;
  r = run_in(dir_, "--epochs 9223372036854775807 --max-steps 2" + quick);
  EXPECT_EQ(r.code, 0) << r.output;
  r = run("--dataset synthetic --batch-size 1073741824 --channels 4096 --image-size 4096 --max-steps 1");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(has_error(
      r,
      "--dataset synthetic: batch x channels x image size x image size x 4 bytes: 18014398509481984 "
      "x 4096 does not fit in a signed 64-bit size"))
      << r.output;

  // A batch larger than the training set; an empty training set.
  r = run_in(dir_, "--limit-train 10" + quick);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(
      has_error(r,
                "--batch-size 32 is larger than the training set's 10 examples (an epoch drops the last "
                "partial batch, so it would have no step)"))
      << r.output;
  const fs::path empty = dir_ / "empty_train";
  fs::create_directories(empty);
  write_split(empty, "train", 0, 1);
  write_split(empty, "t10k", 20, 2);
  r = run_in(empty, quick);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(has_error(r, "--data-dir " + empty.string() + ": the training set is empty")) << r.output;

  // Train 28 x 28, test 32 x 32: refused at start-up, before an epoch of training.
  const fs::path sizes = dir_ / "sizes";
  fs::create_directories(sizes);
  write_split(sizes, "train", 64, 1);
  Tensor big = Tensor::empty({10, 32, 32}, DType::u8);
  std::fill_n(big.data<uint8_t>(), big.numel(), uint8_t{7});
  data::write_idx((sizes / "t10k-images-idx3-ubyte").string(), big);
  data::write_idx((sizes / "t10k-labels-idx1-ubyte").string(), zeros({10}).to(DType::u8));
  r = run_in(sizes, quick);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(has_error(r, "--data-dir " + sizes.string() +
                               ": the training images are [28,28] but the test images "
                               "are [32,32] (one size for both is needed; --pad N pads both to N x N)"))
      << r.output;
  EXPECT_EQ(r.output.find("epoch 1/"), std::string::npos) << r.output;

  // An empty test set reports no accuracy rather than 0.00%.
  const fs::path no_test = dir_ / "no_test";
  fs::create_directories(no_test);
  write_split(no_test, "train", 64, 1);
  write_split(no_test, "t10k", 0, 2);
  r = run_in(no_test, "--epochs 1" + quick);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("note: the test set is empty; no test accuracy will be reported"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("test acc n/a (empty test set)"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("test acc 0.00%"), std::string::npos) << r.output;
}

TEST_F(TrainClassifier, DivergedLossStopsNamingTheStep) {
  const std::string args =
      " --lr 1e30 --warmup-steps 0 --schedule constant --max-steps 6 --threads 2 --no-progress";
  Result r = run_in(dir_, args);
  EXPECT_EQ(r.code, 1) << r.output;
  const size_t at = r.output.find("train_classifier: step ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
  EXPECT_NE(line.find(": the loss is "), std::string::npos) << line;
  EXPECT_NE(
      line.find(
          "(the run diverged: lower --lr, warm up longer or clip with --clip; --allow-nonfinite goes on)"),
      std::string::npos)
      << line;
  r = run_in(dir_, args + " --allow-nonfinite");
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST_F(TrainClassifier, ResumeRefusesDirectoriesAndBadCheckpointsAndCleansStaleTemporaries) {
  Result r = run_in(dir_, "--resume " + dir_.string());
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(has_error(r, "--resume " + dir_.string() + ": is a directory, expected a checkpoint file"))
      << r.output;

  const std::string ck = (dir_ / "hostile.safetensors").string();
  const std::string common = " --batch-size 32 --threads 2 --no-progress --max-steps 3";
  std::ofstream(ck + ".tmp") << "left by a killed run";
  r = run_in(dir_, "--checkpoint " + ck + common);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("note: removed " + ck + ".tmp, left by a run stopped while writing its checkpoint"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(ck + ".tmp"));

  // A loader position that the run cannot have reached.
  SafetensorsFile f = load_safetensors(ck);
  f.metadata["loader_batch"] = "9223372036854775807";
  save_safetensors(ck, NamedTensors(f.tensors.begin(), f.tensors.end()), f.metadata);
  r = run_in(dir_, "--resume " + ck + common);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(
      has_error(r, "checkpoint " + ck +
                       ": field 'loader_batch' is 9223372036854775807, expected at most the run's 20 steps "
                       "per epoch"))
      << r.output;
}

// Ctrl-C / SIGTERM: the run writes a checkpoint at the step it reached and exits 128 + the signal; resuming
// from it ends exactly where an uninterrupted run ends (same parameters, bit for bit; same epoch lines).
struct Spawned {
  pid_t pid;
  int out;  // stdout and stderr
};

Spawned spawn(const std::vector<std::string>& args) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    std::string bin = std::string(NABLA_BINARY_DIR) + "/train_classifier";
    argv.push_back(bin.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

// Reads until `marker` is in the output (or the end); returns what came.
std::string read_until(int fd, const std::string& marker, std::string out = "") {
  char buf[4096];
  while (marker.empty() || out.find(marker) == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string epoch_line(const std::string& output, int epoch) {
  const std::string key = "epoch " + std::to_string(epoch) + "/";
  size_t at = output.find("\n" + key);
  if (at == std::string::npos) return "";
  std::string line = output.substr(at + 1, output.find('\n', at + 1) - at - 1);
  return line.substr(0, line.rfind(" | "));  // without the elapsed time
}

TEST_F(TrainClassifier, SignalWritesACheckpointAndResumeEndsAsAnUninterruptedRun) {
  const std::string straight_ck = (dir_ / "straight.safetensors").string();
  const std::string stopped_ck = (dir_ / "stopped.safetensors").string();
  // 80 steps an epoch: the signal, sent at step 3, lands well inside the run even on a loaded machine.
  const std::vector<std::string> common = {
      "--data-dir",     dir_.string(), "--batch-size", "8", "--epochs",      "2", "--lr", "0.05",
      "--warmup-steps", "5",           "--threads",    "2", "--print-every", "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  Spawned straight = spawn(with({"--checkpoint", straight_ck}));
  const std::string straight_out = read_until(straight.out, "");
  int status = 0;
  waitpid(straight.pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << straight_out;

  for (int sig : {SIGTERM, SIGINT}) {
    Spawned stopped = spawn(with({"--checkpoint", stopped_ck}));
    std::string out = read_until(stopped.out, "step 3/160");
    kill(stopped.pid, sig);
    out = read_until(stopped.out, "", out);
    waitpid(stopped.pid, &status, 0);
    close(stopped.out);
    ASSERT_TRUE(WIFEXITED(status)) << out;
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << out;
    EXPECT_NE(out.find("stopping at step"), std::string::npos) << out;
    EXPECT_NE(out.find("checkpoint written to " + stopped_ck), std::string::npos) << out;
    EXPECT_EQ(out.find("throughput:"), std::string::npos) << "the run did not finish\n" << out;
  }
  ASSERT_TRUE(fs::exists(stopped_ck));
  EXPECT_FALSE(fs::exists(stopped_ck + ".tmp"));

  Spawned resumed = spawn(with({"--resume", stopped_ck, "--checkpoint", stopped_ck}));
  const std::string resumed_out = read_until(resumed.out, "");
  waitpid(resumed.pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << resumed_out;
  for (int e = 1; e <= 2; ++e) {
    EXPECT_FALSE(epoch_line(straight_out, e).empty()) << straight_out;
    EXPECT_EQ(epoch_line(resumed_out, e), epoch_line(straight_out, e)) << "epoch " << e << "\n"
                                                                       << resumed_out;
  }
  SafetensorsFile a = load_safetensors(straight_ck), b = load_safetensors(stopped_ck);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_EQ(a.tensors[i].second.to_vector(), b.tensors[i].second.to_vector()) << a.tensors[i].first;
  }
}

}  // namespace
}  // namespace nabla

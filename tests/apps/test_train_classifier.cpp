// End-to-end tests of the train_classifier binary on a small Fashion-MNIST-format dataset written here:
// each class is a bright 7x7 square at its own place on a noisy 28x28 canvas, so a working LeNet-5 learns
// it in a few dozen steps.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/data.h"
#ifdef NABLA_HAS_CUDA
#include "cuda/runtime.h"
#endif
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
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
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

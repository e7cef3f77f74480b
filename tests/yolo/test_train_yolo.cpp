// Training a tiny Darknet detector: the loss falls on two images (in process), and the train_yolo binary
// end to end (train with checkpoints and metrics, resume, detect to JSON, map) and its bad command lines.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "models/darknet/network.h"
#include "models/darknet/weights.h"
#include "models/darknet/yolo_loss.h"
#include "yolo/yolo_testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;
using namespace models::darknet;

TEST(YoloTraining, LossFallsOnTwoImages) {
  const std::string dir = test::yolo_temp_dir("two_images");
  test::write_synthetic_set(dir, 2, 64, 64, static_cast<uint32_t>(test::next_seed()));
  data::YoloDataset ds(dir + "/images", 2);
  manual_seed(test::next_seed());
  DarknetNetwork net(parse_cfg(test::tiny_yolo_cfg(), "tiny.cfg"));
  net.train();
  optim::Sgd sgd(optim::split_decay_groups(net.named_parameters(), 0.0005),
                 {.lr = 0.005, .momentum = 0.9, .weight_decay = 0.0005});
  data::DetectionAugment off;
  off.enabled = false;
  const auto batch = ds.batch({0, 1}, 64, 64, off, 0);
  std::vector<std::vector<TruthBox>> truths;
  for (const auto& img : batch.boxes) {
    truths.emplace_back();
    for (const auto& b : img) truths.back().push_back({b.x, b.y, b.w, b.h, b.cls});
  }
  double first = 0, last = 0;
  float first_cost = 0, last_cost = 0;
  for (int step = 0; step < 35; ++step) {
    sgd.zero_grad();
    NetworkLoss l = network_yolo_loss(net, net.forward_yolo(batch.images), truths);
    (l.loss * 0.5).backward();
    sgd.step();
    if (step == 0) first = l.loss.item_double(), first_cost = l.darknet_cost;
    last = l.loss.item_double(), last_cost = l.darknet_cost;
  }
  EXPECT_LT(last, 0.3 * first) << first << " -> " << last;
  std::printf("loss %.2f -> %.2f, Darknet cost %.2f -> %.2f\n", first, last, first_cost, last_cost);
  EXPECT_LT(last_cost, 0.3f * first_cost) << first_cost << " -> " << last_cost;
}

struct Result {
  int code = -1;
  std::string output;
};

Result run_yolo(const std::string& args) {
  const std::string cmd =
      "OMP_NUM_THREADS=2 " + std::string(NABLA_BINARY_DIR) + "/train_yolo " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

class TrainYolo : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/train_yolo"))
      GTEST_SKIP() << "train_yolo was not built (ninja train_yolo)";
  }
};

TEST_F(TrainYolo, BadCommandLinesExitWith2AndOneLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--mode fit --cfg a.cfg --data d", "option '--mode': 'fit' is not one of train, detect, map"},
      {"--data d", "--cfg is required"},
      {"--cfg a.cfg", "--data is required"},
      {"--cfg a.cfg --data d --thresh 2",
       "option '--thresh': '2' is out of range (expected a number in [0, 1])"},
      {"--cfg a.cfg --data d --weights a --resume b",
       "--resume and --weights both give the starting weights"},
      {"--cfg a.cfg --data d --batch -1", "option '--batch': '-1' is out of range"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run_yolo(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("train_yolo: " + message), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  // A run that fails (a cfg that does not exist) exits 1.
  EXPECT_EQ(run_yolo("--cfg /nonexistent.cfg --data /tmp").code, 1);
}

// Every --help example and every train_yolo command line in docs/yolo.md parses (--print-config).
TEST_F(TrainYolo, HelpExamplesAndDocCommandLinesParse) {
  const Result help = run_yolo("--help");
  ASSERT_EQ(help.code, 0) << help.output;
  std::istringstream lines(help.output.substr(help.output.find("\nExamples:")));
  int checked = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("  train_yolo", 0) != 0) continue;
    const Result r = run_yolo(line.substr(std::string("  train_yolo").size()) + " --print-config");
    EXPECT_EQ(r.code, 0) << line << "\n" << r.output;
    ++checked;
  }
  EXPECT_GE(checked, 3);
  std::ifstream doc(std::string(NABLA_SOURCE_DIR) + "/docs/yolo.md");
  bool code = false;
  int doc_lines = 0;
  for (std::string line; std::getline(doc, line);) {
    if (line.rfind("```", 0) == 0) code = !code;
    const size_t at = line.find("./build/train_yolo");
    if (!code || at == std::string::npos) continue;
    std::string cmd = line.substr(at + std::string("./build/train_yolo").size());
    while (!cmd.empty() && cmd.back() == '\\' && std::getline(doc, line))
      cmd = cmd.substr(0, cmd.size() - 1) + line;
    const Result r = run_yolo(cmd + " --print-config");
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.output;
    ++doc_lines;
  }
  EXPECT_GE(doc_lines, 5);
}

TEST_F(TrainYolo, TrainsResumesDetectsAndEvaluates) {
  const std::string dir = test::yolo_temp_dir("app");
  test::write_synthetic_set(dir, 4, 64, 64, static_cast<uint32_t>(test::next_seed()));
  std::ofstream(dir + "/tiny.cfg") << test::tiny_yolo_cfg();
  std::ofstream(dir + "/names.txt") << "red\nblue\n";
  const std::string base =
      "--cfg " + dir + "/tiny.cfg --data " + dir + "/images --no-progress --names " + dir + "/names.txt";
  const std::string weights = dir + "/tiny.weights";
  Result r = run_yolo(base + " --max-steps 20 --no-augment --checkpoint " + weights + " --metrics " + dir +
                      "/m.jsonl --save-every 10");
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(fs::exists(weights));
  EXPECT_FALSE(fs::exists(weights + ".tmp"));
  DarknetNetwork net(parse_cfg(test::tiny_yolo_cfg(), "tiny.cfg"));
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(weights)), weights_file_size(net));
  load_weights(net, weights);
  EXPECT_EQ(net.images_seen, 40u);  // 20 updates of batch 2
  std::vector<double> losses;
  std::ifstream m(dir + "/m.jsonl");
  for (std::string line; std::getline(m, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("kind", "") == "yolo") losses.push_back(j["loss"].get<double>());
  }
  ASSERT_EQ(losses.size(), 20u);
  const double head = (losses[0] + losses[1] + losses[2] + losses[3]) / 4;
  const double tail = (losses[16] + losses[17] + losses[18] + losses[19]) / 4;
  EXPECT_LT(tail, 0.5 * head) << r.output;

  r = run_yolo(base + " --max-steps 22 --resume " + weights + " --checkpoint " + dir + "/resumed.weights");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("40 images seen, update 20"), std::string::npos) << r.output;
  load_weights(net, dir + "/resumed.weights");
  EXPECT_EQ(net.images_seen, 44u);

  r = run_yolo(base + " --mode detect --weights " + weights + " --thresh 0.05 --out " + dir + "/dets.json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto dets = nlohmann::json::parse(std::ifstream(dir + "/dets.json"));
  ASSERT_EQ(dets.size(), 4u);
  EXPECT_EQ(dets[0]["frame_id"], 1);
  EXPECT_TRUE(dets[0]["objects"].is_array());

  r = run_yolo(base + " --mode map --weights " + weights);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("| 0 | red | "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mAP@0.5 = "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace nabla

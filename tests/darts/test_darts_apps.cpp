// search_darts and train_darts end to end on tiny synthetic data: a search resumed from its epoch-1
// checkpoint ends exactly where the uninterrupted search ends; bad options and genotypes exit with a
// message; train_darts trains a genotype file written by search_darts.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& binary, const std::string& args) {
  const std::string cmd =
      "OMP_NUM_THREADS=1 " + std::string(NABLA_BINARY_DIR) + "/" + binary + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string last_line_with(const std::string& text, const std::string& what) {
  std::istringstream in(text);
  std::string line, found;
  while (std::getline(in, line))
    if (line.find(what) != std::string::npos) found = line;
  return found;
}

class DartsApps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(std::string(NABLA_BINARY_DIR) + "/search_darts"))
      GTEST_SKIP() << "search_darts not built";
    dir = fs::temp_directory_path() / ("darts_apps_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
  const std::string tiny =
      "--dataset synthetic --limit-train 64 --image-size 8 --init-channels 2 --batch-size 16 "
      "--epochs 2 --arch-lr 3e-3 --no-progress";
};

TEST_F(DartsApps, ResumedSearchEndsWhereTheUninterruptedOneEnds) {
  const std::string ck = (dir / "ck.safetensors").string(), g = (dir / "g.txt").string();
  Result full = run("search_darts", tiny + " --genotype-out " + g);
  ASSERT_EQ(full.code, 0) << full.output;
  const std::string want = last_line_with(full.output, "epoch 2/2");
  ASSERT_FALSE(want.empty()) << full.output;
  Result part = run("search_darts", tiny + " --checkpoint " + ck + " --stop-after 1");
  ASSERT_EQ(part.code, 0) << part.output;
  EXPECT_EQ(last_line_with(part.output, "epoch 2/2"), "");
  Result rest = run("search_darts", tiny + " --resume " + ck);
  ASSERT_EQ(rest.code, 0) << rest.output;
  EXPECT_NE(rest.output.find("resumed from"), std::string::npos) << rest.output;
  // everything up to the timing fields is identical: losses, accuracies, weight-free counts
  auto strip_time = [](const std::string& s) { return s.substr(0, s.find(" | ", s.find("weight-free"))); };
  EXPECT_EQ(strip_time(last_line_with(rest.output, "epoch 2/2")), strip_time(want));
  std::ifstream gf(g);
  std::string genotype;
  std::getline(gf, genotype);
  EXPECT_EQ(last_line_with(rest.output, "genotype = "), "genotype = " + genotype);
  // a checkpoint of another search is refused, naming the mismatch
  Result other = run("search_darts", tiny + " --network darts --layers 3 --resume " + ck);
  EXPECT_EQ(other.code, 1) << other.output;
  EXPECT_NE(other.output.find("network 'bcnn'"), std::string::npos) << other.output;
}

TEST_F(DartsApps, TrainDartsTrainsASearchedGenotypeAndRefusesBadOnes) {
  const std::string g = (dir / "g.txt").string();
  std::ofstream(g)
      << "some log line\ngenotype = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), "
         "('dil_conv_3x3', 2), ('max_pool_3x3', 1), ('sep_conv_5x5', 0), ('avg_pool_3x3', 3), "
         "('none', 4), ('dil_conv_5x5', 1)], normal_concat=[2, 3, 4, 5], reduce=[('avg_pool_3x3', 0), "
         "('sep_conv_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('dil_conv_5x5', 3), "
         "('sep_conv_5x5', 2), ('skip_connect', 4), ('avg_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])\n";
  Result ok = run("train_darts",
                  "--genotype " + g +
                      " --dataset synthetic --limit-train 64 --limit-test 32 "
                      "--image-size 8 --init-channels 2 --batch-size 16 --epochs 1 --cutout 2 --no-progress");
  ASSERT_EQ(ok.code, 0) << ok.output;
  EXPECT_NE(ok.output.find("multiply-adds per image"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("epoch 1/1"), std::string::npos) << ok.output;
  Result bad = run("train_darts", "--genotype \"Genotype(normal=[('conv_9x9', 0)]\" --dataset synthetic");
  EXPECT_EQ(bad.code, 1) << bad.output;
  EXPECT_NE(bad.output.find("unknown operation 'conv_9x9'"), std::string::npos) << bad.output;
  Result opt = run("search_darts", "--network resnet");
  EXPECT_EQ(opt.code, 2) << opt.output;
  EXPECT_NE(opt.output.find("bcnn"), std::string::npos) << opt.output;
}

}  // namespace
}  // namespace nabla

// models/darknet/yolo_loss.h: Darknet's [yolo] training delta, checked against libdarknet's own
// forward_yolo_layer (tests/yolo/fixtures/yolo_loss_oracle.c; skips without Debian's darknet), a
// hand-computed case, finite differences of the loss whose gradient the delta is, and (the CPU kernel of
// ops/yolo_loss.h) bit for bit against a frozen copy of the host code it replaced
// (tests/yolo/yolo_loss_reference.h).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <unistd.h>

#include "autograd/autograd.h"
#include "models/darknet/yolo_loss.h"
#include "ops/yolo_loss.h"
#include "testing.h"
#include "yolo/yolo_loss_reference.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;
using namespace models::darknet;

std::string temp_dir() {
  fs::path dir = fs::path(NABLA_BINARY_DIR) / "test_yolo";
  fs::create_directories(dir);
  return dir.string();
}

bool have_darknet() {
  return fs::exists("/usr/lib/darknet/libdarknet.so") && fs::exists("/usr/lib/darknet/include/darknet.h");
}

// Builds the oracle once per process.
std::string oracle_binary() {
  static std::string bin;
  if (!bin.empty()) return bin;
  const std::string out = temp_dir() + "/yolo_loss_oracle";
  const std::string src = std::string(NABLA_SOURCE_DIR) + "/tests/yolo/fixtures/yolo_loss_oracle.c";
  if (fs::exists(out) && fs::last_write_time(out) >= fs::last_write_time(src)) return bin = out;
  // Compiled to a file of this process, then renamed into place: ctest runs the suite as several shard
  // processes, and one once executed the binary while another was still writing it (exit 126).
  const std::string tmp = out + "." + std::to_string(getpid()) + ".tmp";
  const std::string cmd = std::string("cc -O2 -o ") + tmp + " " + NABLA_SOURCE_DIR +
                          "/tests/yolo/fixtures/yolo_loss_oracle.c -I/usr/lib/darknet/include "
                          "-L/usr/lib/darknet -ldarknet -Wl,-rpath,/usr/lib/darknet -lm";
  if (std::system(cmd.c_str()) != 0) return "";
  fs::rename(tmp, out);
  bin = out;
  return bin;
}

struct OracleResult {
  std::vector<float> delta;
  float cost = 0;
  std::string line;
};

OracleResult run_oracle(const YoloParams& p, const Tensor& z,
                        const std::vector<std::vector<TruthBox>>& truths, int net_w, int net_h,
                        const std::string& tag) {
  const std::string in = temp_dir() + "/" + tag + ".in", out = temp_dir() + "/" + tag + ".out";
  std::ofstream f(in, std::ios::binary);
  auto put_i = [&](int32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  auto put_f = [&](float v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  const int total = static_cast<int>(p.anchors.size() / 2);
  for (int v : {static_cast<int>(z.size(0)), static_cast<int>(z.size(3)), static_cast<int>(z.size(2)),
                static_cast<int>(p.mask.size()), total, p.classes, net_w, net_h})
    put_i(v);
  for (int m : p.mask) put_i(m);
  for (float a : p.anchors) put_f(a);
  put_f(p.ignore_thresh);
  put_f(p.truth_thresh);
  for (double v : z.to_double_vector()) put_f(static_cast<float>(v));
  for (const auto& img : truths) {
    std::vector<float> buf(90 * 5, 0.0f);
    for (size_t k = 0; k < img.size() && k < 90; ++k) {
      buf[5 * k] = img[k].x, buf[5 * k + 1] = img[k].y, buf[5 * k + 2] = img[k].w, buf[5 * k + 3] = img[k].h;
      buf[5 * k + 4] = static_cast<float>(img[k].cls);
    }
    for (float v : buf) put_f(v);
  }
  f.close();
  const std::string cmd = oracle_binary() + " " + in + " " + out + " 2>/dev/null";
  OracleResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  char buf[512];
  while (pipe && std::fgets(buf, sizeof buf, pipe)) r.line += buf;
  EXPECT_EQ(pipe ? pclose(pipe) : -1, 0) << cmd;
  while (!r.line.empty() && r.line.back() == '\n') r.line.pop_back();
  std::ifstream o(out, std::ios::binary);
  r.delta.resize(static_cast<size_t>(z.numel()));
  o.read(reinterpret_cast<char*>(r.delta.data()), 4 * static_cast<std::streamsize>(r.delta.size()));
  o.read(reinterpret_cast<char*>(&r.cost), 4);
  EXPECT_TRUE(o.good()) << "oracle output " << out;
  return r;
}

YoloParams params(std::vector<int> mask, int classes, float ignore, float truth_thresh) {
  YoloParams p;
  p.mask = std::move(mask);
  p.anchors = {10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319};  // yolov3-tiny's
  p.num = 6;
  p.classes = classes;
  p.ignore_thresh = ignore;
  p.truth_thresh = truth_thresh;
  return p;
}

// Random truths for `batch` images; two of them share a cell and an anchor shape (Darknet's multi-label
// branch) and one sits in the same place as a prediction could (to exercise the ignore threshold).
std::vector<std::vector<TruthBox>> random_truths(int batch, int classes, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.05f, 0.95f), s(0.02f, 0.8f);
  std::vector<std::vector<TruthBox>> t(batch);
  for (int b = 0; b < batch; ++b) {
    const int count = 3 + b * 2;
    for (int k = 0; k < count; ++k)
      t[b].push_back({u(rng), u(rng), s(rng), s(rng), static_cast<int>(rng() % classes)});
    TruthBox twin = t[b][0];
    twin.x += 0.001f;
    twin.cls = (twin.cls + 1) % classes;
    t[b].push_back(twin);
  }
  return t;
}

// Darknet's delta from the oracle, against ours, for one layer setting.
void check_against_darknet(YoloParams p, int batch, int lw, int lh, int net_w, int net_h,
                           const std::string& tag) {
  if (!have_darknet()) GTEST_SKIP() << "Debian's darknet (libdarknet) is not installed";
  ASSERT_FALSE(oracle_binary().empty()) << "could not compile the oracle";
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  const int n = static_cast<int>(p.mask.size());
  Tensor z = test::randn64({batch, n * (5 + p.classes), lh, lw}, false).to(DType::f32);
  const auto truths = random_truths(batch, p.classes, rng);
  const OracleResult ref = run_oracle(p, z, truths, net_w, net_h, tag);
  const YoloLossResult ours = yolo_loss(p, z, truths, net_w, net_h);
  const std::vector<double> d = ours.delta.to_double_vector();
  ASSERT_EQ(d.size(), ref.delta.size());
  double worst = 0;
  int nonzero = 0;
  for (size_t k = 0; k < d.size(); ++k) {
    worst = std::max(worst, std::fabs(d[k] - ref.delta[k]));
    nonzero += ref.delta[k] != 0;
  }
  EXPECT_LT(worst, 1e-6) << tag;
  EXPECT_GT(nonzero, 0);
  EXPECT_NEAR(ours.stats.darknet_cost, ref.cost, 1e-5 * ref.cost) << tag;
  // The "Region ..." line: the same fields, each number within 2e-6 (both print 6 decimals of f32 sums that
  // differ in the order of additions, so a last digit may differ: 0.369786 against 0.369785 once).
  const auto numbers = [](const std::string& line) {
    std::vector<double> v;
    const std::regex num(R"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)");
    for (std::sregex_iterator it(line.begin(), line.end(), num), end; it != end; ++it)
      v.push_back(std::stod(it->str()));
    return v;
  };
  const auto words = [](const std::string& line) {
    return std::regex_replace(line, std::regex(R"([-+]?[0-9]*\.?[0-9]+)"), "#");
  };
  const std::string our_line = ours.stats.line(0);
  EXPECT_EQ(words(our_line), words(ref.line)) << tag << "\n" << our_line << "\n" << ref.line;
  const std::vector<double> a = numbers(our_line), b = numbers(ref.line);
  ASSERT_EQ(a.size(), b.size()) << tag;
  for (size_t k = 0; k < a.size(); ++k)
    EXPECT_NEAR(a[k], b[k], 2e-6) << tag << "\n" << our_line << "\n" << ref.line;
}

TEST(YoloLoss, DeltaMatchesDarknetOnTheLargeAnchorLayer) {
  check_against_darknet(params({3, 4, 5}, 4, 0.5f, 1.0f), 2, 7, 5, 224, 160, "large");
}

TEST(YoloLoss, DeltaMatchesDarknetOnTheSmallAnchorLayerWithLowThresholds) {
  // truth_thresh < 1 runs Darknet's first-pass assignment; ignore_thresh 0.2 ignores more cells.
  check_against_darknet(params({0, 1, 2}, 3, 0.2f, 0.4f), 3, 13, 11, 416, 352, "small");
}

TEST(YoloLoss, HandComputedCase) {
  // A 2 x 2 grid, one anchor (20 x 40 in a 100 x 100 network), two classes, all logits 0 except z_w = 0.1
  // at the truth's cell. Truth (0.3, 0.6, 0.2, 0.4) class 1: cell (i, j) = (0, 1), tx = 0.6, ty = 0.2,
  // tw = th = 0, scale = 2 - 0.08 = 1.92.
  YoloParams p;
  p.mask = {0};
  p.anchors = {20, 40};
  p.classes = 2;
  std::vector<double> zv(7 * 4, 0.0);
  const int cell = 1 * 2 + 0;
  zv[2 * 4 + cell] = 0.1;
  Tensor z = from_vector(zv, {1, 7, 2, 2});
  const YoloLossResult r = yolo_loss(p, z, {{{0.3f, 0.6f, 0.2f, 0.4f, 1}}}, 100, 100);
  const std::vector<double> d = r.delta.to_double_vector();
  auto at = [&](int entry, int loc) { return d[entry * 4 + loc]; };
  EXPECT_NEAR(at(0, cell), 1.92 * (0.6 - 0.5), 1e-6);
  EXPECT_NEAR(at(1, cell), 1.92 * (0.2 - 0.5), 1e-6);
  EXPECT_NEAR(at(2, cell), 1.92 * (0 - 0.1), 1e-6);
  EXPECT_NEAR(at(3, cell), 0, 1e-6);
  EXPECT_NEAR(at(4, cell), 0.5, 1e-6);   // objectness target 1
  EXPECT_NEAR(at(5, cell), -0.5, 1e-6);  // class 0: target 0
  EXPECT_NEAR(at(6, cell), 0.5, 1e-6);   // class 1: target 1
  for (int loc : {0, 1, 3}) {
    EXPECT_NEAR(at(4, loc), -0.5, 1e-6) << loc;  // no object there: IoU with the truth <= 0.5
    for (int e : {0, 1, 2, 3, 5, 6}) EXPECT_EQ(at(e, loc), 0) << e << " " << loc;
  }
  double cost = 0;
  for (double x : d) cost += x * x;
  EXPECT_NEAR(r.stats.darknet_cost, cost, 1e-5);
  EXPECT_EQ(r.stats.count, 1);
  EXPECT_NEAR(r.stats.avg_obj, 0.5, 1e-6);
  EXPECT_NEAR(r.stats.avg_class, 0.5, 1e-6);
  // The loss: 3 x softplus(0) (no-object cells) + BCE(obj, 1) + BCE(classes) + box terms.
  const double sp0 = std::log(2.0);
  const double expect = 3 * sp0 + sp0 + 2 * sp0 + 1.92 * (2 * sp0 - 0.0) + 0.5 * 1.92 * (0.01 + 0.0);
  EXPECT_NEAR(r.loss.item_double(), expect, 1e-5);
}

TEST(YoloLoss, GradientIsMinusDeltaAndMatchesFiniteDifferences) {
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  for (float sxy : {1.0f, 1.1f}) {
    YoloParams p = params({3, 4, 5}, 3, 0.5f, 1.0f);
    p.scale_x_y = sxy;
    Tensor z = test::randn64({2, 3 * 8, 4, 5});
    const auto truths = random_truths(2, 3, rng);
    YoloLossResult r = yolo_loss(p, z, truths, 160, 128);
    r.loss.backward();
    const std::vector<double> g = z.grad().to_double_vector(), d = r.delta.to_double_vector();
    for (size_t k = 0; k < g.size(); ++k) ASSERT_NEAR(g[k], -d[k], 1e-6) << k;
    // Finite differences on entries the delta touches (the assignment is piecewise constant in z, so
    // entries are taken where a small step cannot move a prediction across the ignore threshold: the
    // check is on the value's smooth part, every element with a non-zero delta).
    const std::vector<double> zv = z.to_double_vector();
    int checked = 0, agree = 0;
    for (size_t k = 0; k < zv.size(); k += 3) {
      if (d[k] == 0) continue;
      const double eps = 1e-3;
      std::vector<double> zp = zv, zm = zv;
      zp[k] += eps, zm[k] -= eps;
      const double fp = yolo_loss(p, from_vector(zp, z.shape(), {.dtype = DType::f64}), truths, 160, 128)
                            .loss.item_double();
      const double fm = yolo_loss(p, from_vector(zm, z.shape(), {.dtype = DType::f64}), truths, 160, 128)
                            .loss.item_double();
      const double fd = (fp - fm) / (2 * eps);
      ++checked;
      agree += std::fabs(fd - g[k]) < 2e-3 * (1 + std::fabs(g[k]));
    }
    EXPECT_GT(checked, 20);
    // Only a step that flips an ignore decision may disagree.
    EXPECT_GE(agree, checked - 1) << "scale_x_y " << sxy;
  }
}

// The CPU kernel is the former host implementation, arithmetic unchanged: the same delta bits, the same
// float statistics and the same double loss value, on random heads and truths (with the first-pass
// truth_thresh branch, scale_x_y, a truth list cut by an x == 0 box and a max_boxes cut).
TEST(YoloLoss, CpuKernelEqualsTheFrozenHostImplementation) {
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  struct Case {
    std::vector<int> mask;
    float ignore, truth, sxy;
    int max_boxes, batch, lw, lh;
  };
  for (const Case& c :
       {Case{{3, 4, 5}, 0.5f, 1.0f, 1.0f, 90, 3, 5, 4}, Case{{0, 1, 2}, 0.2f, 0.4f, 1.1f, 4, 2, 7, 6},
        Case{{1, 2, 3}, 0.3f, 0.6f, 1.05f, 90, 2, 8, 8}}) {
    YoloParams p = params(c.mask, 4, c.ignore, c.truth);
    p.scale_x_y = c.sxy;
    p.max_boxes = c.max_boxes;
    Tensor z = test::randn64({c.batch, 3 * 9, c.lh, c.lw}, false).to(DType::f32);
    auto truths = random_truths(c.batch, 4, rng);
    truths[0].insert(truths[0].begin() + 2, TruthBox{0, 0.5f, 0.2f, 0.2f, 1});  // ends image 0's list
    const auto ref = test::yolo_reference::reference_yolo_loss(p, z, truths, 160, 128);
    const YoloLossResult ours = yolo_loss(p, z, truths, 160, 128);
    const Tensor d = ours.delta.contiguous();
    ASSERT_EQ(static_cast<size_t>(d.numel()), ref.delta.size());
    EXPECT_EQ(std::memcmp(d.data_ptr(), ref.delta.data(), 4 * ref.delta.size()), 0) << "delta bits";
    int nonzero = 0;
    for (float x : ref.delta) nonzero += x != 0;
    EXPECT_GT(nonzero, 10);
    EXPECT_EQ(ours.stats.line(0), ref.stats.line(0));
    EXPECT_EQ(ours.stats.darknet_cost, ref.stats.darknet_cost);
    EXPECT_EQ(ours.stats.avg_iou, ref.stats.avg_iou);
    EXPECT_EQ(ours.stats.avg_noobj, ref.stats.avg_noobj);
    EXPECT_GT(ours.stats.count, 0);
    EXPECT_EQ(ours.stats_sums.to_double_vector()[ops::kYoloLossValue], ref.value);
    EXPECT_NEAR(ours.loss.item_double(), ref.value, 1e-6 * std::fabs(ref.value));
  }
}

TEST(YoloLoss, BadInputsNameWhatWasExpected) {
  YoloParams p = params({0, 1, 2}, 2, 0.5f, 1.0f);
  test::expect_error(
      [&] {
        yolo_loss(p, test::randn32({1, 20, 4, 4}), {{}}, 64, 64);
      },
      {"expected the raw [yolo] input [N, 21, H, W]", "[1,20,4,4]"});
  test::expect_error(
      [&] {
        yolo_loss(p, test::randn32({2, 21, 4, 4}), {{}}, 64, 64);
      },
      {"2 batch items but truths for 1"});
  test::expect_error(
      [&] {
        yolo_loss(p, test::randn32({1, 21, 4, 4}), {{{0.5f, 0.5f, 0.1f, 0.1f, 2}}}, 64, 64);
      },
      {"class 2", "2 classes"});
}

}  // namespace
}  // namespace nabla

// CUDA parity of Darknet's [yolo] training delta (ops/yolo_loss.h: cuda/yolo_loss.cu against the CPU kernel
// ops/cpu/yolo_loss.cpp, which libdarknet and the former host code check in tests/yolo/test_yolo_loss.cpp),
// through models/darknet/yolo_loss.h: random heads and random truth sets, with YOLOv3's 80 classes (more
// than a warp's lanes), several truths per image, one list cut by an x == 0 box, a max_boxes cut, a second
// truth at the same cell and anchor (the multi-label branch), scale_x_y and the first-pass truth_thresh
// branch. Compared: the delta (max |diff|, and which elements are non-zero), the Region statistics, the
// loss value, the gradient that backward gives z (bf16 heads too), and the host route
// (NABLA_YOLO_LOSS_HOST) against the device one. Skips without a GPU.
#include <cmath>
#include <random>

#include "models/darknet/yolo_loss.h"
#include "ops/yolo_loss.h"
#include "parity.h"

namespace nabla {
namespace {
using namespace models::darknet;

struct HostSwitch {
  ~HostSwitch() { set_yolo_loss_on_host(false); }
};

YoloParams layer(std::vector<int> mask, int classes, float ignore, float truth_thresh, float sxy,
                 int max_boxes) {
  YoloParams p;
  p.mask = std::move(mask);
  p.anchors = {10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326};  // yolov3's
  p.num = 9;
  p.classes = classes;
  p.ignore_thresh = ignore;
  p.truth_thresh = truth_thresh;
  p.scale_x_y = sxy;
  p.max_boxes = max_boxes;
  return p;
}

// Box sides up to max_side: small ones for the layer of the small anchors, or no truth would be its.
std::vector<std::vector<TruthBox>> truth_sets(int batch, int classes, std::mt19937& rng,
                                              float max_side = 0.9f) {
  std::uniform_real_distribution<float> u(0.02f, 0.98f), s(0.01f, max_side);
  std::vector<std::vector<TruthBox>> t(batch);
  for (int b = 0; b < batch; ++b) {
    const int count = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < count; ++k)
      t[b].push_back({u(rng), u(rng), s(rng), s(rng), static_cast<int>(rng() % classes)});
    TruthBox twin = t[b][0];  // same cell and anchor shape, another class
    twin.x += 1e-4f;
    twin.cls = (twin.cls + 7) % classes;
    t[b].push_back(twin);
  }
  if (batch > 1) t[1].insert(t[1].begin() + 1, TruthBox{0, 0.5f, 0.3f, 0.3f, 0});  // ends image 1's list
  return t;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b, int* zero_mismatch) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    worst = std::max(worst, std::fabs(a[k] - b[k]));
    *zero_mismatch += (a[k] == 0) != (b[k] == 0);
  }
  return worst;
}

void expect_stats_near(const YoloLayerStats& c, const YoloLayerStats& g, const std::string& tag) {
  EXPECT_EQ(c.count, g.count) << tag;
  const auto near = [&](float a, float b, const char* what) {
    if (std::isnan(a)) {
      EXPECT_TRUE(std::isnan(b)) << tag << " " << what;
      return;
    }
    EXPECT_NEAR(a, b, 1e-4 * (1 + std::fabs(a))) << tag << " " << what;
  };
  near(c.avg_iou, g.avg_iou, "avg_iou");
  near(c.avg_class, g.avg_class, "class");
  near(c.avg_obj, g.avg_obj, "obj");
  near(c.avg_noobj, g.avg_noobj, "no_obj");
  near(c.recall50, g.recall50, ".5R");
  near(c.recall75, g.recall75, ".75R");
  EXPECT_NEAR(c.darknet_cost, g.darknet_cost, 1e-4 * c.darknet_cost) << tag;
}

TEST(CudaYoloLoss, DeltaLossAndStatsEqualTheCpuKernelOnRandomHeadsAndTruths) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  struct Case {
    YoloParams p;
    int batch, lw, lh;
    float max_side;
  };
  const std::vector<Case> cases = {
      {layer({6, 7, 8}, 80, 0.7f, 1.0f, 1.0f, 90), 4, 13, 13, 0.9f},   // YOLOv3's first head
      {layer({3, 4, 5}, 80, 0.5f, 1.0f, 1.05f, 90), 3, 26, 20, 0.4f},  // scale_x_y, a non-square grid
      {layer({0, 1, 2}, 5, 0.2f, 0.4f, 1.0f, 6), 5, 17, 11, 0.1f},     // truth_thresh branch, max_boxes cut
  };
  int k = 0;
  for (const Case& c : cases) {
    const std::string tag = "case " + std::to_string(k++);
    const int n = static_cast<int>(c.p.mask.size());
    const Tensor z = test::parity_randn({c.batch, n * (5 + c.p.classes), c.lh, c.lw}, false) * 1.5;
    const auto truths = truth_sets(c.batch, c.p.classes, rng, c.max_side);
    const YoloLossResult cpu = yolo_loss(c.p, z, truths, 416, 416);
    const Tensor zg = z.to(Device::cuda(0)).detach().requires_grad_(true);
    const YoloLossResult gpu = yolo_loss(c.p, zg, truths, 416, 416);
    int zero_mismatch = 0;
    const double worst = max_abs_diff(cpu.delta.to_double_vector(),
                                      gpu.delta.to(Device::cpu()).to_double_vector(), &zero_mismatch);
    EXPECT_LT(worst, 2e-5) << tag;
    EXPECT_EQ(zero_mismatch, 0) << tag << ": elements zero on one side only";
    expect_stats_near(cpu.stats, gpu.stats, tag);
    EXPECT_GT(cpu.stats.count, 0) << tag;
    EXPECT_NEAR(cpu.loss.item_double(), gpu.loss.item_double(), 1e-5 * std::fabs(cpu.loss.item_double()))
        << tag;
    // backward: -delta times the incoming gradient, on the device
    (gpu.loss * 0.25).backward();
    const std::vector<double> g = zg.grad().to(Device::cpu()).to_double_vector(),
                              d = cpu.delta.to_double_vector();
    double gworst = 0;
    for (size_t i = 0; i < g.size(); ++i) gworst = std::max(gworst, std::fabs(g[i] + 0.25 * d[i]));
    EXPECT_LT(gworst, 1e-5) << tag;
  }
}

TEST(CudaYoloLoss, HostRouteEqualsTheDeviceKernelAndBf16HeadsWork) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  HostSwitch restore;
  std::mt19937 rng(static_cast<uint32_t>(test::next_seed()));
  const YoloParams p = layer({3, 4, 5}, 80, 0.5f, 1.0f, 1.0f, 90);
  const Tensor z = (test::parity_randn({4, 255, 26, 26}, false)).to(Device::cuda(0));
  const auto truths = truth_sets(4, 80, rng, 0.4f);
  const YoloTruths up = upload_truths(truths, p.max_boxes, Device::cuda(0));
  set_yolo_loss_on_host(true);
  const YoloLossResult host = yolo_layer_loss(p, z, up, 416, 416);
  EXPECT_TRUE(host.delta.device().is_cuda());
  set_yolo_loss_on_host(false);
  const YoloLossResult dev = yolo_layer_loss(p, z, up, 416, 416);
  int zero_mismatch = 0;
  EXPECT_LT(max_abs_diff(host.delta.to(Device::cpu()).to_double_vector(),
                         dev.delta.to(Device::cpu()).to_double_vector(), &zero_mismatch),
            2e-5);
  EXPECT_EQ(zero_mismatch, 0);
  expect_stats_near(host.stats, dev.stats, "host route");
  // bf16 heads: the kernel reads them as f32; the gradient comes back in bf16
  const Tensor zb = z.to(DType::bf16).detach().requires_grad_(true);
  const YoloLossResult b = yolo_layer_loss(p, zb, up, 416, 416);
  b.loss.backward();
  EXPECT_EQ(zb.grad().dtype(), DType::bf16);
  const YoloLossResult ref = yolo_layer_loss(p, zb.detach().to(DType::f32), up, 416, 416);
  const std::vector<double> gb = zb.grad().to(Device::cpu()).to_double_vector(),
                            nd = neg(ref.delta).to(Device::cpu()).to_double_vector();
  int off = 0;
  for (size_t i = 0; i < gb.size(); ++i) off += std::fabs(gb[i] - nd[i]) > 1e-2 * (1 + std::fabs(nd[i]));
  EXPECT_EQ(off, 0) << "bf16 gradient elements further than bf16 rounding from -delta";
}

}  // namespace
}  // namespace nabla

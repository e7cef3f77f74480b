// models/darknet: the .cfg parser and builder, .weights I/O, the forward pass and YOLO decode/NMS, checked
// by hand-computed cases and against Debian's darknet (scripts/darknet_oracle.sh; those tests skip when the
// package is absent).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "autograd/autograd.h"
#include "data/image.h"
#include "models/darknet/cfg.h"
#include "models/darknet/network.h"
#include "models/darknet/weights.h"
#include "models/darknet/yolo_layer.h"
#include "darknet_testing.h"
#include "testing.h"

namespace nabla {
namespace {
namespace fs = std::filesystem;
using namespace models::darknet;

const std::string kDebianCfg = "/usr/share/darknet/cfg";
const std::string kDebianData = "/usr/share/darknet/data";
const std::string kPruned = NABLA_SOURCE_DIR "/../shared/data/detection-samples/compressed_models";

std::string temp_path(const std::string& name) {
  fs::path dir = fs::path(NABLA_BINARY_DIR) / "test_darknet";
  fs::create_directories(dir);
  return (dir / name).string();
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<float> read_floats(const std::string& path, size_t skip_bytes = 0) {
  std::vector<uint8_t> b = file_bytes(path);
  std::vector<float> v((b.size() - skip_bytes) / 4);
  std::memcpy(v.data(), b.data() + skip_bytes, 4 * v.size());
  return v;
}

Tensor tensor_of(const std::vector<float>& v, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  EXPECT_EQ(static_cast<int64_t>(v.size()), t.numel());
  std::memcpy(t.data_ptr(), v.data(), 4 * std::min<size_t>(v.size(), t.numel()));
  return t;
}

// test::randomize_darknet's weights (tests/darknet_testing.h), then before each [yolo] layer objectness and
// class logits 1.5 lower, so that a threshold keeps a minority of boxes and NMS has overlapping candidates
// to sort out.
void randomize(DarknetNetwork& net, uint64_t seed) {
  test::randomize_darknet(net, seed);
  NoGradGuard ng;
  for (const Layer& l : net.layers) {
    if (l.type != LayerType::convolutional) continue;
    auto& c = *l.conv;
    if (l.index + 1 < static_cast<int>(net.layers.size()) &&
        net.layers[l.index + 1].type == LayerType::yolo && c.conv->bias.defined()) {
      const int entries = 5 + net.layers[l.index + 1].yolo.classes;
      std::vector<double> b = c.conv->bias.to_vector<double>();
      for (size_t i = 0; i < b.size(); ++i)
        if (i % entries >= 4) b[i] -= 1.5;
      c.conv->bias.copy_(from_vector(b, c.conv->bias.shape()));
    }
  }
}

std::shared_ptr<DarknetNetwork> build(const std::string& text, const std::string& name = "test.cfg") {
  return std::make_shared<DarknetNetwork>(parse_cfg(text, name));
}

// ---- parser ---------------------------------------------------------------------------------------

TEST(DarknetCfg, ParsesSectionsOptionsCommentsAndWhitespace) {
  Cfg cfg = parse_cfg(
      "# a comment\n[net]\n width = 32 \n\theight=16\nchannels=3\n; another\n\n"
      "[convolutional]\nfilters=8   # inline comment\nsize=3\nactivation=leaky\nanchors = 1, 2,  3\n",
      "t.cfg");
  ASSERT_EQ(cfg.sections.size(), 2u);
  EXPECT_EQ(cfg.sections[0].type, "net");
  EXPECT_EQ(cfg.sections[0].line, 2);
  EXPECT_EQ(cfg.sections[0].get_int("width"), 32);
  EXPECT_EQ(cfg.sections[0].get_int("height"), 16);
  const CfgSection& c = cfg.sections[1];
  EXPECT_EQ(c.get_int("filters"), 8);
  EXPECT_EQ(c.get_string("activation"), "leaky");
  EXPECT_EQ(c.get_ints("anchors"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(c.get_int("stride", 1), 1);
  EXPECT_EQ(c.options[0].line, 9);
  // format_cfg writes what parse_cfg reads back.
  Cfg again = parse_cfg(format_cfg(cfg), "again.cfg");
  ASSERT_EQ(again.sections.size(), 2u);
  EXPECT_EQ(again.sections[1].get_floats("anchors"), (std::vector<float>{1, 2, 3}));
}

TEST(DarknetCfg, BadTextNamesFileAndLine) {
  test::expect_error([] { parse_cfg("[net]\nwidth\n", "a.cfg"); }, {"a.cfg:2", "key=value", "width"});
  test::expect_error([] { parse_cfg("width=3\n[net]\n", "b.cfg"); }, {"b.cfg:1", "before the first"});
  test::expect_error([] { parse_cfg("[net\n", "c.cfg"); }, {"c.cfg:1", "section header"});
  test::expect_error([] { parse_cfg("# nothing\n", "d.cfg"); }, {"d.cfg", "no [section]"});
}

const std::string kNet = "[net]\nwidth=16\nheight=16\nchannels=3\n";

TEST(DarknetCfg, BadValuesAndLayersNameFileLineAndKey) {
  test::expect_error([] { build(kNet + "[convolutional]\nfilters=x8\nsize=3\n", "v.cfg"); },
                     {"v.cfg:6", "[convolutional] filters", "expected an integer", "x8"});
  test::expect_error([] { build(kNet + "[convolutional]\nfilters=8\nactivation=swishy\n", "a.cfg"); },
                     {"a.cfg:7", "activation", "swishy", "leaky"});
  test::expect_error(
      [] { build(kNet + "[frobnicate]\nx=1\n[convolutional]\n[region]\nclasses=1\n", "u.cfg"); },
      {"u.cfg: layer types not supported", "[frobnicate] at line 5 (not a Darknet layer type)",
       "[region] at line 8", "supported: net,", "yolo"});
  test::expect_error([] { build(kNet + "[convolutional]\nfilters=4\n[route]\nlayers=-1,5\n", "rt.cfg"); },
                     {"rt.cfg:8", "[route] layers", "layer 5 does not exist", "0..0"});
  test::expect_error([] { build(kNet + "[convolutional]\nfilters=4\n[route]\nlayers=-3\n", "rt2.cfg"); },
                     {"rt2.cfg:8", "layer -3 (= -2) does not exist"});
  test::expect_error(
      [] {
        build(
            "[net]\nwidth=15\nheight=16\nchannels=3\n[convolutional]\nfilters=4\n[maxpool]\nsize=2\nstride="
            "2\n"
            "[shortcut]\nfrom=-2\n",
            "s.cfg");
      },
      {"s.cfg:11", "[shortcut] from", "shape mismatch", "4x16x15", "4x8x8", "ratios"});
  test::expect_error(
      [] {
        build(kNet + "[convolutional]\nfilters=12\n[yolo]\nmask=0,4\nnum=3\nclasses=1\nanchors=1,2,3,4,5,6\n",
              "y.cfg");
      },
      {"y.cfg:8", "[yolo] mask", "mask index 4 is out of the 3 anchors"});
  test::expect_error(
      [] {
        build(kNet + "[convolutional]\nfilters=10\n[yolo]\nmask=0,1\nnum=2\nclasses=1\nanchors=1,2,3,4\n",
              "c.cfg");
      },
      {"c.cfg", "[yolo] classes", "10 channels", "12"});
  test::expect_error(
      [] {
        build(kNet +
                  "[convolutional]\nfilters=4\n[route]\nlayers=-1,0\n[maxpool]\nsize=2\nstride=2\n"
                  "[route]\nlayers=-1,-3\n",
              "m.cfg");
      },
      {"m.cfg:13", "8x8", "16x16", "same height and width"});
  test::expect_error([] { build("[net]\nwidth=16\nheight=16\n[convolutional]\n", "n.cfg"); },
                     {"n.cfg:1", "channels=0"});
}

// ---- builder on real cfgs ---------------------------------------------------------------------------

TEST(DarknetBuild, YoloV3FamilyShapesAndWeightSizes) {
  if (!fs::exists(kDebianCfg)) GTEST_SKIP() << kDebianCfg << " absent (Debian package darknet)";
  auto v3 = DarknetNetwork::from_file(kDebianCfg + "/yolov3.cfg", false);
  EXPECT_EQ(v3->layers.size(), 107u);
  EXPECT_EQ(v3->yolo_layers(), (std::vector<int>{82, 94, 106}));
  EXPECT_EQ(v3->net.width, 608);  // Debian ships the 608 x 608 testing setting
  EXPECT_EQ(v3->net.batch, 64);
  EXPECT_EQ(v3->net.steps, (std::vector<int>{400000, 450000}));
  EXPECT_EQ(v3->layers[82].out_h, 19);
  EXPECT_EQ(v3->layers[94].out_h, 38);
  EXPECT_EQ(v3->layers[106].out_w, 76);
  EXPECT_EQ(v3->layers[106].out_c, 255);
  EXPECT_EQ(v3->layers[106].yolo.anchor_w(0), 10);
  EXPECT_TRUE(v3->unused_options.empty()) << v3->unused_options[0];
  // The published yolov3.weights and yolov3-tiny.weights are 248,007,048 and 35,434,956 bytes.
  EXPECT_EQ(weights_file_size(*v3), 248007048);
  auto tiny = DarknetNetwork::from_file(kDebianCfg + "/yolov3-tiny.cfg");
  EXPECT_EQ(weights_file_size(*tiny), 35434956);
  int64_t bn_filters = 0;
  for (const Layer& l : tiny->layers) bn_filters += l.batch_normalize ? l.filters : 0;
  EXPECT_EQ(tiny->num_parameters(),
            (35434956 - 20) / 4 - 2 * bn_filters);  // the file also holds rolling stats
  EXPECT_EQ(tiny->yolo_layers(), (std::vector<int>{16, 23}));
  // The size-2 stride-1 maxpool keeps 13 x 13.
  EXPECT_EQ(tiny->layers[11].type, LayerType::maxpool);
  EXPECT_EQ(tiny->layers[11].out_h, 13);
  EXPECT_EQ(tiny->layers[10].out_h, 13);
  auto spp = DarknetNetwork::from_file(kDebianCfg + "/yolov3-spp.cfg", false);
  int spp_route = -1;
  for (const Layer& l : spp->layers)
    if (l.type == LayerType::route && l.inputs.size() == 4) spp_route = l.index;
  ASSERT_GE(spp_route, 4);
  EXPECT_EQ(spp->layers[spp_route].out_c,
            2048);  // four 512-channel branches: maxpools 5, 9, 13 and the input
  EXPECT_EQ(spp->layers[spp_route].out_h, 19);
  for (int k = 1; k <= 3; ++k) EXPECT_EQ(spp->layers[spp_route - 2 * k + 1].out_h, 19);
  auto d53 = DarknetNetwork::from_file(kDebianCfg + "/darknet53.cfg", false);
  EXPECT_EQ(d53->layers.back().type, LayerType::softmax);
  EXPECT_EQ(d53->layers.back().out_c, 1000);
}

TEST(DarknetBuild, EveryDebianCfgBuildsOrNamesItsUnsupportedLayer) {
  if (!fs::exists(kDebianCfg)) GTEST_SKIP() << kDebianCfg << " absent (Debian package darknet)";
  const std::set<std::string> must_build = {
      "yolov3.cfg",    "yolov3-tiny.cfg",   "yolov3-spp.cfg", "yolov3-voc.cfg",  "yolov3-openimages.cfg",
      "darknet53.cfg", "darknet53_448.cfg", "darknet19.cfg",  "darknet.cfg",     "tiny.cfg",
      "resnet18.cfg",  "resnet50.cfg",      "resnext50.cfg",  "densenet201.cfg", "vgg-conv.cfg"};
  int built = 0, refused = 0;
  std::string report;
  for (const auto& e : fs::directory_iterator(kDebianCfg)) {
    if (e.path().extension() != ".cfg") continue;
    const std::string name = e.path().filename().string();
    try {
      auto net = DarknetNetwork::from_file(e.path().string(), false);
      ++built;
      report += name + " builds (" + std::to_string(net->layers.size()) + " layers)\n";
    } catch (const Error& err) {
      const std::string msg = err.what();
      EXPECT_FALSE(must_build.count(name)) << name << ": " << msg;
      // Refusals must name the file, a line and an unsupported layer type (or a feature of one).
      EXPECT_NE(msg.find(e.path().string() + ":"), std::string::npos) << msg;
      EXPECT_NE(msg.find("layer types not supported by this builder: ["), std::string::npos)
          << name << ": " << msg;
      ++refused;
      report += name + " refused: " + msg + "\n";
    }
  }
  std::printf("%s", report.c_str());
  EXPECT_GE(built, static_cast<int>(must_build.size()));
  EXPECT_GT(refused, 0);
}

TEST(DarknetBuild, PrunedAbcpCfgsBuildAndRun) {
  if (!fs::exists(kPruned)) GTEST_SKIP() << kPruned << " absent";
  int n = 0;
  for (const auto& e : fs::directory_iterator(kPruned)) {
    if (e.path().extension() != ".cfg") continue;
    auto net = DarknetNetwork::from_file(e.path().string());
    EXPECT_TRUE(net->unused_options.empty()) << e.path() << ": " << net->unused_options[0];
    ASSERT_EQ(net->yolo_layers().size(), 3u) << e.path();
    randomize(*net, test::next_seed());
    net->eval();
    NoGradGuard ng;
    // A 96 x 96 input (the network is fully convolutional): grids 3, 6, 12.
    auto heads = net->forward_yolo(test::randn32({1, 3, 96, 96}));
    ASSERT_EQ(heads.size(), 3u);
    const int classes = net->layers[net->yolo_layers()[0]].yolo.classes;
    EXPECT_EQ(heads[0].shape(), (Shape{1, 3 * (5 + classes), 3, 3}));
    EXPECT_EQ(heads[2].shape(), (Shape{1, 3 * (5 + classes), 12, 12}));
    for (double v : heads[1].to_double_vector()) ASSERT_TRUE(std::isfinite(v));
    ++n;
  }
  EXPECT_EQ(n, 3);
}

// ---- layer semantics by hand ------------------------------------------------------------------------

// Darknet's forward_maxpool_layer, transcribed.
std::vector<float> reference_maxpool(const std::vector<float>& in, int c, int h, int w, int size, int stride,
                                     int pad) {
  const int oh = (h + pad - size) / stride + 1, ow = (w + pad - size) / stride + 1;
  std::vector<float> out(static_cast<size_t>(c) * oh * ow);
  for (int k = 0; k < c; ++k)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) {
        float m = -INFINITY;
        for (int n = 0; n < size; ++n)
          for (int q = 0; q < size; ++q) {
            int y = -pad / 2 + i * stride + n, x = -pad / 2 + j * stride + q;
            if (y >= 0 && y < h && x >= 0 && x < w) m = std::max(m, in[(k * h + y) * w + x]);
          }
        out[(k * oh + i) * ow + j] = m;
      }
  return out;
}

TEST(DarknetLayers, MaxPoolUsesDarknetPadding) {
  struct Case {
    int size, stride, h, w;
  };
  for (Case cs : {Case{2, 1, 5, 7}, Case{2, 2, 5, 5}, Case{2, 2, 6, 4}, Case{5, 1, 6, 6}, Case{3, 2, 7, 6},
                  Case{9, 1, 4, 5}}) {
    auto net = build(str_cat("[net]\nwidth=", cs.w, "\nheight=", cs.h,
                             "\nchannels=2\n[maxpool]\nsize=", cs.size, "\nstride=", cs.stride, "\n"));
    Tensor x = test::randn32({1, 2, cs.h, cs.w});
    Tensor y = net->forward(x);
    std::vector<float> ref =
        reference_maxpool(x.to_vector<float>(), 2, cs.h, cs.w, cs.size, cs.stride, cs.size - 1);
    const Layer& l = net->layers[0];
    EXPECT_EQ(y.shape(), (Shape{1, 2, l.out_h, l.out_w}));
    test::expect_close(y, std::vector<double>(ref.begin(), ref.end()), 0);
  }
}

// Darknet's shortcut_cpu, transcribed: out = x; out[k, j * sample, i * sample] += add[k, j * stride, i *
// stride].
std::vector<float> reference_shortcut(const std::vector<float>& x, int c2, int h2, int w2,
                                      const std::vector<float>& add, int c1, int h1, int w1) {
  int stride = std::max(1, w1 / w2), sample = std::max(1, w2 / w1);
  std::vector<float> out = x;
  for (int k = 0; k < std::min(c1, c2); ++k)
    for (int j = 0; j < std::min(h1, h2); ++j)
      for (int i = 0; i < std::min(w1, w2); ++i)
        out[i * sample + w2 * (j * sample + h2 * k)] += add[i * stride + w1 * (j * stride + h1 * k)];
  return out;
}

TEST(DarknetLayers, ShortcutOfDifferentShapesAddsAsDarknet) {
  // from a wider, higher-resolution layer (ResNet's downsampling shortcut), and from a smaller one.
  for (const char* text :
       {"[convolutional]\nfilters=6\nsize=1\n[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\n"
        "[shortcut]\nfrom=-2\n",
        "[convolutional]\nfilters=3\nsize=3\nstride=2\npad=1\n[upsample]\nstride=2\n"
        "[convolutional]\nfilters=5\nsize=1\n[shortcut]\nfrom=0\nactivation=leaky\n"}) {
    auto net = build(kNet + text);
    randomize(*net, test::next_seed());
    net->eval();
    auto outs = net->forward_all(test::randn32({1, 3, 16, 16}));
    const Layer& s = net->layers.back();
    const Layer& f = net->layers[s.inputs[0]];
    const Tensor& prev = outs[s.index - 1];
    std::vector<float> ref = reference_shortcut(prev.to_vector<float>(), s.out_c, s.out_h, s.out_w,
                                                outs[f.index].to_vector<float>(), f.out_c, f.out_h, f.out_w);
    std::vector<double> want(ref.begin(), ref.end());
    if (s.activation == Activation::leaky)
      for (double& v : want) v = v > 0 ? v : 0.1 * v;
    test::expect_close(outs.back(), want, 1e-6);
  }
}

TEST(DarknetLayers, ConvBatchNormIsDarknetsNormalizeInEvaluation) {
  auto net = build(
      kNet + "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=leaky\n");
  randomize(*net, test::next_seed());
  net->eval();
  auto& c = *net->layers[0].conv;
  Tensor x = test::randn32({2, 3, 16, 16});
  Tensor y = net->forward(x);
  Tensor z = conv2d(x, c.conv->weight, Tensor(), {2, 2}, {1, 1});
  std::vector<double> zv = z.to_double_vector(), yv = y.to_double_vector();
  auto g = c.bn->weight.to_vector<double>(), b = c.bn->bias.to_vector<double>();
  auto m = c.bn->running_mean.to_vector<double>(), v = c.bn->running_var.to_vector<double>();
  ASSERT_EQ(y.shape(), (Shape{2, 4, 8, 8}));
  for (size_t i = 0; i < zv.size(); ++i) {
    const size_t ch = (i / 64) % 4;
    double r = (zv[i] - m[ch]) / (std::sqrt(v[ch]) + 1e-6) * g[ch] + b[ch];
    r = r > 0 ? r : 0.1 * r;
    EXPECT_NEAR(yv[i], r, 1e-5) << i;
  }
}

TEST(DarknetLayers, RouteShortcutUpsampleAndYoloActivation) {
  auto net = build(kNet +
                   "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"       // 0
                   "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=mish\n"  // 1
                   "[shortcut]\nfrom=-2\nactivation=linear\n"                      // 2
                   "[route]\nlayers=0,-2\n"                                        // 3: 8 channels
                   "[upsample]\nstride=2\n"                                        // 4: 32 x 32
                   "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"      // 5
                   "[yolo]\nmask=0,1\nnum=3\nclasses=2\nanchors=4,5,6,7,8,9\n");   // 6
  randomize(*net, test::next_seed());
  net->eval();
  Tensor x = test::randn32({1, 3, 16, 16});
  auto outs = net->forward_all(x);
  Tensor mish_ref = outs[1];
  test::expect_close(outs[2], outs[1] + outs[0], 1e-6);
  test::expect_close(outs[3], cat({outs[0], outs[1]}, 1), 0);
  EXPECT_EQ(outs[4].shape(), (Shape{1, 8, 32, 32}));
  test::expect_close(outs[4].narrow(2, 2, 2).narrow(3, 4, 2),
                     outs[3].narrow(2, 1, 1).narrow(3, 2, 1).expand({1, 8, 2, 2}), 0);
  // Mish against its definition in double.
  Tensor pre =
      conv2d(outs[0], net->layers[1].conv->conv->weight, net->layers[1].conv->conv->bias, {1, 1}, {1, 1});
  std::vector<double> pv = pre.to_double_vector(), mv = outs[1].to_double_vector();
  for (size_t i = 0; i < pv.size(); ++i)
    EXPECT_NEAR(mv[i], pv[i] * std::tanh(std::log1p(std::exp(pv[i]))), 1e-5);
  // yolo: logistic on x, y, objectness, classes; w, h raw.
  std::vector<double> raw = outs[5].to_double_vector(), act = outs[6].to_double_vector();
  const size_t plane = 32 * 32;
  for (size_t i = 0; i < raw.size(); ++i) {
    const size_t entry = (i / plane) % 7;
    const double want = (entry == 2 || entry == 3) ? raw[i] : 1 / (1 + std::exp(-raw[i]));
    EXPECT_NEAR(act[i], want, 1e-6) << i;
  }
  net->train();
  test::expect_close(net->forward_all(x)[6], outs[5], 0);  // training: the logits
}

TEST(DarknetLayers, TrainingModeGivesLogitsBatchStatisticsAndGradients) {
  auto net = build(kNet +
                   "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"
                   "[maxpool]\nsize=2\nstride=1\n"
                   "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"
                   "[yolo]\nmask=0,1\nnum=2\nclasses=2\nanchors=4,5,6,7\n");
  randomize(*net, test::next_seed());
  net->train();
  auto& bn = *net->layers[0].conv->bn;
  const std::vector<double> mean_before = bn.running_mean.to_vector<double>();
  Tensor x = test::randn32({2, 3, 16, 16});
  auto heads = net->forward_yolo(x);
  ASSERT_EQ(heads.size(), 1u);
  // Training: the yolo layer passes the logits through; BN normalised with the batch statistics.
  Tensor logits =
      conv2d(net->forward_all(x)[1], net->layers[2].conv->conv->weight, net->layers[2].conv->conv->bias);
  test::expect_close(heads[0], logits, 1e-5);
  // Darknet's rolling update: running = 0.99 running + 0.01 batch mean (two forwards ran).
  Tensor z = conv2d(x, net->layers[0].conv->conv->weight, Tensor(), {1, 1}, {1, 1});
  std::vector<double> batch_mean = mean(z, {0, 2, 3}).to_vector<double>();
  std::vector<double> after = bn.running_mean.to_vector<double>();
  for (size_t c = 0; c < after.size(); ++c)
    EXPECT_NEAR(after[c], 0.99 * 0.99 * mean_before[c] + (0.99 * 0.01 + 0.01) * batch_mean[c], 1e-5);
  (heads[0] * heads[0]).mean().backward();
  for (const Tensor& p : net->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(amax(abs(p.grad())).item(), 0.0);
  }
}

// ---- weights ----------------------------------------------------------------------------------------

TEST(DarknetWeights, RoundTripIsByteIdenticalAndRestoresValues) {
  const std::string cfg = kNet +
                          "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"
                          "[convolutional]\nfilters=4\nsize=3\ngroups=2\nactivation=linear\n"
                          "[maxpool]\nsize=2\nstride=2\n"
                          "[convolutional]\nbatch_normalize=1\nfilters=5\nsize=1\nactivation=leaky\n";
  auto a = build(cfg);
  randomize(*a, test::next_seed());
  a->images_seen = 123456789012ull;
  const std::string p1 = temp_path("rt1.weights"), p2 = temp_path("rt2.weights");
  save_weights(*a, p1);
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(p1)), weights_file_size(*a));
  EXPECT_EQ(weights_file_size(*a), 20 + 4 * (6 * 4 + 6 * 27 + 4 + 4 * 3 * 9 + 5 * 4 + 5 * 4));
  auto b = build(cfg);
  load_weights(*b, p1);
  EXPECT_EQ(b->images_seen, 123456789012ull);
  auto sa = a->state_dict(), sb = b->state_dict();
  for (size_t i = 0; i < sa.size(); ++i)
    if (sa[i].first.find("num_batches") == std::string::npos)
      test::expect_close(sb[i].second, sa[i].second, 0);
  save_weights(*b, p2);
  EXPECT_EQ(file_bytes(p1), file_bytes(p2));
  // Darknet's layout by hand: header, then layer 0's biases (BN beta) first, then scales.
  std::vector<uint8_t> bytes = file_bytes(p1);
  int32_t hdr[3];
  std::memcpy(hdr, bytes.data(), 12);
  EXPECT_EQ(hdr[0], 0);
  EXPECT_EQ(hdr[1], 2);
  float f;
  std::memcpy(&f, bytes.data() + 20, 4);
  EXPECT_EQ(f, a->layers[0].conv->bn->bias.to_vector<float>()[0]);
  std::memcpy(&f, bytes.data() + 20 + 4 * 6, 4);
  EXPECT_EQ(f, a->layers[0].conv->bn->weight.to_vector<float>()[0]);
  // An old header (major 0, minor 1) has a 32-bit images-seen; it is written back the same way.
  std::vector<uint8_t> old(bytes.begin(), bytes.begin() + 12);
  old[4] = 1;
  old.insert(old.end(), {7, 0, 0, 0});
  old.insert(old.end(), bytes.begin() + 20, bytes.end());
  const std::string p3 = temp_path("old.weights"), p4 = temp_path("old2.weights");
  std::ofstream(p3, std::ios::binary).write(reinterpret_cast<const char*>(old.data()), old.size());
  load_weights(*b, p3);
  EXPECT_EQ(b->images_seen, 7u);
  save_weights(*b, p4);
  EXPECT_EQ(file_bytes(p4), old);
}

TEST(DarknetWeights, TruncatedOrOversizedFilesNameFileAndOffset) {
  const std::string cfg =
      kNet + "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\npad=1\nactivation=leaky\n";
  auto a = build(cfg, "small.cfg");
  randomize(*a, test::next_seed());
  const std::string p = temp_path("ok.weights");
  save_weights(*a, p);
  std::vector<uint8_t> bytes = file_bytes(p);
  const std::string shortp = temp_path("short.weights"), longp = temp_path("long.weights");
  std::ofstream(shortp, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size() - 10);
  bytes.insert(bytes.end(), 8, 0);
  std::ofstream(longp, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  // 20 header + 4 * 6 * 4 BN = 116: the weights [6, 3, 3, 3] start there and need 648 bytes.
  test::expect_error([&] { load_weights(*a, shortp); },
                     {shortp, "truncated", "layer 0 [convolutional]", "weights", "byte offset 116", "754"});
  test::expect_error([&] { load_weights(*a, longp); }, {longp, "8 bytes left", "byte offset 764"});
  test::expect_error([&] { load_weights(*a, temp_path("none.weights")); }, {"cannot open", "none.weights"});
}

TEST(DarknetWeights, CutoffReadsAndWritesALeadingPart) {
  const std::string cfg = kNet +
                          "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"
                          "[convolutional]\nfilters=5\nsize=1\nactivation=leaky\n";
  auto a = build(cfg), b = build(cfg);
  randomize(*a, test::next_seed());
  const std::string p = temp_path("part.weights");
  save_weights(*a, p, {.cutoff = 1});
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(p)), 20 + 4 * (6 + 6 * 27));
  load_weights(*b, p, {.cutoff = 1});
  test::expect_close(b->layers[0].conv->conv->weight, a->layers[0].conv->conv->weight, 0);
  test::expect_error([&] { load_weights(*b, p); }, {"truncated", "layer 1"});
}

// ---- decode and NMS by hand -------------------------------------------------------------------------

TEST(DarknetYolo, DecodeFollowsGetYoloBoxAndLetterboxCorrection) {
  YoloParams p;
  p.classes = 2, p.num = 2, p.mask = {1}, p.anchors = {10, 20, 30, 40};
  // One anchor, 2 x 2 grid; entries x, y, w, h, obj, c0, c1 (already activated as the layer outputs them).
  Tensor out = zeros({1, 7, 2, 2});
  auto set = [&](int e, int row, int col, float v) { out.data<float>()[(e * 2 + row) * 2 + col] = v; };
  set(0, 1, 0, 0.25f), set(1, 1, 0, 0.5f), set(2, 1, 0, 0.0f), set(3, 1, 0, std::log(2.0f));
  set(4, 1, 0, 0.9f), set(5, 1, 0, 0.5f), set(6, 1, 0, 0.1f);
  set(4, 0, 1, 0.3f);  // under the threshold
  // Image 200 x 100 into a 64 x 64 net: new_w 64, new_h 32, 16 rows of padding above.
  auto dets = get_yolo_detections(p, out, 200, 100, 64, 64, 0.4f, true);
  ASSERT_EQ(dets.size(), 1u);
  const Detection& d = dets[0];
  EXPECT_EQ(d.row, 1);
  EXPECT_EQ(d.col, 0);
  EXPECT_NEAR(d.objectness, 0.9, 1e-7);
  EXPECT_NEAR(d.prob[0], 0.45, 1e-6);
  EXPECT_EQ(d.prob[1], 0.0f);                             // 0.09 is under 0.4
  EXPECT_NEAR(d.bbox.x, 0.125, 1e-6);                     // (0 + .25) / 2
  EXPECT_NEAR(d.bbox.y, (0.75 - 16.0 / 64) / 0.5, 1e-6);  // (1 + .5) / 2, then the letterbox
  EXPECT_NEAR(d.bbox.w, 30.0 / 64, 1e-6);                 // exp(0) * anchor 1's w / 64
  EXPECT_NEAR(d.bbox.h, 2 * 40.0 / 64 * 2, 1e-5);         // exp(log 2) * 40 / 64, times 64 / 32
  auto abs_dets = get_yolo_detections(p, out, 200, 100, 64, 64, 0.4f, false);
  EXPECT_NEAR(abs_dets[0].bbox.x, 0.125 * 200, 1e-4);
  EXPECT_NEAR(abs_dets[0].bbox.h, 2.5 * 100, 1e-3);
}

TEST(DarknetYolo, NmsSuppressesPerClassInProbabilityOrder) {
  auto det = [](float x, float y, float w, float h, float obj, std::vector<float> prob) {
    Detection d;
    d.bbox = {x, y, w, h};
    d.objectness = obj;
    d.prob = std::move(prob);
    return d;
  };
  std::vector<Detection> dets = {
      det(0.50f, 0.5f, 0.2f, 0.2f, 0.8f, {0.6f, 0.0f}),   // overlaps the next one (IoU 0.82)
      det(0.51f, 0.5f, 0.2f, 0.2f, 0.9f, {0.7f, 0.5f}),   // best of class 0; only one of class 1
      det(0.90f, 0.9f, 0.1f, 0.1f, 0.7f, {0.65f, 0.0f}),  // far away: kept
      det(0.50f, 0.5f, 0.2f, 0.2f, 0.0f, {0.9f, 0.9f}),   // objectness 0: ignored and moved last
  };
  EXPECT_NEAR(box_iou(dets[0].bbox, dets[1].bbox), (0.19 * 0.2) / (0.08 - 0.19 * 0.2), 1e-6);
  do_nms_sort(dets, 2, 0.45f);
  ASSERT_EQ(dets.size(), 4u);
  EXPECT_EQ(dets[3].objectness, 0.0f);
  // After the class-1 pass the order is by class-1 probability: the 0.5 box first.
  EXPECT_EQ(dets[0].prob[1], 0.5f);
  int kept0 = 0;
  for (int i = 0; i < 3; ++i) kept0 += dets[i].prob[0] > 0;
  EXPECT_EQ(kept0, 2);
  for (int i = 0; i < 3; ++i) {  // the 0.6 box is suppressed by the 0.7 box
    if (dets[i].bbox.x == 0.50f) {
      EXPECT_EQ(dets[i].prob[0], 0.0f);
    }
  }
}

TEST(DarknetYolo, LetterboxKeepsAspectAndFillsGrey) {
  Tensor im = rand({3, 30, 60});
  Tensor lb = letterbox_image(im, 32, 32);
  ASSERT_EQ(lb.shape(), (Shape{3, 32, 32}));
  // 60 x 30 -> 32 x 16, rows 8..23; grey elsewhere.
  auto v = lb.to_vector<float>();
  EXPECT_EQ(v[0], 0.5f);
  EXPECT_EQ(v[7 * 32 + 5], 0.5f);
  EXPECT_EQ(v[24 * 32 + 5], 0.5f);
  // Corners are the image's corners (Darknet's resize maps corner to corner).
  auto iv = im.to_vector<float>();
  EXPECT_NEAR(v[8 * 32 + 0], iv[0], 1e-6);
  EXPECT_NEAR(v[23 * 32 + 31], iv[29 * 60 + 59], 1e-6);
  // Interior: bilinear at (r * 29 / 15, c * 59 / 31).
  const int r = 5, c = 7;
  const float sy = r * (29.0f / 15), sx = c * (59.0f / 31);
  const int iy = static_cast<int>(sy), ix = static_cast<int>(sx);
  const float dy = sy - iy, dx = sx - ix;
  auto px = [&](int y, int x) { return iv[y * 60 + x]; };
  const float want = (1 - dy) * ((1 - dx) * px(iy, ix) + dx * px(iy, ix + 1)) +
                     dy * ((1 - dx) * px(iy + 1, ix) + dx * px(iy + 1, ix + 1));
  EXPECT_NEAR(v[(8 + r) * 32 + c], want, 1e-5);
}

// ---- Darknet itself as the oracle -------------------------------------------------------------------

bool have_darknet() {
  return fs::exists("/usr/bin/darknet") && fs::exists("/usr/lib/darknet/include/darknet.h") &&
         fs::exists(kDebianCfg + "/yolov3-tiny.cfg");
}

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(DarknetOracle, PartialWritesWeightsWeReadAndWriteBackIdentically) {
  if (!have_darknet()) GTEST_SKIP() << "Debian's darknet is not installed";
  const std::string cfg = kDebianCfg + "/yolov3-tiny.cfg", out = temp_path("partial.weights");
  ASSERT_EQ(run("darknet partial " + cfg + " /dev/null " + out + " 1000 >/dev/null 2>&1"), 0);
  auto net = DarknetNetwork::from_file(cfg);
  load_weights(*net, out);
  // Darknet's initialisation: BN biases 0, scales 1, rolling stats 0; conv weights N(0, sqrt(2 / fan_in)).
  auto& c0 = *net->layers[0].conv;
  for (double s : c0.bn->weight.to_double_vector()) EXPECT_EQ(s, 1.0);
  for (double s : c0.bn->running_var.to_double_vector()) EXPECT_EQ(s, 0.0);
  const double sd = std::sqrt(var(c0.conv->weight).item());
  EXPECT_NEAR(sd, std::sqrt(2.0 / 27), 0.02);
  const std::string back = temp_path("partial_back.weights");
  save_weights(*net, back);
  EXPECT_EQ(file_bytes(back), file_bytes(out));
}

struct OracleDet {
  std::vector<float> v;  // x y w h objectness probs...
};

std::vector<OracleDet> read_dets(const std::string& path) {
  std::vector<OracleDet> dets;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    OracleDet d;
    float x;
    while (ss >> x) d.v.push_back(x);
    dets.push_back(d);
  }
  return dets;
}

// Sets every BN's rolling statistics to those of `x` (a training-mode pass with momentum 1), then perturbs
// them a little, so that activations stay O(1) through deep random nets in evaluation mode.
void calibrate_batch_norm(DarknetNetwork& net, const Tensor& x) {
  NoGradGuard ng;
  net.train();
  for (const Layer& l : net.layers)
    if (l.conv && l.conv->bn) l.conv->bn->momentum = 1.0;
  net.forward(x);
  Generator g{test::next_seed(), 0};
  for (const Layer& l : net.layers)
    if (l.conv && l.conv->bn) {
      auto& bn = *l.conv->bn;
      bn.momentum = 0.01;
      bn.running_mean.copy_(bn.running_mean + normal(bn.running_mean.shape(), 0, 0.05, {}, &g));
      bn.running_var.copy_(bn.running_var * uniform(bn.running_var.shape(), 0.8, 1.25, {}, &g));
    }
  net.eval();
}

// Runs the oracle on `cfg` with fresh random weights and compares image decode, letterbox, every [yolo]
// layer's output (|ours - darknet| / (1 + |darknet|) <= raw_tol) and the boxes after NMS.
void check_against_darknet(const std::string& cfg, const std::string& image, float thresh,
                           const std::string& tag, double raw_tol) {
  auto net = DarknetNetwork::from_file(cfg);
  randomize(*net, test::next_seed());
  Tensor image_chw = data::read_image(image, data::ImageMode::rgb).permute({2, 0, 1}).to(DType::f32) / 255.0;
  calibrate_batch_norm(*net, letterbox_image(image_chw, net->net.width, net->net.height).unsqueeze(0));
  const std::string dir = temp_path("oracle_" + tag), weights = dir + "/random.weights";
  fs::create_directories(dir);
  save_weights(*net, weights);
  const std::string cmd = str_cat("bash ", NABLA_SOURCE_DIR, "/scripts/darknet_oracle.sh ", cfg, " ", weights,
                                  " ", image, " ", dir, " ", thresh, " >", dir, "/script.log 2>&1");
  ASSERT_EQ(run(cmd), 0) << "see " << dir << "/script.log";

  // 1. The decoded image: ours (libjpeg-turbo) against Darknet's (OpenCV's imread).
  std::vector<uint8_t> hdr_bytes = file_bytes(dir + "/image.bin");
  int32_t hdr[3];
  std::memcpy(hdr, hdr_bytes.data(), 12);
  const int w = hdr[0], h = hdr[1];
  Tensor theirs = tensor_of(read_floats(dir + "/image.bin", 12), {3, h, w});
  const Tensor& ours = image_chw;
  ASSERT_EQ(ours.shape(), theirs.shape());
  const double decode_diff = amax(abs(ours - theirs)).item();
  std::printf("[%s] JPEG decode: max |ours - darknet| = %.3g (%d x %d)\n", tag.c_str(), decode_diff, w, h);
  EXPECT_LE(decode_diff, 2.5 / 255);

  // 2. Letterbox of Darknet's decoded image.
  Tensor input = tensor_of(read_floats(dir + "/input.bin"), {3, net->net.height, net->net.width});
  Tensor lb = letterbox_image(theirs, net->net.width, net->net.height);
  const double lb_diff = amax(abs(lb - input)).item();
  std::printf("[%s] letterbox: max diff %.3g\n", tag.c_str(), lb_diff);
  EXPECT_LE(lb_diff, 1e-6);

  // 3. Raw [yolo] layer outputs on Darknet's input.
  NoGradGuard ng;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Tensor> heads = net->forward_yolo(input.unsqueeze(0));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[%s] forward, batch 1, CPU: ours %.0f ms (darknet's own line: see %s/detector_test.txt)\n",
              tag.c_str(), ms, dir.c_str());
  const std::vector<int> idx = net->yolo_layers();
  std::vector<Tensor> theirs_heads;
  for (size_t k = 0; k < idx.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "/layer_%03d.bin", idx[k]);
    Tensor ref = tensor_of(read_floats(dir + name), heads[k].shape());
    theirs_heads.push_back(ref);
    const double diff = amax(abs(heads[k] - ref) / (abs(ref) + 1.0)).item();
    std::printf("[%s] layer %d [yolo] %s: max |ours - darknet| / (1 + |darknet|) = %.3g\n", tag.c_str(),
                idx[k], str_cat(heads[k].shape()).c_str(), diff);
    EXPECT_LE(diff, raw_tol) << "layer " << idx[k];
  }

  // 4. Boxes after the threshold and NMS, in Darknet's order: (a) decoded from Darknet's own [yolo] outputs,
  // which must give its boxes to float rounding and exactly the same kept (box, class) pairs; (b) decoded
  // from our outputs, the same unless a score of Darknet's lies within 2e-5 of the threshold (then the
  // rounding of (3) may move it across).
  const int classes = net->layers[idx[0]].yolo.classes;
  const std::vector<OracleDet> ref = read_dets(dir + "/dets.txt");
  auto compare = [&](const std::vector<Detection>& dets, double tol, const char* what) {
    ASSERT_EQ(dets.size(), ref.size()) << what;
    int kept = 0, mismatched = 0;
    for (size_t i = 0; i < dets.size(); ++i) {
      const Detection& d = dets[i];
      const std::vector<float>& r = ref[i].v;
      ASSERT_EQ(r.size(), 5u + classes);
      const float mine[5] = {d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h, d.objectness};
      for (int j = 0; j < 5; ++j)
        EXPECT_NEAR(mine[j], r[j], tol * (1 + std::fabs(r[j]))) << what << ": det " << i << " field " << j;
      for (int j = 0; j < classes; ++j) {
        kept += r[5 + j] > 0;
        if ((d.prob[j] > 0) != (r[5 + j] > 0)) ++mismatched;
        EXPECT_NEAR(d.prob[j], r[5 + j], tol) << what << ": det " << i << " class " << j;
      }
    }
    EXPECT_EQ(mismatched, 0) << what;
    std::printf("[%s] %s: %zu detections over thresh %.2f, %d (box, class) pairs kept after NMS, all equal\n",
                tag.c_str(), what, dets.size(), thresh, kept);
  };
  std::vector<Detection> dets = get_network_boxes(*net, theirs_heads, w, h, thresh, true);
  do_nms_sort(dets, classes, 0.45f);
  compare(dets, 1e-6, "decode + NMS of darknet's outputs");
  bool near_threshold = false;
  for (size_t k = 0; k < idx.size(); ++k) {
    const std::vector<float> o = theirs_heads[k].to_vector<float>();
    const int64_t plane = theirs_heads[k].size(2) * theirs_heads[k].size(3), entries = 5 + classes;
    for (size_t i = 0; i < o.size(); ++i) {
      const int64_t entry = (i / plane) % entries;
      if (entry < 4) continue;
      const float obj = o[i - (entry - 4) * plane];
      const float score = entry == 4 ? obj : obj * o[i];
      near_threshold |= std::fabs(score - thresh) < 2e-5f;
    }
  }
  std::vector<Detection> ours_dets = get_network_boxes(*net, heads, w, h, thresh, true);
  do_nms_sort(ours_dets, classes, 0.45f);
  if (near_threshold)
    std::printf("[%s] a score lies within 2e-5 of the threshold: our boxes are not compared\n", tag.c_str());
  else
    compare(ours_dets, 1e-4, "decode + NMS of our outputs");

  // 5. The `darknet detector test` printout: "name: NN%" per kept (box, class), in the same order.
  std::vector<std::string> names;
  {
    std::ifstream nf(classes == 80 ? kDebianData + "/coco.names" : dir + "/names.txt");
    std::string s;
    while (std::getline(nf, s)) names.push_back(s);
  }
  std::string printed, expected;
  {
    std::ifstream tf(dir + "/detector_test.txt");
    std::string s;
    while (std::getline(tf, s))
      if (s.find("Predicted in") == std::string::npos) printed += s + "\n";
  }
  for (const Detection& d : dets)
    for (int j = 0; j < classes; ++j)
      if (d.prob[j] > thresh)
        expected += str_cat(
            names[j], ": ",
            [&] {
              char b[16];
              std::snprintf(b, sizeof b, "%.0f%%", d.prob[j] * 100);
              return std::string(b);
            }(),
            "\n");
  EXPECT_EQ(printed, expected);
}

TEST(DarknetOracle, YoloV3TinyMatchesDarknetOnDogJpg) {
  if (!have_darknet()) GTEST_SKIP() << "Debian's darknet is not installed";
  check_against_darknet(kDebianCfg + "/yolov3-tiny.cfg", kDebianData + "/dog.jpg", 0.6f, "tiny", 1e-4);
}

TEST(DarknetOracle, PrunedUcsdYoloV3MatchesDarknet) {
  const std::string cfg = kPruned + "/yolov3_ucsd_abcp.cfg";
  if (!have_darknet() || !fs::exists(cfg)) GTEST_SKIP() << "needs Debian's darknet and " << cfg;
  const std::string img = NABLA_SOURCE_DIR
      "/../shared/data/detection-samples/sample_datasets/UCSD-dataset/JPEGImages/"
      "cctv052x2004080516x01638_0.jpg";
  // 62 layers deep: float rounding in two different GEMM orders accumulates to about 1e-4 at the heads.
  check_against_darknet(cfg, img, 0.6f, "ucsd", 3e-4);
}

}  // namespace
}  // namespace nabla

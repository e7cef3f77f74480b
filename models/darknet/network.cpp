// The Darknet network builder and its forward pass (see network.h for each layer's semantics).
#include "models/darknet/network.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "autograd/autograd.h"
#include "engine/error.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/nn.h"
#include "ops/reduce.h"

namespace nabla::models::darknet {
namespace {

const std::map<std::string, LayerType>& section_types() {
  static const std::map<std::string, LayerType> m = {{"convolutional", LayerType::convolutional},
                                                     {"conv", LayerType::convolutional},
                                                     {"shortcut", LayerType::shortcut},
                                                     {"route", LayerType::route},
                                                     {"upsample", LayerType::upsample},
                                                     {"maxpool", LayerType::maxpool},
                                                     {"max", LayerType::maxpool},
                                                     {"avgpool", LayerType::avgpool},
                                                     {"avg", LayerType::avgpool},
                                                     {"softmax", LayerType::softmax},
                                                     {"soft", LayerType::softmax},
                                                     {"dropout", LayerType::dropout},
                                                     {"yolo", LayerType::yolo}};
  return m;
}

// Darknet section types (string_to_layer_type) that this builder does not build.
const std::set<std::string>& unsupported_darknet_types() {
  static const std::set<std::string> s = {"shortcut_mixed",
                                          "crop",
                                          "cost",
                                          "detection",
                                          "region",
                                          "iseg",
                                          "local",
                                          "deconv",
                                          "deconvolutional",
                                          "activation",
                                          "logistic",
                                          "l2norm",
                                          "network_in_network",
                                          "crnn",
                                          "gru",
                                          "lstm",
                                          "rnn",
                                          "conn",
                                          "connected",
                                          "normalization",
                                          "lrn",
                                          "batchnorm",
                                          "reorg"};
  return s;
}

Activation parse_activation(const CfgSection& s, const std::string& fallback) {
  const std::string a = s.get_string("activation", fallback);
  if (a == "linear") return Activation::linear;
  if (a == "leaky") return Activation::leaky;
  if (a == "relu") return Activation::relu;
  if (a == "logistic") return Activation::logistic;
  if (a == "tanh") return Activation::tanh;
  if (a == "mish") return Activation::mish;
  fail(s.where("activation"), "unsupported activation '", a,
       "' (supported: linear, leaky, relu, logistic, tanh, mish)");
}

// Max pooling with Darknet's window placement: pad -inf on the left/top by padding / 2 and on the
// right/bottom as far as the last window reaches, then pool without padding. A constant-pad op would do
// this in one call; the engine has none, so the -inf borders are concatenated.
Tensor darknet_max_pool(const Tensor& x, int size, int stride, int padding) {
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t out_h = (h + padding - size) / stride + 1, out_w = (w + padding - size) / stride + 1;
  const int64_t before = padding / 2;
  const int64_t after_h = std::max<int64_t>(0, (out_h - 1) * stride + size - before - h);
  const int64_t after_w = std::max<int64_t>(0, (out_w - 1) * stride + size - before - w);
  if (before == after_h && before == after_w && 2 * before <= size)
    return max_pool2d(x, {size, size}, {stride, stride}, {before, before});
  const double ninf = -std::numeric_limits<double>::infinity();
  const TensorOptions o{.dtype = x.dtype(), .device = x.device()};
  Tensor y = x;
  auto pad_dim = [&](int64_t dim, int64_t lo, int64_t hi) {
    std::vector<Tensor> parts;
    Shape s = y.shape();
    if (lo > 0) {
      s[dim] = lo;
      parts.push_back(full(s, ninf, o));
    }
    parts.push_back(y);
    if (hi > 0) {
      s[dim] = hi;
      parts.push_back(full(s, ninf, o));
    }
    if (parts.size() > 1) y = cat(parts, dim);
  };
  pad_dim(3, before, after_w);
  pad_dim(2, before, after_h);
  return max_pool2d(y, {size, size}, {stride, stride}, {0, 0});
}

// Darknet's shortcut_cpu: out = x, then out[:minc, j * sample, i * sample] += add[:minc, j * stride, i *
// stride] with stride = W_add / W_out and sample = W_out / W_add (each at least 1), over min(W), min(H)
// positions.
Tensor shortcut_add(const Tensor& x, const Tensor& add) {
  if (x.shape() == add.shape()) return x + add;
  const int64_t n = x.size(0), c1 = add.size(1), h1 = add.size(2), w1 = add.size(3);
  const int64_t c2 = x.size(1), h2 = x.size(2), w2 = x.size(3);
  const int64_t stride = std::max<int64_t>(1, w1 / w2), sample = std::max<int64_t>(1, w2 / w1);
  const int64_t minc = std::min(c1, c2), minh = std::min(h1, h2), minw = std::min(w1, w2);
  // Pick add[:, :minc, j * stride, i * stride] for j < minh, i < minw.
  Tensor a = add.narrow(1, 0, minc).narrow(2, 0, minh * stride).narrow(3, 0, minw * stride).contiguous();
  if (stride > 1) a = a.reshape({n, minc, minh, stride, minw, stride}).select(5, 0).select(3, 0).contiguous();
  // Place it at out[:, :, j * sample, i * sample]: interleave zeros, then pad to the output size.
  if (sample > 1) {
    Tensor z = zeros({n, minc, minh, sample, minw, sample}, {.dtype = a.dtype(), .device = a.device()});
    Tensor spread = cat({a.reshape({n, minc, minh, 1, minw, 1}), z.narrow(5, 1, sample - 1).narrow(3, 0, 1)},
                        5);                                 // [n, minc, minh, 1, minw, sample]
    spread = cat({spread, z.narrow(3, 1, sample - 1)}, 3);  // [n, minc, minh, sample, minw, sample]
    a = spread.reshape({n, minc, minh * sample, minw * sample});
  }
  const TensorOptions o{.dtype = a.dtype(), .device = a.device()};
  if (a.size(2) < h2) a = cat({a, zeros({n, minc, h2 - a.size(2), a.size(3)}, o)}, 2);
  if (a.size(3) < w2) a = cat({a, zeros({n, minc, h2, w2 - a.size(3)}, o)}, 3);
  a = a.narrow(2, 0, h2).narrow(3, 0, w2);
  if (minc < c2) a = cat({a, zeros({n, c2 - minc, h2, w2}, o)}, 1);
  return x + a;
}

// Darknet's yolo layer output in evaluation: logistic on x, y, objectness and classes; w, h raw.
Tensor yolo_activate(const Tensor& x, const YoloParams& p) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t entries = 5 + p.classes, anchors = static_cast<int64_t>(p.mask.size());
  Tensor v = x.reshape({n, anchors, entries, h, w});
  Tensor xy = sigmoid(v.narrow(2, 0, 2));
  if (p.scale_x_y != 1.0f) xy = xy * static_cast<double>(p.scale_x_y) - 0.5 * (p.scale_x_y - 1.0);
  Tensor wh = v.narrow(2, 2, 2);
  Tensor rest = sigmoid(v.narrow(2, 4, entries - 4));
  return cat({xy, wh, rest}, 2).reshape({n, anchors * entries, h, w});
}

}  // namespace

const char* layer_type_name(LayerType t) {
  switch (t) {
    case LayerType::convolutional:
      return "convolutional";
    case LayerType::shortcut:
      return "shortcut";
    case LayerType::route:
      return "route";
    case LayerType::upsample:
      return "upsample";
    case LayerType::maxpool:
      return "maxpool";
    case LayerType::avgpool:
      return "avgpool";
    case LayerType::softmax:
      return "softmax";
    case LayerType::dropout:
      return "dropout";
    case LayerType::yolo:
      return "yolo";
  }
  return "?";
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::linear:
      return "linear";
    case Activation::leaky:
      return "leaky";
    case Activation::relu:
      return "relu";
    case Activation::logistic:
      return "logistic";
    case Activation::tanh:
      return "tanh";
    case Activation::mish:
      return "mish";
  }
  return "?";
}

Tensor activate(const Tensor& x, Activation a) {
  switch (a) {
    case Activation::linear:
      return x;
    case Activation::leaky:
      return leaky_relu(x, 0.1);
    case Activation::relu:
      return relu(x);
    case Activation::logistic:
      return sigmoid(x);
    case Activation::tanh:
      return tanh(x);
    case Activation::mish: {
      Tensor softplus = relu(x) + log1p(exp(-abs(x)));  // log(1 + e^x) without overflow
      return x * tanh(softplus);
    }
  }
  return x;
}

namespace {
std::atomic<int> g_fused{-1};  // -1: not read yet; 0 / 1: off / on
}  // namespace

bool darknet_fused() {
  int v = g_fused.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* e = std::getenv("NABLA_DARKNET_FUSED");
    v = (e && std::strcmp(e, "0") == 0) ? 0 : 1;
    g_fused.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

void set_darknet_fused(bool on) { g_fused.store(on ? 1 : 0, std::memory_order_relaxed); }

std::vector<std::string> supported_section_types() {
  std::vector<std::string> out = {"net"};
  for (auto& [name, t] : section_types()) out.push_back(name);
  return out;
}

DarknetConv::DarknetConv(int in_channels, int filters, int size, int stride, int padding, int groups,
                         bool batch_normalize, Activation act)
    : Module("DarknetConv"), activation(act) {
  conv = register_module("conv", std::make_shared<nn::Conv2d>(in_channels, filters, Pair{size, size},
                                                              nn::Conv2dOptions{.stride = {stride, stride},
                                                                                .padding = {padding, padding},
                                                                                .groups = groups,
                                                                                .bias = !batch_normalize}));
  if (batch_normalize) bn = register_module("bn", std::make_shared<nn::BatchNorm>(filters, 2, 1e-5, 0.01));
}

Tensor DarknetConv::forward(const Tensor& x) {
  Tensor y = conv->forward(x);
  // leaky / relu after batch norm: one batch_norm_add_relu with that negative slope (network.h).
  const bool fuse =
      bn && darknet_fused() && (activation == Activation::leaky || activation == Activation::relu);
  const double slope = activation == Activation::leaky ? 0.1 : 0.0;
  if (bn) {
    if (is_training()) {
      if (fuse) return bn->forward_add_relu(y, Tensor(), slope);
      y = bn->forward(y);
    } else if (y.device().is_cuda()) {
      // On the GPU, one batch-norm pass instead of five element-wise ones (sub, div, mul, add and the
      // f32<->bf16 casts around them: half of YOLOv3's inference time): batch_norm in evaluation with eps 0
      // and the variance v' = (sqrt(v) + 1e-6)^2 computes (x - mean) * rsqrt(v') * scales + biases, Darknet's
      // formula up to rounding (the CPU path below stays Darknet's order of operations, for the oracle
      // tests).
      Tensor v = sqrt(bn->running_var) + 1e-6;
      if (fuse)
        return batch_norm_add_relu(y, bn->weight, bn->bias, bn->running_mean, v * v, /*training=*/false,
                                   Tensor(), 0.0, 0.0, slope);
      y = batch_norm(y, bn->weight, bn->bias, bn->running_mean, v * v, /*training=*/false, 0.0, 0.0);
    } else {
      // Darknet's normalize_cpu, scale_bias and add_bias in its order (x - mean) / (sqrt(var) + .000001f)
      // * scales + biases: folding it into one affine map differs by a few ulps where x is near the mean,
      // and deep nets amplify that.
      const Shape c{1, bn->num_features, 1, 1};
      Tensor denom = sqrt(bn->running_var) + 1e-6;
      y = (y - bn->running_mean.reshape(c)) / denom.reshape(c) * bn->weight.reshape(c) + bn->bias.reshape(c);
    }
  }
  return activate(y, activation);
}

DarknetNetwork::DarknetNetwork(const Cfg& cfg, bool allocate)
    : Module("DarknetNetwork"), cfg_path_(cfg.path), allocated_(allocate) {
  NABLA_CHECK(!cfg.sections.empty(), cfg.path, ": empty cfg");
  {  // Every section type this builder lacks, in one error.
    std::string bad;
    for (size_t si = 1; si < cfg.sections.size(); ++si) {
      const CfgSection& s = cfg.sections[si];
      if (section_types().count(s.type)) continue;
      bad += str_cat(bad.empty() ? "" : ", ", "[", s.type, "] at line ", s.line,
                     unsupported_darknet_types().count(s.type) ? "" : " (not a Darknet layer type)");
    }
    if (!bad.empty()) {
      std::string supported;
      for (const std::string& n : supported_section_types()) supported += (supported.empty() ? "" : ", ") + n;
      fail(cfg.path, ": layer types not supported by this builder: ", bad, " (supported: ", supported, ")");
    }
  }
  const CfgSection& ns = cfg.sections[0];
  NABLA_CHECK(ns.type == "net" || ns.type == "network", ns.where(), "the first section must be [net], got [",
              ns.type, "]");
  net.width = ns.get_int("width", 0);
  net.height = ns.get_int("height", 0);
  net.channels = ns.get_int("channels", 0);
  NABLA_CHECK(net.width > 0 && net.height > 0 && net.channels > 0, ns.where(),
              "expected width, height and channels > 0, got width=", net.width, " height=", net.height,
              " channels=", net.channels);
  net.batch = ns.get_int("batch", 1);
  net.subdivisions = ns.get_int("subdivisions", 1);
  net.momentum = ns.get_float("momentum", 0.9f);
  net.decay = ns.get_float("decay", 0.0001f);
  net.learning_rate = ns.get_float("learning_rate", 0.001f);
  net.burn_in = ns.get_int("burn_in", 0);
  net.max_batches = ns.get_int("max_batches", 0);
  net.policy = ns.get_string("policy", "constant");
  net.steps = ns.get_ints("steps");
  net.scales = ns.get_floats("scales");
  net.angle = ns.get_float("angle", 0);
  net.saturation = ns.get_float("saturation", 1);
  net.exposure = ns.get_float("exposure", 1);
  net.hue = ns.get_float("hue", 0);
  for (const CfgOption& o : ns.options) o.used = true;  // all of [net] is kept as data
  net.options = ns.options;

  int c = net.channels, h = net.height, w = net.width;
  for (size_t si = 1; si < cfg.sections.size(); ++si) {
    const CfgSection& s = cfg.sections[si];
    auto it = section_types().find(s.type);
    Layer l;
    l.type = it->second;
    l.index = static_cast<int>(layers.size());
    l.line = s.line;
    l.in_c = c, l.in_h = h, l.in_w = w;
    auto resolve = [&](int idx, const char* key) {
      const int abs_idx = idx < 0 ? l.index + idx : idx;
      NABLA_CHECK(abs_idx >= 0 && abs_idx < l.index, s.where(key), "layer ", idx,
                  (idx < 0 ? str_cat(" (= ", abs_idx, ")") : std::string()), " does not exist: layer ",
                  l.index, " can read layers 0..", l.index - 1);
      return abs_idx;
    };
    switch (l.type) {
      case LayerType::convolutional: {
        l.filters = s.get_int("filters", 1);
        l.size = s.get_int("size", 1);
        l.stride = s.get_int("stride", 1);
        const int pad = s.get_int("pad", 0);
        l.padding = s.get_int("padding", 0);
        if (pad) l.padding = l.size / 2;
        l.groups = s.get_int("groups", 1);
        l.batch_normalize = s.get_int("batch_normalize", 0) != 0;
        l.activation = parse_activation(s, "logistic");
        NABLA_CHECK(l.filters > 0, s.where("filters"), "expected filters > 0, got ", l.filters);
        NABLA_CHECK(l.size > 0, s.where("size"), "expected size > 0, got ", l.size);
        NABLA_CHECK(l.stride > 0, s.where("stride"), "expected stride > 0, got ", l.stride);
        NABLA_CHECK(l.padding >= 0, s.where("padding"), "expected padding >= 0, got ", l.padding);
        NABLA_CHECK(l.groups > 0 && c % l.groups == 0 && l.filters % l.groups == 0, s.where("groups"),
                    "groups=", l.groups, " must divide the input channels (", c, ") and filters (", l.filters,
                    ")");
        NABLA_CHECK(h + 2 * l.padding >= l.size && w + 2 * l.padding >= l.size, s.where("size"), "kernel ",
                    l.size, " does not fit the input ", h, "x", w, " with padding ", l.padding);
        for (const char* k : {"binary", "xnor"})
          NABLA_CHECK(s.get_int(k, 0) == 0, s.where(k), "binary/xnor convolutions are not supported");
        l.out_c = l.filters;
        l.out_h = (h + 2 * l.padding - l.size) / l.stride + 1;
        l.out_w = (w + 2 * l.padding - l.size) / l.stride + 1;
        if (allocate)
          l.conv = register_module(std::to_string(l.index),
                                   std::make_shared<DarknetConv>(c, l.filters, l.size, l.stride, l.padding,
                                                                 l.groups, l.batch_normalize, l.activation));
        break;
      }
      case LayerType::shortcut: {
        const std::vector<int> from = s.get_ints("from");
        NABLA_CHECK(from.size() == 1, s.where("from"), "expected one layer index, got ", from.size());
        l.inputs = {resolve(from[0], "from")};
        const Layer& f = layers[l.inputs[0]];
        // Darknet's shortcut_cpu asserts that the width and height ratios agree.
        NABLA_CHECK(f.out_w / w == f.out_h / h && w / f.out_w == h / f.out_h, s.where("from"),
                    "shape mismatch: layer ", f.index, " gives ", f.out_c, "x", f.out_h, "x", f.out_w,
                    " but the previous layer gives ", c, "x", h, "x", w,
                    ": the height and width ratios must be the same");
        l.activation = parse_activation(s, "linear");
        NABLA_CHECK(s.get_float("alpha", 1) == 1 && s.get_float("beta", 1) == 1, s.where("alpha"),
                    "shortcut alpha/beta other than 1 are not supported");
        l.out_c = c, l.out_h = h, l.out_w = w;
        break;
      }
      case LayerType::route: {
        NABLA_CHECK(s.has("layers"), s.where("layers"), "missing required option 'layers'");
        for (int idx : s.get_ints("layers")) l.inputs.push_back(resolve(idx, "layers"));
        const Layer& first = layers[l.inputs[0]];
        l.out_h = first.out_h, l.out_w = first.out_w, l.out_c = 0;
        for (int idx : l.inputs) {
          const Layer& r = layers[idx];
          NABLA_CHECK(r.out_h == first.out_h && r.out_w == first.out_w, s.where("layers"), "layer ", idx,
                      " gives ", r.out_h, "x", r.out_w, " but layer ", first.index, " gives ", first.out_h,
                      "x", first.out_w, ": routed layers must have the same height and width");
          l.out_c += r.out_c;
        }
        break;
      }
      case LayerType::upsample: {
        l.stride = s.get_int("stride", 2);
        NABLA_CHECK(l.stride > 0, s.where("stride"),
                    "expected stride > 0 (downsampling by a negative stride "
                    "is not supported), got ",
                    l.stride);
        l.scale = s.get_float("scale", 1);
        l.out_c = c, l.out_h = h * l.stride, l.out_w = w * l.stride;
        break;
      }
      case LayerType::maxpool: {
        l.stride = s.get_int("stride", 1);
        l.size = s.get_int("size", l.stride);
        l.padding = s.get_int("padding", l.size - 1);
        NABLA_CHECK(l.stride > 0 && l.size > 0, s.where("size"),
                    "expected size and stride > 0, got size=", l.size, " stride=", l.stride);
        NABLA_CHECK(l.padding >= 0 && l.padding / 2 < l.size, s.where("padding"),
                    "expected 0 <= padding / 2 < "
                    "size, got padding=",
                    l.padding, " size=", l.size);
        l.out_c = c;
        l.out_h = (h + l.padding - l.size) / l.stride + 1;
        l.out_w = (w + l.padding - l.size) / l.stride + 1;
        NABLA_CHECK(l.out_h > 0 && l.out_w > 0, s.where("size"), "window ", l.size, " does not fit ", h, "x",
                    w);
        break;
      }
      case LayerType::avgpool:
        l.out_c = c, l.out_h = 1, l.out_w = 1;
        break;
      case LayerType::softmax: {
        l.groups = s.get_int("groups", 1);
        l.temperature = s.get_float("temperature", 1);
        const int inputs = c * h * w;
        NABLA_CHECK(l.groups > 0 && inputs % l.groups == 0, s.where("groups"), "groups=", l.groups,
                    " must divide the input size ", inputs);
        l.out_c = inputs, l.out_h = 1, l.out_w = 1;
        break;
      }
      case LayerType::dropout:
        l.probability = s.get_float("probability", 0.5f);
        NABLA_CHECK(l.probability >= 0 && l.probability < 1, s.where("probability"),
                    "expected 0 <= probability < 1, got ", l.probability);
        l.out_c = c, l.out_h = h, l.out_w = w;
        break;
      case LayerType::yolo: {
        YoloParams& y = l.yolo;
        y.classes = s.get_int("classes", 20);
        y.num = s.get_int("num", 1);
        y.mask = s.get_ints("mask");
        if (y.mask.empty())
          for (int i = 0; i < y.num; ++i) y.mask.push_back(i);
        y.anchors = s.get_floats("anchors");
        if (y.anchors.empty()) y.anchors.assign(2 * y.num, 0.5f);  // Darknet's make_yolo_layer default
        y.max_boxes = s.get_int("max", 90);
        y.jitter = s.get_float("jitter", 0.2f);
        y.ignore_thresh = s.get_float("ignore_thresh", 0.5f);
        y.truth_thresh = s.get_float("truth_thresh", 1.0f);
        y.random = s.get_int("random", 0);
        y.scale_x_y = s.get_float("scale_x_y", 1.0f);
        NABLA_CHECK(y.classes > 0, s.where("classes"), "expected classes > 0, got ", y.classes);
        NABLA_CHECK(y.anchors.size() == static_cast<size_t>(2 * y.num), s.where("anchors"), "expected ",
                    2 * y.num, " numbers (num=", y.num, " anchors as w,h pairs), got ", y.anchors.size());
        for (int m : y.mask)
          NABLA_CHECK(m >= 0 && m < y.num, s.where("mask"), "mask index ", m, " is out of the ", y.num,
                      " anchors (num=", y.num, ")");
        const int expected = static_cast<int>(y.mask.size()) * (5 + y.classes);
        NABLA_CHECK(c == expected, s.where("classes"), "the input has ", c, " channels but ", y.mask.size(),
                    " anchors x (5 + ", y.classes, " classes) = ", expected,
                    " are needed (set the previous convolution's filters to ", expected, ")");
        l.out_c = c, l.out_h = h, l.out_w = w;
        break;
      }
    }
    NABLA_CHECK(l.out_c > 0 && l.out_h > 0 && l.out_w > 0, s.where(), "layer ", l.index, " would output ",
                l.out_c, "x", l.out_h, "x", l.out_w);
    c = l.out_c, h = l.out_h, w = l.out_w;
    for (const std::string& u : s.unused()) unused_options.push_back(u);
    layers.push_back(std::move(l));
  }
  NABLA_CHECK(!layers.empty(), cfg.path, ": no layers after [net]");
  last_use_.assign(layers.size(), -1);
  for (const Layer& l : layers) {
    if (l.index > 0) last_use_[l.index - 1] = l.index;
    for (int i : l.inputs) last_use_[i] = std::max(last_use_[i], l.index);
  }
}

std::shared_ptr<DarknetNetwork> DarknetNetwork::from_file(const std::string& cfg_path, bool allocate) {
  return std::make_shared<DarknetNetwork>(read_cfg(cfg_path), allocate);
}

Tensor DarknetNetwork::run_layer(const Layer& l, const Tensor& x, const std::vector<Tensor>& outs) {
  switch (l.type) {
    case LayerType::convolutional:
      return l.conv->forward(x);
    case LayerType::shortcut:
      return activate(shortcut_add(x, outs[l.inputs[0]]), l.activation);
    case LayerType::route: {
      if (l.inputs.size() == 1) return outs[l.inputs[0]];
      std::vector<Tensor> parts;
      for (int i : l.inputs) parts.push_back(outs[i]);
      return cat(parts, 1);
    }
    case LayerType::upsample: {
      Tensor y = upsample_nearest2d(x, {l.stride, l.stride});
      return l.scale == 1 ? y : y * static_cast<double>(l.scale);
    }
    case LayerType::maxpool:
      return darknet_max_pool(x, l.size, l.stride, l.padding);
    case LayerType::avgpool:
      return mean(x, {2, 3}, true);
    case LayerType::softmax: {
      const int64_t n = x.size(0), inputs = x.numel() / n;
      Tensor v = x.reshape({n, l.groups, inputs / l.groups});
      if (l.temperature != 1) v = v / static_cast<double>(l.temperature);
      return softmax(v, 2).reshape({n, inputs, 1, 1});
    }
    case LayerType::dropout:
      return is_training() ? dropout(x, l.probability, true) : x;
    case LayerType::yolo:
      return is_training() ? x : yolo_activate(x, l.yolo);
  }
  return x;
}

std::vector<Tensor> DarknetNetwork::run(const Tensor& x, bool keep_all) {
  NABLA_CHECK(allocated_, "darknet ", cfg_path_, ": built with allocate = false (shapes only): no forward");
  NABLA_CHECK(x.dim() == 4 && x.size(1) == net.channels, "darknet ", cfg_path_, ": expected an input [N, ",
              net.channels, ", H, W], got ", x.shape());
  std::vector<Tensor> outs(layers.size());
  // Channels-last: the input is brought to NHWC once (its gradient comes back in the caller's layout).
  const Tensor xin = channels_last_ && x.suggest_memory_format() != MemoryFormat::ChannelsLast
                         ? x.contiguous(MemoryFormat::ChannelsLast)
                         : x;
  for (const Layer& l : layers) {
    const Tensor& in = l.index == 0 ? xin : outs[l.index - 1];
    outs[l.index] = run_layer(l, in, outs);
    if (!keep_all)
      for (int j = 0; j < l.index; ++j)
        if (outs[j].defined() && last_use_[j] <= l.index && layers[j].type != LayerType::yolo)
          outs[j] = Tensor();
  }
  return outs;
}

Tensor DarknetNetwork::forward(const Tensor& x) { return run(x, false).back(); }

void DarknetNetwork::set_channels_last(bool on) {
  NABLA_CHECK(allocated_, "darknet ", cfg_path_, ": built with allocate = false (shapes only): no layout");
  to(on ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous);
  channels_last_ = on;
}

std::vector<Tensor> DarknetNetwork::forward_all(const Tensor& x) { return run(x, true); }

std::vector<Tensor> DarknetNetwork::forward_yolo(const Tensor& x) {
  std::vector<Tensor> outs = run(x, false), heads;
  for (const Layer& l : layers)
    if (l.type == LayerType::yolo) heads.push_back(outs[l.index]);
  return heads;
}

std::vector<int> DarknetNetwork::yolo_layers() const {
  std::vector<int> idx;
  for (const Layer& l : layers)
    if (l.type == LayerType::yolo) idx.push_back(l.index);
  return idx;
}

}  // namespace nabla::models::darknet

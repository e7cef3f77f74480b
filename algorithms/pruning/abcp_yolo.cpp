// The YOLO side of ABCP: YOLOv3 cfgs, in-memory detection data, fine-tune, mAP and loss (abcp_yolo.h).
#include "algorithms/pruning/abcp_yolo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "algorithms/optim/optimizer.h"
#include "autograd/autograd.h"
#include "engine/device_runtime.h"
#include "engine/error.h"
#include "models/darknet/yolo_layer.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"

namespace nabla::algorithms::pruning {

using namespace models::darknet;

std::string yolov3_cfg(const YoloV3Spec& spec) {
  NABLA_CHECK(spec.blocks.size() == 5, "yolov3 cfg: expected 5 stages of blocks, got ", spec.blocks.size());
  for (int n : spec.blocks) NABLA_CHECK(n >= 1, "yolov3 cfg: every stage needs at least one block, got ", n);
  NABLA_CHECK(spec.base >= 1 && spec.classes >= 1 && spec.width >= 32 && spec.height >= 32,
              "yolov3 cfg: expected base >= 1, classes >= 1 and an input of at least 32 x 32, got base ",
              spec.base, ", classes ", spec.classes, ", ", spec.width, " x ", spec.height);
  const int b = spec.base;
  std::string s = "[net]\nbatch=64\nsubdivisions=16\nwidth=" + std::to_string(spec.width) +
                  "\nheight=" + std::to_string(spec.height) +
                  "\nchannels=3\nmomentum=0.9\ndecay=0.0005\nangle=0\nsaturation=1.5\nexposure=1.5\nhue=.1\n"
                  "learning_rate=0.001\nburn_in=1000\nmax_batches=500200\npolicy=steps\nsteps=400000,450000\n"
                  "scales=.1,.1\n\n";
  int layer = 0;
  auto conv = [&](int filters, int size, int stride) {
    s += "[convolutional]\nbatch_normalize=1\nfilters=" + std::to_string(filters) +
         "\nsize=" + std::to_string(size) + "\nstride=" + std::to_string(stride) +
         "\npad=1\nactivation=leaky\n\n";
    ++layer;
  };
  conv(b, 3, 1);
  std::vector<int> stage_end;
  for (int st = 0; st < 5; ++st) {
    conv(b << (st + 1), 3, 2);
    for (int k = 0; k < spec.blocks[st]; ++k) {
      conv(b << st, 1, 1);
      conv(b << (st + 1), 3, 1);
      s += "[shortcut]\nfrom=-3\nactivation=linear\n\n";
      ++layer;
    }
    stage_end.push_back(layer - 1);
  }
  const int anchors[18] = {10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326};
  std::string anchor_text;
  for (int i = 0; i < 18; ++i) {
    const double scale = !spec.scale_anchors ? 1.0 : (i % 2 == 0 ? spec.width : spec.height) / 416.0;
    anchor_text += (i ? "," : "") + std::to_string(std::max(1L, std::lround(anchors[i] * scale)));
  }
  const char* masks[3] = {"6,7,8", "3,4,5", "0,1,2"};
  for (int h = 0; h < 3; ++h) {
    const int w = b << (4 - h);  // 1x1 width of the head: 16b, 8b, 4b
    if (h > 0) {
      s += "[route]\nlayers=-4\n\n";
      ++layer;
      conv(w, 1, 1);
      s += "[upsample]\nstride=2\n\n[route]\nlayers=-1," + std::to_string(stage_end[4 - h]) + "\n\n";
      layer += 2;
    }
    for (int k = 0; k < 3; ++k) conv(w, 1, 1), conv(2 * w, 3, 1);
    s += "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=" + std::to_string(3 * (5 + spec.classes)) +
         "\nactivation=linear\n\n[yolo]\nmask=" + masks[h] + "\nanchors=" + anchor_text +
         "\nclasses=" + std::to_string(spec.classes) +
         "\nnum=9\njitter=.3\nignore_thresh=.7\ntruth_thresh=1\nrandom=1\n\n";
    layer += 2;
  }
  return s;
}

std::string builtin_yolo_cfg(const std::string& name, int width, int height, int classes) {
  YoloV3Spec spec{.width = width, .height = height, .classes = classes};
  if (name == "yolov3-mini") {
    spec.base = 8;
    spec.blocks = {1, 1, 2, 2, 1};
  } else {
    NABLA_CHECK(name == "yolov3", "builtin yolo cfg: expected yolov3 or yolov3-mini, got '", name, "'");
  }
  return yolov3_cfg(spec);
}

DetectionData load_detection_data(const data::YoloDataset& ds, int w, int h) {
  NABLA_CHECK(ds.size() > 0, "detection data: the set has no images");
  std::vector<int64_t> idx(static_cast<size_t>(ds.size()));
  std::iota(idx.begin(), idx.end(), 0);
  data::DetectionAugment off;
  off.enabled = false;
  data::YoloDataset::Batch b = ds.batch(idx, w, h, off, 0, 1 << 20);
  DetectionData d;
  d.images = b.images.contiguous();
  for (const auto& boxes : b.boxes) {
    d.truths.emplace_back();
    for (const auto& x : boxes) d.truths.back().push_back({x.x, x.y, x.w, x.h, x.cls});
  }
  return d;
}

namespace {

// Images `idx` of d (optionally mirrored) on `device`, and their truths.
Tensor gather(const DetectionData& d, const std::vector<int64_t>& idx, Device device) {
  std::vector<double> v(idx.begin(), idx.end());
  Tensor ix = from_vector(v, {static_cast<int64_t>(idx.size())}, {.dtype = DType::i64});
  return index_select(d.images, 0, ix).to(device);
}

Device device_of(DarknetNetwork& net) {
  for (auto& p : net.parameters()) return p.device();
  return Device::cpu();
}

Tensor mirrored(const Tensor& x) {
  const int64_t w = x.size(3);
  std::vector<double> v(static_cast<size_t>(w));
  for (int64_t i = 0; i < w; ++i) v[static_cast<size_t>(i)] = static_cast<double>(w - 1 - i);
  return index_select(x, 3, from_vector(v, {w}, {.dtype = DType::i64}).to(x.device()));
}

}  // namespace

double detection_finetune(DarknetNetwork& net, const DetectionData& d, const std::vector<Tensor>& params,
                          const FinetuneOptions& o, const ChannelPlan* plan) {
  NABLA_CHECK(d.size() > 0, "detection fine-tune: no images");
  if (o.steps <= 0 || params.empty()) return 0;
  const Device device = device_of(net);
  optim::Adam adam(params, {.lr = o.lr});
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, d.size() - 1);
  net.train();
  if (!o.bn_train)
    for (Layer& l : net.layers)
      if (l.conv) l.conv->eval();
  const int64_t batch = std::min<int64_t>(o.batch, d.size());
  double tail = 0;
  int tail_n = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    std::vector<int64_t> idx(static_cast<size_t>(batch));
    for (auto& i : idx) i = pick(rng);
    Tensor x = gather(d, idx, device);
    std::vector<std::vector<TruthBox>> truths;
    for (int64_t i : idx) truths.push_back(d.truths[static_cast<size_t>(i)]);
    if (o.flip && rng() % 2) {
      x = mirrored(x);
      for (auto& t : truths)
        for (auto& b : t) b.x = 1.0f - b.x;
    }
    // The truths go up before the forward (a host-to-device copy waits for the stream).
    const YoloTruths up = upload_truths(truths, yolo_max_boxes(net), device);
    NetworkLoss l = network_yolo_loss(net, net.forward_yolo(x), up, /*with_stats=*/false);
    Tensor loss = l.loss * (1.0 / static_cast<double>(batch));
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (plan) apply_masks(net, *plan);
    const double v = loss.item_double();
    NABLA_CHECK(std::isfinite(v), "detection fine-tune: the loss is ", v, " at step ", step + 1,
                " (lower the learning rate)");
    if (step >= o.steps - 10) tail += v, ++tail_n;
  }
  if (o.bn_train && o.recalibrate > 0) recalibrate_batchnorm(net, d, o.recalibrate, batch, o.seed + 1);
  net.eval();
  return tail / std::max(1, tail_n);
}

void recalibrate_batchnorm(DarknetNetwork& net, const DetectionData& d, int batches, int64_t batch,
                           uint64_t seed) {
  NABLA_CHECK(d.size() > 0 && batches > 0 && batch > 0,
              "BN recalibration: expected images, batches > 0 and "
              "batch > 0");
  const Device device = device_of(net);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, d.size() - 1);
  recalibrate_bn(net, batches, [&](int) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min(batch, d.size())));
    for (auto& i : idx) i = pick(rng);
    (void)net.forward_yolo(gather(d, idx, device));
  });
}

metrics::MapResult detection_map(DarknetNetwork& net, const DetectionData& d, float thresh, float nms,
                                 int64_t batch) {
  NABLA_CHECK(d.size() > 0, "detection map: no images");
  const std::vector<int> heads = net.yolo_layers();
  NABLA_CHECK(!heads.empty(), "detection map: the network has no [yolo] layer");
  const int classes = net.layers[heads[0]].yolo.classes;
  const Device device = device_of(net);
  NoGradGuard ng;
  net.eval();
  std::vector<metrics::EvalBox> dets, truths;
  for (int64_t first = 0; first < d.size(); first += batch) {
    const int64_t n = std::min(batch, d.size() - first);
    std::vector<Tensor> out;
    for (const Tensor& t : net.forward_yolo(d.images.narrow(0, first, n).to(device)))
      out.push_back(t.to(Device::cpu()).to(DType::f32).contiguous());
    for (int64_t k = 0; k < n; ++k) {
      const int image = static_cast<int>(first + k);
      std::vector<Detection> det =
          get_network_boxes(net, out, net.net.width, net.net.height, thresh, true, static_cast<int>(k));
      if (nms > 0) do_nms_sort(det, classes, nms);
      for (const Detection& x : det)
        for (int c = 0; c < classes; ++c)
          if (x.prob[c] > 0) dets.push_back({image, c, x.bbox.x, x.bbox.y, x.bbox.w, x.bbox.h, x.prob[c]});
      for (const TruthBox& t : d.truths[static_cast<size_t>(image)])
        truths.push_back({image, t.cls, t.x, t.y, t.w, t.h, 1});
    }
  }
  return metrics::evaluate_map(dets, truths, classes, 0.5f, metrics::ApMethod::all_point);
}

double detection_loss(DarknetNetwork& net, const DetectionData& d, int64_t batch) {
  NABLA_CHECK(d.size() > 0, "detection loss: no images");
  const Device device = device_of(net);
  NoGradGuard ng;
  net.train();  // the [yolo] layers give logits in training mode
  for (Layer& l : net.layers)
    if (l.conv) l.conv->eval();
  double total = 0;
  for (int64_t first = 0; first < d.size(); first += batch) {
    const int64_t n = std::min(batch, d.size() - first);
    std::vector<std::vector<TruthBox>> truths(d.truths.begin() + first, d.truths.begin() + first + n);
    const YoloTruths up = upload_truths(truths, yolo_max_boxes(net), device);
    total += network_yolo_loss(net, net.forward_yolo(d.images.narrow(0, first, n).to(device)), up,
                               /*with_stats=*/false)
                 .loss.item_double();
  }
  net.eval();
  return total / static_cast<double>(d.size());
}

double detection_throughput(DarknetNetwork& net, const DetectionData& d, int64_t batch, int reps) {
  NABLA_CHECK(d.size() > 0 && batch > 0 && reps > 0,
              "detection throughput: expected images, batch > 0 and "
              "reps > 0");
  const Device device = device_of(net);
  NoGradGuard ng;
  net.eval();
  std::vector<int64_t> idx(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) idx[static_cast<size_t>(i)] = i % d.size();
  Tensor x = gather(d, idx, device);
  (void)net.forward_yolo(x);
  runtime::synchronize(device);
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) (void)net.forward_yolo(x);
  runtime::synchronize(device);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(batch) * reps / s;
}

}  // namespace nabla::algorithms::pruning

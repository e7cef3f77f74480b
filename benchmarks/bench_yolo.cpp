// Darknet YOLO throughput: a training step and inference of a network built from a .cfg, one JSON line per
// case, for comparison with benchmarks/yolo_torch.py (the same cfg built in plain PyTorch, same batch,
// precision, optimizer, loss and timing); scripts/gpu_check.sh (GPU_CHECK_PART=yolo) runs both.
//
// Training step = zero_grad, forward in training mode (bf16 autocast with --amp bf16), loss, backward, SGD
// (momentum 0.9, weight decay 5e-4). --loss surrogate (default): sum over the [yolo] heads of
// 0.5 * mean(head^2), the same on both sides, so the network alone is compared; --loss darknet: Darknet's
// [yolo] loss (models/darknet/yolo_loss.h) on fixed random truths (8 per image, uploaded once, as the
// images are), computed where the heads are (cuda/yolo_loss.cu on a GPU) without reading its statistics
// back; with NABLA_YOLO_LOSS_HOST=1 the old route: heads copied to the host, delta computed there and
// copied back (the record's "loss_on_host"). Not on the PyTorch side: a measure of the loss's cost. Inference
// = forward in evaluation mode under no_grad. Data: one batch of N(0, 1) images made on the device once.
// Timing as bench_resnet: `warmup` untimed steps, then `windows` windows of `steps` steps bracketed by
// device events; the median window's img/s. TF32 on unless --no-tf32.
// --channels-last: DarknetNetwork::set_channels_last (NHWC weights and activations; the input is made
// channels-last once, before timing, as the PyTorch side's). The record says "fused": whether conv + BN +
// leaky ran as one batch_norm_add_relu (NABLA_DARKNET_FUSED=0 turns it off).
// --cuda-graph (cuda only): after the warm-up steps (which chose cuDNN's algorithms), the step's forward and
// backward (training: zero_grad, forward, loss, backward; inference: the forward) are captured once as a
// CUDA graph (runtime::Graph) and every timed step replays it; SGD stays eager, as in train_classifier's
// --cuda-graph. The PyTorch side stays eager. The record gets "cuda_graph" and the graph's node count.
//
// Usage: bench_yolo --cfg yolov3.cfg [--name N] [--mode train|infer] [--batch 16] [--size 416]
//                   [--amp off|bf16] [--loss surrogate|darknet] [--device cuda|cpu] [--warmup 5]
//                   [--steps 5] [--windows 5] [--no-tf32] [--channels-last] [--cuda-graph]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "engine/device_runtime.h"
#include "engine/profile.h"
#include "benchmarks/kernel_trace_hook.h"
#include "models/darknet/network.h"
#include "models/darknet/yolo_loss.h"
#include "nabla.h"

namespace {
using namespace nabla;
using namespace nabla::models::darknet;

struct Options {
  std::string cfg, name, mode = "train", amp = "off", loss = "surrogate", device = "cuda";
  int64_t batch = 16, size = 416, warmup = 5, steps = 5, windows = 5;
  bool tf32 = true, channels_last = false, cuda_graph = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bench_yolo: %s\nusage: bench_yolo --cfg FILE [--name N] [--mode train|infer] [--batch N] "
               "[--size S] [--amp off|bf16] [--loss surrogate|darknet] [--device cuda|cpu] [--warmup N] "
               "[--steps N] [--windows N] [--no-tf32] [--channels-last] [--cuda-graph]\n",
               why.c_str());
  std::exit(2);
}

int64_t positive(const std::string& flag, const char* v) {
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || x <= 0) usage(flag + " expects a positive integer, got '" + v + "'");
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-tf32") {
      o.tf32 = false;
      continue;
    }
    if (a == "--channels-last") {
      o.channels_last = true;
      continue;
    }
    if (a == "--cuda-graph") {
      o.cuda_graph = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing value for " + a);
    const char* v = argv[++i];
    if (a == "--cfg")
      o.cfg = v;
    else if (a == "--name")
      o.name = v;
    else if (a == "--mode")
      o.mode = v;
    else if (a == "--amp")
      o.amp = v;
    else if (a == "--loss")
      o.loss = v;
    else if (a == "--device")
      o.device = v;
    else if (a == "--batch")
      o.batch = positive(a, v);
    else if (a == "--size")
      o.size = positive(a, v);
    else if (a == "--warmup")
      o.warmup = positive(a, v);
    else if (a == "--steps")
      o.steps = positive(a, v);
    else if (a == "--windows")
      o.windows = positive(a, v);
    else
      usage("unknown option " + a);
  }
  if (o.cfg.empty()) usage("--cfg is required");
  if (o.mode != "train" && o.mode != "infer") usage("--mode expects train or infer, got " + o.mode);
  if (o.amp != "off" && o.amp != "bf16") usage("--amp expects off or bf16, got " + o.amp);
  if (o.loss != "surrogate" && o.loss != "darknet")
    usage("--loss expects surrogate or darknet, got " + o.loss);
  if (o.cuda_graph && o.device != "cuda" && o.device.rfind("cuda:", 0) != 0)
    usage("--cuda-graph needs --device cuda, got --device " + o.device);
  if (o.name.empty())
    o.name = o.mode + "_b" + std::to_string(o.batch) + "_" + std::to_string(o.size) + "_" +
             (o.amp == "bf16" ? "bf16" : (o.tf32 ? "tf32" : "fp32")) +
             (o.loss == "darknet" ? (yolo_loss_on_host() ? "_darknetloss_host" : "_darknetloss") : "") +
             (o.cuda_graph ? "_graph" : "") + (o.channels_last ? "_cl" : "");
  return o;
}

// The cfg with [net] width and height set to `size`.
Cfg sized_cfg(const std::string& path, int64_t size) {
  Cfg cfg = read_cfg(path);
  for (CfgSection& s : cfg.sections)
    if (s.type == "net" || s.type == "network")
      for (CfgOption& opt : s.options)
        if (opt.key == "width" || opt.key == "height") opt.value = std::to_string(size);
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  nlohmann::json j = {{"impl", "nabla"},
                      {"name", o.name},
                      {"cfg", o.cfg},
                      {"mode", o.mode},
                      {"batch", o.batch},
                      {"size", o.size},
                      {"amp", o.amp},
                      {"loss", o.loss},
                      {"tf32", o.tf32},
                      {"channels_last", o.channels_last},
                      {"fused", darknet_fused()},
                      {"cuda_graph", o.cuda_graph},
                      {"loss_on_host", o.loss == "darknet" && yolo_loss_on_host()}};
  try {
    const Device dev = Device::parse(o.device);
    runtime::require_device(dev, "bench_yolo");
    if (dev.is_cuda()) runtime::set_tf32_enabled(o.tf32);
    manual_seed(0);
    DarknetNetwork net(sized_cfg(o.cfg, o.size));
    net.to(dev);
    net.set_channels_last(o.channels_last);
    j["parameters"] = net.num_parameters();
    Generator gen{1, 0};
    Tensor images = randn({o.batch, 3, o.size, o.size}, {}, &gen).to(dev);
    if (o.channels_last) images = images.contiguous(MemoryFormat::ChannelsLast);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.1f, 0.9f), s(0.03f, 0.3f);
    const int classes = net.layers[net.yolo_layers().at(0)].yolo.classes;
    std::vector<std::vector<TruthBox>> truths(static_cast<size_t>(o.batch));
    for (auto& t : truths)
      for (int k = 0; k < 8; ++k)
        t.push_back({u(rng), u(rng), s(rng), s(rng), static_cast<int>(rng() % classes)});
    const YoloTruths truths_up = upload_truths(truths, yolo_max_boxes(net), dev);
    optim::Sgd opt(net.parameters(), optim::SgdOptions{.lr = 1e-4, .momentum = 0.9, .weight_decay = 5e-4});
    const bool amp = o.amp == "bf16";
    double last_loss = 0;
    Tensor loss_t;
    // The forward and backward of a training step (the gradients are on the parameters afterwards).
    auto forward_backward = [&] {
      opt.zero_grad();
      Tensor loss;
      {
        AutocastGuard autocast(DType::bf16, amp);
        const std::vector<Tensor> heads = net.forward_yolo(images);
        if (o.loss == "darknet") {
          loss = network_yolo_loss(net, heads, truths_up, /*with_stats=*/false).loss *
                 (1.0 / static_cast<double>(o.batch));
        } else {
          for (const Tensor& h : heads) {
            Tensor term = mean(h.to(DType::f32) * h.to(DType::f32)) * 0.5;
            loss = loss.defined() ? loss + term : term;
          }
        }
      }
      loss.backward();
      loss_t = loss;
    };
    auto train_step = [&] {
      forward_backward();
      opt.step();
    };
    auto infer_step = [&] {
      NoGradGuard no_grad;
      AutocastGuard autocast(DType::bf16, amp);
      const std::vector<Tensor> heads = net.forward_yolo(images);
      loss_t = heads.back();
    };
    if (o.mode == "train")
      net.train();
    else
      net.eval();
    std::function<void()> step = [&] { o.mode == "train" ? train_step() : infer_step(); };
    for (int64_t i = 0; i < o.warmup; ++i) step();
    runtime::synchronize(dev);
    runtime::Graph graph;  // --cuda-graph: captured after the warm-up, on the current device
    std::vector<std::pair<Tensor, Tensor>> grads;  // (parameter, the gradient tensor the graph writes)
    if (o.cuda_graph) {
      graph.capture(o.mode == "train" ? std::function<void()>(forward_backward)
                                      : std::function<void()>(infer_step));
      j["graph_nodes"] = graph.num_nodes();
      if (o.mode == "train")
        for (const Tensor& p : net.parameters())
          if (p.grad().defined()) grads.emplace_back(p, p.grad());
      step = [&] {
        graph.replay();
        if (o.mode == "train") {
          for (auto& [p, g] : grads) p.set_grad(g);
          opt.step();
        }
      };
      for (int64_t i = 0; i < 2; ++i) step();  // the replays' first runs, untimed
      runtime::synchronize(dev);
    }
    if (o.mode == "train") last_loss = loss_t.item_double();
    j["loss_after_warmup"] = last_loss;
    // NABLA_PROFILE=1: the op table printed at exit covers the timed steps only (not the warm-up's cuDNN
    // algorithm search or the capture).
    if (profile::enabled()) profile::reset();
    // LD_PRELOAD=libnabla_kernel_trace.so: its kernel table covers the timed steps only.
    if (dev.is_cuda()) runtime::synchronize(dev);
    bench::kernel_trace_begin(static_cast<int>(o.steps * o.windows));
    std::vector<double> img_per_s;
    for (int64_t w = 0; w < o.windows; ++w) {
      double ms = 0;
      if (dev.is_cuda()) {
        runtime::Event start(dev), stop(dev);
        start.record();
        for (int64_t i = 0; i < o.steps; ++i) step();
        stop.record();
        stop.synchronize();
        ms = start.elapsed_ms(stop);
      } else {
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < o.steps; ++i) step();
        ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      }
      img_per_s.push_back(static_cast<double>(o.batch * o.steps) / (ms * 1e-3));
    }
    bench::kernel_trace_end();
    std::vector<double> sorted = img_per_s;
    std::sort(sorted.begin(), sorted.end());
    j["img_per_s"] = sorted[sorted.size() / 2];
    j["windows_img_per_s"] = img_per_s;
    if (o.mode == "train") j["loss_last"] = loss_t.item_double();
    if (dev.is_cuda())
      j["peak_gib"] = static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1ull << 30);
  } catch (const std::exception& e) {
    j["error"] = e.what();
  }
  std::printf("%s\n", j.dump().c_str());
  return j.contains("error") ? 1 : 0;
}

// ResNet training throughput of Nabla on CUDA device 0, one JSON line per case, for comparison with
// benchmarks/resnet_torch.py (same models, batch, precision, optimizer and timing) by
// benchmarks/compare_resnet.py; benchmarks/resnet_bench.sh runs all three.
//
// One step = zero_grad, forward (under bf16 autocast with --amp bf16), cross-entropy, backward, SGD with
// momentum 0.9 and weight decay 1e-4 (f32 master weights). Data are synthetic: one batch of N(0,1) images
// and uniform labels made on the device once (data/synthetic.h), so the step measures the model alone.
//
// Timing: `warmup` untimed steps (cuDNN's algorithm search, the caching allocator's first cudaMallocs), a
// device synchronisation, then `windows` windows of `steps` steps each, bracketed by CUDA events on the
// compute stream with no host synchronisation inside a window (as a training loop that reads the loss
// every few steps). img/s of a window = batch * steps / window time; the reported figure is the median
// window. TF32 on unless --no-tf32 (NABLA_TF32 and PyTorch's allow_tf32 flags).
// host_ms_per_step: the host's time to queue a step (median window); near ms_per_step, the step is bound by
// launches and host work. Under NABLA_PROFILE=1 the op table printed at exit covers the timed windows only.
// --cuda-graph: after the warm-up, one step is captured as a CUDA graph (cuda/graph.h) and the timed steps
// are its replays (one launch a step, no host work per op); the record says "cuda_graph": true.
//
// The record says "fused": whether the blocks ran batch_norm_add_relu (NABLA_RESNET_FUSED=0 turns it off).
// --report-algos: NABLA_CONV_REPORT=1, so every convolution shape's cuDNN choice is listed on stderr at exit
// (NABLA_CONV_CACHE=file keeps the choices for the next process: cuda/conv_cache.h).
// --device cpu: the same step on the CPU (for trying the harness without a GPU; no CUDA graph, no TF32).
// Arithmetic: "gmacs_per_image" (ResNet::macs: every conv and the fc, forward) and "train_tflops" = 6 x MACs
// x img/s / 1e12 (2 FLOPs a multiply-add; the backward's data and weight gradients twice the forward's), and
// on CUDA "peak_fraction" of --peak-tflops (default: the H200 SXM's dense tensor-core peak, 989.4 TFLOP/s for
// bf16, 494.7 for TF32; "peak_tflops" in the record; without TF32 no fraction is given).
//
// Usage: bench_resnet --name resnet50_b128_tf32 --model resnet50 --batch 128 --image-size 224
//                     --classes 1000 [--amp bf16] [--channels-last] [--cuda-graph] [--warmup 10] [--steps 10]
//                     [--windows 5] [--no-tf32] [--report-algos] [--device cuda|cpu] [--peak-tflops T]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "algorithms/optim/optimizer.h"
#include "data/synthetic.h"
#include "engine/device_runtime.h"
#include "engine/profile.h"
#include "benchmarks/kernel_trace_hook.h"
#include "models/resnet.h"
#include "nabla.h"

namespace {
using namespace nabla;

struct Options {
  std::string name, model = "resnet50", amp = "off", device = "cuda";
  int64_t batch = 128, image_size = 224, classes = 1000, warmup = 10, steps = 10, windows = 5;
  bool tf32 = true;
  bool channels_last = false;  // model and input in NHWC (Module::to(MemoryFormat::ChannelsLast))
  bool cuda_graph = false;     // capture one step after the warm-up and time its replays (cuda/graph.h)
  double peak_tflops = 0;      // 0: the H200's dense tensor-core peak for the precision
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(
      stderr,
      "bench_resnet: %s\nusage: bench_resnet --name NAME --model resnetNN --batch N --image-size S "
      "--classes C [--amp off|bf16] [--channels-last] [--cuda-graph] [--warmup N] [--steps N] [--windows N] "
      "[--no-tf32] [--report-algos] [--device cuda|cpu] [--peak-tflops T]\n",
      why.c_str());
  std::exit(2);
}

int64_t positive(const std::string& flag, const char* v) {
  char* end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || x <= 0) usage(flag + " expects a positive integer, got '" + v + "'");
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
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
    if (a == "--report-algos") {  // read by cuda/conv.cu at the first convolution, after this
      setenv("NABLA_CONV_REPORT", "1", 1);
      continue;
    }
    if (i + 1 >= argc) usage("missing value for " + a);
    const char* v = argv[++i];
    if (a == "--name")
      o.name = v;
    else if (a == "--model")
      o.model = v;
    else if (a == "--amp")
      o.amp = v;
    else if (a == "--batch")
      o.batch = positive(a, v);
    else if (a == "--image-size")
      o.image_size = positive(a, v);
    else if (a == "--classes")
      o.classes = positive(a, v);
    else if (a == "--warmup")
      o.warmup = positive(a, v);
    else if (a == "--steps")
      o.steps = positive(a, v);
    else if (a == "--windows")
      o.windows = positive(a, v);
    else if (a == "--device")
      o.device = v;
    else if (a == "--peak-tflops") {
      char* end = nullptr;
      o.peak_tflops = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(o.peak_tflops > 0))
        usage(std::string("--peak-tflops expects a positive number, got '") + v + "'");
    } else
      usage("unknown option " + a);
  }
  if (o.amp != "off" && o.amp != "bf16") usage("--amp expects off or bf16, got " + o.amp);
  if (o.device != "cuda" && o.device != "cpu") usage("--device expects cuda or cpu, got " + o.device);
  if (o.device == "cpu" && o.cuda_graph) usage("--cuda-graph needs --device cuda");
  if (o.name.empty())
    o.name = o.model + "_b" + std::to_string(o.batch) + "_" + (o.amp == "bf16" ? "bf16" : "tf32") +
             (o.channels_last ? "_cl" : "");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  nlohmann::json j = {{"impl", "nabla"},
                      {"name", o.name},
                      {"model", o.model},
                      {"batch", o.batch},
                      {"image_size", o.image_size},
                      {"classes", o.classes},
                      {"amp", o.amp},
                      {"channels_last", o.channels_last},
                      {"cuda_graph", o.cuda_graph},
                      {"tf32", o.tf32},
                      {"fused", models::resnet_fused()},
                      {"device", o.device}};
  try {
    const Device dev = o.device == "cpu" ? Device::cpu() : Device::cuda(0);
    runtime::require_device(dev, "bench_resnet");
    if (dev.is_cuda()) runtime::set_tf32_enabled(o.tf32);
    manual_seed(0);
    auto model = models::make_resnet(o.model, {.num_classes = o.classes});
    model->to(dev);
    if (o.channels_last) model->to(MemoryFormat::ChannelsLast);
    j["parameters"] = model->num_parameters();
    optim::Sgd opt(model->parameters(), optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
    data::Batch batch = data::synthetic_batch(o.batch, 3, o.image_size, o.image_size, o.classes, dev, 1);
    if (o.channels_last) batch.inputs = batch.inputs.contiguous(MemoryFormat::ChannelsLast);
    const bool amp = o.amp == "bf16";
    Tensor last_loss;
    auto step = [&] {
      opt.zero_grad();
      Tensor loss;
      {
        AutocastGuard autocast(DType::bf16, amp);
        loss = cross_entropy(model->forward(batch.inputs), batch.labels);
      }
      loss.backward();
      opt.step();
      last_loss = loss;
    };
    for (int64_t i = 0; i < o.warmup; ++i) step();
    runtime::synchronize(dev);
    const double first_loss = last_loss.item();
    // --cuda-graph: record one step (nothing runs while recording) and time its replays. The warm-up has
    // chosen cuDNN's algorithms and made the momentum buffers, so the recorded step is a steady-state one.
    runtime::Graph graph(dev);
    if (o.cuda_graph) {
      graph.capture(step);
      j["graph_nodes"] = graph.num_nodes();
    }
    auto timed_step = [&] { o.cuda_graph ? graph.replay() : step(); };
    // NABLA_PROFILE=1: the table at exit covers the timed steps only (not cuDNN's algorithm search).
    if (profile::enabled()) profile::reset();
    // LD_PRELOAD=libnabla_kernel_trace.so: its kernel table covers the timed steps only.
    runtime::synchronize(dev);
    bench::kernel_trace_begin(static_cast<int>(o.steps * o.windows));
    std::vector<double> img_per_s, host_ms;
    for (int64_t w = 0; w < o.windows; ++w) {
      runtime::Event start(dev), stop(dev);
      start.record();
      const auto h0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < o.steps; ++i) timed_step();
      // The host's time to queue the window: close to the window's device time when the step is bound by
      // launches and host work rather than by the GPU.
      host_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - h0).count() /
          static_cast<double>(o.steps));
      stop.record();
      stop.synchronize();
      const double ms = start.elapsed_ms(stop);
      img_per_s.push_back(static_cast<double>(o.batch * o.steps) / (ms * 1e-3));
    }
    bench::kernel_trace_end();
    std::vector<double> sorted = img_per_s;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    j["img_per_s"] = median;
    j["ms_per_step"] = 1e3 * static_cast<double>(o.batch) / median;
    std::sort(host_ms.begin(), host_ms.end());
    j["host_ms_per_step"] = host_ms[host_ms.size() / 2];
    if (profile::enabled())
      std::fprintf(stderr, "NABLA_PROFILE: the table covers %lld timed steps\n",
                   static_cast<long long>(o.steps * o.windows));
    j["windows_img_per_s"] = img_per_s;
    j["steps_per_window"] = o.steps;
    j["warmup"] = o.warmup;
    j["loss_after_warmup"] = first_loss;
    j["loss_last"] = last_loss.item();
    j["peak_gib"] = static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1ull << 30);
    const double macs = static_cast<double>(model->macs(o.image_size, o.image_size));
    const double tflops = 6.0 * macs * median / 1e12;
    j["gmacs_per_image"] = macs / 1e9;
    j["train_tflops"] = tflops;
    const double peak =
        o.peak_tflops > 0 ? o.peak_tflops : (o.amp == "bf16" ? 989.4 : (o.tf32 ? 494.7 : 0.0));
    if (dev.is_cuda() && peak > 0) {
      j["peak_tflops"] = peak;
      j["peak_fraction"] = tflops / peak;
    }
  } catch (const std::exception& e) {
    j["error"] = e.what();
  }
  std::printf("%s\n", j.dump().c_str());
  return j.contains("error") ? 1 : 0;
}

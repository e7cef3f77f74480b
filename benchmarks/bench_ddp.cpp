// bench_ddp: data-parallel ResNet-50 training throughput on synthetic data, one GPU per process.
//
//   images/s = W * batch * steps / time;   scaling efficiency (gpu_check.sh) = images/s(W) / (W *
//   images/s(1))
// Batch 128 per GPU, 224x224, SGD momentum 0.9, bf16 autocast by default (--precision f32: TF32 math);
// each step: forward, cross-entropy, backward (buckets all-reduced while it runs), finish, step. Time is
// host wall-clock between device synchronisations over `steps` steps after `warmup` steps.
// benchmarks/ddp_torch.py does the same with PyTorch DistributedDataParallel.
//
//   ./build/bench_ddp                                   # 1 GPU
//   scripts/launch.sh -n 8 -- ./build/bench_ddp         # 8 GPUs; rank 0 prints one JSON line
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "algorithms/optim/optimizer.h"
#include "dist/data_parallel.h"
#include "engine/device_runtime.h"
#include "models/resnet.h"
#include "nabla.h"
#include "ops/autocast.h"

using namespace nabla;

int main(int argc, char** argv) {
  try {
    int64_t batch = 128, steps = 20, warmup = 5;
    std::string precision = "bf16", model_name = "resnet50";
    bool channels_last = false;  // --channels-last: NHWC weights and input (Module::to(MemoryFormat))
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--channels-last") {
        channels_last = true;
        continue;
      }
      NABLA_CHECK(i + 1 < argc, a, " needs a value");
      const char* v = argv[++i];
      if (a == "--batch")
        batch = std::atoll(v);
      else if (a == "--steps")
        steps = std::atoll(v);
      else if (a == "--warmup")
        warmup = std::atoll(v);
      else if (a == "--precision")
        precision = v;
      else if (a == "--model")
        model_name = v;
      else
        fail("unknown option ", a,
             " (expected --batch, --steps, --warmup, --precision, --model, --channels-last)");
    }
    const dist::LaunchEnv env = dist::detect_launch_env();
    const Device dev = Device::cuda(env.local_rank);
    runtime::set_device(dev);
    auto comm = dist::init({.device = dev});
    manual_seed(0);
    auto model = models::make_resnet(model_name);
    model->to(dev);
    if (channels_last) model->to(MemoryFormat::ChannelsLast);
    std::unique_ptr<dist::DataParallel> dp;
    if (comm->world_size() > 1) dp = std::make_unique<dist::DataParallel>(*model, comm);
    optim::Sgd opt(model->parameters(), optim::SgdOptions{.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
    Tensor x = randn({batch, 3, 224, 224}, {.device = dev});
    if (channels_last) x = x.contiguous(MemoryFormat::ChannelsLast);
    Tensor y = randint(0, 1000, {batch}, {.dtype = DType::i64, .device = dev});
    auto step = [&] {
      opt.zero_grad();
      Tensor loss;
      {
        std::unique_ptr<AutocastGuard> amp;
        if (precision == "bf16") amp = std::make_unique<AutocastGuard>(DType::bf16);
        loss = cross_entropy(model->forward(x), y);
      }
      loss.backward();
      if (dp) dp->finish();
      opt.step();
    };
    for (int64_t i = 0; i < warmup; ++i) step();
    runtime::synchronize(dev);
    comm->barrier();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < steps; ++i) step();
    runtime::synchronize(dev);
    comm->barrier();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ips = static_cast<double>(comm->world_size() * batch * steps) / sec;
    if (comm->rank() == 0)
      std::printf(
          "{\"impl\": \"nabla\", \"bench\": \"ddp\", \"model\": \"%s\", \"gpus\": %d, \"batch_per_gpu\": "
          "%lld, "
          "\"precision\": \"%s\", \"channels_last\": %s, \"step_ms\": %.2f, \"img_per_s\": %.1f}\n",
          model_name.c_str(), comm->world_size(), static_cast<long long>(batch), precision.c_str(),
          channels_last ? "true" : "false", sec / steps * 1e3, ips);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ddp: %s\n", e.what());
    return 2;
  }
}

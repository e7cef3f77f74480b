// bench_darts: the time of one first-order DARTS / B-DARTS search step on the BCNN and the 8-cell DARTS
// supernets, compared with the same supernets in plain PyTorch (benchmarks/darts_torch.py;
// scripts/gpu_check.sh GPU_CHECK_PART=darts prints both side by side).
//
//   ./build/bench_darts --device cuda                                  # the paper's size: C 16, 32², batches
//   256, 64
//   ./build/bench_darts --device cpu --init-channels 2 --batch 8 --image-size 16 --steps 2 --windows 1
//
// One step is exactly what search_darts runs (algorithms/nas/search.h search_step): the architecture step
// (first order: the validation batch's loss, backward into the alphas only, Adam (0.5, 0.999), weight decay
// 1e-3, lr 3e-4 x CLR confidence 0.5), then the weight step on a training batch (forward, backward, gradient
// clip 5, SGD lr 0.1 momentum 0.9 weight decay 3e-4). Inputs are fixed random [B, 3, 32, 32] batches on the
// device (no data loading); 10 classes. After --warmup steps, --windows windows of --steps steps each are
// timed with the device synchronised around each window; ms_per_step is the median window's mean.
// Prints one JSON line per (network, batch):
//   {"impl": "nabla", "mode", "net", "batch", "c", "image", "params", "alphas", "ms_per_step", "img_per_s",
//   "peak_mib"}
// img_per_s counts the training batch's images (one step = one training batch + one validation batch).
// --modes eager,graph (default; graph on CUDA only): each case eagerly, then with the step's two forward +
// backward passes replayed from CUDA graphs (nas::GraphedSearchStep; "mode": "graph", "replays"), from the
// same initial weights and batches: "loss_rel_diff" compares its final loss with the eager run's.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "algorithms/nas/architect.h"
#include "algorithms/nas/search.h"
#include "apps/common/options.h"
#include "engine/device_runtime.h"
#include "models/bcnn.h"
#include "nabla.h"

using namespace nabla;

namespace {

std::vector<int64_t> parse_list(const std::string& s, const char* what) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      NABLA_CHECK(used == item.size() && v > 0, "");
      out.push_back(v);
    } catch (const std::exception&) {
      fail("", what, " expects a comma list of positive integers, got '", s, "'");
    }
  }
  NABLA_CHECK(!out.empty(), "", what, " is empty");
  return out;
}

std::shared_ptr<models::darts::SearchNetwork> make_supernet(const std::string& net, int64_t c, int64_t in) {
  if (net == "bcnn")
    return std::make_shared<models::BcnnSearch>(
        models::BcnnOptions{.c = c, .num_classes = 10, .in_channels = in});
  if (net == "darts")
    return std::make_shared<models::DartsSearch>(
        models::DartsOptions{.c = c, .num_classes = 10, .in_channels = in, .layers = 8});
  fail("--networks names bcnn and darts, got '", net, "'");
}

}  // namespace

int main(int argc, char** argv) {
  std::string device, networks, batches, modes;
  int64_t c, image, in_channels, warmup, steps, windows;
  apps::OptionSet cli("bench_darts",
                      "Time of a first-order DARTS search step on the BCNN and DARTS supernets.");
  cli.add("device", &device, "cuda", "cpu | cuda | cuda:N").value_name("DEV");
  cli.add("networks", &networks, "bcnn,darts", "comma list of bcnn, darts").value_name("LIST");
  cli.add("batches", &batches, "256,64", "comma list of batch sizes").value_name("LIST");
  cli.add("modes", &modes, "eager,graph",
          "comma list: eager, graph (the two forward + backward passes replayed from CUDA graphs; CUDA only)")
      .value_name("LIST");
  cli.add("init-channels", &c, 16, "initial channels C").in_range(2, 1024);
  cli.add("image-size", &image, 32, "input height and width (a multiple of 4)")
      .in_range(4, 1024)
      .unit("pixels");
  cli.add("in-channels", &in_channels, 3, "input channels").in_range(1, 64);
  cli.add("warmup", &warmup, 5, "untimed steps first").non_negative();
  cli.add("steps", &steps, 10, "steps per timed window").positive();
  cli.add("windows", &windows, 3, "timed windows (the median is reported)").positive();
  cli.example("--device cuda", "the GPU comparison (C 16, 32², batches 256 and 64)");
  cli.example("--device cpu --init-channels 2 --batches 8 --image-size 16 --steps 2 --windows 1",
              "a CPU check at a tiny size");
  if (auto code = cli.parse(argc, argv)) return *code;
  try {
    NABLA_CHECK(image % 4 == 0, "--image-size must be a multiple of 4 (two halvings), got ", image);
    const Device dev = Device::parse(device);
    std::stringstream nets(networks);
    std::string net_name;
    std::vector<std::string> net_list;
    while (std::getline(nets, net_name, ',')) net_list.push_back(net_name);
    const std::vector<int64_t> batch_list = parse_list(batches, "--batches");
    std::vector<std::string> mode_list;
    {
      std::stringstream ms(modes);
      std::string m;
      while (std::getline(ms, m, ','))
        if (m == "eager" || (m == "graph" && dev.is_cuda()))
          mode_list.push_back(m);
        else if (m != "graph")
          fail("--modes names eager and graph, got '", m, "'");
    }
    for (const std::string& net : net_list) {
      for (const int64_t batch : batch_list) {
        double eager_loss = std::nan("");
        for (const std::string& mode : mode_list) {
          manual_seed(1);
          auto model = make_supernet(net, c, in_channels);
          model->to(dev);
          model->train();
          optim::Sgd sgd(model->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 3e-4});
          nas::Architect architect(*model, sgd,
                                   {.lr = 3e-4, .weight_decay = 1e-3, .clr = true, .power = 2.0});
          const nas::LabeledBatch train{randn({batch, in_channels, image, image}, {.device = dev}),
                                        randint(0, 10, {batch}, {.dtype = DType::i64, .device = dev})};
          const nas::LabeledBatch val{randn({batch, in_channels, image, image}, {.device = dev}),
                                      randint(0, 10, {batch}, {.dtype = DType::i64, .device = dev})};
          const std::vector<Tensor> weights = model->parameters();
          sgd.set_lr(0.1);
          Tensor last_loss;
          nas::GraphedSearchStep graphed;
          auto step = [&] {
            last_loss =
                mode == "graph"
                    ? graphed(*model, architect, sgd, weights, train, val, 0.1, 0.5, 5.0).train_loss
                    : nas::search_step(*model, architect, sgd, weights, train, val, 0.1, 0.5, 5.0).train_loss;
          };
          if (dev.is_cuda()) runtime::reset_peak_memory_stats(dev);
          for (int64_t i = 0; i < warmup; ++i) step();
          std::vector<double> ms;
          for (int64_t w = 0; w < windows; ++w) {
            runtime::synchronize(dev);
            const auto t0 = std::chrono::steady_clock::now();
            for (int64_t i = 0; i < steps; ++i) step();
            runtime::synchronize(dev);
            ms.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                static_cast<double>(steps));
          }
          std::sort(ms.begin(), ms.end());
          const double m = ms[ms.size() / 2];
          const double loss = last_loss.item<double>();
          NABLA_CHECK(std::isfinite(loss), "", net, " batch ", batch, ": the loss is ", loss);
          nlohmann::json j{{"impl", "nabla"},
                           {"mode", mode},
                           {"net", net},
                           {"batch", batch},
                           {"c", c},
                           {"image", image},
                           {"device", device},
                           {"params", model->num_parameters()},
                           {"alphas", model->alphas_normal.numel() + model->alphas_reduce.numel()},
                           {"ms_per_step", m},
                           {"ms_min", ms.front()},
                           {"img_per_s", 1000.0 * static_cast<double>(batch) / m},
                           {"loss", loss}};
          if (dev.is_cuda())
            j["peak_mib"] = static_cast<double>(runtime::memory_stats(dev).peak_allocated) / (1 << 20);
          if (mode == "eager") eager_loss = loss;
          if (mode == "graph") {
            // the same steps from the same start as the eager run: the losses must agree
            j["replays"] = graphed.replays();
            j["loss_eager"] = eager_loss;
            j["loss_rel_diff"] = std::abs(loss - eager_loss) / std::max(1e-12, std::abs(eager_loss));
          }
          std::printf("%s\n", j.dump().c_str());
          std::fflush(stdout);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_darts: %s\n", e.what());
    return 1;
  }
  return 0;
}

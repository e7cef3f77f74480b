// vrgd_linreg: the paper's linear-regression experiment (algorithms/vrgd/linear_regression.h) from the
// command line; prints one JSON line per run with the test-loss curve, for scripts/vrgd_linreg.py.
//
//   ./build/vrgd_linreg --k 32 --gamma 0.1 --lr 0.1        # SGD and VR-SGD on the same batches
//   ./build/vrgd_linreg --help                             # the options (apps/common/options.h)
#include <cstdio>

#include <nlohmann/json.hpp>

#include "algorithms/vrgd/linear_regression.h"
#include "apps/common/options.h"
#include "nabla.h"

using namespace nabla;

int main(int argc, char** argv) {
  int64_t k, batch, steps, dim, seeds;
  double lr, gamma;
  bool uniform_x = false, sgd_only = false;
  std::string device;
  apps::OptionSet cli("vrgd_linreg",
                      "SGD against VR-SGD on noiseless linear regression (W_i = i); one JSON line a run.");
  cli.add("k", &k, 32, "partitions of the batch (VR-SGD)").positive();
  cli.add("batch", &batch, 2048, "global batch").positive().unit("examples");
  cli.add("steps", &steps, 100, "optimizer steps").positive();
  cli.add("dim", &dim, 10, "dimensions").in_range(1, 1 << 20);
  cli.add("lr", &lr, 0.1, "learning rate (both)").positive();
  cli.add("gamma", &gamma, 0.1, "GSNR lower clamp").in_range(0, 1, apps::Bound::open_low);
  cli.add("seeds", &seeds, 1, "runs with seeds 1..N").in_range(1, 1 << 20);
  cli.add_switch("uniform-x", &uniform_x, "x ~ U(0,1) instead of N(0,1)");
  cli.add_switch("sgd-only", &sgd_only, "only the SGD run");
  cli.add("device", &device, "cpu", "cpu | cuda | cuda:N").value_name("DEV");
  cli.example("--k 32 --gamma 0.1 --lr 0.1", "SGD and VR-SGD on the same batches (the paper's figure)");
  cli.example("--k 8 --seeds 5 --uniform-x", "five seeds, x uniform in [0, 1)");
  if (auto code = cli.parse(argc, argv, [&] {
        NABLA_CHECK(batch % k == 0, "--k ", k, " must divide --batch ", batch);
        (void)Device::parse(device);
      }))
    return *code;
  try {
    for (int64_t s = 1; s <= seeds; ++s)
      for (bool vr : {false, true}) {
        if (vr && sgd_only) continue;
        vrgd::LinRegConfig c{.dim = dim,
                             .batch = batch,
                             .partitions = k,
                             .steps = steps,
                             .lr = lr,
                             .gamma = gamma,
                             .vr = vr,
                             .uniform_x = uniform_x,
                             .seed = static_cast<uint64_t>(s),
                             .device = Device::parse(device)};
        auto curve = vrgd::run_linear_regression(c);
        nlohmann::json j{{"method", vr ? "vr-sgd" : "sgd"},
                         {"k", k},
                         {"gamma", gamma},
                         {"lr", lr},
                         {"batch", batch},
                         {"seed", s},
                         {"uniform_x", uniform_x},
                         {"test_loss", curve}};
        std::printf("%s\n", j.dump().c_str());
        std::fflush(stdout);
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vrgd_linreg: %s\n", e.what());
    return 1;
  }
  return 0;
}

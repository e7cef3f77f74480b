// vrgd_linreg: the paper's linear-regression experiment (algorithms/vrgd/linear_regression.h) from the
// command line; prints one JSON line per run with the test-loss curve, for scripts/vrgd_linreg.py.
//
//   ./build/vrgd_linreg --k 32 --gamma 0.1 --lr 0.1        # SGD and VR-SGD on the same batches
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "algorithms/vrgd/linear_regression.h"
#include "apps/common/cli.h"
#include "nabla.h"

using namespace nabla;

int main(int argc, char** argv) {
  try {
    int64_t k, batch, steps, dim, seeds;
    double lr, gamma;
    bool help = false, uniform_x = false, sgd_only = false;
    std::string device;
    apps::OptionParser cli("vrgd_linreg: SGD vs VR-SGD on noiseless linear regression (W_i = i)");
    cli.add_switch("help,h", &help, "show this help")
        .add("k", &k, 32, "partitions of the batch (VR-SGD)")
        .add("batch", &batch, 2048, "global batch")
        .add("steps", &steps, 100, "optimizer steps")
        .add("dim", &dim, 10, "dimensions")
        .add("lr", &lr, 0.1, "learning rate (both)")
        .add("gamma", &gamma, 0.1, "GSNR lower clamp")
        .add("seeds", &seeds, 1, "runs with seeds 1..N")
        .add_switch("uniform-x", &uniform_x, "x ~ U(0,1) instead of N(0,1)")
        .add_switch("sgd-only", &sgd_only, "only the SGD run")
        .add("device", &device, "cpu", "cpu | cuda");
    cli.parse(argc, argv);
    if (help) {
      std::cout << cli.help() << "\n";
      return 0;
    }
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
    return 2;
  }
  return 0;
}

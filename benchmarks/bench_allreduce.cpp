// bench_allreduce: NCCL all-reduce bandwidth of dist::Communicator, as nccl-tests reports it.
//
//   algbw = bytes / time          busbw = algbw * 2 (n - 1) / n
// (a ring all-reduce moves 2 (n-1)/n of the buffer through each link, so busbw is comparable with the link's
// bandwidth whatever n is). Sizes 1 MiB .. 1 GiB, f32 and bf16, in-place sum; time per call = CUDA-event
// time of `iters` back-to-back calls on the compute stream / iters, after warm-up calls.
//
//   scripts/launch.sh -n 2 -- ./build/bench_allreduce            # rank 0 prints a table and JSON lines
#include <cstdio>
#include <cstring>
#include <string>

#include "dist/communicator.h"
#include "engine/device_runtime.h"
#include "nabla.h"

using namespace nabla;

int main(int argc, char** argv) {
  try {
    int iters = 20, warmup = 5;
    int64_t max_mb = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
      if (!std::strcmp(argv[i], "--iters"))
        iters = std::atoi(argv[i + 1]);
      else if (!std::strcmp(argv[i], "--warmup"))
        warmup = std::atoi(argv[i + 1]);
      else if (!std::strcmp(argv[i], "--max-mb"))
        max_mb = std::atoll(argv[i + 1]);
    }
    const dist::LaunchEnv env = dist::detect_launch_env();
    runtime::set_device(Device::cuda(env.local_rank));
    auto comm = dist::init({.device = Device::cuda(env.local_rank)});
    const int n = comm->world_size();
    if (comm->rank() == 0)
      std::printf("%-6s %12s %10s %12s %12s   (%d GPUs, %s)\n", "dtype", "bytes", "time_us", "algbw_GB/s",
                  "busbw_GB/s", n, comm->backend_names().c_str());
    for (DType dt : {DType::f32, DType::bf16}) {
      for (int64_t mb = 1; mb <= max_mb; mb *= 4) {
        const int64_t bytes = mb << 20;
        Tensor t = ones({bytes / static_cast<int64_t>(itemsize(dt))},
                        {.dtype = dt, .device = Device::cuda(env.local_rank)});
        for (int i = 0; i < warmup; ++i) comm->all_reduce_async(t)->wait();
        runtime::Event start(Device::cuda(env.local_rank)), stop(Device::cuda(env.local_rank));
        start.record();
        for (int i = 0; i < iters; ++i) comm->all_reduce_async(t)->wait();
        stop.record();
        stop.synchronize();
        const double sec = start.elapsed_ms(stop) / 1e3 / iters;
        const double algbw = bytes / sec / 1e9, busbw = algbw * 2.0 * (n - 1) / n;
        if (comm->rank() == 0) {
          std::printf("%-6s %12lld %10.1f %12.1f %12.1f\n", dtype_name(dt), static_cast<long long>(bytes),
                      sec * 1e6, algbw, busbw);
          std::printf(
              "{\"impl\": \"nabla\", \"bench\": \"allreduce\", \"gpus\": %d, \"dtype\": \"%s\", \"bytes\": "
              "%lld, "
              "\"time_us\": %.2f, \"algbw_GBps\": %.2f, \"busbw_GBps\": %.2f}\n",
              n, dtype_name(dt), static_cast<long long>(bytes), sec * 1e6, algbw, busbw);
          std::fflush(stdout);
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: %s\n", e.what());
    return 2;
  }
}

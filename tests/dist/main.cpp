// main() of the dist suite: MPI_Init when started by mpirun (before anything else, as MPI wants), one
// communicator for all tests, MPI_Finalize at the end. With a GPU per local rank (CUDA and NCCL built in,
// enough devices for LOCAL_WORLD_SIZE / OMPI_COMM_WORLD_LOCAL_SIZE ranks) the communicator also gets NCCL on
// cuda:LOCAL_RANK. NABLA_DIST_TEST_GPU=0 turns the GPU part off.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "dist/dist_test.h"
#include "dist/env.h"
#ifdef NABLA_HAS_MPI
#include <mpi.h>
#endif
#ifdef NABLA_HAS_CUDA
#include "cuda/runtime.h"
#endif

namespace nabla::dist_test {
namespace {
std::shared_ptr<dist::Communicator> g_comm;
bool g_gpu = false;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
}  // namespace

dist::Communicator& comm() { return *g_comm; }
bool has_gpu() { return g_gpu; }
Device gpu() { return Device::cuda(g_comm->local_rank()); }

}  // namespace nabla::dist_test

int main(int argc, char** argv) {
  using namespace nabla;
  ::testing::InitGoogleTest(&argc, argv);
  const bool under_mpirun =
      std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr && std::getenv("WORLD_SIZE") == nullptr;
#ifdef NABLA_HAS_MPI
  if (under_mpirun) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  }
#endif
  int rc = 1;
  try {
    const dist::LaunchEnv env = dist::detect_launch_env();
    bool gpu = false;
#ifdef NABLA_HAS_CUDA
    const int local_world = dist_test::env_int(
        "LOCAL_WORLD_SIZE", dist_test::env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env.world_size));
    gpu = dist::nccl_compiled() && env.world_size > 1 && dist_test::env_int("NABLA_DIST_TEST_GPU", 1) != 0 &&
          cuda::available() && cuda::device_count() >= local_world;
    if (gpu) cuda::set_device(env.local_rank);
#endif
    if (env.world_size > 1 && !gpu && !under_mpirun) {
      if (env.rank == 0)
        std::printf(
            "nabla_dist_tests: SKIPPED: %d processes without mpirun (no CPU collectives) and without a GPU "
            "per rank (no NCCL); use mpirun -n N, or run on a machine with N GPUs\n",
            env.world_size);
      return 0;
    }
    dist_test::g_comm = dist::init({.device = gpu ? Device::cuda(env.local_rank) : Device::cpu()});
    dist_test::g_gpu = gpu;
    if (env.rank == 0)
      std::printf("nabla_dist_tests: %d process(es), %s, backends: %s\n", env.world_size,
                  dist::launcher_name(env.launcher), dist_test::g_comm->backend_names().c_str());
    rc = RUN_ALL_TESTS();
    dist_test::g_comm.reset();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nabla_dist_tests: %s\n", e.what());
    rc = 2;
  }
#ifdef NABLA_HAS_MPI
  if (under_mpirun) {
    if (rc != 0) MPI_Abort(MPI_COMM_WORLD, rc);  // a rank that failed must not leave the others waiting
    MPI_Finalize();
  }
#endif
  return rc;
}

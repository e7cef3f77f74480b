// Shared state of the dist test suite: one communicator for the whole process (creating one is collective,
// so every test on every rank uses the same), built by main.cpp from the launcher's environment.
//
// Run modes:
//   ./nabla_dist_tests                                   single process: start-up, rendezvous, world-1
//   identity mpirun -n 4 ./nabla_dist_tests                       CPU collectives over MPI (+ NCCL when each
//   rank has a GPU) scripts/launch.sh -n 2 -- ./nabla_dist_tests         NCCL only (TCP rendezvous), on a
//   machine with 2 GPUs
#pragma once
#include <gtest/gtest.h>

#include <memory>

#include "dist/communicator.h"

namespace nabla::dist_test {

dist::Communicator& comm();
// cuda:LOCAL_RANK when every local rank has a GPU of its own and the communicator has NCCL; else nothing.
bool has_gpu();
Device gpu();

}  // namespace nabla::dist_test

#define SKIP_WITHOUT_CPU_COLLECTIVES()               \
  if (!::nabla::dist_test::comm().has_cpu_backend()) \
  GTEST_SKIP() << "no MPI in this run (start it with mpirun for the CPU collectives)"
#define SKIP_WITHOUT_GPU_COLLECTIVES()                                                         \
  if (!::nabla::dist_test::has_gpu())                                                          \
  GTEST_SKIP() << "no GPU per rank (needs a CUDA build with NCCL and one GPU per local rank; " \
                  "run with scripts/launch.sh -n <GPUs> -- ./build/nabla_dist_tests)"

// Where this process sits in a distributed job, read from the launcher's environment.
//
// Three launchers are understood, checked in this order:
//   torchrun-style (scripts/launch.sh, torchrun, any hand-made launcher): RANK, WORLD_SIZE, LOCAL_RANK,
//                  MASTER_ADDR, MASTER_PORT
//   mpirun (Open MPI):  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   Slurm's srun:       SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (MASTER_ADDR must come from the job
//                       script, e.g. the first host of `scontrol show hostnames`; MASTER_PORT defaults to
//                       29500)
// Nothing set: a single process (rank 0 of 1).
//
// NABLA_DIST_TIMEOUT (seconds, default 300) bounds every wait on a peer: the rendezvous, NCCL's
// communicator set-up and every collective. A dead rank or one that never arrives ends each process with
// an error naming what it waited for, instead of a hang.
#pragma once
#include <string>

namespace nabla::dist {

enum class Launcher { none, torchrun, mpirun, slurm };
const char* launcher_name(Launcher l);

struct LaunchEnv {
  Launcher launcher = Launcher::none;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 300;
};

// Reads the environment; throws nabla::Error naming the variable for a malformed or inconsistent value
// (RANK >= WORLD_SIZE, a non-number, Slurm without MASTER_ADDR when more than one task runs, ...).
LaunchEnv detect_launch_env();

// NABLA_DIST_TIMEOUT in seconds (default 300); an error names a malformed value.
double timeout_from_env();

}  // namespace nabla::dist

// Launch-environment detection (see env.h for the variables and their precedence).
#include "dist/env.h"

#include <cstdlib>
#include <string>

#include "engine/error.h"

namespace nabla::dist {
namespace {

const char* get(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int int_var(const char* name, int lo) {
  const char* v = get(name);
  NABLA_CHECK(v, "distributed start-up: ", name, " is not set");
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  NABLA_CHECK(end && *end == '\0' && x >= lo && x < (1L << 30), "distributed start-up: ", name, "='", v,
              "' is not an integer >= ", lo);
  return static_cast<int>(x);
}

}  // namespace

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::none:
      return "none";
    case Launcher::torchrun:
      return "torchrun-style environment";
    case Launcher::mpirun:
      return "mpirun";
    case Launcher::slurm:
      return "srun";
  }
  return "?";
}

double timeout_from_env() {
  const char* v = get("NABLA_DIST_TIMEOUT");
  if (!v) return 300;
  char* end = nullptr;
  double t = std::strtod(v, &end);
  NABLA_CHECK(end && *end == '\0' && t > 0, "NABLA_DIST_TIMEOUT='", v,
              "': expected a positive number of seconds");
  return t;
}

LaunchEnv detect_launch_env() {
  LaunchEnv e;
  e.timeout_s = timeout_from_env();
  if (get("WORLD_SIZE") || get("RANK")) {
    e.launcher = Launcher::torchrun;
    e.world_size = int_var("WORLD_SIZE", 1);
    e.rank = int_var("RANK", 0);
    e.local_rank = get("LOCAL_RANK") ? int_var("LOCAL_RANK", 0) : e.rank;
  } else if (get("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = Launcher::mpirun;
    e.world_size = int_var("OMPI_COMM_WORLD_SIZE", 1);
    e.rank = int_var("OMPI_COMM_WORLD_RANK", 0);
    e.local_rank = get("OMPI_COMM_WORLD_LOCAL_RANK") ? int_var("OMPI_COMM_WORLD_LOCAL_RANK", 0) : 0;
  } else if (get("SLURM_NTASKS") && get("SLURM_PROCID")) {
    e.launcher = Launcher::slurm;
    e.world_size = int_var("SLURM_NTASKS", 1);
    e.rank = int_var("SLURM_PROCID", 0);
    e.local_rank = get("SLURM_LOCALID") ? int_var("SLURM_LOCALID", 0) : 0;
    NABLA_CHECK(e.world_size == 1 || get("MASTER_ADDR"),
                "distributed start-up under srun: set MASTER_ADDR to the first host of the job (e.g. "
                "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)); see "
                "docs/distributed.md");
  }
  NABLA_CHECK(e.rank < e.world_size, "distributed start-up (", launcher_name(e.launcher), "): rank ", e.rank,
              " is not below the world size ", e.world_size);
  if (const char* a = get("MASTER_ADDR")) e.master_addr = a;
  if (get("MASTER_PORT")) {
    e.master_port = int_var("MASTER_PORT", 1);
    NABLA_CHECK(e.master_port < 65536, "distributed start-up: MASTER_PORT=", e.master_port,
                " is not a TCP port");
  }
  return e;
}

}  // namespace nabla::dist

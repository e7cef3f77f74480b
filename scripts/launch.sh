#!/usr/bin/env bash
# One-node launcher, torchrun-style: starts N copies of a command with RANK, WORLD_SIZE, LOCAL_RANK,
# LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT set; if one exits non-zero the others are killed
# and the script returns that first failure's code. With --mpi it hands the job to mpirun instead (CPU runs:
# the CPU collectives need MPI; mpirun already ends the job when a rank fails).
#
#   scripts/launch.sh -n 2 -- ./build/train_classifier --device cuda --batch-size 256
#   scripts/launch.sh --mpi -n 4 -- ./build/train_classifier --batch-size 64
#   scripts/launch.sh -n 2 --port 29600 -- ./build/nabla_dist_tests
#
# NCCL_NVLS_ENABLE=0 is exported unless already set (NVLink multicast is not to be used on the shared
# machines). Output of rank r is prefixed with "[r] " when PREFIX=1.
set -uo pipefail
n=""
mpi=0
port=${MASTER_PORT:-}
usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    -n | --nproc) n=$2; shift 2 ;;
    --mpi) mpi=1; shift ;;
    --port) port=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    *) echo "launch.sh: unknown option $1 (use -n N [--mpi] [--port P] -- command ...)" >&2; exit 2 ;;
  esac
done
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "launch.sh: -n N (a positive number of processes) is required" >&2; exit 2; }
[ $# -gt 0 ] || { echo "launch.sh: no command after --" >&2; exit 2; }
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}

if [ "$mpi" = 1 ]; then
  root=()
  [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
  exec mpirun "${root[@]}" --oversubscribe -n "$n" -x NCCL_NVLS_ENABLE "$@"
fi

if [ -z "$port" ]; then  # a free port, picked by the kernel
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 29500)
fi
export MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$n LOCAL_WORLD_SIZE=$n
pids=()
for ((r = 0; r < n; r++)); do
  if [ "${PREFIX:-0}" = 1 ]; then
    RANK=$r LOCAL_RANK=$r "$@" > >(sed -u "s/^/[$r] /") 2> >(sed -u "s/^/[$r] /" >&2) &
  else
    RANK=$r LOCAL_RANK=$r "$@" &
  fi
  pids+=($!)
done
kill_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 2
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap 'kill_all; exit 130' INT TERM
# Poll the ranks; the first non-zero exit ends the rest.
status=0
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  still=()
  for p in "${running[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      still+=("$p")
      continue
    fi
    wait "$p"
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
      status=$rc
      echo "launch.sh: a rank (pid $p) exited with code $rc; stopping the others" >&2
      kill_all
      wait 2>/dev/null
      exit "$status"
    fi
  done
  running=("${still[@]}")
  [ ${#running[@]} -gt 0 ] && sleep 0.2
done
exit "$status"

#!/usr/bin/env bash
# The layer rules of docs/internals.md ("Layers and what may include what"), checked on the source tree.
# Instant (grep only); scripts/test.sh runs it first. Exit 1 with one line per violation.
#
#   1. `#include "cuda/..."` only where the CUDA backend itself is written or driven directly:
#        cuda/                      the backend
#        dist/nccl_backend.cpp      the NCCL transport (it hands CUDA streams to NCCL)
#        tests/cuda/, tests/dist/   the backend's own tests and the multi-GPU tests' device set-up
#        benchmarks/bench_gpu.cpp   the backend's kernel benchmark (device properties, library versions)
#      Everything else (data/, dist/, apps/, the other benchmarks) asks engine/device_runtime.h. ops/ has
#      no exception: the CUDA kernels register into ops' slots, ops never includes them.
#   2. A lower layer never includes a higher one:
#        engine < autograd < ops (and cuda/, beside it) < models < data < algorithms < dist < apps
#      so autograd/ and engine/ include nothing from ops/ (autograd/autograd.h, OpHooks, says what autograd
#      borrows from ops through registered hooks instead).
#   3. Library code (every folder built into a library: the layers above and apps/common/) includes what it
#      uses, never the umbrella nabla.h (which is for programs: apps/*.cpp, tests, benchmarks, examples).
#
# Usage: bash scripts/check_layers.sh [repo root]   (default: this script's repository)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# rank of each layer folder (cuda/ sits beside ops/)
declare -A RANK=([engine]=0 [autograd]=1 [ops]=2 [cuda]=2 [models]=3 [data]=4 [algorithms]=5 [dist]=6 [apps]=7)
LIBRARY_DIRS=(engine autograd ops cuda models data algorithms dist apps/common)

failures=0
report() {  # file, message
  local f=$1
  shift
  echo "check_layers: $f: $*"
  failures=$((failures + 1))
}

sources() {  # the C++/CUDA sources under the given folders (tracked or not; build folders excluded)
  find "$@" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.cc' -o -name '*.cu' \
    -o -name '*.cuh' \) -not -path '*/build*' 2>/dev/null | sed 's|^\./||' | sort
}

# ---- rule 1 -------------------------------------------------------------------------------------------
while IFS=: read -r f line _; do
  case $f in
    cuda/* | dist/nccl_backend.cpp | tests/cuda/* | tests/dist/* | benchmarks/bench_gpu.cpp) ;;
    *) report "$f" "line $line includes cuda/ (use engine/device_runtime.h; allowed only in cuda/," \
      "dist/nccl_backend.cpp, tests/cuda/, tests/dist/, benchmarks/bench_gpu.cpp)" ;;
  esac
done < <(sources . | xargs grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"cuda/' /dev/null || true)

# ---- rule 2 -------------------------------------------------------------------------------------------
for layer in "${!RANK[@]}"; do
  [[ -d $layer ]] || continue
  while IFS=: read -r f line text; do
    target=$(sed -E 's/.*#[[:space:]]*include[[:space:]]*"([a-z_]+)\/.*/\1/' <<<"$text")
    [[ -n ${RANK[$target]+x} ]] || continue
    if ((RANK[$target] > RANK[$layer])); then
      report "$f" "line $line: $layer/ includes $target/, a higher layer (order: engine < autograd <" \
        "ops, cuda < models < data < algorithms < dist < apps)"
    fi
  done < <(sources "$layer" | xargs grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]+/' /dev/null || true)
done

# ---- rule 3 -------------------------------------------------------------------------------------------
existing=()
for d in "${LIBRARY_DIRS[@]}"; do [[ -d $d ]] && existing+=("$d"); done
while IFS=: read -r f line _; do
  report "$f" "line $line includes the umbrella nabla.h; library code includes the headers it uses"
done < <(sources "${existing[@]}" | xargs grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"nabla\.h"' /dev/null || true)

if ((failures > 0)); then
  echo "check_layers: $failures violation(s) of the layer rules (scripts/check_layers.sh explains them)"
  exit 1
fi
echo "check_layers: ok (cuda/ includes, layer order, no nabla.h in library code)"

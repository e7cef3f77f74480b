#!/usr/bin/env bash
# The CPU test suites under AddressSanitizer + UndefinedBehaviorSanitizer (leak checking on), as CI runs them
# after the main test run: a CPU-only build (-DNABLA_SANITIZE=ON -DNABLA_CUDA=OFF) in build-asan, then the
# suites named below, each suite binary in one process.
#
#   bash scripts/sanitize_check.sh                  # engine autograd ops data algorithms
#   SANITIZE_SUITES="engine data" bash scripts/sanitize_check.sh
#   SANITIZE_SUITES=all bash scripts/sanitize_check.sh   # every CPU suite (models and apps too: ~2x longer)
#
# The default holds every parser (safetensors, IDX, CIFAR, JPEG/PNG, tokenizers, Criteo), the engine, the op
# kernels with their gradient checks and the optimizers. CI (scripts/test.sh) runs the engine, autograd and
# data suites (every parser; the build of the ops test binary is what it saves). models/ and apps/ are left
# to SANITIZE_SUITES=all because their training runs take several times longer under the sanitizers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${SANITIZE_BUILD:-build-asan}
suites=${SANITIZE_SUITES:-engine autograd ops data algorithms}
[[ $suites == all ]] && suites="engine autograd ops data algorithms models apps"
# -O1: the instrumented -O3 compile takes ~1.6x as long (16.5 against 10.2 s user for ops/cpu/optim_kernels.cpp),
# and these suites run in seconds either way.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DNABLA_SANITIZE=ON -DNABLA_CUDA=OFF -DNABLA_MPI=OFF -DNABLA_BUILD_BENCHMARKS=OFF >/dev/null
targets=()
for s in $suites; do targets+=("nabla_${s}_tests"); done
# the apps tests start the binaries
[[ " $suites " == *" apps "* ]] && targets+=(train_classifier vrgd_linreg demo_mlp)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Each suite's binary runs once, directly (ctest's names do not carry the suite).
status=0
for s in $suites; do
  echo "== sanitize: nabla_${s}_tests"
  if ! OMP_NUM_THREADS=2 "$build/nabla_${s}_tests" --gtest_brief=1; then
    echo "sanitize: nabla_${s}_tests FAILED"
    status=1
  fi
done
exit $status

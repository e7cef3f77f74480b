#!/usr/bin/env bash
# The test command (README, .ci/run): check the layer rules (scripts/check_layers.sh), install what is
# missing, build (Release, CUDA compiled when nvcc is there), run every test, then install the build into a
# temporary prefix and build and run docs/examples/ against it (scripts/check_install.sh), run the fuzz
# targets for a short time (scripts/fuzz.sh) and the engine and parser suites under ASan + UBSan
# (scripts/sanitize_check.sh).
# Extra CMake flags can come through NABLA_CMAKE_FLAGS, e.g.
#   NABLA_CMAKE_FLAGS="-DNABLA_SANITIZE=ON" BUILD_DIR=build-asan bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each phase's wall time, printed as it ends and as a table at the end (CI must stay under 30 minutes).
t_start=$SECONDS t_phase=$SECONDS phases=""
phase() {
  phases+=$(printf '%-14s %5d s\n' "$1" $((SECONDS - t_phase)))$'\n'
  echo "== test.sh: $1 took $((SECONDS - t_phase)) s (total $((SECONDS - t_start)) s)"
  t_phase=$SECONDS
}
trap 'echo "== test.sh: phases"; printf "%s" "$phases"' EXIT
bash scripts/check_layers.sh
bash scripts/install_deps.sh
phase setup
build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${NABLA_CMAKE_FLAGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
phase build
(cd "$build" && OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" ctest -j "$(nproc)" --output-on-failure --timeout 900)
phase ctest
bash scripts/check_install.sh "$build"
phase check_install
# Hostile inputs (docs/fuzzing.md): every parser's libFuzzer target (clang-16, ASan + UBSan) from its seed
# corpus for a short fixed time; any crash, leak or timeout fails the run.
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz.sh
phase fuzz
# The CPU suites of the engine and the parsers under ASan + UBSan (scripts/sanitize_check.sh says which and
# why; SANITIZE_SUITES=all for every CPU suite). NABLA_CI_SANITIZE=0 skips it.
if [[ "${NABLA_CI_SANITIZE:-1}" != 0 ]]; then
  SANITIZE_SUITES="${SANITIZE_SUITES:-engine autograd data}" bash scripts/sanitize_check.sh
  phase sanitize
fi

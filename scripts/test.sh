#!/usr/bin/env bash
# The test command (README, .ci/run): check the layer rules (scripts/check_layers.sh), install what is
# missing, build (Release, CUDA compiled when nvcc is there), run every test, then install the build into a
# temporary prefix and build and run docs/examples/ against it (scripts/check_install.sh).
# Extra CMake flags can come through NABLA_CMAKE_FLAGS, e.g.
#   NABLA_CMAKE_FLAGS="-DNABLA_SANITIZE=ON" BUILD_DIR=build-asan bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/check_layers.sh
bash scripts/install_deps.sh
build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${NABLA_CMAKE_FLAGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
(cd "$build" && OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" ctest -j "$(nproc)" --output-on-failure --timeout 900)
bash scripts/check_install.sh "$build"

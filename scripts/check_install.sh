#!/usr/bin/env bash
# Checks the installed package as another project sees it: installs an existing build into a temporary
# prefix (cmake --install: nothing is rebuilt), configures docs/examples/ against it with
# find_package(nabla) and nothing from this repository on its include path, builds the examples, runs each
# (each asserts its own result), and runs an installed binary (its RPATH finds the installed libraries).
# Exits non-zero on the first failure. scripts/test.sh runs it after ctest.
#
# Usage: bash scripts/check_install.sh [build dir, default build]   (KEEP=1 keeps the temporary folder)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
[[ -f $build/CMakeCache.txt ]] || { echo "check_install: $build is not a configured build folder" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nabla-install.XXXXXX")
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "check_install: installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }
for f in include/nabla/engine/tensor.h include/nabla/nabla.h include/nabla/engine/device_runtime.h; do
  [[ -f $prefix/$f ]] || { echo "check_install: $f was not installed" >&2; exit 1; }
done
config=$(find "$prefix" -name nablaConfig.cmake -print -quit)
[[ -n $config ]] || { echo "check_install: no nablaConfig.cmake under $prefix" >&2; exit 1; }

# The examples' project, configured with the same compiler (and ccache when the build used it).
launcher=$(sed -n 's/^CMAKE_CXX_COMPILER_LAUNCHER:[A-Z]*=//p' "$build/CMakeCache.txt")
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
echo "check_install: building docs/examples against it (find_package(nabla))"
cmake -S docs/examples -B "$work/examples" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  ${compiler:+-DCMAKE_CXX_COMPILER="$compiler"} ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher"} \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/examples" -j "$(nproc)" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

# Nothing from the source tree may leak in: the examples must compile from the installed headers.
if grep -E "^ *INCLUDES = " "$work/examples/build.ninja" | grep -qF -- "$(pwd)"; then
  echo "check_install: the examples' build points into the source tree $(pwd)" >&2
  exit 1
fi

status=0
for example in graph_example mlp_classifier custom_op mlp_from_tensors training_hook memory_snapshot; do
  if (cd "$work" && OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$work/examples/$example" >"$work/$example.log" 2>&1); then
    echo "check_install: $example ok ($(tail -n 1 "$work/$example.log"))"
  else
    echo "check_install: $example FAILED:" >&2
    cat "$work/$example.log" >&2
    status=1
  fi
done

# An installed binary runs from its RPATH alone (no LD_LIBRARY_PATH).
bin=$prefix/bin/train_classifier
if [[ -x $bin ]]; then
  if env -u LD_LIBRARY_PATH "$bin" --help >"$work/help.log" 2>&1; then
    echo "check_install: bin/train_classifier --help ok"
  else
    echo "check_install: installed bin/train_classifier --help FAILED:" >&2
    cat "$work/help.log" >&2
    status=1
  fi
fi
((status == 0)) && echo "check_install: ok ($prefix: headers, libraries, nablaConfig.cmake, examples)"
exit $status

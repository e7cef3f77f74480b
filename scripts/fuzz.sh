#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang-16 (ASan + UBSan, CPU only) in build-fuzz and runs each
# for a fixed time from its seed corpus (fuzz/corpus/<target>); exits non-zero on the first crash, leak,
# timeout or out-of-memory, leaving the input in build-fuzz/artifacts/. CI runs it as is.
#
#   bash scripts/fuzz.sh                       # every target, 20 s each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh fuzz_idx fuzz_image   # longer, chosen targets
#
# Environment: FUZZ_SECONDS (per target, default 20), FUZZ_JOBS (build jobs, default 2), FUZZ_CXX / FUZZ_CC
# (default clang++-16 / clang-16; Debian's clang 14 cannot compile the code base), FUZZ_BUILD (build-fuzz).
# Each run prints libFuzzer's final statistics; docs/fuzzing.md has the figures of a long run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
build=${FUZZ_BUILD:-build-fuzz}
cxx=${FUZZ_CXX:-clang++-16}
cc=${FUZZ_CC:-clang-16}
all=(fuzz_safetensors fuzz_idx fuzz_idx_gzip fuzz_cifar fuzz_image fuzz_schedule fuzz_options fuzz_wordpiece fuzz_bpe
  fuzz_criteo fuzz_darknet_cfg)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (apt-get install clang-16 libclang-rt-16-dev libomp-16-dev)"; exit 2; }
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" \
    -DNABLA_FUZZ=ON -DNABLA_CUDA=OFF -DNABLA_MPI=OFF -DNABLA_BUILD_TESTS=OFF -DNABLA_BUILD_BENCHMARKS=OFF >/dev/null
fi
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target "${targets[@]}"

mkdir -p "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
status=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  mkdir -p "$work"
  echo "== $t: ${seconds} s"
  # New inputs go to the work corpus; the seeds in the repo are read only.
  if ! "$build/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$work" "fuzz/corpus/$t" \
      >"$build/$t.log" 2>&1; then
    echo "fuzz.sh: $t FAILED; the input is in $build/artifacts/, the log in $build/$t.log:"
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$build/$t.log" | head -20
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/$t.log" | tr '\n' ' '
  echo
done
exit $status

# Sourced by benchmarks/profile_resnet.sh and profile_yolo.sh: their argument handling and their last part,
# the kernel table of both sides.

# profile_args DEFAULT_LOG_NAME ARGS...: [BUILD_DIR] [LOG_DIR] [-- case arguments] into BUILD, LOG and CASE
# (CASE empty when no case arguments came; the caller fills in its default).
profile_args() {
  local name=$1
  shift
  BUILD=${1:-build-gpu}
  LOG=${2:-$BUILD/$name}
  shift 2 2>/dev/null
  [ "${1:-}" = "--" ] && shift
  CASE=("$@")
  mkdir -p "$LOG"
}

# kernel_table BENCH_BINARY: both sides' kernels, by kind and the top ones. Nabla's from CUPTI
# (BUILD/libnabla_kernel_trace.so, benchmarks/kernel_trace.cpp: device times without the synchronisations
# of NABLA_PROFILE) over the case's timed steps; PyTorch's from the torch.profiler run the caller made with
# TORCH_KERNEL_TSV=$LOG/torch_kernels.tsv (benchmarks/kernel_compare.py puts them side by side).
kernel_table() {
  local bench=$1 trace="$BUILD/libnabla_kernel_trace.so"
  if [ ! -f "$trace" ]; then
    echo "($trace not built: no kernel table)"
    return
  fi
  echo "=== kernels by kind, Nabla (CUPTI) against PyTorch (torch.profiler)"
  NABLA_KERNEL_TRACE="$LOG/nabla_kernels.tsv" LD_PRELOAD="$(cd "$(dirname "$trace")" && pwd)/$(basename "$trace")" \
    timeout 90 "$BUILD/$bench" "${CASE[@]}" --warmup 5 --steps 5 --windows 1 >"$LOG/nabla_traced.jsonl" \
    2>"$LOG/nabla_trace.err"
  python3 benchmarks/kernel_compare.py "$LOG/nabla_kernels.tsv" "$LOG/torch_kernels.tsv" | tee "$LOG/kernel_compare.txt"
}

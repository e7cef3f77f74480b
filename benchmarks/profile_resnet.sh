#!/usr/bin/env bash
# Where a ResNet-50 training step's device time goes, Nabla against PyTorch, for one case (default the bf16
# channels-last one of issue 5, where Nabla trails), on the GPU machine:
#   1. Nabla's op table (NABLA_PROFILE=1, engine/profile.h: each kernel call timed between two device
#      synchronisations, so it is device time per op, and the table's total next to the step time shows
#      how much is host overhead);
#   2. PyTorch's kernels from torch.profiler for the same case (benchmarks/resnet_torch.py --profile);
#   3. with nsys on PATH, both runs' kernel summaries (nsys profile --stats), kernel by kernel.
#
#   bash benchmarks/profile_resnet.sh [BUILD_DIR] [LOG_DIR] [-- bench_resnet case arguments]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
LOG=${2:-$BUILD/profile_resnet}
shift 2 2>/dev/null
[ "${1:-}" = "--" ] && shift
CASE=("$@")
[ ${#CASE[@]} -eq 0 ] && CASE=(--model resnet50 --batch 128 --image-size 224 --classes 1000 --amp bf16 --channels-last)
mkdir -p "$LOG"
name=profile
echo "=== Nabla ${CASE[*]}: throughput, then NABLA_PROFILE=1"
timeout 90 "$BUILD/bench_resnet" --name "$name" "${CASE[@]}" --warmup 5 --steps 10 --windows 3 | tee "$LOG/nabla.jsonl"
NABLA_PROFILE=1 timeout 90 "$BUILD/bench_resnet" --name "$name" "${CASE[@]}" --warmup 3 --steps 5 --windows 1 \
  >/dev/null 2>"$LOG/nabla_profile.txt"
head -n 45 "$LOG/nabla_profile.txt"
echo "=== PyTorch ${CASE[*]}: throughput and torch.profiler"
timeout 120 python3 benchmarks/resnet_torch.py --name "$name" "${CASE[@]}" --warmup 5 --steps 10 --windows 3 \
  --profile 5 2>"$LOG/torch_profile.txt" | tee "$LOG/torch.jsonl"
grep -v Warning "$LOG/torch_profile.txt" | head -n 45
if command -v nsys >/dev/null 2>&1; then
  echo "=== nsys kernel summaries"
  timeout 120 nsys profile -o "$LOG/nabla" --force-overwrite true --stats=true --export none \
    "$BUILD/bench_resnet" --name "$name" "${CASE[@]}" --warmup 3 --steps 5 --windows 1 >"$LOG/nsys_nabla.txt" 2>&1
  timeout 120 nsys profile -o "$LOG/torch" --force-overwrite true --stats=true --export none \
    python3 benchmarks/resnet_torch.py --name "$name" "${CASE[@]}" --warmup 3 --steps 5 --windows 1 \
    >"$LOG/nsys_torch.txt" 2>&1
  for f in nabla torch; do
    echo "--- $f"
    sed -n '/cuda_gpu_kern_sum/,/^$/p' "$LOG/nsys_$f.txt" | head -n 30 | cut -c1-200
  done
  rm -f "$LOG"/*.nsys-rep "$LOG"/*.sqlite
else
  echo "(no nsys on PATH: kernel-by-kernel summaries skipped)"
fi

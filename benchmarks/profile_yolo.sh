#!/usr/bin/env bash
# Where a YOLOv3 training step's device time goes, Nabla against PyTorch, for one case (default: 416², batch
# 32, TF32, channels-last, the case at parity with PyTorch in docs/yolo.md), on the GPU machine:
#   1. Nabla's throughput (bench_yolo), then its op table (NABLA_PROFILE=1: each op timed between two device
#      synchronisations, so a row is the op's device time plus ~10 us of synchronisation per call);
#   2. PyTorch's throughput and its kernels from torch.profiler (benchmarks/yolo_torch.py --profile);
#   3. both sides' kernels by kind (Nabla: CUPTI through build-gpu/libnabla_kernel_trace.so, as the GPU
#      machine has no nsys; benchmarks/profile_common.sh, benchmarks/kernel_compare.py).
#
#   bash benchmarks/profile_yolo.sh [BUILD_DIR] [LOG_DIR] [-- bench_yolo case arguments]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
. benchmarks/profile_common.sh
profile_args profile_yolo "$@"
CFG=/usr/share/darknet/cfg/yolov3.cfg
[ -f "$CFG" ] || CFG=tests/yolo/fixtures/yolov3.cfg
[ ${#CASE[@]} -eq 0 ] && CASE=(--cfg "$CFG" --mode train --batch 32 --amp off --channels-last)
echo "=== Nabla ${CASE[*]}: throughput, then NABLA_PROFILE=1"
timeout 90 "$BUILD/bench_yolo" "${CASE[@]}" | tee "$LOG/nabla.jsonl"
NABLA_PROFILE=1 timeout 90 "$BUILD/bench_yolo" "${CASE[@]}" --warmup 3 --steps 3 --windows 1 \
  >/dev/null 2>"$LOG/nabla_profile.txt"
head -n 40 "$LOG/nabla_profile.txt"
echo "=== PyTorch ${CASE[*]}: throughput and torch.profiler"
TORCH_KERNEL_TSV="$LOG/torch_kernels.tsv" timeout 120 python3 benchmarks/yolo_torch.py "${CASE[@]}" --profile 3 2>"$LOG/torch_profile.txt" | tee "$LOG/torch.jsonl"
grep -v Warning "$LOG/torch_profile.txt" | head -n 45
# 3. Both sides' kernels, by kind and the top ones (benchmarks/profile_common.sh).
kernel_table bench_yolo

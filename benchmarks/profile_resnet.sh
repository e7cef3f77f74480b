#!/usr/bin/env bash
# Where a ResNet-50 training step's device time goes, Nabla against PyTorch, for one case (default the bf16
# channels-last one of issue 5), on the GPU machine:
#   1. Nabla's throughput and its op table (NABLA_PROFILE=1, engine/profile.h: each kernel call timed
#      between two device synchronisations, so a row is device time per op plus ~10 us of synchronisation
#      per call; docs/cuda.md subtracts that);
#   2. PyTorch's kernels from torch.profiler for the same case (benchmarks/resnet_torch.py --profile).
#   3. both sides' kernels by kind (Nabla: CUPTI through build-gpu/libnabla_kernel_trace.so, as the GPU
#      machine has no nsys; benchmarks/profile_common.sh, benchmarks/kernel_compare.py).
#
#   bash benchmarks/profile_resnet.sh [BUILD_DIR] [LOG_DIR] [-- bench_resnet case arguments]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
. benchmarks/profile_common.sh
profile_args profile_resnet "$@"
[ ${#CASE[@]} -eq 0 ] && CASE=(--model resnet50 --batch 128 --image-size 224 --classes 1000 --amp bf16 --channels-last)
name=profile
echo "=== Nabla ${CASE[*]}: throughput, then NABLA_PROFILE=1"
timeout 90 "$BUILD/bench_resnet" --name "$name" "${CASE[@]}" --warmup 5 --steps 10 --windows 3 | tee "$LOG/nabla.jsonl"
NABLA_PROFILE=1 timeout 90 "$BUILD/bench_resnet" --name "$name" "${CASE[@]}" --warmup 3 --steps 5 --windows 1 \
  >/dev/null 2>"$LOG/nabla_profile.txt"
head -n 45 "$LOG/nabla_profile.txt"
echo "=== PyTorch ${CASE[*]}: throughput and torch.profiler"
TORCH_KERNEL_TSV="$LOG/torch_kernels.tsv" timeout 120 python3 benchmarks/resnet_torch.py --name "$name" "${CASE[@]}" --warmup 5 --steps 10 --windows 3 \
  --profile 5 2>"$LOG/torch_profile.txt" | tee "$LOG/torch.jsonl"
grep -v Warning "$LOG/torch_profile.txt" | head -n 45
# 3. Both sides' kernels, by kind and the top ones (benchmarks/profile_common.sh).
kernel_table bench_resnet

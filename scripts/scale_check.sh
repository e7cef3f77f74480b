#!/usr/bin/env bash
# The scale-out run (4 or 8 GPUs, e.g. the device kinds nvidia-h200-x4 / -x8), in one call:
#   1. ResNet-50 data-parallel throughput, synthetic data, batch 128 per GPU, bf16 autocast, channels-last, on
#      1, 2, 4 (and 8) GPUs: Nabla (benchmarks/bench_ddp) and PyTorch DistributedDataParallel
#      (benchmarks/ddp_torch.py) with the same settings, images/s and scaling efficiency against 1 GPU;
#   2. all-reduce bus bandwidth on all GPUs, 1 MiB to 1 GiB, f32 and bf16 (busbw as nccl-tests defines it);
#   3. VRGD with one partition per GPU: train_classifier --optimizer vr-lars --gsnr-partitions 8 on ResNet-20
#      for 4 steps at lr 0.1, 8 ranks (one partition each; on 4 GPUs 4 ranks of 2) against one process with 8 strided
#      micro-batches of the same global batch: the partitions are the same examples
#      (apps/common/vrgd_step.h), so the training loss and accuracy, the per-layer GSNR statistics of the
#      metrics file and the parameters of the final checkpoints must agree within f32 rounding
#      (scripts/compare_vr_runs.py). Evaluation and the BatchNorm running statistics are not compared: the
#      micro-batch run updates those once per micro-batch.
# then a short table. NCCL_NVLS_ENABLE=0 for every multi-GPU run.
#   bash scripts/scale_check.sh [BUILD_DIR] [LOG_DIR] [FASHION_MNIST_DIR]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
LOG=${2:-$BUILD/scale_check}
DATA=${3:-.gpu-data/fashion-mnist}
mkdir -p "$LOG"
STEP_S=${SCALE_STEP_S:-150}
export NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} NABLA_DIST_TIMEOUT=${NABLA_DIST_TIMEOUT:-120}
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "${NGPU:-0}" -lt 2 ]; then
  echo "scale_check: $NGPU GPU(s); this run needs 2 or more"
  exit 0
fi
if [ ! -x "$BUILD/bench_ddp" ] || [ ! -x "$BUILD/train_classifier" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNABLA_CUDA=ON \
    >"$LOG/configure.log" 2>&1
  cmake --build "$BUILD" -j "$(nproc)" --target bench_ddp bench_allreduce train_classifier >"$LOG/build.log" 2>&1 ||
    { tail -n 30 "$LOG/build.log"; exit 1; }
fi

counts=(1)
for n in 2 4 8; do [ "$n" -le "$NGPU" ] && counts+=("$n"); done

echo "=== 1. ResNet-50 data-parallel, bf16 channels-last, 128 per GPU, on ${counts[*]} GPUs"
: >"$LOG/ddp.jsonl"
for n in "${counts[@]}"; do
  timeout "$STEP_S" scripts/launch.sh -n "$n" -- "$BUILD/bench_ddp" --channels-last >>"$LOG/ddp.jsonl" \
    2>"$LOG/ddp_nabla_$n.err" || echo "{\"impl\": \"nabla\", \"gpus\": $n, \"error\": \"exit $?\"}" >>"$LOG/ddp.jsonl"
  timeout "$STEP_S" torchrun --standalone --nproc_per_node "$n" benchmarks/ddp_torch.py --channels-last \
    >>"$LOG/ddp.jsonl" 2>"$LOG/ddp_torch_$n.err" ||
    echo "{\"impl\": \"torch\", \"gpus\": $n, \"error\": \"exit $?\"}" >>"$LOG/ddp.jsonl"
done

echo "=== 2. all-reduce on $NGPU GPUs"
timeout "$STEP_S" scripts/launch.sh -n "$NGPU" -- "$BUILD/bench_allreduce" --max-mb 1024 >"$LOG/allreduce.log" 2>&1
rc_ar=$?

# With fewer than 8 GPUs, the same 8 partitions are taken as NGPU ranks of 8/NGPU micro-batches each
# (the strided split makes them the same examples), which is what the lent kinds allow.
VR_RANKS=$((NGPU >= 8 ? 8 : NGPU))
echo "=== 3. VR-LARS, 8 partitions: $VR_RANKS ranks ($((8 / VR_RANKS)) per rank) against 8 micro-batches in one process"
vr_rc="skipped (needs $DATA)"
if [ -d "$DATA" ] && [ $((8 % VR_RANKS)) -eq 0 ]; then
  rm -f "$LOG"/vr_*.ckpt "$LOG"/vr_*.jsonl
  args=(--data-dir "$DATA" --model resnet20 --pad 32 --optimizer vr-lars --gsnr-partitions 8 --lr 0.1
    --batch-size 1024 --epochs 1 --limit-train 4096 --warmup-steps 0 --no-progress --device cuda)
  timeout "$STEP_S" scripts/launch.sh -n "$VR_RANKS" -- "$BUILD/train_classifier" "${args[@]}" \
    --checkpoint "$LOG/vr_ranks.ckpt" --metrics "$LOG/vr_ranks.jsonl" >"$LOG/vr_ranks.log" 2>&1
  r1=$?
  timeout "$STEP_S" "$BUILD/train_classifier" "${args[@]}" --checkpoint "$LOG/vr_micro.ckpt" \
    --metrics "$LOG/vr_micro.jsonl" >"$LOG/vr_micro.log" 2>&1
  r2=$?
  # The noise floor: the micro-batch run again (cuDNN may pick other algorithms, some not bit-reproducible);
  # the tolerances become the larger of the fixed ones and twice its difference (scripts/compare_vr_runs.py).
  timeout "$STEP_S" "$BUILD/train_classifier" "${args[@]}" --checkpoint "$LOG/vr_micro2.ckpt" \
    --metrics "$LOG/vr_micro2.jsonl" >"$LOG/vr_micro2.log" 2>&1
  r3=$?
  [ $r3 -eq 0 ] && noise=(--noise "$LOG/vr_micro2") || noise=()
  vr_rc=$(python3 scripts/compare_vr_runs.py "$LOG/vr_ranks" "$LOG/vr_micro" "$r1" "$r2" "$VR_RANKS" "${noise[@]}" 2>&1 |
    tail -n 5)
fi

echo
echo "==================== scale_check summary ($NGPU GPUs) ===================="
python3 - "$LOG/ddp.jsonl" "$LOG/allreduce.log" <<'PY'
import json, sys
ddp = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {(r["impl"], r["gpus"]): r.get("img_per_s") for r in ddp}
gpus = sorted({r["gpus"] for r in ddp})
print("ResNet-50, bf16 channels-last, 128/GPU: img/s (scaling efficiency against 1 GPU)")
print(f"  {'GPUs':>4} {'Nabla':>18} {'PyTorch DDP':>18} {'Nabla/PyTorch':>14}")
for g in gpus:
    cells = []
    for impl in ("nabla", "torch"):
        v, one = by.get((impl, g)), by.get((impl, 1))
        cells.append(f"{v:,.0f} ({100 * v / (g * one):.1f}%)" if v and one else "-")
    n, t = by.get(("nabla", g)), by.get(("torch", g))
    print(f"  {g:>4} {cells[0]:>18} {cells[1]:>18} {(f'{n / t:.2f}x' if n and t else '-'):>14}")
rows = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
print("all-reduce busbw GB/s (nccl-tests definition):")
for dt in ("f32", "bf16"):
    line = [f"{r['bytes'] >> 20} MiB {r['busbw_GBps']:.0f}" for r in rows if r["dtype"] == dt]
    print(f"  {dt}: " + " | ".join(line))
PY
echo "bench_allreduce: $([ $rc_ar -eq 0 ] && echo ok || echo "FAIL (rc $rc_ar)")"
echo "VR-LARS $VR_RANKS ranks vs 8 micro-batches: $vr_rc"

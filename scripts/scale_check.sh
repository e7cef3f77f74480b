#!/usr/bin/env bash
# The scale-out run (4 or 8 GPUs, e.g. the device kinds nvidia-h200-x4 / -x8), in one call:
#   1. ResNet-50 data-parallel throughput, synthetic data, batch 128 per GPU, bf16 autocast, channels-last, on
#      1, 2, 4 (and 8) GPUs: Nabla (benchmarks/bench_ddp) and PyTorch DistributedDataParallel
#      (benchmarks/ddp_torch.py) with the same settings, images/s and scaling efficiency against 1 GPU;
#   2. all-reduce bus bandwidth on all GPUs, 1 MiB to 1 GiB, f32 and bf16 (busbw as nccl-tests defines it);
#   3. VRGD with one partition per GPU: train_classifier --optimizer vr-lars --gsnr-partitions 8 on ResNet-20
#      for a few steps, 8 ranks (one partition each) against one process with 8 strided micro-batches of the
#      same global batch: the partitions are the same examples (apps/common/vrgd_step.h), so the training
#      loss and accuracy must agree within f32 rounding. (Evaluation is not compared: the micro-batch run
#      updates the BatchNorm running statistics once per micro-batch.)
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

echo "=== 3. VR-LARS, 8 partitions: 8 ranks against 8 micro-batches in one process"
vr_rc="skipped (needs 8 GPUs and $DATA)"
if [ "$NGPU" -ge 8 ] && [ -d "$DATA" ]; then
  args=(--data-dir "$DATA" --model resnet20 --pad 32 --optimizer vr-lars --gsnr-partitions 8 --lr 1.0
    --batch-size 1024 --epochs 1 --limit-train 16384 --warmup-steps 0 --no-progress --device cuda)
  timeout "$STEP_S" scripts/launch.sh -n 8 -- "$BUILD/train_classifier" "${args[@]}" >"$LOG/vr_ranks.log" 2>&1
  r1=$?
  timeout "$STEP_S" "$BUILD/train_classifier" "${args[@]}" >"$LOG/vr_micro.log" 2>&1
  r2=$?
  vr_rc=$(python3 - "$LOG/vr_ranks.log" "$LOG/vr_micro.log" "$r1" "$r2" <<'PY'
import re, sys
def nums(path):
    m = re.search(r"train loss ([0-9.]+) \| train acc ([0-9.]+)%", open(path).read())
    return [float(x) for x in m.groups()] if m else None
a, b = nums(sys.argv[1]), nums(sys.argv[2])
if sys.argv[3] != "0" or sys.argv[4] != "0" or not a or not b:
    print(f"FAIL (exit {sys.argv[3]} / {sys.argv[4]})")
else:
    same = abs(a[0] - b[0]) <= 2e-3 and abs(a[1] - b[1]) <= 0.2
    print(f"{'ok' if same else 'DIFFER'}: 8 ranks loss {a[0]:.4f} acc {a[1]:.2f}% | 8 micro-batches loss {b[0]:.4f} acc {b[1]:.2f}%")
PY
)
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
echo "VR-LARS 8 ranks vs 8 micro-batches: $vr_rc"

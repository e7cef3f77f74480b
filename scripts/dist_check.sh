#!/usr/bin/env bash
# Multi-GPU checks of dist/ (called by scripts/gpu_check.sh when the machine has >= 2 GPUs; runnable alone):
#   1. nabla_dist_tests on 2 GPUs (NCCL collectives on every dtype, DataParallel equivalence), once as is and
#      once with NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 (the network path)
#   2. bench_allreduce on all GPUs (f32 and bf16, 1 MiB .. 1 GiB, busbw as nccl-tests)
#   3. ResNet-50 data-parallel throughput, batch 128 per GPU: Nabla (bench_ddp) and PyTorch DDP
#      (benchmarks/ddp_torch.py) on 1 GPU and on all GPUs, with scaling efficiency
# then a short table.
#   bash scripts/dist_check.sh [BUILD_DIR] [LOG_DIR]        # each step under `timeout` (DIST_STEP_S, default 150)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
LOG=${2:-$BUILD/dist_check}
mkdir -p "$LOG"
STEP_S=${DIST_STEP_S:-150}
export NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} NABLA_DIST_TIMEOUT=${NABLA_DIST_TIMEOUT:-60}
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "${NGPU:-0}" -lt 2 ]; then
  echo "dist_check: $NGPU GPU(s); the multi-GPU checks need 2 or more"
  exit 0
fi
status() { [ "$1" -eq 0 ] && echo ok || { [ "$1" -eq 124 ] && echo TIMEOUT || echo "FAIL (rc $1)"; }; }
# The per-rank gtest totals ("[  PASSED  ] 14 tests.", "[  SKIPPED ] 8 tests, listed below:"), counted over ranks.
tests_line() {
  grep -E '^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ tests?' "$1" 2>/dev/null | sed -E 's/, listed below:?//' |
    sort | uniq -c | tr -s ' ' | paste -sd';' -
}

echo "=== dist tests on 2 GPUs"
timeout "$STEP_S" scripts/launch.sh -n 2 -- "$BUILD/nabla_dist_tests" >"$LOG/dist_tests.log" 2>&1
rc1=$?
tail -n 5 "$LOG/dist_tests.log"
echo "=== dist tests on 2 GPUs, NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1"
NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 timeout "$STEP_S" scripts/launch.sh -n 2 -- "$BUILD/nabla_dist_tests" \
  >"$LOG/dist_tests_nop2p.log" 2>&1
rc2=$?
tail -n 5 "$LOG/dist_tests_nop2p.log"

echo "=== bench_allreduce on $NGPU GPUs"
timeout "$STEP_S" scripts/launch.sh -n "$NGPU" -- "$BUILD/bench_allreduce" >"$LOG/allreduce.log" 2>&1
rc3=$?
grep -v '^{' "$LOG/allreduce.log" | tail -n 16

echo "=== ResNet-50 data-parallel, batch 128 per GPU"
: >"$LOG/ddp.jsonl"
timeout "$STEP_S" "$BUILD/bench_ddp" >>"$LOG/ddp.jsonl" 2>"$LOG/ddp_nabla_1.err"
rc4=$?
timeout "$STEP_S" scripts/launch.sh -n "$NGPU" -- "$BUILD/bench_ddp" >>"$LOG/ddp.jsonl" 2>"$LOG/ddp_nabla_n.err"
rc5=$?
timeout "$STEP_S" python3 benchmarks/ddp_torch.py >>"$LOG/ddp.jsonl" 2>"$LOG/ddp_torch_1.err"
rc6=$?
timeout "$STEP_S" torchrun --standalone --nproc_per_node "$NGPU" benchmarks/ddp_torch.py >>"$LOG/ddp.jsonl" \
  2>"$LOG/ddp_torch_n.err"
rc7=$?
for f in ddp_nabla_1 ddp_nabla_n ddp_torch_1 ddp_torch_n; do tail -n 3 "$LOG/$f.err"; done

echo
echo "==================== dist_check summary ($NGPU GPUs) ===================="
printf '%-34s %s\n' "dist tests (2 GPUs)" "$(status $rc1) $(tests_line "$LOG/dist_tests.log")"
printf '%-34s %s\n' "dist tests (no P2P, no SHM)" "$(status $rc2) $(tests_line "$LOG/dist_tests_nop2p.log")"
printf '%-34s %s\n' "bench_allreduce" "$(status $rc3)"
printf '%-34s %s\n' "bench_ddp 1 GPU / $NGPU GPUs" "$(status $rc4) / $(status $rc5)"
printf '%-34s %s\n' "ddp_torch 1 GPU / $NGPU GPUs" "$(status $rc6) / $(status $rc7)"
python3 - "$LOG/allreduce.log" "$LOG/ddp.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
big = [r for r in rows if r["bytes"] >= (256 << 20)]
for r in big:
    print(f"  all-reduce {r['dtype']:>4} {r['bytes'] >> 20:>5} MiB on {r['gpus']} GPUs: busbw {r['busbw_GBps']:.1f} GB/s "
          f"(algbw {r['algbw_GBps']:.1f})")
ddp = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
by = {(r["impl"], r["gpus"]): r["img_per_s"] for r in ddp}
print(f"  {'ResNet-50, 128/GPU':<22} {'1 GPU img/s':>12} {'N GPUs img/s':>13} {'scaling eff.':>13}")
for impl in ("nabla", "torch"):
    one = by.get((impl, 1))
    many = [(g, v) for (i, g), v in by.items() if i == impl and g > 1]
    if one and many:
        g, v = many[0]
        print(f"  {impl:<22} {one:>12,.0f} {v:>13,.0f} {v / (g * one):>12.1%}")
    else:
        print(f"  {impl:<22} missing results")
if by.get(("nabla", max((g for _, g in by), default=1))) and by.get(("torch", max((g for _, g in by), default=1))):
    g = max(g for _, g in by)
    print(f"  Nabla / PyTorch DDP on {g} GPUs: {by[('nabla', g)] / by[('torch', g)]:.2f}x")
PY

#!/usr/bin/env bash
# ABCP on YOLOv3 (docs/abcp.md): pretrain on the synthetic detection set (coloured rectangles, 2 classes),
# run the controller search and a random search with the same budget (mAP@0.5 reward after a short
# fine-tune, FLOPs budget), then shrink the best candidate and the uniform-ratio net at the same FLOPs,
# fine-tune them like the unpruned net, and print one table: mAP@0.5, params, GFLOPs and img/s.
#
#   bash scripts/abcp_experiments.sh [build-dir=build-gpu] [device=cuda]      the H200 run (~300 s)
#   ABCP_TINY=1 bash scripts/abcp_experiments.sh build cpu                    a CPU smoke test (~15 s on 1 thread)
#
# Sizes come from the environment: ABCP_CFG (builtin:yolov3, or a .cfg), ABCP_SIZE (input and image size),
# ABCP_PRETRAIN, ABCP_ITERS (candidates per search), ABCP_FT (fine-tune steps per candidate), ABCP_FINAL,
# ABCP_BATCH, ABCP_BUDGET (FLOPs fraction), ABCP_LAMBDA, ABCP_TRAIN / ABCP_VAL (synthetic images).
# No data to carry: the set is written under the log folder. Logs go to $OUT (else <build-dir>/abcp_experiments).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
DEVICE=${2:-cuda}
if [[ ${ABCP_TINY:-0} == 1 ]]; then
  : "${ABCP_CFG:=builtin:yolov3-mini}" "${ABCP_SIZE:=32}" "${ABCP_PRETRAIN:=30}" "${ABCP_ITERS:=4}" "${ABCP_FT:=2}"
  : "${ABCP_FINAL:=10}" "${ABCP_BATCH:=8}" "${ABCP_TRAIN:=32}" "${ABCP_VAL:=16}" "${ABCP_REPS:=2}"
else
  : "${ABCP_CFG:=builtin:yolov3}" "${ABCP_SIZE:=128}" "${ABCP_PRETRAIN:=600}" "${ABCP_ITERS:=12}" "${ABCP_FT:=20}"
  : "${ABCP_FINAL:=300}" "${ABCP_BATCH:=16}" "${ABCP_TRAIN:=512}" "${ABCP_VAL:=128}" "${ABCP_REPS:=20}"
fi
BUDGET=${ABCP_BUDGET:-0.3}
LAMBDA=${ABCP_LAMBDA:-0.1}
LOG=${OUT:-$BUILD/abcp_experiments}
mkdir -p "$LOG"
if [[ ! -x $BUILD/prune_abcp || ! -x $BUILD/train_yolo ]]; then
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$LOG/configure.log" 2>&1 ||
      { tail -20 "$LOG/configure.log"; exit 1; }
  fi
  cmake --build "$BUILD" -j"$(nproc)" --target prune_abcp train_yolo >"$LOG/build.log" 2>&1 ||
    { tail -30 "$LOG/build.log"; exit 1; }
fi

# one OpenMP thread on the CPU: on a loaded shared machine two threads only wait for each other
[[ $DEVICE == cpu ]] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
t0=$(date +%s)
timeout "${ABCP_TIMEOUT:-500}" "$BUILD/prune_abcp" --model yolo --cfg "$ABCP_CFG" --data synthetic \
  --synthetic-dir "$LOG/synthetic" --synthetic-train "$ABCP_TRAIN" --synthetic-val "$ABCP_VAL" \
  --synthetic-size "$ABCP_SIZE" --pretrain-steps "$ABCP_PRETRAIN" --pretrain-lr 3e-3 --batch "$ABCP_BATCH" \
  --finetune-steps "$ABCP_FT" --iterations "$ABCP_ITERS" --final-steps "$ABCP_FINAL" --flops-budget "$BUDGET" \
  --lambda "$LAMBDA" --controller-lr 0.01 --device "$DEVICE" --bench-batch 16 --bench-reps "$ABCP_REPS" \
  --archive "$LOG/search" --export "$LOG/abcp_best" --summary "$LOG/summary.json" >"$LOG/prune_abcp.log" 2>&1
rc=$?
t1=$(date +%s)
# the exported best net, scored by train_yolo (Darknet files, letterbox from the image files)
"$BUILD/train_yolo" --mode map --cfg "$LOG/abcp_best.cfg" --weights "$LOG/abcp_best.weights" \
  --data "$LOG/synthetic/val/images" --device "$DEVICE" >"$LOG/train_yolo_map.log" 2>&1
map_rc=$?
grep -E '^(controller|random):|pretrained' "$LOG/prune_abcp.log"
echo
echo "ABCP ($ABCP_CFG at ${ABCP_SIZE}², synthetic set $ABCP_TRAIN/$ABCP_VAL images, $DEVICE, $(date -u +%F)): prune_abcp rc $rc in $((t1 - t0)) s; train_yolo map of the exported best: rc $map_rc, $(grep -o 'mAP@0.5 = [0-9.]*%' "$LOG/train_yolo_map.log" | head -1); logs in $LOG"
python3 - "$LOG/summary.json" "$ABCP_ITERS" "$ABCP_FT" "$BUDGET" "$LAMBDA" <<'PY' || tail -20 "$LOG/prune_abcp.log"
import json, sys
s = json.load(open(sys.argv[1]))
iters, ft, budget, lam = sys.argv[2:6]
for k, v in s["search"].items():
    b = v["best"]
    print(f"{k}: reward by fifth {' '.join(f'{x:.3f}' for x in v['fifths'])}; {v['within_budget']}/{iters} within the "
          f"FLOPs budget {budget}; best mAP {100*b['map']:.1f}% at {100*b['flops_fraction']:.1f}% FLOPs, "
          f"{b['blocks_kept']}/{s['full']['blocks']} blocks")
print(f"search: {iters} candidates each, {ft} fine-tune steps, R = mAP - {lam} FLOPs/FLOPs_full; {s['seconds']:.0f} s in all")
print("| net | mAP@0.5 | mAP@0.5 before final fine-tune | params | GFLOPs | FLOPs | blocks | img/s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in s["rows"]:
    print(f"| {r['name']} | {100*r['map']:.2f}% | {100*r['map_before']:.2f}% | {r['params']:,} | {r['gflops']:.3f} | "
          f"{100*r['flops_fraction']:.1f}% | {r['blocks']}/{s['full']['blocks']} | {r['img_s']:.1f} |")
PY

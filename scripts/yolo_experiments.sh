#!/usr/bin/env bash
# YOLOv3-tiny on the sample detection data, for one GPU (the lead's H200 run; docs/yolo.md): trains from
# scratch at 416² for a few minutes with Darknet's augmentation and schedule, evaluates mAP on the same
# images (the sample sets are tiny: this shows the pipeline working end to end, not generalisation), runs
# the detector on one image, and prints one table.
#
#   bash scripts/yolo_experiments.sh [build-dir=build-gpu] [device=cuda] [steps=500]
#
# Data: ../shared/data/detection-samples (or DETECTION_SAMPLES=...): the UCSD traffic frames (3 classes)
# and the mobile-robot frames (5 classes). The cfg is Debian's yolov3-tiny.cfg when installed, else the copy
# in tests/yolo/fixtures. Logs and weights go to $OUT (else <build-dir>/yolo_experiments).
# COCO128=<dir or coco128.tar.xz> adds a third row: the 128 COCO train2017 images with their YOLO labels (80
# classes; docs/yolo.md says where they come from), COCO128_STEPS updates (default 300). The folder holds
# images/train2017/*.jpg, labels/train2017/*.txt and coco.names; a .tar.xz is unpacked into the log folder.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
DEVICE=${2:-cuda}
STEPS=${3:-500}
SIZE=${YOLO_SIZE:-416}    # input size and batch, smaller for a CPU smoke test
BATCH=${YOLO_BATCH:-16}
SAMPLES=${DETECTION_SAMPLES:-../shared/data/detection-samples}
CFG=/usr/share/darknet/cfg/yolov3-tiny.cfg
[[ -f $CFG ]] || CFG=tests/yolo/fixtures/yolov3-tiny.cfg
LOG=${OUT:-$BUILD/yolo_experiments}
mkdir -p "$LOG"
if [[ ! -x $BUILD/train_yolo ]]; then
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$LOG/configure.log" 2>&1 ||
      { tail -20 "$LOG/configure.log"; exit 1; }
  fi
  cmake --build "$BUILD" -j"$(nproc)" --target train_yolo >"$LOG/build.log" 2>&1 || { tail -30 "$LOG/build.log"; exit 1; }
fi

rows=()
run_set() {  # name, image folder, names file, classes, [updates]
  local name=$1 images=$2 names=$3 classes=$4 steps=${5:-$STEPS}
  local t0 t1
  t0=$(date +%s)
  "$BUILD/train_yolo" --cfg "$CFG" --classes "$classes" --data "$images" --names "$names" \
    --width "$SIZE" --height "$SIZE" --batch "$BATCH" --subdivisions 1 --max-steps "$steps" --burn-in 50 --lr 0.001 \
    --device "$DEVICE" --metrics "$LOG/$name.jsonl" --checkpoint "$LOG/$name.weights" --save-every 100 \
    --print-every 25 --no-progress >"$LOG/$name.train.log" 2>&1
  local rc=$?
  t1=$(date +%s)
  "$BUILD/train_yolo" --mode map --cfg "$CFG" --classes "$classes" --weights "$LOG/$name.weights" \
    --data "$images" --names "$names" --width "$SIZE" --height "$SIZE" --device "$DEVICE" \
    >"$LOG/$name.map.log" 2>&1
  "$BUILD/train_yolo" --mode detect --cfg "$CFG" --classes "$classes" --weights "$LOG/$name.weights" \
    --data "$(ls "$images"/* | head -1)" --names "$names" --width "$SIZE" --height "$SIZE" \
    --device "$DEVICE" --out "$LOG/$name.dets.json" >"$LOG/$name.detect.log" 2>&1
  local loss
  loss=$(/usr/bin/env python3 - "$LOG/$name.jsonl" <<'PY'
import json, sys
l = [json.loads(x) for x in open(sys.argv[1]) if '"kind": "yolo"' in x or '"kind":"yolo"' in x]
if not l: print("- | - | -"); sys.exit()
head = sum(r["loss"] for r in l[:10]) / len(l[:10]); tail = sum(r["loss"] for r in l[-10:]) / len(l[-10:])
print(f"{head:.1f} | {tail:.1f} | {l[-1]['avg_loss']:.2f}")
PY
)
  local tput map
  tput=$(grep -o 'throughput: [0-9,.]* img/s' "$LOG/$name.train.log" | awk '{print $2}')
  map=$(grep -o 'mAP@0.5 = [0-9.]*% | COCO mAP@0.5 = [0-9.]*% | mAP@\[.5:.95\] = [0-9.]*%' "$LOG/$name.map.log" |
    sed 's/mAP@0.5 = //; s/ | COCO mAP@0.5 = / | /; s/ | mAP@\[.5:.95\] = / | /')
  rows+=("| $name | $classes | $steps | ${loss} | ${tput:--} | $((t1 - t0)) | ${map:-- | - | -} | rc $rc |")
}
D=$SAMPLES/sample_datasets
run_set ucsd "$D/UCSD-dataset/JPEGImages" "$D/UCSD-dataset/classes.txt" 3
run_set robot "$D/mobile-robot-detection-dataset/JPEGImages" "$D/mobile-robot-detection-dataset/classes.txt" 5
if [[ -n ${COCO128:-} ]]; then
  C=$COCO128
  if [[ -f $C ]]; then  # the tarball: unpacked once into the log folder
    [[ -d $LOG/coco128 ]] || tar -xJf "$C" -C "$LOG"
    C=$LOG/coco128
  fi
  if [[ -d $C/images/train2017 && -f $C/coco.names ]]; then
    run_set coco128 "$C/images/train2017" "$C/coco.names" 80 "${COCO128_STEPS:-300}"
  else
    rows+=("| coco128 | 80 | - | - | - | - | - | - | - | - | - | no $C/images/train2017 or coco.names |")
  fi
fi

echo
echo "yolov3-tiny from scratch at ${SIZE}², batch $BATCH, $DEVICE ($(date -u +%F)); mAP on the training images; logs in $LOG"
echo "| set | classes | updates | loss, first 10 | loss, last 10 | Darknet avg loss | img/s | train s | mAP@0.5 (all-point) | COCO mAP@0.5 | mAP@[.5:.95] | status |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"

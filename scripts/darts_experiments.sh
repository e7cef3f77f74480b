#!/usr/bin/env bash
# B-DARTS experiments (docs/bdarts.md): searches with and without CLR on the BCNN and the DARTS supernets,
# the supernets' cost per step side by side, and a short training of a derived genotype.
#
#   bash scripts/darts_experiments.sh [BUILD_DIR] [OUT_DIR]
#   MODE=cpu (default): Fashion-MNIST resized to 16 x 16, C = 4, batch 32, 512 training examples (256 for
#            the weights, 256 for the alphas), 10 epochs, arch lr 3e-3, seeds 1 2 3, BCNN only
#   MODE=gpu: CIFAR-10 (DATA=path to cifar-10-batches-bin) or padded Fashion-MNIST when DATA is unset,
#            C = 16, batch 256, the paper's settings, EPOCHS (default 10 here, 50 in the paper), both supernets,
#            seeds 1 2 3; a few minutes per run on one H200
# COST_NETS="" skips part 1, SKIP_EVAL=1 parts 3 and the summary (to split the work over processes).
# Each run writes OUT_DIR/<net>_<clr|noclr>_s<seed>.jsonl and .log; scripts/darts_summary.py prints the tables.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-darts_runs}
MODE=${MODE:-cpu}
SEEDS=${SEEDS:-"1 2 3"}
mkdir -p "$OUT"

if [[ $MODE == gpu ]]; then
  EPOCHS=${EPOCHS:-10}
  if [[ -n ${DATA:-} ]]; then DATASET=(--dataset cifar10 --data-dir "$DATA"); else DATASET=(--dataset fashion-mnist --pad 32); fi
  COMMON=("${DATASET[@]}" --init-channels 16 --batch-size 256 --device cuda --no-progress)
  NETS=${NETS:-"bcnn darts"}
  ARCH_LR=${ARCH_LR:-3e-4}
else
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  EPOCHS=${EPOCHS:-10}
  COMMON=(--limit-train 512 --image-size 16 --init-channels 4 --batch-size 32 --limit-val 256
          --no-progress)
  NETS=${NETS:-"bcnn"}
  ARCH_LR=${ARCH_LR:-3e-3}
fi

# 1. cost per step: BCNN (3 cells) vs DARTS (8 cells) at the same C and batch, 1 epoch, no CLR difference
for net in ${COST_NETS-bcnn darts}; do
  /usr/bin/time -v "$BUILD/search_darts" --network $net "${COMMON[@]}" --epochs 1 --seed 1 \
    --metrics "$OUT/cost_${net}.jsonl" > "$OUT/cost_${net}.log" 2> "$OUT/cost_${net}.time" || true
  grep -E "User time|Maximum resident" "$OUT/cost_${net}.time" | sed "s/^/$net: /"
done

# 2. with and without CLR, same seeds
for net in $NETS; do
  for seed in $SEEDS; do
    for clr in clr noclr; do
      flag=(); [[ $clr == noclr ]] && flag=(--no-clr)
      name="${net}_${clr}_s${seed}"
      rm -f "$OUT/$name.jsonl"
      "$BUILD/search_darts" --network $net "${COMMON[@]}" --epochs "$EPOCHS" --arch-lr "$ARCH_LR" --seed "$seed" "${flag[@]}" \
        --metrics "$OUT/$name.jsonl" --genotype-out "$OUT/$name.genotype" > "$OUT/$name.log" 2>&1
      tail -2 "$OUT/$name.log" | head -1 | cut -c1-160
    done
  done
done

# 3. the derived genotype of the first CLR run, trained briefly from scratch (evaluation network)
if [[ -n ${SKIP_EVAL:-} ]]; then :
elif [[ $MODE == gpu ]]; then
  "$BUILD/train_darts" --genotype "$OUT/bcnn_clr_s1.genotype" "${DATASET[@]}" --epochs ${EVAL_EPOCHS:-20} \
    --batch-size 128 --device cuda --no-progress --metrics "$OUT/eval_bcnn_clr_s1.jsonl" | tee "$OUT/eval_bcnn_clr_s1.log"
else
  "$BUILD/train_darts" --genotype "$OUT/bcnn_clr_s1.genotype" --limit-train 2000 --limit-test 1000 --image-size 16 \
    --init-channels 4 --batch-size 64 --epochs 3 --cutout 4 --no-progress --metrics "$OUT/eval_bcnn_clr_s1.jsonl" \
    | tee "$OUT/eval_bcnn_clr_s1.log"
fi
[[ -n ${SKIP_EVAL:-} ]] || /usr/bin/python3 "$(dirname "$0")/darts_summary.py" "$OUT"

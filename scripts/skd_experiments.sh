#!/usr/bin/env bash
# The SKD experiments of docs/skd.md on one GPU (about 3-4 minutes on an H200), ending with one Markdown table:
#   1. a teacher team of three BERTs of different sizes (T0 2L-128, T1 4L-256, T2 6L-384), each trained on SST-2
#      from scratch by train_bert (1 epoch; no pretraining: docs/bert.md measured no gain from the pretraining
#      that fits here, so the GPU time goes to the students), run side by side;
#   2. each teacher's own dev/test score and the average-of-teachers ensemble (distill_bert --mode
#      ensemble-eval), and the teachers' logits over the training set computed once (--logit-cache);
#   3. the student (4L-312, TinyBERT-4's shape, from scratch) trained alone, by KD from each teacher (the best
#      of them is "KD from the best teacher"; their dev scores are SRD's), by WKD (uniform average of the soft
#      labels), by TAKD (T2 -> a 5L-352 assistant -> the student), and by SKD with UD, TRD and SRD
#      (linear-in-rank), SEEDS seeds each (the seeds of one method run side by side on the GPU);
#   4. throughput: SKD with the three teachers run every step (no cache), teachers in bf16 autocast, against the
#      student alone and the largest teacher's own training steps.
# The score is SST-2 accuracy on test.tsv (GLUE's dev set, 872 sentences) of the best checkpoint on dev.tsv
# (GLUE train re-split, 6,735), mean +- sample std over the seeds.
#
#   bash scripts/skd_experiments.sh [build_dir] [out_dir]   (defaults: build-gpu, $OUT/skd or build_dir/skd_experiments)
#   SKD_TINY=1 bash scripts/skd_experiments.sh build        (CPU, tiny models and data: a test of the script)
#
# Needs: .cache/tokenizers/bert-base-uncased/vocab.txt (scripts/prepare_tokenizers.sh; carry .cache/tokenizers),
# SST-2 at $SST2 (default ../shared/data/sentiment/standard/SST2/glue). Environment: SEEDS (3), DEVICE (cuda),
# AMP (bf16), TEACHER_EPOCHS (1), STUDENT_EPOCHS (1), LIMIT_TRAIN (0: all 60,614), BATCH (64), SEQ (64),
# STUDENT_INIT (a pretrained 4L-312 folder; empty: from scratch), THROUGHPUT_STEPS (200).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
OUT=${2:-${OUT:+$OUT/skd}}
OUT=${OUT:-$BUILD/skd_experiments}
TINY=${SKD_TINY:-0}
SST2=${SST2:-../shared/data/sentiment/standard/SST2/glue}
[ -d "$SST2" ] || SST2=/work/shared/data/sentiment/standard/SST2/glue
VOCAB=${VOCAB:-.cache/tokenizers/bert-base-uncased/vocab.txt}
SEEDS=${SEEDS:-3}
STUDENT_INIT=${STUDENT_INIT:-}
if [ "$TINY" = 1 ]; then
  DEVICE=${DEVICE:-cpu} AMP=${AMP:-off}
  TEACHER_EPOCHS=${TEACHER_EPOCHS:-2} STUDENT_EPOCHS=${STUDENT_EPOCHS:-1} LIMIT_TRAIN=${LIMIT_TRAIN:-384}
  LIMIT_DEV=${LIMIT_DEV:-128} BATCH=${BATCH:-32} SEQ=${SEQ:-24} EVAL_EVERY=${EVAL_EVERY:-6} THREADS=${THREADS:-1}
  THROUGHPUT_STEPS=${THROUGHPUT_STEPS:-6} SEEDS=${SKD_TINY_SEEDS:-2}
  T0=(--layers 1 --hidden 16 --heads 2) T1=(--layers 1 --hidden 24 --heads 2) T2=(--layers 2 --hidden 32 --heads 2)
  ASSISTANT=(--layers 1 --hidden 24 --heads 2) STUDENT=(--layers 1 --hidden 16 --heads 2)
  LR=${LR:-3e-3} WARMUP=5
else
  DEVICE=${DEVICE:-cuda} AMP=${AMP:-bf16}
  TEACHER_EPOCHS=${TEACHER_EPOCHS:-1} STUDENT_EPOCHS=${STUDENT_EPOCHS:-1} LIMIT_TRAIN=${LIMIT_TRAIN:-0}
  LIMIT_DEV=${LIMIT_DEV:-0} BATCH=${BATCH:-64} SEQ=${SEQ:-64} EVAL_EVERY=${EVAL_EVERY:-200} THREADS=${THREADS:-2}
  THROUGHPUT_STEPS=${THROUGHPUT_STEPS:-200}
  T0=(--layers 2 --hidden 128 --heads 2) T1=(--layers 4 --hidden 256 --heads 4) T2=(--layers 6 --hidden 384 --heads 6)
  ASSISTANT=(--layers 5 --hidden 352 --heads 8 --intermediate 1408)
  STUDENT=(--layers 4 --hidden 312 --heads 12 --intermediate 1200)
  LR=${LR:-2e-4} WARMUP=100
fi
[ -n "$STUDENT_INIT" ] && STUDENT=(--init-from "$STUDENT_INIT")
mkdir -p "$OUT"
if [ "$TINY" = 1 ]; then  # the first lines of each file, so that the teachers' evaluations stay short too
  mkdir -p "$OUT/sst2_tiny"
  head -n $((LIMIT_TRAIN + 1)) "$SST2/train.tsv" > "$OUT/sst2_tiny/train.tsv"
  head -n $((LIMIT_DEV + 1)) "$SST2/dev.tsv" > "$OUT/sst2_tiny/dev.tsv"
  head -n $((LIMIT_DEV + 1)) "$SST2/test.tsv" > "$OUT/sst2_tiny/test.tsv"
  SST2=$OUT/sst2_tiny
fi
for f in "$BUILD/train_bert" "$BUILD/distill_bert" "$VOCAB" "$SST2/train.tsv" "$SST2/dev.tsv" "$SST2/test.tsv"; do
  [ -e "$f" ] || { echo "skd_experiments: $f is missing (build train_bert and distill_bert; scripts/prepare_tokenizers.sh; carry .cache/tokenizers)" >&2; exit 1; }
done
DATA=(--vocab "$VOCAB" --train-tsv "$SST2/train.tsv" --dev-tsv "$SST2/dev.tsv" --test-tsv "$SST2/test.tsv"
  --limit-train "$LIMIT_TRAIN" --seq-len "$SEQ" --batch-size "$BATCH" --eval-batch-size 256)
COMMON=(--device "$DEVICE" --amp "$AMP" --threads "$THREADS" --no-progress --print-every 100)
RUN_ARGS=("${DATA[@]}" "${COMMON[@]}" --limit-dev "$LIMIT_DEV" --epochs "$STUDENT_EPOCHS" --lr "$LR"
  --warmup-steps "$WARMUP" --eval-every "$EVAL_EVERY" --logit-cache "$OUT/cache")
STUDENT_RUN=("${STUDENT[@]}" "${RUN_ARGS[@]}")
T0_DIR=$OUT/teacher0 T1_DIR=$OUT/teacher1 T2_DIR=$OUT/teacher2
TEAM=$T0_DIR,$T1_DIR,$T2_DIR
START=$(date +%s)

# run NAME BINARY ARGS...: in the background; logs to $OUT/NAME.log, metrics to $OUT/NAME.jsonl
run() {
  local name=$1 bin=$2
  shift 2
  rm -f "$OUT/$name.jsonl"
  echo "$BUILD/$bin $* --metrics $OUT/$name.jsonl" > "$OUT/$name.log"
  "$BUILD/$bin" "$@" --metrics "$OUT/$name.jsonl" >> "$OUT/$name.log" 2>&1 &
}
# finish LABEL: waits for the round's runs; reports failures and the time so far
finish() {
  local rc=0
  for pid in $(jobs -p); do wait "$pid" || rc=1; done
  echo "=== $1: $(($(date +%s) - START)) s so far$([ $rc = 0 ] || echo ', A RUN FAILED (see the logs in '"$OUT"')')"
}
best_dev() { python3 -c "
import json,sys
print(max([r['accuracy'] for r in map(json.loads, open(sys.argv[1])) if r.get('kind') == 'eval'] or [0]))" "$1"; }
mean_best() {  # mean best dev accuracy over the seeds of NAME
  local s=0
  for seed in $(seq 1 "$SEEDS"); do s=$(python3 -c "print($s + $(best_dev "$OUT/$1_s$seed.jsonl"))"); done
  python3 -c "print($s / $SEEDS)"
}

# 1. teachers (side by side)
i=0
for shape in T0 T1 T2; do
  declare -n S=$shape
  run "teacher$i" train_bert --mode finetune "${S[@]}" "${DATA[@]}" "${COMMON[@]}" --epochs "$TEACHER_EPOCHS" \
    --lr "${TEACHER_LR:-$LR}" --warmup-steps "$WARMUP" --eval-every "$EVAL_EVERY" --best-dir "$OUT/teacher$i" --seed 7
  i=$((i + 1))
done
finish "teachers"
# 2. the teachers' scores, the ensemble, the logit cache (one short WKD run computes every teacher's logits)
run ensemble distill_bert --mode ensemble-eval --teachers "$TEAM" "${STUDENT_RUN[@]}"
finish "ensemble"
run cache_warmup distill_bert --mode wkd --teachers "$TEAM" "${STUDENT_RUN[@]}" --max-steps 1
finish "teacher logits cached"
# 3. students, SEEDS seeds side by side per method
method() {  # method NAME ARGS...
  local name=$1
  shift
  for seed in $(seq 1 "$SEEDS"); do run "${name}_s$seed" distill_bert "$@" "${STUDENT_RUN[@]}" --seed "$seed"; done
  finish "$name"
}
method student --mode student
for k in 0 1 2; do
  method "kd_t$k" --mode kd --teachers "$OUT/teacher$k"
done
SRD_SCORES=$(mean_best kd_t0),$(mean_best kd_t1),$(mean_best kd_t2)
method wkd --mode wkd --teachers "$TEAM"
for seed in $(seq 1 "$SEEDS"); do
  run "takd_assistant_s$seed" distill_bert --mode kd --teachers "$T2_DIR" "${ASSISTANT[@]}" "${RUN_ARGS[@]}" \
    --seed "$seed" --best-dir "$OUT/assistant_s$seed"
done
finish "takd_assistant"
for seed in $(seq 1 "$SEEDS"); do
  run "takd_s$seed" distill_bert --mode kd --teachers "$OUT/assistant_s$seed" "${STUDENT_RUN[@]}" --seed "$seed"
done
finish "takd"
method skd_ud --mode skd --sampling ud --teachers "$TEAM"
method skd_trd --mode skd --sampling trd --teachers "$TEAM"
method skd_srd --mode skd --sampling srd --scores "$SRD_SCORES" --teachers "$TEAM"
# 4. throughput: teacher forwards + student step, no cache; the student alone; the largest teacher training
THR=("${STUDENT[@]}" "${DATA[@]}" "${COMMON[@]}" --limit-dev 256 --epochs 1 --max-steps "$THROUGHPUT_STEPS" --eval-every 0)
run thr_skd distill_bert --mode skd --teachers "$TEAM" "${THR[@]}"
finish "throughput: SKD, teachers every step"
run thr_student distill_bert --mode student "${THR[@]}"
finish "throughput: student alone"
run thr_teacher2 train_bert --mode finetune "${T2[@]}" "${DATA[@]}" "${COMMON[@]}" --epochs 1 --max-steps "$THROUGHPUT_STEPS"
finish "throughput: largest teacher"

AMP=$AMP python3 - "$OUT" "$SEEDS" "$SRD_SCORES" <<'EOF'
import json, os, statistics, sys
out, seeds, srd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def records(name):
    p = os.path.join(out, name + ".jsonl")
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
def first(name, kind, key):
    return next((r[key] for r in records(name) if r.get("kind") == kind and key in r), float("nan"))
def cell(values):
    v = [x for x in values if x == x]
    if not v: return "n/a"
    if len(v) == 1: return f"{100 * v[0]:.2f}"
    return f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}"
ens = records("ensemble")
teachers = sorted([r for r in ens if r["kind"] == "teacher"], key=lambda r: r["teacher"])
tests = {r["teacher"]: r["accuracy"] for r in ens if r["kind"] == "teacher_test"}
best_k = max(range(len(teachers)), key=lambda k: teachers[k]["accuracy"]) if teachers else 0
print("\n==================== SKD on SST-2 ====================")
print("| model | parameters | dev (re-split) | GLUE dev (test.tsv) |")
print("| --- | --- | --- | --- |")
for r in teachers:
    print(f"| teacher T{r['teacher']} | {r['parameters']:,} | {100 * r['accuracy']:.2f} | {100 * tests.get(r['teacher'], float('nan')):.2f} |")
e = {r["split"]: r["accuracy"] for r in ens if r["kind"] == "ensemble"}
student_params = first("student_s1", "student", "parameters")
print(f"| average-of-teachers ensemble | | {100 * e.get('dev', float('nan')):.2f} | {100 * e.get('test', float('nan')):.2f} |")
print(f"| student (below) | {student_params:,} | | |")
print(f"\n| method ({seeds} seeds) | GLUE dev (test.tsv) accuracy, mean ± std | best re-split dev, mean ± std |")
print("| --- | --- | --- |")
rows = [("student alone", "student"), (f"KD from the best teacher (T{best_k})", f"kd_t{best_k}")]
rows += [(f"KD from T{k}", f"kd_t{k}") for k in range(3) if k != best_k]
rows += [("WKD (uniform)", "wkd"), ("TAKD (T2 -> assistant -> student)", "takd"), ("SKD UD", "skd_ud"),
         ("SKD TRD (linear rank)", "skd_trd"), (f"SKD SRD (linear rank; scores {srd})", "skd_srd")]
for label, name in rows:
    test = [first(f"{name}_s{s}", "test", "accuracy") for s in range(1, seeds + 1)]
    dev = [max([r["accuracy"] for r in records(f"{name}_s{s}") if r.get("kind") == "eval"] or [float("nan")])
           for s in range(1, seeds + 1)]
    print(f"| {label} | {cell(test)} | {cell(dev)} |")
print("\n| throughput (median step) | seq/s |")
print("| --- | --- |")
for label, name in ((f"SKD step: drawn teacher's forward + student step (--amp {os.environ.get('AMP', 'bf16')})", "thr_skd"),
                    ("student step alone", "thr_student"), ("largest teacher (T2) training step", "thr_teacher2")):
    v = first(name, "summary", "seq_per_s")
    if v != v: v = first(name, "summary", "img_per_s")
    print(f"| {label} | {v:,.0f} |")
EOF
echo "total: $(($(date +%s) - START)) s; logs and metrics in $OUT"

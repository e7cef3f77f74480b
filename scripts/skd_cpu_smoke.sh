#!/usr/bin/env bash
# The CPU smoke run of docs/skd.md: does a student learn from a teacher? A few minutes on the 2-core machine.
#   1. a 4,049-token word vocabulary from the first 8,000 SST-2 training sentences (the 4,000 most frequent
#      words, punctuation, letters, digits): BERT's 30,522-row embedding would dominate every step here;
#   2. a 1L-64 BERT teacher trained on those 8,000 sentences (1 epoch, batch 32, length 24);
#   3. a 1L-32 student on the first 2,000 of them only, 124 steps (2 epochs): alone, and by KD from the teacher
#      (T 1, soft labels only, cached logits), SEEDS seeds each;
#   4. a table: best dev accuracy (the first 1,000 of dev.tsv) and GLUE dev accuracy (test.tsv, 872) of the
#      best dev checkpoint, mean and spread.
#
# TEAM=1 runs SKD's comparison instead, at this scale: three teachers of graded capacity (T0 1L-32, T1 1L-64,
# T2 2L-64), each trained on the 8,000 sentences (they know more than the student, as the paper's pretrained
# teachers do), and the 1L-32 student on the 2,000 by every method of docs/skd.md: alone, KD from each teacher
# (the best by dev score is "KD from the best teacher"), WKD, TAKD (T2 -> a 1L-48 assistant -> the student),
# SKD UD, TRD and SRD; seeds 1-3 by default; one table. About 35-60 minutes on the 2-core machine.
#
#   bash scripts/skd_cpu_smoke.sh [build_dir] [out_dir]     (defaults: build, /tmp/skd_cpu)
#   TEAM=1 bash scripts/skd_cpu_smoke.sh build /tmp/skd_team
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build}
OUT=${2:-/tmp/skd_cpu}
TEAM=${TEAM:-0}
if [ "$TEAM" = 1 ]; then SEEDS=${SEEDS:-1 2 3}; else SEEDS=${SEEDS:-1 2 3 4}; fi
SST2=${SST2:-../shared/data/sentiment/standard/SST2/glue}
[ -d "$SST2" ] || SST2=/work/shared/data/sentiment/standard/SST2/glue
mkdir -p "$OUT"
head -n 8001 "$SST2/train.tsv" > "$OUT/train8k.tsv"
head -n 2001 "$SST2/train.tsv" > "$OUT/train2k.tsv"
head -n 1001 "$SST2/dev.tsv" > "$OUT/dev1k.tsv"
cp "$SST2/test.tsv" "$OUT/test.tsv"
python3 - "$OUT" <<'EOF'
import collections, string, sys
out = sys.argv[1]
c = collections.Counter()
for i, line in enumerate(open(f"{out}/train8k.tsv")):
    if i: c.update(line.split("\t")[0].lower().split())
words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
for w in list(string.punctuation) + list(string.ascii_lowercase) + list(string.digits) + [w for w, _ in c.most_common(4000)]:
    if w not in words: words.append(w)
open(f"{out}/vocab.txt", "w").write("\n".join(words) + "\n")
EOF
V=(--vocab "$OUT/vocab.txt" --dev-tsv "$OUT/dev1k.tsv" --test-tsv "$OUT/test.tsv" --seq-len 24 --batch-size 32
   --eval-batch-size 256 --threads 2 --no-progress)
rm -f "$OUT"/*.jsonl
RUN=(--train-tsv "$OUT/train2k.tsv" --epochs 2 --lr 3e-3 --warmup-steps 10 --eval-every 31)
STUDENT=(--layers 1 --hidden 32 --heads 2 --intermediate 64 "${RUN[@]}")
if [ "$TEAM" = 1 ]; then
  # run NAME BINARY ARGS...: one run, its log and metrics under $OUT; stops the script on a failure
  run() {
    local name=$1 bin=$2
    shift 2
    "$BUILD/$bin" "$@" "${V[@]}" --metrics "$OUT/$name.jsonl" > "$OUT/$name.log" 2>&1 || { cat "$OUT/$name.log"; exit 1; }
    echo "=== $name: $SECONDS s so far"
  }
  k=0
  for shape in "1 32 2 64" "1 64 2 128" "2 64 2 128"; do
    read -r l h a f <<<"$shape"
    run "teacher$k" train_bert --mode finetune --layers "$l" --hidden "$h" --heads "$a" --intermediate "$f" \
      --train-tsv "$OUT/train8k.tsv" --epochs 1 --lr 3e-3 --warmup-steps 20 --eval-every 50 --seed 7 \
      --best-dir "$OUT/teacher$k"
    k=$((k + 1))
  done
  TEAM_DIRS=$OUT/teacher0,$OUT/teacher1,$OUT/teacher2
  C=(--logit-cache "$OUT/cache")
  for seed in $SEEDS; do
    run "student_s$seed" distill_bert --mode student "${STUDENT[@]}" --seed "$seed"
    for k in 0 1 2; do
      run "kd_t${k}_s$seed" distill_bert --mode kd --teachers "$OUT/teacher$k" "${C[@]}" "${STUDENT[@]}" --seed "$seed"
    done
    run "wkd_s$seed" distill_bert --mode wkd --teachers "$TEAM_DIRS" "${C[@]}" "${STUDENT[@]}" --seed "$seed"
    run "takd_assistant_s$seed" distill_bert --mode kd --teachers "$OUT/teacher2" "${C[@]}" "${RUN[@]}" \
      --layers 1 --hidden 48 --heads 2 --intermediate 96 --seed "$seed" --best-dir "$OUT/assistant_s$seed"
    run "takd_s$seed" distill_bert --mode kd --teachers "$OUT/assistant_s$seed" "${STUDENT[@]}" --seed "$seed"
    for d in ud trd; do
      run "skd_${d}_s$seed" distill_bert --mode skd --sampling "$d" --teachers "$TEAM_DIRS" "${C[@]}" "${STUDENT[@]}" \
        --seed "$seed"
    done
  done
  # SRD: the teachers ranked by the mean best dev score of the students distilled from each alone
  SRD=$(python3 - "$OUT" $SEEDS <<'EOF'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
best = lambda n: max(r["accuracy"] for r in map(json.loads, open(f"{out}/{n}.jsonl")) if r.get("kind") == "eval")
print(",".join(str(statistics.mean(best(f"kd_t{k}_s{s}") for s in seeds)) for k in range(3)))
EOF
  )
  for seed in $SEEDS; do
    run "skd_srd_s$seed" distill_bert --mode skd --sampling srd --scores "$SRD" --teachers "$TEAM_DIRS" "${C[@]}" \
      "${STUDENT[@]}" --seed "$seed"
  done
  python3 - "$OUT" "$SRD" $SEEDS <<'EOF'
import json, statistics, sys
out, srd, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
def recs(n): return [json.loads(l) for l in open(f"{out}/{n}.jsonl") if l.strip()]
def best_dev(n): return max(r["accuracy"] for r in recs(n) if r.get("kind") == "eval")
def test(n): return next(r["accuracy"] for r in recs(n) if r.get("kind") == "test")
print("| teacher (8,000 sentences) | best dev | GLUE dev (test.tsv) |\n| --- | --- | --- |")
tdev = []
for k, shape in enumerate(("T0 1L-32", "T1 1L-64", "T2 2L-64")):
    tdev.append(best_dev(f"teacher{k}"))
    print(f"| {shape} | {100 * tdev[-1]:.2f} | {100 * test(f'teacher{k}'):.2f} |")
b = max(range(3), key=lambda k: tdev[k])
rows = [("student alone", "student"), (f"KD from the best teacher (T{b})", f"kd_t{b}")]
rows += [(f"KD from T{k}", f"kd_t{k}") for k in range(3) if k != b]
rows += [("WKD (uniform)", "wkd"), ("TAKD (T2 -> 1L-48 -> student)", "takd"), ("SKD UD", "skd_ud"),
         ("SKD TRD (linear rank)", "skd_trd"), (f"SKD SRD (linear rank of {srd})", "skd_srd")]
print(f"\n| 1L-32 student, 2,000 sentences ({len(seeds)} seeds) | GLUE dev (test.tsv), mean ± std | best dev, mean ± std | per seed (GLUE dev) |")
print("| --- | --- | --- | --- |")
for label, n in rows:
    t = [100 * test(f"{n}_s{s}") for s in seeds]
    d = [100 * best_dev(f"{n}_s{s}") for s in seeds]
    print(f"| {label} | {statistics.mean(t):.2f} ± {statistics.stdev(t):.2f} | {statistics.mean(d):.2f} ± "
          f"{statistics.stdev(d):.2f} | {', '.join('%.2f' % x for x in t)} |")
EOF
  exit 0
fi
"$BUILD/train_bert" --mode finetune "${V[@]}" --layers 1 --hidden 64 --heads 2 --intermediate 128 \
  --train-tsv "$OUT/train8k.tsv" --epochs 1 --lr 3e-3 --warmup-steps 20 --eval-every 50 --seed 7 \
  --best-dir "$OUT/teacher" --metrics "$OUT/teacher.jsonl" > "$OUT/teacher.log" 2>&1 || { cat "$OUT/teacher.log"; exit 1; }
for seed in $SEEDS; do
  for mode in student kd; do
    T=()
    [ "$mode" = kd ] && T=(--teachers "$OUT/teacher" --logit-cache "$OUT/cache")
    "$BUILD/distill_bert" --mode "$mode" "${T[@]}" "${V[@]}" "${STUDENT[@]}" --seed "$seed" \
      --metrics "$OUT/${mode}_s$seed.jsonl" > "$OUT/${mode}_s$seed.log" 2>&1 || { cat "$OUT/${mode}_s$seed.log"; exit 1; }
  done
done
python3 - "$OUT" $SEEDS <<'EOF'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
def recs(name): return [json.loads(l) for l in open(f"{out}/{name}.jsonl") if l.strip()]
def summary(name):
    r = recs(name)
    ev = [x for x in r if x["kind"] == "eval"]
    return max(x["accuracy"] for x in ev), ev[-1]["dev_loss"], next(x["accuracy"] for x in r if x["kind"] == "test")
t = summary("teacher")
print(f"teacher 1L-64 (8,000 sentences): best dev {100 * t[0]:.2f}%, GLUE dev {100 * t[2]:.2f}%")
print("| student 1L-32, 2,000 sentences, 124 steps | best dev accuracy | final dev loss | GLUE dev (test.tsv) accuracy | per seed (GLUE dev) |")
print("| --- | --- | --- | --- | --- |")
for mode, label in (("student", "alone"), ("kd", "KD from the teacher")):
    s = [summary(f"{mode}_s{seed}") for seed in seeds]
    f = lambda i, k=100: f"{k * statistics.mean(x[i] for x in s):.2f} ± {k * statistics.stdev(x[i] for x in s):.2f}"
    print(f"| {label} | {f(0)} | {f(1, 1)} | {f(2)} | {', '.join('%.2f' % (100 * x[2]) for x in s)} |")
EOF

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
#   bash scripts/skd_cpu_smoke.sh [build_dir] [out_dir]     (defaults: build, /tmp/skd_cpu)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build}
OUT=${2:-/tmp/skd_cpu}
SEEDS=${SEEDS:-1 2 3 4}
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
"$BUILD/train_bert" --mode finetune "${V[@]}" --layers 1 --hidden 64 --heads 2 --intermediate 128 \
  --train-tsv "$OUT/train8k.tsv" --epochs 1 --lr 3e-3 --warmup-steps 20 --eval-every 50 --seed 7 \
  --best-dir "$OUT/teacher" --metrics "$OUT/teacher.jsonl" > "$OUT/teacher.log" 2>&1 || { cat "$OUT/teacher.log"; exit 1; }
for seed in $SEEDS; do
  for mode in student kd; do
    T=()
    [ "$mode" = kd ] && T=(--teachers "$OUT/teacher" --logit-cache "$OUT/cache")
    "$BUILD/distill_bert" --mode "$mode" "${T[@]}" "${V[@]}" --layers 1 --hidden 32 --heads 2 --intermediate 64 \
      --train-tsv "$OUT/train2k.tsv" --epochs 2 --lr 3e-3 --warmup-steps 10 --eval-every 31 --seed "$seed" \
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

#!/usr/bin/env bash
# The BERT experiments of docs/bert.md on one GPU, in parts that each fit one 540 s call, each ending with
# the table of every part found in the output folder (run the parts into the same folder to get all rows).
#
#   PART=sst2 (default, ~280 s on one H200: ~10 s set-up, ~190 s pretraining, ~2 x 40 s fine-tuning):
#     1. pretrain a 4L-256 BERT (BERT-Mini's shape: 4 layers, hidden 256, 4 heads, 1024) with MLM + NSP at
#        length 128, batch 256, AdamW 1e-3 (300 warm-up steps, linear decay), bf16 autocast, 4,500 steps
#        (1.15 M sequences: at the 6,036 seq/s measured for this model ~190 s), on .cache/corpus/train.txt
#        and, with PRETRAIN_TEXT=corpus+sst2 (the default), the sentences of SST-2's train.tsv without their
#        labels, one document each (task-adaptive pretraining: dev.tsv and test.tsv text is never used);
#        held-out MLM loss on .cache/corpus/heldout.txt against the unigram baseline;
#     2. fine-tune it on SST-2 (../shared/data/sentiment/standard/SST2/glue: train.tsv, dev.tsv picks the best
#        checkpoint; test.tsv = GLUE's dev set, 872 sentences, the published figures' set, scored once);
#     3. the same model trained on SST-2 from scratch with the same settings (2 minus 3 is pretraining's gain).
#   PART=lamb (~270 s at LAMB_BATCH=8192; ~300 s at 32768): LAMB against VR-LAMB pretraining of the same model
#     at a large batch through accumulation: LAMB_BATCH sequences per step as micro-batches of 256 (the
#     GSNR partitions of VR-LAMB, the accumulation steps of LAMB: the same micro-batches), the same
#     LAMB_SAMPLES sequences for both (default 1.2 M: 147 steps at 8k, 37 at 32k), lr LAMB_LR (default
#     6e-3 at 8k, 1e-2 at 16k and up) with 20% warm-up and polynomial decay (power 0.5), held-out MLM loss
#     every ~80k sequences, so the two are compared at equal numbers of samples. The 8k..32k sizes need
#     one call each: LAMB_BATCH=32768 PART=lamb for the second.
#   PART=all: both (~550 s: more than one 540 s call; for a longer limit only).
#
#   bash scripts/bert_experiments.sh [build_dir] [out_dir]     (defaults: build-gpu, $OUT/bert_experiments or
#                                                              build_dir/bert_experiments)
#   TINY=1 PART=all bash scripts/bert_experiments.sh build      the whole script on the CPU in ~1-2 minutes with
#                                                              a 1-layer 32-wide model, length 32 and a few
#                                                              steps: a test of the script, not an experiment
#
# Needs, carried to the GPU machine (no network there; ~18 MB): .cache/corpus/{train,heldout}.txt
# (scripts/prepare_bert_corpus.sh) and .cache/tokenizers/bert-base-uncased/vocab.txt
# (scripts/prepare_tokenizers.sh), and ../shared/data/sentiment/standard/SST2/glue. Other settings through the
# environment: PRETRAIN_STEPS, PRETRAIN_LR, FINETUNE_EPOCHS, FINETUNE_LR, DEVICE (cuda), AMP (bf16).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
if [ -n "${2:-}" ]; then OUT=$2; elif [ -n "${OUT:-}" ]; then OUT=$OUT/bert_experiments; else OUT=$BUILD/bert_experiments; fi
BIN=$BUILD/train_bert
PART=${PART:-sst2}
TINY=${TINY:-0}
case "$PART" in sst2 | lamb | all) ;; *) echo "bert_experiments: PART must be sst2, lamb or all, got '$PART'" >&2; exit 2 ;; esac
SST2=${SST2:-../shared/data/sentiment/standard/SST2/glue}
[ -d "$SST2" ] || SST2=/work/shared/data/sentiment/standard/SST2/glue
PRETRAIN_TEXT=${PRETRAIN_TEXT:-corpus+sst2}
case "$PRETRAIN_TEXT" in corpus | corpus+sst2) ;; *) echo "bert_experiments: PRETRAIN_TEXT must be corpus or corpus+sst2, got '$PRETRAIN_TEXT'" >&2; exit 2 ;; esac
mkdir -p "$OUT"
for f in "$BIN" .cache/corpus/train.txt .cache/corpus/heldout.txt .cache/tokenizers/bert-base-uncased/vocab.txt \
  "$SST2/train.tsv" "$SST2/dev.tsv" "$SST2/test.tsv"; do
  [ -e "$f" ] || { echo "bert_experiments: $f is missing (build train_bert; run scripts/prepare_bert_corpus.sh and scripts/prepare_tokenizers.sh and carry .cache/)" >&2; exit 1; }
done

if [ "$TINY" = 1 ]; then  # the script's own test on the CPU: every step, minutes, nothing measured
  DEVICE=${DEVICE:-cpu}
  AMP=${AMP:-off}
  MODEL=(--layers 1 --hidden 32 --heads 2 --intermediate 64 --threads 2)
  PRETRAIN_STEPS=${PRETRAIN_STEPS:-6}
  PRE_BATCH=16 PRE_WARMUP=2 PRE_EVAL=3 EVAL_EXAMPLES=32 CORPUS_LIMIT=(--corpus-limit-mb 0.3) SEQ=32
  FT_EVAL=20 MICRO=8
  LAMB_BATCH=${LAMB_BATCH:-32}
  LAMB_SAMPLES=${LAMB_SAMPLES:-96}
  # 200 training, 100 dev and 100 test sentences
  mkdir -p "$OUT/tiny_sst2"
  for s in train:201 dev:101 test:101; do head -n "${s#*:}" "$SST2/${s%:*}.tsv" > "$OUT/tiny_sst2/${s%:*}.tsv"; done
  SST2=$OUT/tiny_sst2
else
  DEVICE=${DEVICE:-cuda}
  AMP=${AMP:-bf16}
  MODEL=(--layers 4 --hidden 256 --heads 4 --intermediate 1024)
  PRETRAIN_STEPS=${PRETRAIN_STEPS:-4500}
  PRE_BATCH=256 PRE_WARMUP=300 PRE_EVAL=500 EVAL_EXAMPLES=2048 CORPUS_LIMIT=() SEQ=128
  FT_EVAL=500 MICRO=256
  LAMB_BATCH=${LAMB_BATCH:-8192}
  LAMB_SAMPLES=${LAMB_SAMPLES:-1200000}
fi
PRETRAIN_LR=${PRETRAIN_LR:-1e-3}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2}
FINETUNE_LR=${FINETUNE_LR:-1e-4}
if [ "$LAMB_BATCH" -ge 16384 ]; then LAMB_LR=${LAMB_LR:-1e-2}; else LAMB_LR=${LAMB_LR:-6e-3}; fi
COMMON=(--device "$DEVICE" --amp "$AMP" --no-progress --print-every 100)

run() {  # run NAME ARGS...: logs to $OUT/NAME.log, metrics to $OUT/NAME.jsonl
  local name=$1
  shift
  rm -f "$OUT/$name.jsonl"
  echo "=== $name: $BIN $*"
  local t0
  t0=$(date +%s)
  "$BIN" "$@" --metrics "$OUT/$name.jsonl" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "    rc $rc, $(($(date +%s) - t0)) s; $(grep -E 'held-out|best dev|throughput' "$OUT/$name.log" | tail -n 2 | paste -sd ' ' -)"
  [ $rc = 0 ] || { echo "    (last lines of $OUT/$name.log:)"; tail -n 5 "$OUT/$name.log" | sed 's/^/    /'; }
  return $rc
}

FAILED=0
if [ "$PART" = sst2 ] || [ "$PART" = all ]; then
  TRAIN_FILES=.cache/corpus/train.txt
  if [ "$PRETRAIN_TEXT" = corpus+sst2 ]; then
    # SST-2's training sentences (train.tsv's "sentence" column, no labels), one document each: a blank line
    # after every sentence; sentences of fewer than 3 words are left out (too short to mask and cut for NSP).
    python3 - "$SST2/train.tsv" "$OUT/sst2_train_sentences.txt" <<'EOF' || exit 1
import csv, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
col = rows[0].index("sentence")
kept = [r[col].strip() for r in rows[1:] if len(r[col].split()) >= 3]
with open(dst, "w", encoding="utf-8") as f:
    for s in kept:
        f.write(s + "\n\n")
print(f"    {len(kept)} of {len(rows) - 1} SST-2 training sentences -> {dst} (unlabelled, one document each)")
EOF
    TRAIN_FILES="$TRAIN_FILES,$OUT/sst2_train_sentences.txt"
  fi
  echo "$PRETRAIN_TEXT" > "$OUT/pretrain_text.txt"
  rm -rf "$OUT/pretrained" "$OUT/sst2_pretrained" "$OUT/sst2_scratch"  # no stale model from an earlier run
  run pretrain --mode pretrain "${MODEL[@]}" "${COMMON[@]}" --train-files "$TRAIN_FILES" "${CORPUS_LIMIT[@]}" \
    --seq-len "$SEQ" --batch-size "$PRE_BATCH" --max-steps "$PRETRAIN_STEPS" --optimizer adamw --lr "$PRETRAIN_LR" \
    --warmup-steps "$PRE_WARMUP" --eval-every "$PRE_EVAL" --eval-examples "$EVAL_EXAMPLES" \
    --save-pretrained "$OUT/pretrained" || FAILED=1
  FT=(--mode finetune "${MODEL[@]}" "${COMMON[@]}" --train-tsv "$SST2/train.tsv" --dev-tsv "$SST2/dev.tsv"
    --test-tsv "$SST2/test.tsv" --seq-len 64 --batch-size 32 --epochs "$FINETUNE_EPOCHS" --lr "$FINETUNE_LR"
    --warmup-steps 200 --eval-every "$FT_EVAL" --eval-batch-size 256)
  if [ -e "$OUT/pretrained/model.safetensors" ]; then
    run finetune_pretrained "${FT[@]}" --init-from "$OUT/pretrained" --best-dir "$OUT/sst2_pretrained" || FAILED=1
  fi
  run finetune_scratch "${FT[@]}" --best-dir "$OUT/sst2_scratch" || FAILED=1
fi

if [ "$PART" = lamb ] || [ "$PART" = all ]; then
  [ $((LAMB_BATCH % MICRO)) = 0 ] || { echo "bert_experiments: LAMB_BATCH $LAMB_BATCH is not a multiple of $MICRO" >&2; exit 2; }
  STEPS=$(((LAMB_SAMPLES + LAMB_BATCH - 1) / LAMB_BATCH))
  WARM=$(((STEPS + 4) / 5))
  EVERY=$(((STEPS + 14) / 15))  # ~15 evaluations
  for opt in lamb vr-lamb; do
    run "large_batch_${opt}_$LAMB_BATCH" --mode pretrain "${MODEL[@]}" "${COMMON[@]}" "${CORPUS_LIMIT[@]}" \
      --seq-len "$SEQ" --batch-size "$LAMB_BATCH" --accum $((LAMB_BATCH / MICRO)) --max-steps "$STEPS" \
      --optimizer "$opt" --lr "$LAMB_LR" --warmup-steps "$WARM" --decay poly --eval-every "$EVERY" \
      --eval-examples "$EVAL_EXAMPLES" || FAILED=1
  done
fi

python3 - "$OUT" "$MICRO" <<'EOF'
import glob, json, os, re, sys
out, micro = sys.argv[1], int(sys.argv[2])
def records(name):
    p = os.path.join(out, name + ".jsonl")
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
def evals(name):
    return [r for r in records(name) if r.get("kind") == "eval"]
def first(name, kind, key):
    return next((r[key] for r in records(name) if r.get("kind") == kind and key in r), float("nan"))
print("\n==================== BERT experiments ====================")
print("| run | result |")
print("| --- | --- |")
e = evals("pretrain")
if e:
    text = open(os.path.join(out, "pretrain_text.txt")).read().strip() if os.path.exists(os.path.join(out, "pretrain_text.txt")) else "?"
    curve = ", ".join("%d: %.3f" % (r["step"], r["mlm_loss"]) for r in e)
    print(f"| pretraining ({text}), held-out MLM loss by step | {curve} (unigram baseline "
          f"{first('pretrain', 'baseline', 'unigram_nats'):.3f} nats; MLM acc {100 * e[-1]['mlm_acc']:.1f}%, "
          f"NSP acc {100 * e[-1]['nsp_acc']:.1f}%; {first('pretrain', 'summary', 'img_per_s'):,.0f} seq/s) |")
for name, what in (("finetune_pretrained", "SST-2, pretrained here + fine-tuned"),
                   ("finetune_scratch", "SST-2, same model from scratch")):
    e = evals(name)
    t = [r for r in records(name) if r.get("kind") == "test"]
    if e:
        test = f"GLUE dev (test.tsv) {100 * t[-1]['accuracy']:.2f}%" if t else "GLUE dev: n/a"
        print(f"| {what} | {test}; re-split dev best {100 * max(r['accuracy'] for r in e):.2f}% "
              f"({len(e)} evaluations) |")
batches = sorted({int(m.group(1)) for p in glob.glob(os.path.join(out, "large_batch_*.jsonl"))
                  if (m := re.search(r"_(\d+)\.jsonl$", p))})
for b in batches:
    runs = {opt: evals(f"large_batch_{opt}_{b}") for opt in ("lamb", "vr-lamb")}
    steps = sorted({r["step"] for rs in runs.values() for r in rs})
    if not steps:
        continue
    by = {opt: {r["step"]: r["mlm_loss"] for r in rs} for opt, rs in runs.items()}
    cells = ", ".join(f"{s * b:,}: " + " / ".join(
        f"{by[o][s]:.3f}" if s in by[o] else "-" for o in ("lamb", "vr-lamb")) for s in steps)
    print(f"| LAMB / VR-LAMB, batch {b:,} ({b // micro} micro-batches of {micro}), held-out MLM loss "
          f"by sequences seen (LAMB / VR-LAMB) | {cells} |")
print("published small BERTs on SST-2 (pretrained on billions of words): BERT-Tiny 83.2, BERT-Mini (4L-256) 85.9")
EOF
exit $FAILED

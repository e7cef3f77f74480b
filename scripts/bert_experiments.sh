#!/usr/bin/env bash
# The BERT experiments of docs/bert.md on one GPU, a few minutes in all, ending with one table:
#   1. pretrain a 4L-256 BERT (4 layers, hidden 256, 4 heads, 1024) on .cache/corpus (MLM + NSP, length 128,
#      batch 256, AdamW, bf16 autocast), held-out MLM loss against the unigram baseline;
#   2. fine-tune it on SST-2 (../shared/data/sentiment/standard/SST2/glue: train.tsv and dev.tsv re-split from
#      GLUE's training set pick the best checkpoint; test.tsv, GLUE's dev set, 872 sentences, is what the
#      published figures use and is scored once, with the best checkpoint);
#   3. the same 4L-256 model trained on SST-2 from scratch (the gain of 2 over 3 is pretraining's);
#   4. (LAMB_VR=1, the default) LAMB against VR-LAMB pretraining at a large batch (2,048 sequences as 8
#      micro-batches of 256: accumulation for LAMB, the GSNR partitions for VR-LAMB), held-out MLM loss.
#
#   bash scripts/bert_experiments.sh [build_dir] [out_dir]     (defaults: build-gpu, build-gpu/bert_experiments)
#
# Needs, carried to the GPU machine (no network there): .cache/corpus/{train,heldout}.txt
# (scripts/prepare_bert_corpus.sh) and .cache/tokenizers/bert-base-uncased/vocab.txt
# (scripts/prepare_tokenizers.sh). Sizes and steps can be changed through the environment: PRETRAIN_STEPS,
# FINETUNE_EPOCHS, VR_STEPS, DEVICE (cuda), AMP (bf16).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
OUT=${2:-$BUILD/bert_experiments}
BIN=$BUILD/train_bert
DEVICE=${DEVICE:-cuda}
AMP=${AMP:-bf16}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1500}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2}
VR_STEPS=${VR_STEPS:-150}
LAMB_VR=${LAMB_VR:-1}
SST2=${SST2:-../shared/data/sentiment/standard/SST2/glue}
[ -d "$SST2" ] || SST2=/work/shared/data/sentiment/standard/SST2/glue
mkdir -p "$OUT"
for f in "$BIN" .cache/corpus/train.txt .cache/corpus/heldout.txt .cache/tokenizers/bert-base-uncased/vocab.txt \
  "$SST2/train.tsv" "$SST2/dev.tsv"; do
  [ -e "$f" ] || { echo "bert_experiments: $f is missing (build train_bert; run scripts/prepare_bert_corpus.sh and scripts/prepare_tokenizers.sh and carry .cache/)" >&2; exit 1; }
done
MODEL=(--layers 4 --hidden 256 --heads 4 --intermediate 1024)
COMMON=(--device "$DEVICE" --amp "$AMP" --no-progress --print-every 100)
run() {  # run NAME ARGS...: logs to $OUT/NAME.log, metrics to $OUT/NAME.jsonl
  local name=$1
  shift
  rm -f "$OUT/$name.jsonl"
  echo "=== $name: $BIN $*"
  local t0=$(date +%s)
  "$BIN" "$@" --metrics "$OUT/$name.jsonl" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "    rc $rc, $(($(date +%s) - t0)) s; $(grep -E 'held-out|best dev|throughput' "$OUT/$name.log" | tail -n 2 | paste -sd ' ' -)"
}

run pretrain --mode pretrain "${MODEL[@]}" "${COMMON[@]}" --seq-len 128 --batch-size 256 --max-steps "$PRETRAIN_STEPS" \
  --optimizer adamw --lr 1e-3 --warmup-steps 150 --eval-every 250 --eval-examples 2048 \
  --save-pretrained "$OUT/pretrained"
run finetune_pretrained --mode finetune "${MODEL[@]}" "${COMMON[@]}" --init-from "$OUT/pretrained" \
  --train-tsv "$SST2/train.tsv" --dev-tsv "$SST2/dev.tsv" --seq-len 64 --batch-size 32 --epochs "$FINETUNE_EPOCHS" \
  --lr 1e-4 --warmup-steps 200 --eval-every 500 --eval-batch-size 256 --best-dir "$OUT/sst2_pretrained" \
  --test-tsv "$SST2/test.tsv"
run finetune_scratch --mode finetune "${MODEL[@]}" "${COMMON[@]}" \
  --train-tsv "$SST2/train.tsv" --dev-tsv "$SST2/dev.tsv" --seq-len 64 --batch-size 32 --epochs "$FINETUNE_EPOCHS" \
  --lr 1e-4 --warmup-steps 200 --eval-every 500 --eval-batch-size 256 --best-dir "$OUT/sst2_scratch" \
  --test-tsv "$SST2/test.tsv"
if [ "$LAMB_VR" = 1 ]; then
  for opt in lamb vr-lamb; do
    run "large_batch_$opt" --mode pretrain "${MODEL[@]}" "${COMMON[@]}" --seq-len 128 --batch-size 2048 --accum 8 \
      --max-steps "$VR_STEPS" --optimizer "$opt" --lr 4e-3 --warmup-steps 30 --decay poly --eval-every 25 \
      --eval-examples 2048
  done
fi

python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def records(name):
    p = os.path.join(out, name + ".jsonl")
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
def evals(name):
    return [r for r in records(name) if r.get("kind") == "eval"]
def unigram(name):
    return next((r["unigram_nats"] for r in records(name) if r.get("kind") == "baseline"), float("nan"))
def seq_s(name):
    return next((r["img_per_s"] for r in records(name) if r.get("kind") == "summary"), float("nan"))
print("\n==================== BERT experiments (4L-256) ====================")
e = evals("pretrain")
print("| run | result |")
print("| --- | --- |")
if e:
    curve = ", ".join("%d: %.3f" % (r["step"], r["mlm_loss"]) for r in e)
    print(f"| pretraining, held-out MLM loss by step | {curve} (unigram baseline {unigram('pretrain'):.3f} nats; "
          f"MLM acc {100 * e[-1]['mlm_acc']:.1f}%, NSP acc {100 * e[-1]['nsp_acc']:.1f}%; {seq_s('pretrain'):,.0f} seq/s) |")
for name, what in (("finetune_pretrained", "SST-2, pretrained here + fine-tuned"),
                   ("finetune_scratch", "SST-2, same model from scratch")):
    e = evals(name)
    t = [r for r in records(name) if r.get("kind") == "test"]
    if e:
        test = f"GLUE dev (test.tsv) {100 * t[-1]['accuracy']:.2f}%" if t else "GLUE dev: n/a"
        print(f"| {what} | {test}; re-split dev best {100 * max(r['accuracy'] for r in e):.2f}% "
              f"({len(e)} evaluations) |")
for opt in ("lamb", "vr-lamb"):
    e = evals("large_batch_" + opt)
    if e:
        curve = ", ".join("%d: %.3f" % (r["step"], r["mlm_loss"]) for r in e)
        print(f"| {opt.upper()} batch 2,048 (8 x 256), held-out MLM loss by step | {curve} |")
print("published small BERTs on SST-2 (pretrained on billions of words): BERT-Tiny 83.2, BERT-Mini (4L-256) 85.9")
EOF

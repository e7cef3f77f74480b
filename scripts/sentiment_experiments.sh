#!/usr/bin/env bash
# The sentiment study (docs/sentiment.md) on one GPU: a fine-tuned BERT against our own GPT, zero- and
# few-shot, on the study's grid (standard, polarity shift, open domain, sentiment inference), ending with the
# study's table.
#   1. sentiment_study --mode sample / sft-data: the sampled ids, and instruction data built from the
#      training splits only (SST-2 GLUE train, SemEval-14 ABSC/E2E train, ECE/ECPE train);
#   2. GPT: pretrain the `small` GPT (6 x 384, context 512) on .cache/corpus/gpt/shards (or reuse GPT_HF, a
#      save_pretrained folder, e.g. from scripts/gpt_experiments.sh, whose context must hold the prompts),
#      LoRA instruction tuning on that data, served by serve_gpt;
#   3. sentiment_study --mode query against it (SHOTS, default 0,3) through the OpenAI client, with the cache;
#   4. BERT: pretrain a 4L-256 BERT on .cache/corpus (MLM + NSP), fine-tune it on SST-2 (GLUE train) for SC,
#      on the SemEval-14 14res / 14lap training sets for ABSC (sentence, aspect pairs) and E2E-ABSA (token
#      tagging, unified BIO tags), on ECE train for ECE (clause, emotion word + emotion clause pairs) and on
#      ECPE train for ECPE (candidate clause pairs), predict the sampled instances (one predict run per
#      model), import them;
#   5. sentiment_study --mode report: the table (Markdown, and JSON in $OUT/report.json).
#
#   bash scripts/sentiment_experiments.sh [build_dir] [out_dir]   (defaults: build-gpu, $OUT or build-gpu/sentiment)
#
# Needs: the build's sentiment_study, train_gpt, serve_gpt, train_bert; carried .cache/corpus/gpt/shards,
# .cache/corpus/{train,heldout}.txt, .cache/tokenizers/{gpt2,bert-base-uncased} (scripts/prepare_gpt_data.sh,
# prepare_bert_corpus.sh, prepare_tokenizers.sh); ../shared/data/sentiment. Environment: DEVICE (cuda),
# GPT_STEPS (1000), GPT_SFT_STEPS (400), BERT_PRETRAIN_STEPS (1000), BERT_EPOCHS (SC, ECE, ECPE 1; ABSC 4;
# E2E-ABSA 8), SHOTS (0,3),
# SENTI_LIMIT (instances per dataset: default 30, the first 30 of the study's sample, to keep the default run
# near 300 s, an estimate; 0 = the study's 100 / 50 / 30 and 100 / 90, about 2.5x the query time), SETTINGS
# (all), GPT_HF, BERT_PRETRAINED (reuse folders). SENTI_TINY=1: a CPU smoke run of every step with tiny sizes
# (2 instances per dataset, 64 training examples and 1 epoch per BERT task; its scores mean nothing).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-gpu}"
out="${2:-${OUT:-$build/sentiment}}"
tiny="${SENTI_TINY:-0}"
device="${DEVICE:-cuda}"
[[ $tiny == 1 ]] && device=cpu
amp=bf16
[[ $device == cpu ]] && amp=off
data="${SENTI_DATA:-$root/../shared/data/sentiment}"
[[ -d $data ]] || data="$root/shared/data/sentiment"
[[ -d $data ]] || data=/work/shared/data/sentiment
shots="${SHOTS:-0,3}"
settings="${SETTINGS:-all}"
limit="${SENTI_LIMIT:-30}"
tok="$root/.cache/tokenizers"
shards="$root/.cache/corpus/gpt/shards"
if [[ $tiny == 1 ]]; then
  gpt=(--model mini --context 256 --batch-size 2); gpt_steps=${GPT_STEPS:-2}; sft_steps=${GPT_SFT_STEPS:-2}
  sft_batch=2; bert_model=(--layers 2 --hidden 64 --heads 2 --intermediate 128); bert_steps=${BERT_PRETRAIN_STEPS:-3}
  bert_batch=8; bert_limit=(--limit-train 64); limit=${SENTI_LIMIT:-2}; sft_per_task=40; val_every=$gpt_steps; val_batches=1
else
  gpt=(--model small --context 512 --batch-size 16); gpt_steps=${GPT_STEPS:-1000}; sft_steps=${GPT_SFT_STEPS:-400}
  sft_batch=16; bert_model=(--layers 4 --hidden 256 --heads 4 --intermediate 1024); bert_steps=${BERT_PRETRAIN_STEPS:-1000}
  bert_batch=256; bert_limit=(); sft_per_task=3000; val_every=$(((gpt_steps + 3) / 4)); val_batches=10
fi
mkdir -p "$out"
for f in "$build/sentiment_study" "$build/train_gpt" "$build/serve_gpt" "$build/train_bert" "$tok/gpt2/encoder.json" \
  "$tok/bert-base-uncased/vocab.txt" "$data/prompts.md"; do
  [[ -e $f ]] || { echo "sentiment_experiments: $f is missing (build the binaries; carry .cache; ../shared/data)" >&2; exit 1; }
done
study=("$build/sentiment_study" --data "$data" --out "$out" --sample-ids "$out/sample_ids.tsv" --settings "$settings" --limit "$limit")
t0=$(date +%s)
stage() { echo "=== [$(($(date +%s) - t0)) s] $*"; }

stage "1. sampled ids and instruction data (training splits only)"
"${study[@]}" --mode sample > "$out/sample.log" && tail -n 1 "$out/sample.log"
"${study[@]}" --mode sft-data --sft-per-task "$sft_per_task" | tail -n 1

gpt_hf="${GPT_HF:-}"
if [[ -z $gpt_hf ]]; then
  stage "2a. GPT pretraining (${gpt[*]}, $gpt_steps steps, $device)"
  [[ -s $shards/train_000.bin ]] || { echo "sentiment_experiments: no $shards/train_000.bin (scripts/prepare_gpt_data.sh)" >&2; exit 1; }
  gpt_hf="$out/gpt_hf"
  "$build/train_gpt" "${gpt[@]}" --train-data "$shards/train_*.bin" --val-data "$shards/val_*.bin" \
    --encoder "$tok/gpt2/encoder.json" --vocab-bpe "$tok/gpt2/vocab.bpe" --max-steps "$gpt_steps" --lr 1e-3 \
    --warmup-steps $((gpt_steps / 15)) --dropout 0.1 --val-every "$val_every" --val-batches "$val_batches" \
    --device "$device" --amp "$amp" --no-progress --print-every 100 --metrics "$out/gpt_pretrain.jsonl" \
    --save-pretrained "$gpt_hf" > "$out/gpt_pretrain.log" 2>&1 || { tail -n 20 "$out/gpt_pretrain.log"; exit 1; }
  grep -E "val" "$out/gpt_pretrain.log" | tail -n 1
fi
stage "2b. GPT instruction tuning (LoRA r 16, $sft_steps steps on $out/sft.jsonl)"
"$build/train_gpt" --mode sft --init-from "$gpt_hf" --sft-data "$out/sft.jsonl" --adapter-out "$out/gpt_adapter" \
  --encoder "$tok/gpt2/encoder.json" --vocab-bpe "$tok/gpt2/vocab.bpe" --context "$(grep -o '"n_positions": *[0-9]*' "$gpt_hf/config.json" | grep -o '[0-9]*$')" \
  --batch-size "$sft_batch" --max-steps "$sft_steps" --lr 2e-3 --warmup-steps $((sft_steps / 10)) --lora-r 16 --lora-alpha 32 \
  --device "$device" --amp "$amp" --no-progress --print-every 50 --metrics "$out/gpt_sft.jsonl" \
  > "$out/gpt_sft.log" 2>&1 || { tail -n 20 "$out/gpt_sft.log"; exit 1; }
grep -E "^step" "$out/gpt_sft.log" | tail -n 1

stage "3. serving the tuned GPT, querying it (shots $shots)"
"$build/serve_gpt" --model-dir "$gpt_hf" --adapter "$out/gpt_adapter" --encoder "$tok/gpt2/encoder.json" \
  --vocab-bpe "$tok/gpt2/vocab.bpe" --device "$device" --port 0 --model-name nabla-gpt-senti > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
url=""
for _ in $(seq 1 600); do
  url=$(grep -o 'http://[0-9.]*:[0-9]*/v1' "$out/serve.log" | head -n 1)
  [[ -n $url ]] && break
  kill -0 $server 2>/dev/null || break
  sleep 0.2
done
[[ -n $url ]] || { echo "sentiment_experiments: serve_gpt did not start"; cat "$out/serve.log"; exit 1; }
"${study[@]}" --mode query --endpoint "$url" --model nabla-gpt-senti --run-name gpt --shots "$shots" --max-tokens 48 \
  --timeout 60 --backoff 0.5 > "$out/query.log" 2>&1 || { tail -n 20 "$out/query.log"; exit 1; }
grep -E "unparseable" "$out/query.log"
"${study[@]}" --mode report > "$out/report_gpt_only.md"  # kept should a later stage fail or run out of time
kill $server 2>/dev/null
wait $server 2>/dev/null

bert_pre="${BERT_PRETRAINED:-}"
common=(--device "$device" --amp "$amp" --no-progress --print-every 100 --vocab "$tok/bert-base-uncased/vocab.txt")
if [[ -z $bert_pre ]]; then
  stage "4a. BERT pretraining (${bert_model[*]}, $bert_steps steps)"
  bert_pre="$out/bert_pretrained"
  "$build/train_bert" --mode pretrain "${bert_model[@]}" "${common[@]}" --train-files "$root/.cache/corpus/train.txt" \
    --heldout-file "$root/.cache/corpus/heldout.txt" --seq-len 128 --batch-size "$bert_batch" --max-steps "$bert_steps" \
    --optimizer adamw --lr 1e-3 --warmup-steps $((bert_steps / 10)) --eval-every "$bert_steps" --eval-examples 256 \
    --save-pretrained "$bert_pre" > "$out/bert_pretrain.log" 2>&1 || { tail -n 20 "$out/bert_pretrain.log"; exit 1; }
fi
stage "4b. BERT fine-tuning (SC on SST-2 train; ABSC, E2E-ABSA on 14res / 14lap train; ECE clauses; ECPE pairs) and prediction"
"${study[@]}" --mode bert-export > "$out/bert_export.log" || exit 1
python3 - "$out/bert/manifest.json" > "$out/bert/jobs.tsv" <<'PY'
import json, sys
seen = {}
for m in json.load(open(sys.argv[1])):
    seen.setdefault(m["model"], (m["task"], m["train_tsv"], m["dev_tsv"], []))[3].append(m["input"])
for name, (task, train, dev, inputs) in seen.items():
    print("\t".join([name, task, train, dev, ",".join(inputs)]))
PY
while IFS=$'\t' read -r name task train dev inputs; do
  cols=(); head=(--head sequence); metric=(--metric accuracy); epochs=1
  case $task in
    ABSC) cols=(--text-a sentence1 --text-b sentence2); epochs=4 ;;
    ECE) cols=(--text-a sentence1 --text-b sentence2) ;;
    ECPE) cols=(--text-a sentence1 --text-b sentence2); metric=(--metric f1) ;;  # F1 of the pair class
    E2E-ABSA) cols=(--text-a tokens --label tags); head=(--head token); metric=(--metric f1); epochs=8 ;;
  esac
  [[ $tiny == 1 ]] && epochs=1
  "$build/train_bert" --mode finetune "${head[@]}" --init-from "$bert_pre" "${common[@]}" "${cols[@]}" "${metric[@]}" \
    "${bert_limit[@]}" --train-tsv "$train" --dev-tsv "$dev" --seq-len 96 --batch-size 32 --epochs "${BERT_EPOCHS:-$epochs}" \
    --lr 1e-4 --warmup-steps 100 --eval-batch-size 256 --best-dir "$out/bert_$name" > "$out/bert_$name.log" 2>&1 \
    || { tail -n 20 "$out/bert_$name.log"; exit 1; }
  echo "    $name: $(grep -E 'best dev' "$out/bert_$name.log" | tail -n 1)"
  # one predict run over all of this model's inputs (a process start each is seconds on the GPU), split back
  all="$out/bert/$name.all"
  cat ${inputs//,/ } > "$all"
  "$build/train_bert" --mode predict "${head[@]}" --init-from "$out/bert_$name" --device "$device" --seq-len 96 \
    --vocab "$tok/bert-base-uncased/vocab.txt" --input "$all" > "$all.pred" 2> "$all.err" || { cat "$all.err"; exit 1; }
  [[ $(wc -l < "$all.pred") == $(wc -l < "$all") ]] || { echo "sentiment_experiments: $all.pred: $(wc -l < "$all.pred") predictions for $(wc -l < "$all") lines"; exit 1; }
  first=1
  for input in ${inputs//,/ }; do
    n=$(wc -l < "$input")
    tail -n +"$first" "$all.pred" | head -n "$n" > "$input.pred"
    first=$((first + n))
  done
done < "$out/bert/jobs.tsv"
"${study[@]}" --mode bert-import | tail -n 1

stage "5. the study's table"
"${study[@]}" --mode report > "$out/report.md" || exit 1
echo
echo "==================== sentiment study: fine-tuned BERT vs our GPT (answers in $out/answers) ===================="
cat "$out/report.md"

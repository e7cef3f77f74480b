#!/usr/bin/env bash
# The HKF experiments of docs/hkf.md, for one H200 (about 4 minutes by default): MovieLens 100K, split
# leave-last-out by time with 20% cold-start users; behaviour texts and the 20-task instruction data
# (apps/hkf); a small GPT pretrained on the behaviour texts (no pretrained LM can be had here: this is the
# "untuned LM"); LoRA instruction tuning on the templated texts (no-HKF); ranking by likelihood (item task:
# 1 positive + 99 sampled negatives for every user, the full catalogue for the first HKF_FULL_USERS users;
# genre task: all 18 genres); DLRM with and without the tuned LM's genre preferences (3 seeds). With
# HKF_FUSE=1 also the fusion stage (through HKF_ENDPOINT, else serve_gpt with the base LM, which is no
# instruction-following model: its "knowledge" is a labelled stand-in), the HKF and no-IT rows. The Caser
# baseline (the authors' defaults, 50 epochs, seeds HKF_SEEDS) trains on the host's CPU, one process per seed
# in the background while the GPU pretrains the LM (about 3 minutes there; no added wall time unless the host
# is slow), and its rows end the summary.
#
#   bash scripts/hkf_experiments.sh [build_dir] [out_dir]     (defaults: build-gpu, $OUT or build-gpu/hkf_exp)
#
# Needs: the build's hkf, train_gpt, gpt_tokenize (and serve_gpt with HKF_FUSE=1); .cache/tokenizers/gpt2
# (scripts/prepare_tokenizers.sh; carry .cache/tokenizers); MovieLens 100K at HKF_DATA (default
# ../shared/data/movielens-100k, else shared/data/movielens-100k inside the repository).
# Knobs: HKF_DEVICE (cuda), HKF_MODEL (small), HKF_CONTEXT (512), HKF_PRETRAIN_STEPS (800), HKF_SFT_STEPS
# (600), HKF_BATCH (32), HKF_FULL_USERS (200), HKF_SEEDS (0,1,2), HKF_BASELINES (0; 1: popularity, BPR-MF and
# BERT4Rec on the CPU: ~4 + 40 min on the 2-core machine, already in docs/hkf.md), HKF_FUSE (0), HKF_CASER (1;
# 0: no Caser), HKF_CASER_EPOCHS (50), HKF_LM_SEED (0: the seed of the LM's pretraining and LoRA tuning; the
# split, negatives and DLRM seeds stay). CPU smoke run of the whole script: HKF_TINY=1.
# Seeds of the LM: HKF_LM_SEEDS=1,2 runs the whole script once per LM seed, in parallel on the one GPU, into
# out/lm_s<seed>/ (Caser off), then prints each row's mean ± sd over those folders and any given in
# HKF_SEED_DIRS (e.g. an earlier seed-0 run's folder): scripts/hkf_seed_table.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-gpu}"
out="${2:-${OUT:-$build/hkf_exp}}"
if [[ -n "${HKF_LM_SEEDS:-}" ]]; then
  pids=() dirs=()
  for s in ${HKF_LM_SEEDS//,/ }; do
    mkdir -p "$out/lm_s$s"
    HKF_LM_SEEDS="" HKF_LM_SEED="$s" HKF_CASER=0 bash "${BASH_SOURCE[0]}" "$build" "$out/lm_s$s" \
      > "$out/lm_s$s.log" 2>&1 &
    pids+=($!) dirs+=("$out/lm_s$s")
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || echo "hkf_experiments: LM seed run ${dirs[$i]} failed (see its .log)"; done
  for d in "${dirs[@]}"; do echo "=== ${d##*/}"; sed -n '/=== summary/,$p' "$d.log"; done
  echo "=== mean ± sd over LM seeds"
  python3 "$root/scripts/hkf_seed_table.py" "${dirs[@]}" ${HKF_SEED_DIRS:-}
  exit 0
fi
tok="$root/.cache/tokenizers/gpt2"
data="${HKF_DATA:-$root/../shared/data/movielens-100k}"
[[ -s "$data/u.data" ]] || data="$root/shared/data/movielens-100k"
[[ -s "$data/u.data" ]] || { echo "hkf_experiments: no MovieLens 100K (set HKF_DATA)" >&2; exit 1; }
[[ -s "$tok/encoder.json" ]] || { echo "hkf_experiments: no $tok/encoder.json (scripts/prepare_tokenizers.sh)" >&2; exit 1; }
device="${HKF_DEVICE:-cuda}" model="${HKF_MODEL:-small}" context="${HKF_CONTEXT:-512}"
pre_steps="${HKF_PRETRAIN_STEPS:-800}" sft_steps="${HKF_SFT_STEPS:-600}" batch="${HKF_BATCH:-32}"
full_users="${HKF_FULL_USERS:-200}" seeds="${HKF_SEEDS:-0,1,2}" rank_users=0
dlrm=(--dlrm-epochs 2 --dlrm-negatives 2)
caser_epochs="${HKF_CASER_EPOCHS:-50}"
if [[ "${HKF_TINY:-0}" == 1 ]]; then
  device=cpu model=tiny pre_steps=4 sft_steps=3 batch=2 full_users=2 seeds=0 rank_users=4 caser_epochs=1
  dlrm=(--dlrm-epochs 1 --dlrm-negatives 1 --allow-missing-lm-features)
fi
amp=bf16
[[ $device == cpu ]] && amp=off
mkdir -p "$out"
hkf=("$build/hkf" --data-dir "$data" --out "$out" --encoder "$tok/encoder.json" --vocab-bpe "$tok/vocab.bpe")
gpt_common=(--encoder "$tok/encoder.json" --vocab-bpe "$tok/vocab.bpe" --device "$device" --amp "$amp" --no-progress
  --seed "${HKF_LM_SEED:-0}")
t0=$SECONDS

echo "=== 1. split, behaviour texts, instruction data$([[ ${HKF_BASELINES:-0} == 1 ]] && echo ", baselines")"
stages=text,instructions
[[ ${HKF_BASELINES:-0} == 1 ]] && stages+=,baselines
"${hkf[@]}" --stage "$stages" --seeds "$seeds" 2>&1 | tee "$out/prepare.log"

caser_pids=()
if [[ "${HKF_CASER:-1}" == 1 ]]; then
  echo "=== 1b. Caser on the CPU in the background (seeds $seeds, $caser_epochs epochs; logs caser_s*.log)"
  for s in ${seeds//,/ }; do
    OMP_NUM_THREADS=1 "${hkf[@]}" --stage baselines --baseline-models caser --seeds "$s" \
      --caser-epochs "$caser_epochs" --device cpu > "$out/caser_s$s.log" 2>&1 &
    caser_pids+=($!)
  done
fi

echo "=== 2. the base LM: $model GPT pretrained on the behaviour texts ($pre_steps steps, context $context)"
/usr/bin/env python3 - "$out/text.jsonl" "$out/corpus.txt" <<'EOF'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as o:
    for line in f:
        o.write(json.loads(line)["text"] + "<|endoftext|>")
EOF
# Steps whose output exists are skipped (a second call resumes after a time limit; rm -r the folder to redo).
if [[ -s "$out/base/config.json" ]]; then echo "$out/base exists: skipped"; else
"$build/gpt_tokenize" --input "$out/corpus.txt" --out-dir "$out/shards" --encoder "$tok/encoder.json" \
  --vocab-bpe "$tok/vocab.bpe" --val-every 20 > "$out/tokenize.log" 2>&1
"$build/train_gpt" --model "$model" --train-data "$out/shards/train_*.bin" --val-data "$out/shards/val_*.bin" \
  --context "$context" --batch-size "$batch" --max-steps "$pre_steps" --lr 1e-3 --warmup-steps $((pre_steps / 15)) \
  --dropout 0.1 --val-every $(((pre_steps + 3) / 4)) --val-batches 10 --print-every 100 "${gpt_common[@]}" \
  --save-pretrained "$out/base" > "$out/pretrain.log" 2>&1
fi
grep -E "val loss|unigram" "$out/pretrain.log" | tail -3

sft() {  # sft KNOWLEDGE ADAPTER_DIR
  [[ -s "$2/adapter_config.json" ]] && { echo "$2 exists: skipped"; return; }
  "$build/train_gpt" --mode sft --init-from "$out/base" --sft-data "$out/sft_$1.jsonl" --context "$context" \
    --batch-size "$batch" --max-steps "$sft_steps" --lr 2e-3 --warmup-steps $((sft_steps / 15)) --lora-r 16 \
    --lora-alpha 32 --lora-targets c_attn,c_proj,c_fc --print-every 100 "${gpt_common[@]}" --adapter-out "$2" \
    > "$2.log" 2>&1
  grep -E "^sft data|^lora" "$2.log" || true
  tail -2 "$2.log"
}
rank() {  # rank LABEL KNOWLEDGE [ADAPTER]
  local extra=()
  [[ -n "${3:-}" ]] && extra=(--adapter "$3")
  "${hkf[@]}" --stage rank --label "$1" --knowledge "$2" --model-dir "$out/base" "${extra[@]}" --protocols sampled \
    --max-users "$rank_users" --device "$device" 2>&1 | { grep -E "^rank $1 |exists: skipped" || true; } | tee -a "$out/rank.log"
  "${hkf[@]}" --stage rank --label "$1-full" --knowledge "$2" --model-dir "$out/base" "${extra[@]}" --protocols full \
    --max-users "$full_users" --device "$device" 2>&1 | { grep -E "^rank $1-full \| item|exists: skipped" || true; } | tee -a "$out/rank.log"
}

echo "=== 3. LoRA instruction tuning on the templated texts (no-HKF), $sft_steps steps"
sft templated "$out/adapter_nohkf"
echo "=== 4. ranking by likelihood: the untuned LM and no-HKF"
rank untuned templated
rank no-hkf templated "$out/adapter_nohkf"

if [[ "${HKF_FUSE:-0}" == 1 ]]; then
  endpoint="${HKF_ENDPOINT:-}"
  pid=""
  if [[ -z "$endpoint" ]]; then
    echo "=== 5a. fusion through serve_gpt with the base LM (a stand-in: not an instruction-following model)"
    "$build/serve_gpt" --model-dir "$out/base" --encoder "$tok/encoder.json" --vocab-bpe "$tok/vocab.bpe" --port 0 \
      --device "$device" > "$out/serve.log" 2>&1 &
    pid=$!
    trap '[[ -n "$pid" ]] && kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 300); do grep -q '^serving' "$out/serve.log" && break; sleep 0.2; done
    endpoint="http://127.0.0.1:$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\)\/v1.*/\1/p' "$out/serve.log")/v1"
  fi
  "${hkf[@]}" --stage fuse --endpoint "$endpoint" --fusion-max-tokens 64 2>&1 | tail -1
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  "${hkf[@]}" --stage instructions --knowledge fused 2>&1 | tail -1
  echo "=== 5b. LoRA on the fused knowledge (HKF); no-IT = fused knowledge, untuned LM"
  sft fused "$out/adapter_hkf"
  rank no-it fused
  rank hkf fused "$out/adapter_hkf"
fi

echo "=== 6. DLRM with and without the LM's genre preferences (seeds $seeds)"
"${hkf[@]}" --stage features --seeds "$seeds" "${dlrm[@]}" --device "$device" 2>&1 | { grep -E "^dlrm|exists: skipped|^hkf:" || true; } | tee "$out/dlrm_base.log"
for label in no-hkf hkf; do
  [[ -s "$out/lm_genres_$label.jsonl" ]] || continue
  "${hkf[@]}" --stage features --label "$label" --lm-features "$out/lm_genres_$label.jsonl" --seeds "$seeds" \
    "${dlrm[@]}" --device "$device" 2>&1 | { grep -E "^dlrm with_lm|exists: skipped|^hkf:" || true; } | tee "$out/dlrm_$label.log"
done

if ((${#caser_pids[@]})); then
  echo "=== waiting for Caser ($((SECONDS - t0)) s so far)"
  for p in "${caser_pids[@]}"; do wait "$p" || echo "hkf_experiments: a Caser run failed (see $out/caser_s*.log)"; done
  grep -h "^caser seed" "$out"/caser_s*.log | grep -v "|" || true
fi

echo "=== summary ($((SECONDS - t0)) s)"
/usr/bin/env python3 - "$out" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
def row(name, m):
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
    return f"| {name:<26} | " + " | ".join(fmt(m[k]) for k in ("hr5", "ndcg5", "hr10", "ndcg10")) + f" | {m['users']} |"
print("| method / task | HR@5 | NDCG@5 | HR@10 | NDCG@10 | users |")
print("| --- | --- | --- | --- | --- | --- |")
for path in sorted(glob.glob(os.path.join(out, "rank_*.json"))):
    r = json.load(open(path))
    for task in ("genre", "item_sampled", "item_full"):
        if task in r and not (task == "genre" and r["label"].endswith("-full")):
            for group in ("all", "cold"):
                print(row(f"{r['label']} {task} {group}", r[task][group]))
for path in sorted(glob.glob(os.path.join(out, "features_*.json"))):
    f = json.load(open(path))
    for variant in ("without", "with_lm"):
        if variant in f:
            auc = [x["auc"] for x in f[variant]]
            cold = [x["auc_cold"] for x in f[variant] if x["auc_cold"] is not None]
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
            cold_s = f"{statistics.mean(cold):.4f} ± {sd(cold):.4f}" if cold else "n/a"
            print(f"| DLRM {f['label']} {variant} | AUC {statistics.mean(auc):.4f} ± {sd(auc):.4f} | cold AUC {cold_s} "
                  f"| seeds {len(auc)} |")
runs = [r for p in sorted(glob.glob(os.path.join(out, "baselines_caser*.json"))) for r in json.load(open(p)).get("caser", [])]
if runs:
    print(f"| Caser, mean ± sd of {len(runs)} seeds | HR@5 | NDCG@5 | HR@10 | NDCG@10 | users |")
    for task in ("genre", "item_sampled", "item_full"):
        for group in ("all", "cold"):
            vals = {k: [r[task][group][k] for r in runs] for k in ("hr5", "ndcg5", "hr10", "ndcg10")}
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
            cells = " | ".join(f"{statistics.mean(v):.4f} ± {sd(v):.4f}" for v in vals.values())
            print(f"| caser {task} {group} | {cells} | {runs[0][task][group]['users']} |")
EOF

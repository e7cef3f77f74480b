#!/usr/bin/env bash
# train_gpt under mpirun -n 2 (ctest: dist_train_gpt_mpirun): data-parallel GPT pretraining must be the same
# run as one process with the same global batch (apps/common/gpt_batches.h, TrainStep::run_accumulated).
#   1. random windows, --grad-accum 2: per-step losses, validation losses, gradient norm and the final
#      checkpoint (parameters and AdamW moments) of 2 ranks x 4 sequences equal those of 1 process x 8;
#   2. sequential windows, --grad-accum 1: the same;
#   3. a 2-rank run stopped at step 5 and resumed in ONE process ends where the uninterrupted runs end;
#   4. a global batch the ranks cannot split (7 on 2 ranks) is refused with a clear error;
#   5. LoRA instruction tuning (--mode sft, --grad-accum 2): the same adapters and losses (the step's loss is
#      the mean over all its response tokens, however they fall on ranks and micro-batches).
# Tolerances (f32 summation order: the all-reduce and the per-rank means; measured 6e-6 max abs on the
# parameters): losses and norms within 1e-5 relative (the progress line's 4 decimals within 1e-4);
# checkpoint tensors within 1e-4 absolute and 1e-5 relative L2 over all of them. A wrong slice of the
# batch or a missing all-reduce differs by orders of magnitude more (the losses by ~1e-2 after one step).
#   bash tests/dist/train_gpt_mpirun.sh BUILD_DIR MPIEXEC
set -uo pipefail
build=${1:?build dir}
mpiexec=${2:-mpirun}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NABLA_DIST_TIMEOUT=60
# One BLAS/OpenMP thread per process (tests/dist/train_classifier_mpirun.sh says why).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 GOTO_NUM_THREADS=1 MKL_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}
ranks() {
  "$mpiexec" --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x GOTO_NUM_THREADS \
    -x MKL_NUM_THREADS -n 2 "$build/train_gpt" "$@" 2>&1
}
one() { "$build/train_gpt" "$@" 2>&1; }

# Shards of a Markov chain over 200 ids (next = 3 prev + 1 + a coin, mod 200), fresh each run.
python3 - "$tmp" "$RANDOM" <<'PY' || fail "writing the shards"
import random, struct, sys
def shard(path, n, vocab, rnd):
    x, ids = rnd.randrange(vocab), []
    for _ in range(n):
        x = (3 * x + 1 + rnd.randint(0, 1)) % vocab
        ids.append(x)
    header = [20261202, 1, n & 0xFFFFFFFF, n >> 32, vocab, -1] + [0] * 250
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header) + struct.pack(f"<{n}H", *ids))
rnd = random.Random(int(sys.argv[2]))
shard(sys.argv[1] + "/train.bin", 20000, 200, rnd)
shard(sys.argv[1] + "/val.bin", 4000, 200, rnd)
PY
base=(--model tiny --train-data "$tmp/train.bin" --val-data "$tmp/val.bin" --context 32
  --max-steps 10 --warmup-steps 2 --lr 1e-2 --val-every 5 --val-batches 2 --print-every 1 --threads 1
  --encoder none --seed "$RANDOM")

compare() {  # compare NAME_A NAME_B: logs, metrics and checkpoints in $tmp
  python3 - "$tmp/$1" "$tmp/$2" "$here/../../scripts" <<'PY'
import json, math, re, sys
sys.path.insert(0, sys.argv[3])
from compare_vr_runs import load_safetensors
a, b = sys.argv[1], sys.argv[2]
ok = True
def close(x, y, rel):
    return abs(x - y) <= rel * max(1.0, abs(x), abs(y))
steps = [re.findall(r"^step (\d+)/\d+ .*\| loss ([0-9.]+)", open(p + ".log").read(), re.M) for p in (a, b)]
if len(steps[0]) != 10 or [s for s, _ in steps[0]] != [s for s, _ in steps[1]]:
    sys.exit(f"step lines differ: {steps}")
worst = max(abs(float(x) - float(y)) for (_, x), (_, y) in zip(*steps))
print(f"per-step losses (4 decimals): max difference {worst:.1e}")
ok &= worst <= 1e-4
def records(p):
    out = {}
    for line in open(p + ".jsonl"):
        r = json.loads(line)
        for key in ("loss", "val_loss", "grad_norm"):
            if key in r:
                out[(key, r.get("step"))] = r[key]
    return out
ra, rb = records(a), records(b)
if sorted(ra) != sorted(rb) or ("loss", 10) not in ra or ("val_loss", 5) not in ra:
    sys.exit(f"metrics differ in what they hold: {sorted(ra)} vs {sorted(rb)}")
for k in sorted(ra):
    print(f"  {k[0]} at step {k[1]}: {ra[k]:.9f} vs {rb[k]:.9f}")
    ok &= close(ra[k], rb[k], 1e-5)
ca, cb = load_safetensors(a + ".ckpt"), load_safetensors(b + ".ckpt")
if sorted(ca) != sorted(cb):
    sys.exit("checkpoints hold different tensors")
worst = num = den = 0.0
for k in ca:
    va, vb = ca[k][1], cb[k][1]
    worst = max([worst] + [abs(x - y) for x, y in zip(va, vb)])
    num += sum((x - y) ** 2 for x, y in zip(va, vb))
    den += sum(x * x for x in va)
rel = math.sqrt(num / den)
print(f"checkpoint ({len(ca)} tensors): max abs difference {worst:.2e}, relative L2 {rel:.2e}")
ok &= worst <= 1e-4 and rel <= 1e-5
sys.exit(0 if ok else 1)
PY
}

# 1. random windows, 2 micro-batches per step
args=("${base[@]}" --batch-size 8 --grad-accum 2)
ranks "${args[@]}" --checkpoint "$tmp/r2.ckpt" --metrics "$tmp/r2.jsonl" >"$tmp/r2.log" || fail "2 ranks: $(cat "$tmp/r2.log")"
one "${args[@]}" --checkpoint "$tmp/r1.ckpt" --metrics "$tmp/r1.jsonl" >"$tmp/r1.log" || fail "1 process: $(cat "$tmp/r1.log")"
cat "$tmp/r2.log"
grep -q '^data-parallel: 2 processes .*| global batch 8 = 2 x 4 per rank' "$tmp/r2.log" || fail "no data-parallel line"
grep -q '(8 x 2 x 32; 2 ranks x 4 sequences)' "$tmp/r2.log" || fail "no per-rank batch in the model line"
[ "$(grep -c '^model tiny' "$tmp/r2.log")" -eq 1 ] || fail "expected one model line (rank 0 prints alone)"
[ "$(grep -c '^step 10/10 ' "$tmp/r2.log")" -eq 1 ] || fail "expected one 'step 10/10' line"
echo "== random windows, --grad-accum 2: 2 ranks x 4 vs 1 process x 8"
compare r2 r1 || fail "random windows: 2 ranks and 1 process differ"

# 2. sequential windows, one micro-batch per step
args=("${base[@]}" --batch-size 8 --sampling sequential)
ranks "${args[@]}" --checkpoint "$tmp/s2.ckpt" --metrics "$tmp/s2.jsonl" >"$tmp/s2.log" || fail "2 ranks: $(cat "$tmp/s2.log")"
one "${args[@]}" --checkpoint "$tmp/s1.ckpt" --metrics "$tmp/s1.jsonl" >"$tmp/s1.log" || fail "1 process: $(cat "$tmp/s1.log")"
echo "== sequential windows: 2 ranks x 4 vs 1 process x 8"
compare s2 s1 || fail "sequential windows: 2 ranks and 1 process differ"

# 3. stopped on 2 ranks at step 5, resumed in one process: the batches depend on the step alone
args=("${base[@]}" --batch-size 8 --grad-accum 2)
ranks "${args[@]}" --stop-at-step 5 --checkpoint "$tmp/x.ckpt" >"$tmp/x.log"
[ $? -eq 143 ] || fail "--stop-at-step 5 should exit 143: $(cat "$tmp/x.log")"
one "${args[@]}" --resume "$tmp/x.ckpt" --checkpoint "$tmp/x.ckpt" --metrics "$tmp/x.jsonl" >"$tmp/x.log" ||
  fail "resume: $(cat "$tmp/x.log")"
# The resumed log has steps 6..10 only: compare its metrics and checkpoint, not the step lines.
python3 - "$tmp" "$here/../../scripts" <<'PY' || fail "2 ranks stopped and resumed in 1 process differ from the uninterrupted run"
import json, sys
sys.path.insert(0, sys.argv[2])
from compare_vr_runs import load_safetensors
t = sys.argv[1]
loss = lambda p: [json.loads(l)["loss"] for l in open(p) if '"kind":"step"' in l][-1]
a, b = loss(t + "/x.jsonl"), loss(t + "/r1.jsonl")
ca, cb = load_safetensors(t + "/x.ckpt"), load_safetensors(t + "/r1.ckpt")
worst = max(abs(x - y) for k in ca for x, y in zip(ca[k][1], cb[k][1]))
print(f"== stopped on 2 ranks at step 5, resumed in 1 process: loss at step 10 {a:.9f} vs {b:.9f}, "
      f"checkpoint max abs difference {worst:.2e}")
sys.exit(0 if abs(a - b) <= 1e-5 * max(1, abs(b)) and worst <= 1e-4 else 1)
PY

# 4. a global batch that 2 ranks cannot split
out=$(ranks "${base[@]}" --batch-size 7)
[ $? -ne 0 ] || fail "--batch-size 7 on 2 ranks should fail"
grep -q "must be a multiple of the 2 processes" <<<"$out" || fail "no clear error for an indivisible batch: $out"

# 5. SFT: a base model (2 steps of pretraining, saved as a transformers folder), chat data, LoRA
one --model tiny --train-data "$tmp/train.bin" --encoder none --context 48 --max-steps 2 --threads 1 \
  --no-progress --seed "$RANDOM" --save-pretrained "$tmp/base" >"$tmp/b.log" ||
  fail "base model: $(cat "$tmp/b.log")"
python3 - "$tmp/chat.jsonl" "$RANDOM" <<'PY'
import json, random, sys
rnd = random.Random(int(sys.argv[2]))
with open(sys.argv[1], "w") as f:
    for i in range(8):
        words = " ".join(rnd.choice(["the", "word", "hi", "there", "repeat"]) for _ in range(rnd.randint(1, 6)))
        f.write(json.dumps({"instruction": f"repeat {i}", "input": "", "output": words}) + "\n")
PY
fx="$here/../data/fixtures"
sft=(--mode sft --init-from "$tmp/base" --sft-data "$tmp/chat.jsonl" --encoder "$fx/gpt2_encoder.json" --vocab-bpe
  "$fx/gpt2_vocab.bpe" --context 40 --batch-size 4 --grad-accum 2 --max-steps 6 --lr 1e-2 --warmup-steps 1
  --lora-r 4 --threads 1 --no-progress --seed "$RANDOM")
ranks "${sft[@]}" --adapter-out "$tmp/a2" --metrics "$tmp/a2.jsonl" >"$tmp/a2.log" || fail "SFT on 2 ranks: $(cat "$tmp/a2.log")"
one "${sft[@]}" --adapter-out "$tmp/a1" --metrics "$tmp/a1.jsonl" >"$tmp/a1.log" || fail "SFT in 1 process: $(cat "$tmp/a1.log")"
python3 - "$tmp" "$here/../../scripts" <<'PY' || fail "SFT: 2 ranks and 1 process differ"
import json, sys
sys.path.insert(0, sys.argv[2])
from compare_vr_runs import load_safetensors
t = sys.argv[1]
loss = lambda p: [json.loads(l)["loss"] for l in open(p) if '"kind":"step"' in l][-1]
a, b = loss(t + "/a2.jsonl"), loss(t + "/a1.jsonl")
ca = load_safetensors(t + "/a2/adapter_model.safetensors")
cb = load_safetensors(t + "/a1/adapter_model.safetensors")
worst = max(abs(x - y) for k in cb for x, y in zip(ca[k][1], cb[k][1]))
print(f"== SFT, --grad-accum 2: 2 ranks x 2 vs 1 process x 4: loss at step 6 {a:.9f} vs {b:.9f}, "
      f"{len(ca)} adapter tensors, max abs difference {worst:.2e}")
sys.exit(0 if sorted(ca) == sorted(cb) and len(cb) == 12 and abs(a - b) <= 1e-5 * max(1, abs(b)) and worst <= 1e-4 else 1)
PY
echo "PASS"

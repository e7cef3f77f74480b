#!/usr/bin/env bash
# train_dlrm --model-parallel under mpirun -n 2 (ctest: dist_train_dlrm_mpirun): the hybrid-parallel DLRM
# (tables sharded over the ranks, all_to_all, MLPs data-parallel; dist/sharded_embedding.h) must be the same
# run as the plain model on the whole global batch in one process (the replicated model).
#   1. dense tables, SGD, the tables of >= 100 rows split by rows and the others placed whole: the per-step
#      losses and validation AUC / log loss of the metrics JSONL, and the final parameters (the shards'
#      checkpoints put together: whole tables from their owner, row-wise tables concatenated) equal those of
#      one process; the eval records also equal those of the replicated data-parallel run (mpirun, no
#      --model-parallel);
#   2. sparse tables under row-wise Adagrad, tables whole and split by rows: the same, the accumulators
#      (emb_adagrad.<f>, each rank's rows) included;
#   3. stopped at step 6 (a checkpoint: one shard per rank) and resumed on 2 ranks: every tensor of every
#      shard (model, accumulators, optimizer state) and the last eval record bit for bit those of the
#      uninterrupted run;
#   4. a 2-rank checkpoint resumed by one process is refused, naming the layout; --sparse on 2 ranks without
#      --model-parallel exits 2 naming --model-parallel.
# Tolerances (f32 summation order: the all-reduce, the per-rank means, the row-wise partial sums; row-wise
# Adagrad divides by the root of small accumulators, which amplifies it: measured up to 6e-6 relative on the
# metrics, 8e-7 absolute on the parameters): losses, AUC and log loss within 1e-4 relative; parameters within
# 1e-3 absolute and 1e-5 relative L2. A wrong slice, a missing 1/W or a wrong shard differs by orders of
# magnitude more (the losses by ~1e-2 after a few steps). The warm-up (3 steps) ends before the stop at step
# 6: the schedule's warm-up is min(--warmup-steps, total / 2), so both parts of the resumed run get the same
# learning rates.
#   bash tests/dist/train_dlrm_mpirun.sh BUILD_DIR MPIEXEC
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
    -x MKL_NUM_THREADS -n 2 "$build/train_dlrm" --threads 1 "$@" 2>&1
}
one() { "$build/train_dlrm" --threads 1 "$@" 2>&1; }

# Fresh synthetic rows (tables capped at 300: 19 of the 26 tables have >= 100 rows, split by rows; 7 placed whole).
seed=$RANDOM
one --prepare "$tmp/syn.bin" --synthetic-rows 12000 --synthetic-cap 300 --seed "$seed" >"$tmp/prep.log" ||
  fail "writing the rows: $(cat "$tmp/prep.log")"
base=(--data-path "$tmp/syn.bin" --synthetic-rows 12000 --synthetic-cap 300 --seed "$seed" --batch-size 64
  --eval-every 6 --limit-val 700 --eval-batch-size 300 --no-progress --warmup-steps 3)

compare() {  # compare NAME_A NAME_B ROW_WISE_MIN_ROWS: A a 2-rank --model-parallel run, B one process
  python3 - "$tmp/$1" "$tmp/$2" "$3" "$here/../../scripts" <<'PY'
import json, math, os, sys
sys.path.insert(0, sys.argv[4])
from compare_vr_runs import load_safetensors
a, b, min_rows, W = sys.argv[1], sys.argv[2], int(sys.argv[3]), 2
ok = True
def records(p):
    out = {}
    for line in open(p + ".jsonl"):
        r = json.loads(line)
        for key in ("loss", "auc", "log_loss"):
            if key in r:
                out[(key, r["step"])] = r[key]
    return out
ra, rb = records(a), records(b)
if sorted(ra) != sorted(rb) or ("auc", 6) not in ra or ("loss", 12) not in ra:
    sys.exit(f"metrics differ in what they hold: {sorted(ra)} vs {sorted(rb)}")
worst = max(abs(ra[k] - rb[k]) / max(1.0, abs(rb[k])) for k in ra)
print(f"  metrics ({len(ra)} values: losses, AUC, log loss): max relative difference {worst:.1e}")
ok &= worst <= 1e-4
whole = load_safetensors(b + ".ckpt")
shards = [load_safetensors(a + ".ckpt" + ("" if r == 0 else f".rank{r}")) for r in range(W)]
num = den = big = 0.0
n = 0
for name, (shape, vb) in whole.items():
    if not name.startswith("model."):
        continue
    part = name[len("model."):]
    if part.startswith("emb_l.") or part.startswith("emb_adagrad."):
        f = int(part.split(".")[1])
        V = shape[0]
        if V >= min_rows > 0 and V >= W:  # split by rows: rank r holds [r per, (r + 1) per)
            per = (V + W - 1) // W
            va = []
            for r in range(W):
                rows = min(V, (r + 1) * per) - min(V, r * per)
                if rows > 0:
                    va += list(shards[r][name][1])
        else:
            va = shards[f % W][name][1]
            if shards[f % W][name][0] != shape:
                sys.exit(f"{name}: rank {f % W} holds {shards[f % W][name][0]}, expected {shape}")
    else:
        va = shards[0][name][1]
        if list(shards[1][name][1]) != list(va):
            sys.exit(f"{name}: the ranks' dense copies differ")
    if len(va) != len(vb):
        sys.exit(f"{name}: {len(va)} values put together, expected {len(vb)}")
    big = max([big] + [abs(x - y) for x, y in zip(va, vb)])
    num += sum((x - y) ** 2 for x, y in zip(va, vb))
    den += sum(y * y for y in vb)
    n += 1
rel = math.sqrt(num / den)
print(f"  parameters ({n} tensors put together from the shards): max abs difference {big:.2e}, relative L2 {rel:.2e}")
ok &= big <= 1e-3 and rel <= 1e-5
sys.exit(0 if ok else 1)
PY
}

# 1. dense tables, SGD, large tables split by rows
args=("${base[@]}" --max-steps 12 --lr 0.1)
ranks "${args[@]}" --model-parallel --row-wise-min-rows 100 --checkpoint "$tmp/d2.ckpt" --metrics "$tmp/d2.jsonl" \
  >"$tmp/d2.log" || fail "2 ranks: $(cat "$tmp/d2.log")"
one "${args[@]}" --checkpoint "$tmp/d1.ckpt" --metrics "$tmp/d1.jsonl" >"$tmp/d1.log" || fail "1 process: $(cat "$tmp/d1.log")"
ranks "${args[@]}" --metrics "$tmp/dp.jsonl" >"$tmp/dp.log" || fail "data-parallel: $(cat "$tmp/dp.log")"
cat "$tmp/d2.log"
grep -q '^model-parallel: 2 ranks | 7 tables whole (round robin), 19 split by rows (>= 100 rows)' "$tmp/d2.log" ||
  fail "no model-parallel line"
[ "$(grep -c '^step 12 | validation AUC' "$tmp/d2.log")" -eq 1 ] || fail "expected one final eval line (rank 0 alone)"
[ -f "$tmp/d2.ckpt" ] && [ -f "$tmp/d2.ckpt.rank1" ] || fail "expected one checkpoint shard per rank"
echo "== dense tables, SGD, tables whole and split by rows: 2 ranks --model-parallel vs 1 process"
compare d2 d1 100 || fail "dense tables: --model-parallel on 2 ranks and 1 process differ"
python3 - "$tmp" <<'PY' || fail "the replicated data-parallel run evaluates differently"
import json, sys
ev = lambda p: [(r["step"], r["auc"], r["log_loss"]) for r in map(json.loads, open(p)) if r["kind"] == "eval"]
a, b = ev(sys.argv[1] + "/d2.jsonl"), ev(sys.argv[1] + "/dp.jsonl")
print(f"== eval records, --model-parallel vs replicated data-parallel (2 ranks): {a} vs {b}")
sys.exit(0 if len(a) == len(b) == 2 and all(abs(x - y) <= 1e-5 for p, q in zip(a, b) for x, y in zip(p, q)) else 1)
PY

# 2. sparse tables, row-wise Adagrad, whole and split by rows
args=("${base[@]}" --sparse --optimizer adagrad --lr 0.05)
full=("${args[@]}" --max-steps 12)
ranks "${full[@]}" --model-parallel --row-wise-min-rows 100 --checkpoint "$tmp/a2.ckpt" --metrics "$tmp/a2.jsonl" \
  >"$tmp/a2.log" || fail "2 ranks: $(cat "$tmp/a2.log")"
one "${full[@]}" --checkpoint "$tmp/a1.ckpt" --metrics "$tmp/a1.jsonl" >"$tmp/a1.log" || fail "1 process: $(cat "$tmp/a1.log")"
echo "== sparse row-wise Adagrad tables: 2 ranks --model-parallel vs 1 process"
compare a2 a1 100 || fail "row-wise Adagrad: --model-parallel on 2 ranks and 1 process differ"

# 3. stopped at step 6, resumed on 2 ranks: bit for bit
mp=("${args[@]}" --model-parallel --row-wise-min-rows 100)
ranks "${mp[@]}" --max-steps 6 --checkpoint "$tmp/r.ckpt" >"$tmp/r.log" || fail "first part: $(cat "$tmp/r.log")"
ranks "${mp[@]}" --max-steps 12 --resume "$tmp/r.ckpt" --checkpoint "$tmp/r.ckpt" --metrics "$tmp/r.jsonl" >"$tmp/r.log" ||
  fail "resume: $(cat "$tmp/r.log")"
grep -q '^resumed from .*r.ckpt (2 shards) at step 6' "$tmp/r.log" || fail "no resume line: $(cat "$tmp/r.log")"
python3 - "$tmp" "$here/../../scripts" <<'PY' || fail "stopped and resumed on 2 ranks differs from the uninterrupted run"
import json, sys
sys.path.insert(0, sys.argv[2])
from compare_vr_runs import load_safetensors
t = sys.argv[1]
last = lambda p: [r for r in map(json.loads, open(p)) if r["kind"] == "eval"][-1]
ea, eb = last(t + "/r.jsonl"), last(t + "/a2.jsonl")
ok = (ea["auc"], ea["log_loss"]) == (eb["auc"], eb["log_loss"])
n = 0
for suffix in ("", ".rank1"):
    ca, cb = load_safetensors(t + "/r.ckpt" + suffix), load_safetensors(t + "/a2.ckpt" + suffix)
    ok &= sorted(ca) == sorted(cb) and any(k.startswith("model.emb_adagrad.") for k in ca)
    for k in ca:
        ok &= ca[k] == cb[k]
        n += 1
print(f"== stopped at step 6 and resumed on 2 ranks: final AUC {ea['auc']:.9f} vs {eb['auc']:.9f}, "
      f"{n} shard tensors bit for bit: {ok}")
sys.exit(0 if ok else 1)
PY

# 4. layouts that do not fit
out=$(one "${full[@]}" --model-parallel --row-wise-min-rows 100 --resume "$tmp/r.ckpt")
[ $? -eq 1 ] || fail "a 2-rank checkpoint resumed in one process should exit 1: $out"
grep -q "written by rank 0 of a --model-parallel run on 2 ranks" <<<"$out" || fail "no clear layout error: $out"
out=$(ranks "${base[@]}" --sparse --max-steps 2)
[ $? -eq 2 ] || fail "--sparse on 2 ranks without --model-parallel should exit 2: $out"
grep -q -- "--sparse on 2 ranks needs --model-parallel" <<<"$out" || fail "no clear error for --sparse: $out"
echo "PASS"

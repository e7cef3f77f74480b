#!/usr/bin/env bash
# scripts/dlrm_experiments.sh [BUILD] [OUT]: issue 18's two DLRM tables on synthetic planted-truth Criteo
# (data/criteo_synthetic.h), printed as markdown for docs/dlrm.md.
#
#   (a) AUC against the planted teacher: DLRM trained with sparse tables (A_OPT: sgd, the tables by the
#       sparse SGD and the MLPs by SGD, or adagrad, the tables by row-wise Adagrad and the MLPs by Adagrad;
#       A_SCHEDULE: train_dlrm's --schedule), evaluated on the test rows (the first half of the last day, never trained on) beside the
#       teacher's own probabilities on the same rows (the best achievable AUC): teacher AUC, model AUC, gap,
#       log losses; one row per data set of A_CONFIGS (rows:cap, cap = Kaggle's table sizes capped at) and
#       seed of A_SEEDS (the seed draws the teacher and the rows); the tables' learning rate is A_LR times
#       A_SPARSE_LR_SCALE (train_dlrm --sparse-lr-scale), with A_WARMUP warm-up steps.
#   (b) SGD against VR-SGD (the VRGD paper, section 1; algorithms/vrgd) at batch sizes 32k .. 512k, same
#       epochs for every batch size, dense tables for both (VR-SGD scales every gradient element, the tables'
#       too). Learning rate by the square-root rule, lr(B) = LR0 sqrt(B / B0) (B0 = the smallest batch; the
#       paper's rule), linear warm-up over the first half epoch, then polynomial decay (power 2) to 0 at the
#       end (MLPerf DLRM's schedule, which the paper follows); VR-SGD with 8 partitions, gamma 0.1. AUC and
#       log loss on the test rows.
#
# Each synthetic file is written once per script run into OUT (the generation times are printed); (b) and
# the first (a) row share one.
#
# Default (GPU, for the H200; about 200-300 s in all, see docs/dlrm.md): --device cuda;
#   (a) A_CONFIGS "16000000:1000" (16M rows, 13.7M of them training, tables capped at 1,000), A_SEEDS "1 2",
#       --arch kaggle (D 16, bottom 13-512-256-64-16, top 512-256-1), batch 4,096, A_OPT sgd, lr 1 (the
#       tables 5: A_SPARSE_LR_SCALE 5), 300 warm-up steps, then decayed to 0 (poly, power 2), 10 epochs:
#       gaps 0.0095 and 0.0065 on the H200, 2026-12-03 (row-wise Adagrad at lr 0.05 for 4 epochs left 0.046;
#       the tables at 20x diverged at step 10);
#   (b) ROWS 16M, CAP 1,000, --arch mlperf (D 128, bottom 13-512-256-128, top 1024-1024-512-256-1), 2 epochs,
#       LR0 4 at 32,768 (so 16 at 524,288; NVIDIA's DLRM recipe runs SGD at 24 at 65,536, with a longer
#       warm-up).
# TINY=1 (the CPU here, one thread: OpenMP threads only wait on each other on the shared 2 cores): 200k rows,
#   tables capped at 100 (A_CONFIGS "200000:100"), --arch tiny (D 8); (a) seed 1, batch 512, 3 epochs, adagrad lr 0.05; (b) batches 256 .. 4,096 (the GPU's
#   / 128), 2 epochs, LR0 2.
# Overrides (env): A_CONFIGS, A_SEEDS, ROWS, CAP, A_EPOCHS, A_BATCH, A_LR, A_SPARSE_LR_SCALE, A_WARMUP, A_OPT, A_SCHEDULE, B_EPOCHS, B_LR0, B_BATCHES ("32768 65536 ..."),
# DEVICE, PARTS ("a b", "a" or "b"), BUDGET_S (default 480: a run that would start later is skipped and
# reported as such, so the tables still print inside the lead's 540 s limit).
#
# Output: OUT (default $OUT, else BUILD/dlrm_experiments) gets one log and one metrics JSONL per run,
# tables.md with both tables; the tables are printed last. Exit 1 if the binary is missing or the data
# cannot be written; a run that fails (e.g. diverges) is reported in its table row, not fatal.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-build-gpu}
OUTDIR=${2:-${OUT:-$BUILD/dlrm_experiments}}
BIN=$BUILD/train_dlrm
if [ ! -x "$BIN" ]; then
  echo "dlrm_experiments: $BIN not found (build the train_dlrm target first)" >&2
  exit 1
fi
mkdir -p "$OUTDIR" || exit 1
OUTDIR=$(cd "$OUTDIR" && pwd)

if [ "${TINY:-0}" = 1 ]; then
  : "${DEVICE:=cpu}" "${ROWS:=200000}" "${CAP:=100}" "${A_CONFIGS:=200000:100}" "${A_ARCH:=tiny}" "${A_BATCH:=512}" "${A_EPOCHS:=3}"
  : "${A_LR:=0.05}" "${A_OPT:=adagrad}" "${A_SCHEDULE:=constant}" "${A_SEEDS:=1}" "${A_SPARSE_LR_SCALE:=1}" "${A_WARMUP:=0}"
  : "${B_ARCH:=tiny}" "${B_BATCHES:=256 512 1024 2048 4096}" "${B_EPOCHS:=2}" "${B_LR0:=2}"
  : "${THREADS:=1}"
else
  : "${DEVICE:=cuda}" "${ROWS:=16000000}" "${CAP:=1000}" "${A_CONFIGS:=16000000:1000}" "${A_SEEDS:=1 2}" "${A_ARCH:=kaggle}" "${A_BATCH:=4096}"
  : "${A_EPOCHS:=10}" "${A_LR:=1}" "${A_SPARSE_LR_SCALE:=5}" "${A_WARMUP:=300}" "${A_OPT:=sgd}" "${A_SCHEDULE:=poly:power=2}" "${B_ARCH:=mlperf}" "${B_BATCHES:=32768 65536 131072 262144 524288}"
  : "${B_EPOCHS:=2}" "${B_LR0:=4}" "${THREADS:=0}"
fi
: "${PARTS:=a b}" "${SEED:=1}" "${BUDGET_S:=480}"
COMMON=(--device "$DEVICE" --eval-rows test --no-progress)  # the seed is each run's (--seed)
[ "$THREADS" != 0 ] && COMMON+=(--threads "$THREADS")
START=$(date +%s)
stamp() { echo "[t+$(($(date +%s) - START))s] $*"; }

# ---- data, once per (rows, cap) ----------------------------------------------------------------------------
rm -f "$OUTDIR/data.jsonl"
# prepare ROWS CAP [SEED]: writes the file unless it exists; sets DATA_ARGS for train_dlrm (with --seed).
prepare() {
  local rows=$1 cap=$2 seed=${3:-$SEED}
  local path=$OUTDIR/synthetic_n${rows}_c${cap}_s${seed}.bin t0
  t0=$(date +%s)
  if [ ! -f "$path" ]; then
    stamp "writing $rows synthetic rows (tables capped at $cap) to $path"
    "$BIN" --prepare "$path" --synthetic-rows "$rows" --synthetic-cap "$cap" --seed "$seed" "${COMMON[@]}" \
      >"$OUTDIR/prepare_n${rows}_c${cap}_s${seed}.log" 2>&1 || {
      cat "$OUTDIR/prepare_n${rows}_c${cap}_s${seed}.log" >&2
      exit 1
    }
    cat "$OUTDIR/prepare_n${rows}_c${cap}_s${seed}.log"
    echo "{\"rows\": $rows, \"cap\": $cap, \"seed\": $seed, \"seconds\": $(($(date +%s) - t0))}" >>"$OUTDIR/data.jsonl"
  fi
  DATA_ARGS=(--data-path "$path" --synthetic-rows "$rows" --synthetic-cap "$cap" --seed "$seed")
}

# run NAME ARGS...: one train_dlrm run, log and metrics under OUTDIR; prints its last eval line.
run() {
  local name=$1
  shift
  local t0
  t0=$(date +%s)
  rm -f "$OUTDIR/$name.jsonl"
  if ((t0 - START > BUDGET_S)); then
    echo '{"kind": "run", "rc": "skipped", "seconds": 0}' >"$OUTDIR/$name.jsonl"
    stamp "$name: skipped (past BUDGET_S = $BUDGET_S s)"
    return
  fi
  "$BIN" "${COMMON[@]}" --metrics "$OUTDIR/$name.jsonl" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  echo "{\"kind\": \"run\", \"rc\": $rc, \"seconds\": $(($(date +%s) - t0))}" >>"$OUTDIR/$name.jsonl"
  stamp "$name: rc $rc, $(($(date +%s) - t0)) s: $(grep -E ' (test|validation) AUC' "$OUTDIR/$name.log" | tail -1)"
}

# ---- (a) AUC against the teacher --------------------------------------------------------------------------
if [[ " $PARTS " == *" a "* ]]; then
  for CFG in $A_CONFIGS; do
    for S in $A_SEEDS; do
      prepare "${CFG%%:*}" "${CFG##*:}" "$S"
      run "a_n${CFG%%:*}_c${CFG##*:}_s$S" "${DATA_ARGS[@]}" --arch "$A_ARCH" --sparse --optimizer "$A_OPT" \
        --lr "$A_LR" --sparse-lr-scale "$A_SPARSE_LR_SCALE" --warmup-steps "$A_WARMUP" --schedule "$A_SCHEDULE" \
        --batch-size "$A_BATCH" --epochs "$A_EPOCHS"
    done
  done
fi

# ---- (b) SGD against VR-SGD at large batch ------------------------------------------------------------------
if [[ " $PARTS " == *" b "* ]]; then
  prepare "$ROWS" "$CAP"
  B0=${B_BATCHES%% *}
  TRAIN_ROWS=$((ROWS - ROWS / 7))  # days 0..5 of 7 (kaggle_day_rows)
  for B in $B_BATCHES; do
    LR=$(python3 -c "import math; print('%.6g' % ($B_LR0 * math.sqrt($B / $B0)))")
    WARM=$(((TRAIN_ROWS / B) / 2))  # half an epoch of steps
    ((WARM < 1)) && WARM=1
    for OPT in sgd vr-sgd; do
      run "b_${OPT}_${B}" "${DATA_ARGS[@]}" --arch "$B_ARCH" --optimizer "$OPT" --gsnr-partitions 8 --gsnr-gamma 0.1 \
        --batch-size "$B" --epochs "$B_EPOCHS" --lr "$LR" --warmup-steps "$WARM" --schedule poly:power=2 \
        --eval-batch-size 65536
    done
  done
fi

# ---- tables -----------------------------------------------------------------------------------------------
python3 - "$OUTDIR" "$ROWS" "$CAP" "$DEVICE" "$A_CONFIGS" "$A_ARCH" "$A_BATCH" "$A_EPOCHS" "$A_LR" "$B_ARCH" \
  "$B_EPOCHS" "$B_LR0" "$B_BATCHES" "$PARTS" "$A_OPT" "$A_SCHEDULE" "$A_SEEDS" "$A_SPARSE_LR_SCALE" "$A_WARMUP" \
  <<'EOF' | tee "$OUTDIR/tables.md"
import glob, json, os, sys
(out, rows, cap, device, a_configs, a_arch, a_batch, a_epochs, a_lr, b_arch, b_epochs, b_lr0, b_batches,
 parts, a_opt, a_schedule, a_seeds, a_scale, a_warmup) = sys.argv[1:]

def last(name):
    """The run's last eval record, its run record, and the configuration line of its log."""
    ev, run, desc = None, None, ""
    path = os.path.join(out, name + ".jsonl")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("kind") == "eval":
                ev = j
            elif j.get("kind") == "run":
                run = j
    log = os.path.join(out, name + ".log")
    if os.path.exists(log):
        for line in open(log, errors="replace"):
            if line.startswith("DLRM "):
                desc = line.strip()
    return ev, run, desc

def fail(run):
    if run and run["rc"] == "skipped":
        return "skipped (time budget)"
    return "failed (rc %s)" % (run["rc"] if run else "?")

gen = []
if os.path.exists(os.path.join(out, "data.jsonl")):
    gen = [json.loads(l) for l in open(os.path.join(out, "data.jsonl")) if l.strip()]
print("Synthetic Criteo (7 days; training = days 0-5, test = the first half of day 6), device %s; data written: "
      "%s.\n" % (device, "; ".join("%s rows, cap %s, seed %s, %s s" % (f"{g['rows']:,}", g["cap"], g.get("seed", "?"), g["seconds"])
                            for g in gen)
                  or "(files from an earlier run)"))
if "a" in parts.split():
    opt = ("sparse tables with row-wise Adagrad, MLPs Adagrad" if a_opt == "adagrad" else
           "sparse tables with sparse SGD, MLPs SGD" if a_opt == "sgd" else "sparse tables, optimizer " + a_opt)
    print("(a) DLRM against the planted teacher (%s, %s, lr %s, the tables' lr x %s, %s warm-up steps, schedule %s, "
          "batch %s, %s epochs)\n" % (a_arch, opt, a_lr, a_scale, a_warmup, a_schedule, a_batch, a_epochs))
    print("| rows (train) | tables capped at | seed | test rows | teacher AUC (best achievable) | DLRM AUC | gap "
          "| teacher log loss | DLRM log loss | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cfg, seed in [(cfg, seed) for cfg in a_configs.split() for seed in a_seeds.split()]:
        n, c = cfg.split(":")
        ev, run, desc = last("a_n%s_c%s_s%s" % (n, c, seed))
        rows_cell = "%s (%s)" % (f"{int(n):,}", f"{int(n) - int(n) // 7:,}")
        if ev and run and run["rc"] == 0:
            print("| %s | %s | %s | %s | %.4f | %.4f | **%.4f** | %.4f | %.4f | %s |" % (
                rows_cell, f"{int(c):,}", seed, f"{ev['rows']:,}", ev["teacher_auc"], ev["auc"],
                ev["teacher_auc"] - ev["auc"], ev["teacher_log_loss"], ev["log_loss"], run["seconds"]))
        else:
            print("| %s | %s | %s | - | - | %s | - | - | - | %s |" % (rows_cell, f"{int(c):,}", seed, fail(run),
                                                                 run["seconds"] if run else "-"))
    print()
if "b" in parts.split():
    bs = [int(b) for b in b_batches.split()]
    print("(b) SGD against VR-SGD (8 partitions, gamma 0.1), %s, dense tables, %s rows (%s training), tables "
          "capped at %s, %s epochs at every batch; lr = %s sqrt(B / %s), linear warm-up over half an epoch, then "
          "poly(2) decay to 0; test rows\n" % (b_arch, f"{int(rows):,}", f"{int(rows) - int(rows) // 7:,}",
                                                f"{int(cap):,}", b_epochs, b_lr0, f"{bs[0]:,}"))
    print("| batch | lr | steps | SGD AUC | VR-SGD AUC | SGD log loss | VR-SGD log loss | teacher AUC "
          "| SGD s | VR-SGD s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    import math
    for b in bs:
        cells = {}
        teacher = "-"
        for opt in ("sgd", "vr-sgd"):
            ev, run, _ = last("b_%s_%d" % (opt, b))
            ok = ev is not None and run is not None and run["rc"] == 0
            cells[opt] = (("%.4f" % ev["auc"], "%.4f" % ev["log_loss"]) if ok else (fail(run), "-"),
                          run["seconds"] if run else "-", ev["step"] if ev else "-")
            if ev and "teacher_auc" in ev:
                teacher = "%.4f" % ev["teacher_auc"]
        lr = float(b_lr0) * math.sqrt(b / bs[0])
        print("| %s | %.3g | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            f"{b:,}", lr, cells["sgd"][2], cells["sgd"][0][0], cells["vr-sgd"][0][0], cells["sgd"][0][1],
            cells["vr-sgd"][0][1], teacher, cells["sgd"][1], cells["vr-sgd"][1]))
EOF
stamp "done; logs and tables.md in $OUTDIR"

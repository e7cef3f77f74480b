#!/usr/bin/env bash
# scripts/dlrm_experiments.sh [BUILD] [OUT]: issue 18's two DLRM tables on synthetic planted-truth Criteo
# (data/criteo_synthetic.h), printed as markdown for docs/dlrm.md.
#
#   (a) AUC against the planted teacher: DLRM trained with sparse tables and row-wise Adagrad (the MLPs by
#       Adagrad), evaluated on the test rows (the first half of the last day, never trained on) beside the
#       teacher's own probabilities on the same rows (the best achievable AUC): teacher AUC, model AUC, gap,
#       log losses.
#   (b) SGD against VR-SGD (the VRGD paper, section 1; algorithms/vrgd) at batch sizes 32k .. 512k, same
#       epochs for every batch size, dense tables for both (VR-SGD scales every gradient element, the tables'
#       too). Learning rate by the square-root rule, lr(B) = LR0 sqrt(B / B0) (B0 = the smallest batch; the
#       paper's rule), linear warm-up over the first half epoch, then polynomial decay (power 2) to 0 at the
#       end (MLPerf DLRM's schedule, which the paper follows); VR-SGD with 8 partitions, gamma 0.1. AUC and
#       log loss on the test rows.
#
# Both parts share one synthetic file, written once per script run into OUT (its generation time is printed).
#
# Default (GPU, for the H200; about 200-300 s in all, see docs/dlrm.md): 16M rows (13.7M train), Kaggle's
# table sizes capped at 1,000 rows, --device cuda;
#   (a) --arch kaggle (D 16, bottom 13-512-256-64-16, top 512-256-1), batch 4,096, 4 epochs, lr 0.05;
#   (b) --arch mlperf (D 128, bottom 13-512-256-128, top 1024-1024-512-256-1), 2 epochs, LR0 1 at 32,768.
# TINY=1 (the CPU here, one thread: OpenMP threads only wait on each other on the shared 2 cores): 200k rows,
#   tables capped at 100, --arch tiny (D 8); (a) batch 512, 3 epochs; (b) batches 256 .. 4,096 (the GPU's
#   / 128), 2 epochs, LR0 0.5.
# Overrides (env): ROWS, CAP, A_EPOCHS, A_BATCH, A_LR, B_EPOCHS, B_LR0, B_BATCHES ("32768 65536 ..."),
# DEVICE, PARTS ("a b", "a" or "b").
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
  : "${DEVICE:=cpu}" "${ROWS:=200000}" "${CAP:=100}" "${A_ARCH:=tiny}" "${A_BATCH:=512}" "${A_EPOCHS:=3}"
  : "${A_LR:=0.05}" "${B_ARCH:=tiny}" "${B_BATCHES:=256 512 1024 2048 4096}" "${B_EPOCHS:=2}" "${B_LR0:=0.5}"
  : "${THREADS:=1}"
else
  : "${DEVICE:=cuda}" "${ROWS:=16000000}" "${CAP:=1000}" "${A_ARCH:=kaggle}" "${A_BATCH:=4096}"
  : "${A_EPOCHS:=4}" "${A_LR:=0.05}" "${B_ARCH:=mlperf}" "${B_BATCHES:=32768 65536 131072 262144 524288}"
  : "${B_EPOCHS:=2}" "${B_LR0:=1}" "${THREADS:=0}"
fi
: "${PARTS:=a b}" "${SEED:=1}"
COMMON=(--device "$DEVICE" --seed "$SEED" --synthetic-rows "$ROWS" --synthetic-cap "$CAP" --eval-rows test
  --no-progress)
[ "$THREADS" != 0 ] && COMMON+=(--threads "$THREADS")
START=$(date +%s)
stamp() { echo "[t+$(($(date +%s) - START))s] $*"; }

# ---- data, once -------------------------------------------------------------------------------------------
DATA=$OUTDIR/synthetic_n${ROWS}_c${CAP}_s${SEED}.bin
T0=$(date +%s)
if [ ! -f "$DATA" ]; then
  stamp "writing $ROWS synthetic rows (tables capped at $CAP) to $DATA"
  "$BIN" --prepare "$DATA" "${COMMON[@]}" >"$OUTDIR/prepare.log" 2>&1 || {
    cat "$OUTDIR/prepare.log" >&2
    exit 1
  }
  cat "$OUTDIR/prepare.log"
fi
GEN_S=$(($(date +%s) - T0))
COMMON+=(--data-path "$DATA")

# run NAME ARGS...: one train_dlrm run, log and metrics under OUTDIR; prints its last eval line.
run() {
  local name=$1
  shift
  local t0
  t0=$(date +%s)
  rm -f "$OUTDIR/$name.jsonl"
  "$BIN" "${COMMON[@]}" --metrics "$OUTDIR/$name.jsonl" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  echo "{\"kind\": \"run\", \"rc\": $rc, \"seconds\": $(($(date +%s) - t0))}" >>"$OUTDIR/$name.jsonl"
  stamp "$name: rc $rc, $(($(date +%s) - t0)) s: $(grep -E ' (test|validation) AUC' "$OUTDIR/$name.log" | tail -1)"
}

# ---- (a) AUC against the teacher --------------------------------------------------------------------------
if [[ " $PARTS " == *" a "* ]]; then
  run a_rowwise_adagrad --arch "$A_ARCH" --sparse --optimizer adagrad --lr "$A_LR" --batch-size "$A_BATCH" \
    --epochs "$A_EPOCHS"
fi

# ---- (b) SGD against VR-SGD at large batch ------------------------------------------------------------------
if [[ " $PARTS " == *" b "* ]]; then
  B0=${B_BATCHES%% *}
  TRAIN_ROWS=$((ROWS - ROWS / 7))  # days 0..5 of 7 (kaggle_day_rows)
  for B in $B_BATCHES; do
    LR=$(python3 -c "import math; print('%.6g' % ($B_LR0 * math.sqrt($B / $B0)))")
    WARM=$(((TRAIN_ROWS / B) / 2))  # half an epoch of steps
    ((WARM < 1)) && WARM=1
    for OPT in sgd vr-sgd; do
      run "b_${OPT}_${B}" --arch "$B_ARCH" --optimizer "$OPT" --gsnr-partitions 8 --gsnr-gamma 0.1 \
        --batch-size "$B" --epochs "$B_EPOCHS" --lr "$LR" --warmup-steps "$WARM" --schedule poly:power=2 \
        --eval-batch-size 65536
    done
  done
fi

# ---- tables -----------------------------------------------------------------------------------------------
python3 - "$OUTDIR" "$ROWS" "$CAP" "$DEVICE" "$GEN_S" "$A_ARCH" "$A_BATCH" "$A_EPOCHS" "$A_LR" "$B_ARCH" \
  "$B_EPOCHS" "$B_LR0" "$B_BATCHES" "$PARTS" <<'EOF' | tee "$OUTDIR/tables.md"
import glob, json, os, sys
(out, rows, cap, device, gen_s, a_arch, a_batch, a_epochs, a_lr, b_arch, b_epochs, b_lr0, b_batches,
 parts) = sys.argv[1:]

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
    return "failed (rc %s)" % (run["rc"] if run else "?")

print("Synthetic Criteo: %s rows (7 days; train days 0-5, test = first half of day 6), Kaggle's table sizes "
      "capped at %s, device %s; data written in %s s.\n" % (f"{int(rows):,}", cap, device, gen_s))
if "a" in parts.split():
    ev, run, desc = last("a_rowwise_adagrad")
    print("(a) DLRM against the planted teacher (%s, sparse tables with row-wise Adagrad, MLPs Adagrad, "
          "lr %s, batch %s, %s epochs)\n" % (a_arch, a_lr, a_batch, a_epochs))
    print("| test rows | teacher AUC (best achievable) | DLRM AUC | gap | teacher log loss | DLRM log loss "
          "| seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    if ev and run and run["rc"] == 0:
        print("| %s | %.4f | %.4f | **%.4f** | %.4f | %.4f | %s |" % (
            f"{ev['rows']:,}", ev["teacher_auc"], ev["auc"], ev["teacher_auc"] - ev["auc"],
            ev["teacher_log_loss"], ev["log_loss"], run["seconds"]))
    else:
        print("| - | - | %s | - | - | - | %s |" % (fail(run), run["seconds"] if run else "-"))
    print()
if "b" in parts.split():
    bs = [int(b) for b in b_batches.split()]
    print("(b) SGD against VR-SGD (8 partitions, gamma 0.1), %s, dense tables, %s epochs at every batch; lr = "
          "%s sqrt(B / %s), linear warm-up over half an epoch, then poly(2) decay to 0; test rows\n" % (
              b_arch, b_epochs, b_lr0, f"{bs[0]:,}"))
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

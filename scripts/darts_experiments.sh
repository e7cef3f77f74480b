#!/usr/bin/env bash
# B-DARTS experiments (docs/bdarts.md): searches with and without CLR on the BCNN and the DARTS supernets,
# the supernets' cost per step side by side, and a short training of a derived genotype.
#
#   bash scripts/darts_experiments.sh [BUILD_DIR] [OUT_DIR]        (OUT_DIR: default $OUT, else darts_runs)
#
# MODE=cpu (default): Fashion-MNIST resized to 16 x 16, C = 4, batch 32, 512 training examples (256 for
#          the weights, 256 for the alphas), 10 epochs, arch lr 3e-3, seeds 1 2 3, BCNN only.
#          COST_NETS="" skips part 1, SKIP_EVAL=1 part 3 and the summary (to split the work over processes).
#          Each run writes OUT_DIR/<net>_<clr|noclr>_s<seed>.jsonl and .log; scripts/darts_summary.py prints
#          the tables.
# MODE=gpu: the H200 run, in parts (PART: a comma list of search, clr, eval; default all three), run in the
#          order search, eval, clr, each under its own wall-clock limit inside BUDGET_S (default 400 s; the
#          search keeps EVAL_S back for eval, CLR gets what is left); a summary table last.
#   DATA=DIR     CIFAR-10 as data::load_cifar10 reads it (passed through as --data-dir); unset: padded
#                Fashion-MNIST from /usr/share/datasets/fashion-mnist (1 channel)
#   search       the first-order B-DARTS search at the paper's settings: BCNN, C 16, batch 256, CLR p 2, seed 1,
#                arch lr 3e-4, the 25,000 + 25,000 split; EPOCHS epochs (default auto: as many as fit in
#                SEARCH_S by gpu_check's bench_darts figure, at most 50, 8 without it; the paper's 50 take one
#                to three device calls of their own, docs/bdarts.md), stopped gracefully (SIGTERM: the
#                checkpoint keeps the last whole epoch) after SEARCH_S (default 170) s. RESUME_DIR=DIR holds an
#                earlier call's bdarts_search.safetensors and .jsonl (from its $OUT): the search continues.
#   clr          CLR against no CLR, seeds 1 2 3, BCNN (NETS adds darts): CLR_EPOCHS (default 4) epochs on the
#                first CLR_LIMIT (default 8192) training images, arch lr CLR_ARCH_LR (3e-3); each run at most
#                CLR_RUN_S (20) s
#   eval         the searched genotype (the last epoch's if the search has not ended) trained from scratch as the
#                BCNN evaluation network (C 48, 6 + 2 cells, cutout 16, drop-path ramp): EVAL_EPOCHS (default
#                5), batch 128, at most EVAL_S (100) s; test accuracy on the 10,000 test images, parameters
#   CUDA_GRAPH   auto (default): the search steps replay CUDA graphs (search_darts --cuda-graph) when gpu_check's
#                part darts, run before with the same OUT (or DARTS_BENCH=its bench_darts.jsonl), measured them
#                faster than eager with the same loss; 1: always; 0: never
#   TINY=1       the same on the CPU at toy sizes (Fashion-MNIST at 16 x 16, C 4 / 8, a few hundred images):
#                tests the script end to end without a GPU
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-${OUT:-darts_runs}}
MODE=${MODE:-cpu}
SEEDS=${SEEDS:-"1 2 3"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)

# ---- MODE=gpu: the paper-sized search, CLR against no CLR, the derived network's training (header above) ----
if [[ $MODE == gpu ]]; then
  PART=${PART:-search,clr,eval}
  want() { [[ ",$PART," == *",$1,"* ]]; }
  START=$(date +%s)
  BUDGET_S=${BUDGET_S:-400}  # the whole script; each part's limit is cut to what is left of it
  left() { echo $((START + BUDGET_S - $(date +%s) - ${1:-0})); }
  cap() { local a=$1 b; b=$(left "${2:-0}"); echo $((a < b ? a : b)); }  # cap LIMIT RESERVE
  USER_EPOCHS=${EPOCHS:-auto}
  if [[ -n ${TINY:-} ]]; then  # the whole GPU path on the CPU at toy sizes (a test of the script)
    DEV=cpu
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    DS=(--dataset fashion-mnist --image-size 16)
    S_SIZE=(--init-channels 2 --batch-size 32 --limit-train 128 --limit-val 32)
    C_SIZE=(--init-channels 2 --batch-size 32)
    E_SIZE=(--init-channels 4 --batch-size 64 --limit-train 256 --limit-test 128 --cutout 4)
    EPOCHS=${EPOCHS:-3} CLR_EPOCHS=${CLR_EPOCHS:-2} CLR_LIMIT=${CLR_LIMIT:-64} EVAL_EPOCHS=${EVAL_EPOCHS:-2}
  else
    DEV=cuda
    if [[ -n ${DATA:-} ]]; then DS=(--dataset cifar10 --data-dir "$DATA"); else DS=(--dataset fashion-mnist --pad 32); fi
    S_SIZE=(--init-channels 16 --batch-size 256 --limit-val "${LIMIT_VAL:-0}")
    C_SIZE=(--init-channels 16 --batch-size 256)
    E_SIZE=(--init-channels 48 --batch-size 128 --cutout 16)
    EPOCHS=${EPOCHS:-auto} CLR_EPOCHS=${CLR_EPOCHS:-4} CLR_LIMIT=${CLR_LIMIT:-8192} EVAL_EPOCHS=${EVAL_EPOCHS:-6}
  fi
  S_DESC="BCNN supernet, ${S_SIZE[*]:0:4}, first order, CLR p 2, seed 1"
  E_DESC="BCNN evaluation network (6 + 2 cells), ${E_SIZE[*]}, drop-path ramp to 0.3"
  SEARCH_S=${SEARCH_S:-170} CLR_RUN_S=${CLR_RUN_S:-20} EVAL_S=${EVAL_S:-110}
  # CUDA graphs for the search steps: auto uses them when gpu_check's bench (DARTS_BENCH, default
  # $OUT/bench_darts.jsonl) found the graphed BCNN batch-256 step faster than the eager one with the same loss
  GRAPH=()
  CUDA_GRAPH=${CUDA_GRAPH:-auto}
  if [[ -z ${TINY:-} && $CUDA_GRAPH == auto ]]; then
    CUDA_GRAPH=$(/usr/bin/python3 -c 'import json, sys
rows = {}
try:
    for l in open(sys.argv[1]):
        r = json.loads(l) if l.startswith("{") else {}
        if r.get("net") == "bcnn" and r.get("batch") == 256:
            rows[r.get("mode")] = r
except OSError:
    pass
e, g = rows.get("eager", {}), rows.get("graph", {})
ok = "ms_per_step" in e and "ms_per_step" in g and g["ms_per_step"] < 0.97 * e["ms_per_step"] and g.get("loss_rel_diff", 1) < 1e-3
print(1 if ok else 0)' "${DARTS_BENCH:-$OUT/bench_darts.jsonl}")
  fi
  [[ -z ${TINY:-} && $CUDA_GRAPH == 1 ]] && GRAPH=(--cuda-graph) && S_DESC+=", steps replayed from CUDA graphs"
  # EPOCHS=auto: as many epochs as fit in SEARCH_S (at most the paper's 50), from the bench's BCNN batch-256
  # step (eager or graph, as chosen above) x the steps of an epoch x 1.25 (the epoch's evaluation of the
  # alphas' half, the batches' gathering) after 20 s of start-up; 8 without a bench figure
  if [[ $USER_EPOCHS == auto && -n ${RESUME_DIR:-} ]]; then  # a resumed search keeps its epoch count
    EPOCHS=$(grep -oE '^epoch [0-9]+/[0-9]+' "$RESUME_DIR/bdarts_search.log" 2>/dev/null | tail -n 1 | cut -d/ -f2 || true)
    [[ -n $EPOCHS ]] || { echo "RESUME_DIR=$RESUME_DIR: no epoch line in bdarts_search.log; give EPOCHS"; exit 1; }
  fi
  if [[ $EPOCHS == auto ]]; then
    EPOCHS=$(/usr/bin/python3 -c 'import json, math, sys
ms = None
try:
    for l in open(sys.argv[1]):
        r = json.loads(l) if l.startswith("{") else {}
        if r.get("net") == "bcnn" and r.get("batch") == 256 and r.get("mode") == ("graph" if sys.argv[2] == "1" else "eager"):
            ms = r.get("ms_per_step")
except OSError:
    pass
steps = math.ceil(int(sys.argv[4]) / 2 / 256)
print(8 if not ms else max(1, min(50, int((int(sys.argv[3]) - 20) / (1.25 * steps * ms / 1000)))))' \
      "${DARTS_BENCH:-$OUT/bench_darts.jsonl}" "$CUDA_GRAPH" "$SEARCH_S" "$([[ -n ${DATA:-} ]] && echo 50000 || echo 60000)")
    echo "EPOCHS=auto: $EPOCHS epochs fit in SEARCH_S=$SEARCH_S s"
  fi
  want eval && EVAL_RES=$EVAL_S || EVAL_RES=0  # kept back while the search runs; CLR gets what is left
  S=$OUT/bdarts_search
  echo "darts_experiments (gpu${TINY:+, TINY on the CPU}): parts $PART, budget $BUDGET_S s, data ${DS[*]}," \
    "CUDA graphs ${GRAPH[*]:-off}"

  # 1. the first-order B-DARTS search: BCNN, C 16, batch 256, CLR p 2, seed 1, EPOCHS epochs; SIGTERM after
  #    the limit keeps the last whole epoch in the checkpoint, RESUME_DIR continues it in a later call
  # an earlier call's search (RESUME_DIR): its files come into OUT, for the search to continue or eval to use
  if [[ -n ${RESUME_DIR:-} ]]; then
    RD=$(cd "$RESUME_DIR" && pwd)
    [[ -s $RD/bdarts_search.safetensors ]] || { echo "RESUME_DIR=$RESUME_DIR has no bdarts_search.safetensors"; exit 1; }
    if [[ $RD != "$OUT" ]]; then
      for f in "$RD"/bdarts_search.{safetensors,jsonl,log,genotype}; do [[ ! -f $f ]] || cp "$f" "$OUT/"; done
    fi
  fi
  if want search; then
    RES=()
    if [[ -n ${RESUME_DIR:-} ]]; then
      RES=(--resume "$S.safetensors")
    else
      rm -f "$S".{safetensors,jsonl,log,genotype}
    fi
    lim=$(cap "$SEARCH_S" "$EVAL_RES")
    echo "search: $EPOCHS epochs, at most $lim s (log $S.log)"
    rc=0
    ((lim >= 5)) || { lim=0; rc=124; echo "search: skipped (no time left in BUDGET_S)"; }
    ((lim == 0)) || timeout -s TERM --kill-after=30 "$lim" "$BUILD/search_darts" --network bcnn "${DS[@]}" "${S_SIZE[@]}" \
      --epochs "$EPOCHS" --seed 1 --arch-lr 3e-4 --device "$DEV" --no-progress --metrics "$S.jsonl" \
      --checkpoint "$S.safetensors" --genotype-out "$S.genotype" ${RES[@]+"${RES[@]}"} ${GRAPH[@]+"${GRAPH[@]}"} \
      >>"$S.log" 2>&1 || rc=$?
    grep -E '^epoch ' "$S.log" | tail -n 2 | cut -c1-200 || true
    if [[ -s $S.genotype ]]; then echo "search: finished ($EPOCHS epochs)"
    elif ((lim == 0)); then :
    elif ((rc == 124)); then echo "search: stopped at its time limit; continue with RESUME_DIR=<this OUT> PART=search"
    else echo "search: failed (rc $rc); the end of $S.log:"; tail -n 5 "$S.log"; fi
  fi

  # 2. the searched genotype trained from scratch (BCNN evaluation network, the paper's C 48, 6 + 2 cells)
  if want eval; then
    G=$OUT/bdarts_eval.genotype
    if [[ -s $S.genotype ]]; then cp "$S.genotype" "$G"; GSRC="the finished search"
    elif [[ -s $S.jsonl ]]; then
      /usr/bin/python3 -c 'import json, sys; r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
print(r["genotype"])' "$S.jsonl" >"$G"
      GSRC="the search's last epoch ($(grep -c . "$S.jsonl") of $EPOCHS)"
    else echo "BNASv2_CLR_v1" >"$G"; GSRC="no search here: the authors' BNASv2_CLR_v1"; fi
    echo "eval: genotype from $GSRC"
    rm -f "$OUT/bdarts_eval.jsonl"
    lim=$(cap "$EVAL_S" 0)
    rc=0
    ((lim >= 5)) || { lim=0; rc=124; echo "eval: skipped (no time left in BUDGET_S)"; }
    ((lim == 0)) || timeout -s TERM --kill-after=20 "$lim" "$BUILD/train_darts" --genotype "$(cat "$G")" "${DS[@]}" "${E_SIZE[@]}" \
      --epochs "$EVAL_EPOCHS" --device "$DEV" --no-progress --metrics "$OUT/bdarts_eval.jsonl" \
      >"$OUT/bdarts_eval.log" 2>&1 || rc=$?
    ((rc == 0 || lim == 0)) || echo "eval: stopped (rc $rc; 124: its time limit)"
    grep -E '^epoch ' "$OUT/bdarts_eval.log" | tail -n 2 || true
    echo "$GSRC" >"$OUT/bdarts_eval.source"
  fi

  # 3. CLR against no CLR (with what is left of the budget), seeds 1 2 3, a shortened search on the first CLR_LIMIT images (arch lr CLR_ARCH_LR,
  #    10x the paper's, as the CPU runs: the search is ~40x shorter than the paper's 4,900 steps)
  if want clr; then
    for net in ${NETS:-bcnn}; do
      for seed in ${SEEDS:-1 2 3}; do
        for clr in clr noclr; do
          flag=()
          [[ $clr == noclr ]] && flag=(--no-clr)
          name="${net}_${clr}_s${seed}"
          rm -f "$OUT/$name".{jsonl,genotype}
          lim=$(cap "$CLR_RUN_S" 0)
          if ((lim < 5)); then echo "clr: $name skipped (no time left)"; continue; fi
          timeout -s TERM --kill-after=15 "$lim" "$BUILD/search_darts" --network "$net" "${DS[@]}" "${C_SIZE[@]}" \
            --limit-train "$CLR_LIMIT" --epochs "$CLR_EPOCHS" --arch-lr "${CLR_ARCH_LR:-3e-3}" --seed "$seed" \
            ${flag[@]+"${flag[@]}"} ${GRAPH[@]+"${GRAPH[@]}"} --device "$DEV" --no-progress --metrics "$OUT/$name.jsonl" \
            --genotype-out "$OUT/$name.genotype" >"$OUT/$name.log" 2>&1 || echo "clr: $name stopped (rc $?)"
          grep -E '^epoch ' "$OUT/$name.log" | tail -n 1 | cut -c1-160 | sed "s/^/$name: /" || true
        done
      done
    done
    /usr/bin/python3 "$HERE/darts_summary.py" "$OUT" | tee "$OUT/clr_summary.md"
  fi

  # 4. the summary table, last
  /usr/bin/python3 - "$OUT" "$EPOCHS" "$(($(date +%s) - START))" "$S_DESC" "$E_DESC" <<'EOF' | tee "$OUT/summary.md"
import json, os, re, sys
out, epochs, wall, s_desc, e_desc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def jl(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
search, ev = jl("bdarts_search.jsonl"), jl("bdarts_eval.jsonl")
rows = []
if search:
    last = search[-1]
    # the search's own epoch count (its log's "epoch e/E" lines): EPOCHS of a call that only evaluates is not it
    slog = os.path.join(out, "bdarts_search.log")
    em = re.findall(r"^epoch \d+/(\d+)", open(slog, errors="replace").read(), re.M) if os.path.exists(slog) else []
    if em:
        epochs = int(em[-1])
    secs = [r["epoch_s"] for r in search]
    mean = sum(secs) / len(secs)
    rows += [("search", f"{s_desc}: epoch {last['epoch']} of {epochs}"),
             ("seconds per search epoch", f"{mean:.1f} (mean of {len(secs)}; {last['step_s'] * 1000:.0f} ms/step), peak {last['peak_mb']:.0f} MiB"),
             ("GPU-hours, epochs run", f"{sum(secs) / 3600:.3f} h"),
             ("GPU-hours, 50 epochs (the paper's)" + (", measured" if len(secs) == 50 else ", projected from the mean epoch"),
              f"{50 * mean / 3600:.3f} h = {50 * mean / 86400:.4f} GPU-day, "
              f"against the paper's 0.09 GPU-day (2.16 h): {0.09 * 86400 / (50 * mean):.1f}x less"),
             ("weight-free ops (conv cell, enhancement cell)", f"{last['weight_free_normal']}/8, {last['weight_free_reduce']}/8"),
             ("search val acc (the alphas' half, eval mode)", f"{100 * last['val_acc']:.2f}%"),
             ("derived genotype", last["genotype"])]
src = os.path.join(out, "bdarts_eval.source")
if ev:
    log = open(os.path.join(out, "bdarts_eval.log"), errors="replace").read()
    m = re.search(r"\| ([\d,]+) parameters \| ([\d,]+) multiply-adds", log)
    e = ev[-1]
    rows += [("evaluation network", e_desc + ", genotype from " +
              (open(src).read().strip() if os.path.exists(src) else "?")),
             ("parameters, multiply-adds / image", f"{m.group(1)}, {m.group(2)}" if m else "?"),
             ("eval test accuracy", f"{100 * e['test_acc']:.2f}% after {e['epoch']} epochs ({sum(r['train_s'] for r in ev):.0f} s of training)")]
clr = {}
for name in os.listdir(out):
    mm = re.match(r"(bcnn|darts)_(clr|noclr)_s(\d+)\.jsonl$", name)
    if mm and jl(name):
        r = jl(name)[-1]
        clr.setdefault((mm.group(1), mm.group(2)), []).append(r["weight_free_normal"] + r["weight_free_reduce"])
for (net, c), v in sorted(clr.items()):
    rows.append((f"{net} {'CLR' if c == 'clr' else 'no CLR'}: weight-free ops of 16, per seed", " ".join(map(str, v)) +
                 f" (mean {sum(v) / len(v):.1f})"))
print(f"\n| B-DARTS on the GPU ({wall} s in this call) | |")
print("| --- | --- |")
for k, v in rows:
    print(f"| {k} | {v} |")
EOF
  exit 0
fi


export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
EPOCHS=${EPOCHS:-10}
COMMON=(--limit-train 512 --image-size 16 --init-channels 4 --batch-size 32 --limit-val 256
        --no-progress)
NETS=${NETS:-"bcnn"}
ARCH_LR=${ARCH_LR:-3e-3}

# 1. cost per step: BCNN (3 cells) vs DARTS (8 cells) at the same C and batch, 1 epoch, no CLR difference
for net in ${COST_NETS-bcnn darts}; do
  /usr/bin/time -v "$BUILD/search_darts" --network $net "${COMMON[@]}" --epochs 1 --seed 1 \
    --metrics "$OUT/cost_${net}.jsonl" > "$OUT/cost_${net}.log" 2> "$OUT/cost_${net}.time" || true
  grep -E "User time|Maximum resident" "$OUT/cost_${net}.time" | sed "s/^/$net: /"
done

# 2. with and without CLR, same seeds
for net in $NETS; do
  for seed in $SEEDS; do
    for clr in clr noclr; do
      flag=(); [[ $clr == noclr ]] && flag=(--no-clr)
      name="${net}_${clr}_s${seed}"
      rm -f "$OUT/$name.jsonl"
      "$BUILD/search_darts" --network $net "${COMMON[@]}" --epochs "$EPOCHS" --arch-lr "$ARCH_LR" --seed "$seed" "${flag[@]}" \
        --metrics "$OUT/$name.jsonl" --genotype-out "$OUT/$name.genotype" > "$OUT/$name.log" 2>&1
      tail -2 "$OUT/$name.log" | head -1 | cut -c1-160
    done
  done
done

# 3. the derived genotype of the first CLR run, trained briefly from scratch (evaluation network)
if [[ -n ${SKIP_EVAL:-} ]]; then :
else
  "$BUILD/train_darts" --genotype "$OUT/bcnn_clr_s1.genotype" --limit-train 2000 --limit-test 1000 --image-size 16 \
    --init-channels 4 --batch-size 64 --epochs 3 --cutout 4 --no-progress --metrics "$OUT/eval_bcnn_clr_s1.jsonl" \
    | tee "$OUT/eval_bcnn_clr_s1.log"
fi
[[ -n ${SKIP_EVAL:-} ]] || /usr/bin/python3 "$HERE/darts_summary.py" "$OUT"

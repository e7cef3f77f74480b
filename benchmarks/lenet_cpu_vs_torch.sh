#!/usr/bin/env bash
# LeNet-5 on Fashion-MNIST, one epoch on the CPU: Nabla (build/train_classifier) against PyTorch
# (benchmarks/lenet_torch.py), same model, data, preprocessing, batch size, optimizer and thread count.
#
#   bash benchmarks/lenet_cpu_vs_torch.sh            # 2 threads, 3 runs of each
#   bash benchmarks/lenet_cpu_vs_torch.sh 1          # 1 thread
#   RUNS=5 BUILD_DIR=build-x DATA_DIR=~/fmnist bash benchmarks/lenet_cpu_vs_torch.sh 4
#
# Both sides preprocess the whole set once ((x/255 - 0.2860)/0.3530) outside the timer and time the
# training loop of the epoch: gathering shuffled batches of 64 (drop_last, 937 steps), forward,
# cross-entropy, backward, SGD step (momentum 0.9, weight decay 5e-4 on weights, lr 0.05 constant),
# loss.item() and the running train accuracy. Nabla's time is the epoch record's train_s in its
# metrics file; evaluation is excluded on both sides. The two sides run alternately RUNS times and the
# table keeps each side's fastest run. Both sides use libgomp, whose threads spin at each of the ~20
# parallel regions per step: when other processes compete for the cores a run can take 10-30x longer
# (3 s -> 100 s measured). OMP_WAIT_POLICY=passive, if set, reaches both sides and tames that, at a cost
# of ~35% on an idle machine (3.1 s -> 4.1-4.5 s); the load average printed under the table tells which case applies.
# ratio = PyTorch s / Nabla s (> 1: Nabla is faster).
# Needs Debian's PyTorch for /usr/bin/python3 (the python3 on PATH may be another one).
set -euo pipefail

THREADS=${1:-${THREADS:-2}}
RUNS=${RUNS:-3}
BATCH=64
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
DATA_DIR=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
PY=${PY:-/usr/bin/python3}
BIN=$BUILD_DIR/train_classifier

[[ -x $BIN ]] || { echo "lenet_cpu_vs_torch: $BIN not found; build first (ninja -C $BUILD_DIR train_classifier)" >&2; exit 1; }
"$PY" -c "import torch" 2>/dev/null || { echo "lenet_cpu_vs_torch: $PY cannot import torch" >&2; exit 1; }

export OMP_NUM_THREADS=$THREADS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# One Nabla run: prints "train_s test_acc" from the epoch record of its metrics file.
run_nabla() {
  rm -f "$WORK/nabla.jsonl"
  "$BIN" --epochs 1 --schedule constant --warmup-steps 0 --batch-size $BATCH --lr 0.05 --momentum 0.9 \
    --weight-decay 5e-4 --threads "$THREADS" --data-dir "$DATA_DIR" --no-progress --print-every 1000000 \
    --metrics "$WORK/nabla.jsonl" >&2
  "$PY" -c '
import json, sys
epochs = [r for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "epoch"]
if not epochs or "train_s" not in epochs[-1]:
    sys.exit("lenet_cpu_vs_torch: no epoch record with train_s in the Nabla metrics (old build?)")
print(epochs[-1]["train_s"], epochs[-1]["test_acc"])' "$WORK/nabla.jsonl"
}

# One PyTorch run: prints "train_s test_acc".
run_torch() {
  "$PY" "$ROOT/benchmarks/lenet_torch.py" --threads "$THREADS" --batch-size $BATCH --data-dir "$DATA_DIR" > "$WORK/torch.txt"
  cat "$WORK/torch.txt" >&2
  awk '$1 == "train_s" {s = $2} $1 == "test_acc" {a = $2} END {print s, a}' "$WORK/torch.txt"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Alternate the two, so that load from elsewhere on the machine falls on both sides alike.
for ((i = 1; i <= RUNS; i++)); do
  echo "== run $i/$RUNS: Nabla ($BIN)" >&2
  run_nabla >> "$WORK/nabla_runs.txt"
  echo "== run $i/$RUNS: PyTorch (benchmarks/lenet_torch.py)" >&2
  run_torch >> "$WORK/torch_runs.txt"
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
TORCH_VER=$("$PY" -c "import torch; print(torch.__version__)")
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
CORES=$(env -u OMP_NUM_THREADS nproc)  # nproc itself honours OMP_NUM_THREADS
"$PY" - "$WORK/nabla_runs.txt" "$WORK/torch_runs.txt" "$THREADS" "$BATCH" "$CPU" "$CORES" "$TORCH_VER" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import sys
nabla_f, torch_f, threads, batch, cpu, cores, torch_ver, load_before, load_after = sys.argv[1:]
def runs(path):
    rows = [tuple(map(float, line.split())) for line in open(path) if line.strip()]
    return [r[0] for r in rows], rows[0][1]  # all times; test accuracy of the first run (same seed each run)
(ns, na), (ts, ta) = runs(nabla_f), runs(torch_f)
n, t, images = min(ns), min(ts), 937 * int(batch)
def row(name, a, b):
    print(f"| {name:<20} | {a:>16} | {b:>16} |")
print(f"\nLeNet-5, Fashion-MNIST, 1 epoch (937 steps of {batch}), CPU, best of {len(ns)} runs each")
row("", "Nabla", f"PyTorch {torch_ver}")
print(f"|{'-' * 22}|{'-' * 18}|{'-' * 18}|")
row("training loop (s)", f"{n:.2f}", f"{t:.2f}")
row("images/s", f"{images / n:,.0f}", f"{images / t:,.0f}")
row("test accuracy", f"{100 * na:.2f}%", f"{100 * ta:.2f}%")
print(f"ratio (PyTorch s / Nabla s, > 1: Nabla faster): {t / n:.2f}")
print(f"all runs (s): Nabla {' '.join(f'{x:.2f}' for x in ns)} | PyTorch {' '.join(f'{x:.2f}' for x in ts)}")
print(f"threads {threads} | batch {batch} | CPU {cpu} ({cores} cores visible) | load average {load_before} before, {load_after} after")
EOF

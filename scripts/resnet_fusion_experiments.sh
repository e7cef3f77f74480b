#!/usr/bin/env bash
# shellcheck disable=SC2086,SC2068  # the argument strings (R50, TIMING, ...) are split into words on purpose
# Issue 27's GPU experiments (docs/cuda.md, "ResNet fusion"): what batch_norm_add_relu and the convolution
# choice cache file change, Nabla alone (benchmarks/resnet_bench.sh has the PyTorch side).
#
#   1. ResNet-50 b128 bf16 channels-last and TF32, ResNet-18 b512 32²: fused (default) against
#      NABLA_RESNET_FUSED=0, eager, and for the bf16 case also replayed as a CUDA graph;
#   2. NABLA_CONV_CACHE: the same short ResNet-50 bf16 run twice, first with no cache file (every shape
#      timed, the file written), then with it (no timing): process wall times, and the per-shape report
#      (bench_resnet --report-algos) of both runs in the logs.
#
#   bash scripts/resnet_fusion_experiments.sh [BUILD_DIR]        # default build-gpu; ~250 s on the H200
#                                                                 # (an estimate: not run there yet)
#   RESNET_FUSION_TINY=1 bash scripts/resnet_fusion_experiments.sh build   # the harness on the CPU, tiny
#
# Logs (JSON lines, stderr of each run, the cache file, the reports) go to $OUT or BUILD_DIR/resnet_fusion;
# the table comes last.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-${BUILD_DIR:-build-gpu}}
LOG=${OUT:-$BUILD/resnet_fusion}
mkdir -p "$LOG" || exit 1
JSONL="$LOG/fusion.jsonl"
: >"$JSONL"
BENCH="$BUILD/bench_resnet"
[ -x "$BENCH" ] || { echo "resnet_fusion_experiments: $BENCH not built" >&2; exit 1; }
LIMIT=${RESNET_FUSION_CASE_LIMIT_S:-90}

if [ "${RESNET_FUSION_TINY:-0}" = 1 ]; then
  DEV="--device cpu"
  R50="--model resnet18 --batch 4 --image-size 32 --classes 10"
  R18="--model resnet20 --batch 4 --image-size 32 --classes 10"
  TIMING="--warmup 1 --steps 1 --windows 1"
  SHORT="--warmup 1 --steps 1 --windows 1"
  GRAPH=""
else
  DEV=""
  R50="--model resnet50 --batch 128 --image-size 224 --classes 1000"
  R18="--model resnet18 --batch 512 --image-size 32 --classes 10"
  TIMING="--warmup 10 --steps 10 --windows 5"
  SHORT="--warmup 3 --steps 2 --windows 1"
  GRAPH="--cuda-graph"
fi

# run NAME FUSED(0|1) ARGS...: one bench_resnet process; its JSON line (with the wall time) to $JSONL.
run() {
  local name=$1 fused=$2
  shift 2
  local t0 t1 line
  t0=$(date +%s.%N)
  # shellcheck disable=SC2068  # the argument strings are split on purpose
  line=$(NABLA_RESNET_FUSED=$fused timeout --kill-after=5 "$LIMIT" "$BENCH" --name "$name" $@ $DEV 2>>"$LOG/$name.err")
  local rc=$?
  t1=$(date +%s.%N)
  [ -n "$line" ] || line="{\"name\": \"$name\", \"error\": \"exit $rc (see $name.err)\"}"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["wall_s"]=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps(r))' \
    "$line" "$t0" "$t1" >>"$JSONL"
  tail -n 1 "$JSONL" | cut -c1-300
}

for f in 1 0; do
  run "r50_bf16_cl_fused$f" $f $R50 --amp bf16 --channels-last $TIMING
  [ -n "$GRAPH" ] && run "r50_bf16_cl_graph_fused$f" $f $R50 --amp bf16 --channels-last $TIMING $GRAPH
  run "r50_tf32_fused$f" $f $R50 $TIMING
  run "r18_32px_fused$f" $f $R18 $TIMING
done

# The cache file: a cold process (times every shape, writes the file), then a warm one (reads it).
CACHE="$LOG/conv_cache.txt"
rm -f "$CACHE"
export NABLA_CONV_CACHE="$CACHE"
run cache_cold 1 $R50 --amp bf16 --channels-last $SHORT --report-algos
run cache_warm 1 $R50 --amp bf16 --channels-last $SHORT --report-algos
unset NABLA_CONV_CACHE
lines=0
[ -f "$CACHE" ] && lines=$(wc -l <"$CACHE")
echo "cache file: $lines lines (no file on the CPU: no cuDNN); warm run's report:"
grep -h "NABLA_CONV_REPORT" "$LOG/cache_warm.err" | tail -n 1

echo
python3 - "$JSONL" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'case':28} {'fused':>5} {'graph':>5} {'img/s':>9} {'ms/step':>8} {'host ms':>8} {'wall s':>7}")
for r in rows:
    if "error" in r:
        print(f"{r['name']:28} error: {r['error']}")
        continue
    print(f"{r['name']:28} {str(r.get('fused')):>5} {str(r.get('cuda_graph')):>5} {r['img_per_s']:9.1f} "
          f"{r['ms_per_step']:8.2f} {r['host_ms_per_step']:8.2f} {r['wall_s']:7.1f}")
by = {r["name"]: r for r in rows if "error" not in r}
for base in ["r50_bf16_cl", "r50_bf16_cl_graph", "r50_tf32", "r18_32px"]:
    a, b = by.get(base + "_fused1"), by.get(base + "_fused0")
    if a and b:
        print(f"{base}: fused / unfused = {a['img_per_s'] / b['img_per_s']:.3f}")
if "cache_cold" in by and "cache_warm" in by:
    print(f"conv cache: cold process {by['cache_cold']['wall_s']:.1f} s, warm {by['cache_warm']['wall_s']:.1f} s")
EOF

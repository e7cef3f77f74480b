#!/usr/bin/env bash
# ResNet training throughput, Nabla against PyTorch eager on the same GPU in one call (shared/DEVICE.md's
# settings): synthetic data made on the device, warm-up steps excluded, median of timed windows.
#
#   resnet50_b128_tf32   ResNet-50, batch 128, 224², fp32 with TF32, SGD momentum
#   resnet50_b128_bf16   ResNet-50, batch 128, 224², bf16 autocast (f32 master weights)
#   resnet18_b512_tf32   ResNet-18 (10 classes), batch 512, 32², TF32
#
#   bash benchmarks/resnet_bench.sh [BUILD_DIR]     # default build-gpu; logs to $OUT or BUILD_DIR/resnet_bench
#
# Cases alternate Nabla, PyTorch, case by case, so that drift of the shared machine hits both sides alike.
# Each runs in a process of its own under `timeout`. Prints the table last (benchmarks/compare_resnet.py).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${1:-${BUILD_DIR:-build-gpu}}
LOG=${RESNET_LOG:-${OUT:-$BUILD/resnet_bench}}
mkdir -p "$LOG" || exit 1
NABLA_JSONL="$LOG/resnet_nabla.jsonl"
TORCH_JSONL="$LOG/resnet_torch.jsonl"
: >"$NABLA_JSONL"
: >"$TORCH_JSONL"
TIMING=${RESNET_TIMING:---warmup 10 --steps 10 --windows 5}
# The 32² cases take 6-9 ms a step and are bound by the host on both sides (host_ms_per_step is the step
# time): 10-step windows of them moved by +-20% within one run (other work on the machine's CPUs), so they
# time longer windows, appended after TIMING (the last value of an option wins on both sides).
TIMING_SMALL=${RESNET_TIMING_SMALL:---warmup 20 --steps 50}
CASE_LIMIT=${RESNET_CASE_LIMIT_S:-90}

CASES=(
  "--name resnet50_b128_tf32 --model resnet50 --batch 128 --image-size 224 --classes 1000"
  "--name resnet50_b128_bf16_cl --model resnet50 --batch 128 --image-size 224 --classes 1000 --amp bf16 --channels-last"
  "--name resnet50_b128_bf16 --model resnet50 --batch 128 --image-size 224 --classes 1000 --amp bf16"
  "--name resnet18_b512_tf32 --model resnet18 --batch 512 --image-size 32 --classes 10"
  "--name resnet18_b512_tf32_cl --model resnet18 --batch 512 --image-size 32 --classes 10 --channels-last"
)
# RESNET_GRAPH=1 (default) also times Nabla with the step captured as a CUDA graph (bench_resnet --cuda-graph,
# cuda/graph.h): a third run per case, a column of its own in the table. PyTorch stays eager.
GRAPH=${RESNET_GRAPH:-1}
ONLY=${RESNET_CASES:-.}  # a regular expression on the case names (e.g. resnet18 to run the 32² cases)
for args in "${CASES[@]}"; do
  name=$(echo "$args" | awk '{print $2}')
  [[ $name =~ $ONLY ]] || continue
  extra=""
  [[ $args == *"--image-size 32 "* ]] && extra=$TIMING_SMALL
  echo "=== $name"
  if [ -x "$BUILD/bench_resnet" ]; then
    # shellcheck disable=SC2086  # word splitting of the argument strings is intended
    timeout --kill-after=5 "$CASE_LIMIT" "$BUILD/bench_resnet" $args $TIMING $extra >>"$NABLA_JSONL" 2>>"$LOG/resnet_nabla.err" ||
      echo "{\"impl\": \"nabla\", \"name\": \"$name\", \"error\": \"exit $? (see resnet_nabla.err)\"}" >>"$NABLA_JSONL"
  else
    echo "{\"impl\": \"nabla\", \"name\": \"$name\", \"error\": \"$BUILD/bench_resnet not built\"}" >>"$NABLA_JSONL"
  fi
  tail -n 1 "$NABLA_JSONL" | cut -c1-400
  if [[ $GRAPH == 1 && -x "$BUILD/bench_resnet" ]]; then
    # shellcheck disable=SC2086
    timeout --kill-after=5 "$CASE_LIMIT" "$BUILD/bench_resnet" $args $TIMING $extra --cuda-graph >>"$NABLA_JSONL" 2>>"$LOG/resnet_nabla.err" ||
      echo "{\"impl\": \"nabla\", \"name\": \"$name\", \"cuda_graph\": true, \"error\": \"exit $? (see resnet_nabla.err)\"}" >>"$NABLA_JSONL"
    tail -n 1 "$NABLA_JSONL" | cut -c1-400
  fi
  # shellcheck disable=SC2086
  timeout --kill-after=5 "$CASE_LIMIT" python3 benchmarks/resnet_torch.py $args $TIMING $extra >>"$TORCH_JSONL" 2>>"$LOG/resnet_torch.err" ||
    echo "{\"impl\": \"torch\", \"name\": \"$name\", \"error\": \"exit $? (see resnet_torch.err)\"}" >>"$TORCH_JSONL"
  tail -n 1 "$TORCH_JSONL" | cut -c1-400
done
tail -n 5 "$LOG/resnet_nabla.err" "$LOG/resnet_torch.err" 2>/dev/null
echo
python3 benchmarks/compare_resnet.py "$NABLA_JSONL" "$TORCH_JSONL"

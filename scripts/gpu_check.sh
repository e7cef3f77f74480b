#!/usr/bin/env bash
# The one script to run on the GPU machine (shared/DEVICE.md): versions, configure + build (Release, sm_90,
# ninja -j16, into build-gpu), the whole ctest suite, the CUDA suite on its own, the GPU benchmarks of Nabla
# and PyTorch and their comparison, then a short summary table, printed last.
#
#   bash scripts/gpu_check.sh          # from the repository root; logs go to $OUT when set, else build-gpu/gpu_check
#
# It keeps going past a failing step (set -u, no set -e) and records each step's status. Each step runs under
# `timeout`, with a limit that is the smaller of its own cap and what the whole budget (GPU_CHECK_BUDGET_S,
# default 540 s, under the device tool's 600 s per command) leaves after reserving time for the steps after
# it, so the benchmarks and the summary always get their turn.
# train_classifier runs LeNet-5 on Fashion-MNIST from .gpu-data/fashion-mnist when that folder was carried.
#
# The ResNet part (after the op benchmarks): benchmarks/resnet_bench.sh (ResNet-50 TF32 and bf16, ResNet-18 at
# 32², Nabla against PyTorch), the image pipeline's decoding rate by loader workers, and ResNet-20 trained on
# Fashion-MNIST padded to 32² (expected >= 93% test accuracy), eager and with --cuda-graph. GPU_CHECK_PART picks the parts (the versions
# and the build always run): all (default), or a comma list of core (tests, op benchmarks, LeNet), tests (ctest and
# the CUDA suite only), cuda (the CUDA suite alone, CUDA_TEST_FILTER picks tests), resnet,
# vrgd (benchmarks/bench_vrgd: the VR step's cost on ResNet-50), oracles (tokenizers, BERT and GPT-2 against
# Hugging Face: part 5c), attention (the fused attention op against PyTorch's SDPA: part 5d), gpt (GPT-2 124M
# training step and generation against plain PyTorch: part 5g), bert (BERT
# pretraining steps, bench_bert with composed and fused attention against Hugging Face's BertForPreTraining
# with SDPA, benchmarks/bert_torch.py: part 5h), yolo (YOLOv3
# from its Darknet cfg against the same network in PyTorch, training step and inference: part 5e), profile (benchmarks/profile_resnet.sh: where
# the bf16 channels-last step's time goes, Nabla and PyTorch; then NABLA_PROFILE=host on ResNet-18 at 32²:
# the host's time per op of a host-bound step), dlrm (benchmarks/bench_dlrm against benchmarks/dlrm_torch.py:
# 26 tables x 100k x 128, batches 2,048 and 65,536, dense and sparse tables; and Kaggle-sized tables: part 5f), inspect (part 5i: a
# ResNet-50 GPU training run under NABLA_TRACE, one step rendered to SVG, nabla_inspect summary, the live
# tensors of a step, the step time with tracing off and on), resnet_fusion (scripts/resnet_fusion_experiments.sh: fused batch norm + add +
# ReLU against unfused, the conv choice cache file: issue 27), darts (part 5j: a first-order DARTS search step on the
# BCNN and DARTS supernets, bench_darts against benchmarks/darts_torch.py, C 16, batches 256 and 64), dist (multi-GPU: scripts/dist_check.sh, only
# with >= 2 GPUs); split them over device calls of 600 s each when one is not enough.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
BUILD=${BUILD_DIR:-build-gpu}
PART=${GPU_CHECK_PART:-all}
want() { [[ $PART == all || ",$PART," == *",$1,"* ]]; }  # GPU_CHECK_PART: all, or a list like core,dist
FMNIST="${FMNIST_DIR:-.gpu-data/fashion-mnist}"  # carried by the lead (ignored by git)
# ctest's dist_train_classifier_mpirun reads FMNIST_DIR too (it skips, exit 77, without the data).
[[ -d $FMNIST ]] && export FMNIST_DIR=$(cd "$FMNIST" && pwd)
LOG=${OUT:-$BUILD/gpu_check}
mkdir -p "$LOG" || exit 1
LOG=$(cd "$LOG" && pwd)

STEP_NAMES=()
STEP_STATUS=()
STEP_SECS=()

now() { date +%s; }
elapsed() { echo $(($(now) - START)); }
record() { STEP_NAMES+=("$1"); STEP_STATUS+=("$2"); STEP_SECS+=("$3"); }
banner() { printf '\n=== [t+%ss] %s\n' "$(elapsed)" "$*"; }

# run_step NAME CAP RESERVE LOGFILE CMD...: runs CMD with stdout+stderr to LOGFILE under a time limit of
# min(CAP, time left - RESERVE); records ok / FAIL (rc N) / TIMEOUT / skipped. Returns CMD's status.
run_step() {
  local name=$1 cap=$2 reserve=$3 log=$4
  shift 4
  local left=$((START + BUDGET - $(now) - reserve))
  local limit=$((cap < left ? cap : left))
  if ((limit < 5)); then
    banner "$name: skipped, no time left"
    record "$name" "skipped (no time left)" 0
    return 124
  fi
  banner "$name (limit ${limit} s, log $log)"
  local t0
  t0=$(now)
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  local rc=$?
  local secs=$(($(now) - t0))
  if ((rc == 0)); then
    record "$name" "ok" "$secs"
  elif ((rc == 124 || rc == 137)); then
    record "$name" "TIMEOUT (${limit} s)" "$secs"
  else
    record "$name" "FAIL (rc $rc)" "$secs"
  fi
  return $rc
}

# ---- 1. machine and library versions ---------------------------------------------------------------------
# CMake's CUDA check needs nvcc on PATH (or CUDACXX).
if ! command -v nvcc >/dev/null 2>&1 && [ -z "${CUDACXX:-}" ]; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin /usr/local/cuda-13/bin; do
    if [ -x "$d/nvcc" ]; then
      export PATH="$d:$PATH"
      break
    fi
  done
fi

banner "versions"
{
  timeout 30 nvidia-smi || echo "nvidia-smi failed"
  echo "nvcc: $(command -v nvcc || echo 'NOT FOUND')"
  nvcc --version 2>/dev/null | tail -n 2
  gcc --version | head -n 1
  cmake --version | head -n 1
  echo "ninja $(ninja --version 2>/dev/null || echo 'NOT FOUND')"
  for h in /usr/include/x86_64-linux-gnu/cudnn_version*.h /usr/include/cudnn_version*.h \
    /usr/local/cuda/include/cudnn_version*.h; do
    [ -f "$h" ] && echo "cuDNN $h: $(grep -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$h" | awk '{print $3}' | paste -sd.)"
  done
  dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'libopenblas*' 'libcudnn9*' 'libnccl*' 'libgtest-dev' \
    'libbenchmark-dev' 'nlohmann-json3-dev' 'libboost-program-options*-dev' 'libjpeg*-dev' 'libpng-dev' 2>/dev/null |
    awk '$1 == "ii" {print $2, $3}' | sort -u
  timeout 60 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
      torch.backends.cudnn.version(), "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))' ||
    echo "python3 torch: import failed"
} 2>&1 | tee "$LOG/versions.txt"
record versions ok 0

# ---- 2. configure and build ----------------------------------------------------------------------------
# 8 ctest shards per suite: the 16 cores run them side by side.
CMAKE_ARGS=(-S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNABLA_CUDA=ON
  -DNABLA_TEST_SHARDS=8)
# Boost.Program_options: the GPU machine has Boost 1.83 headers but no compiled library. The lead carries
# Debian's Boost 1.74 packages (headers and library of one version) in .gpu-deps/ (scripts/fetch_gpu_deps.sh;
# ignored by git, named in the device call's `carry`); unpack them into one prefix and point CMake there.
BOOST_PREFIX=${BOOST_PREFIX:-/tmp/nabla-boost}
if ls .gpu-deps/libboost*.deb >/dev/null 2>&1; then
  mkdir -p "$BOOST_PREFIX"
  for deb in .gpu-deps/libboost*.deb; do dpkg -x "$deb" "$BOOST_PREFIX"; done
  CMAKE_ARGS+=(-DBoost_ROOT="$BOOST_PREFIX/usr" -DBoost_NO_SYSTEM_PATHS=ON)
  echo "boost: Debian packages unpacked into $BOOST_PREFIX"
fi
# The time kept back for the later steps while configuring and building: sized for the whole run, and
# never more than half the budget, so that a short GPU_CHECK_BUDGET_S still builds (a budget of 400 once
# left no time to configure at all).
CONF_RESERVE=$((BUDGET / 2 < 400 ? BUDGET / 2 : 400))
BUILD_RESERVE=$((BUDGET / 3 < 230 ? BUDGET / 3 : 230))
if ! run_step configure 120 "$CONF_RESERVE" "$LOG/configure.log" cmake "${CMAKE_ARGS[@]}"; then
  tail -n 30 "$LOG/configure.log" 2>/dev/null
  if [ -f "$BUILD/CMakeCache.txt" ]; then  # a stale cache (other generator or compiler): start afresh once
    rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
    unset 'STEP_NAMES[-1]' 'STEP_STATUS[-1]' 'STEP_SECS[-1]'
    run_step configure 120 "$CONF_RESERVE" "$LOG/configure.log" cmake "${CMAKE_ARGS[@]}" || tail -n 30 "$LOG/configure.log"
  fi
fi
grep -E '^-- nabla:' "$LOG/configure.log" 2>/dev/null

# -k 0: build every target that can be built, so that one broken file does not stop the rest.
if ! run_step build 360 "$BUILD_RESERVE" "$LOG/build.log" cmake --build "$BUILD" -j 16 -- -k 0; then
  grep -E 'error|FAILED' "$LOG/build.log" 2>/dev/null | head -n 40
fi
tail -n 3 "$LOG/build.log" 2>/dev/null

# ---- 3. tests --------------------------------------------------------------------------------------------
export OMP_NUM_THREADS=2
export OPENBLAS_NUM_THREADS=2  # the pthread OpenBLAS would otherwise start one thread per core in every test
if want core || want tests; then
# The CUDA suite runs on its own below (its counts go in the table), so ctest leaves its shards out.
run_step ctest 200 170 "$LOG/ctest.log" ctest --test-dir "$BUILD" --output-on-failure -j 8 --timeout 180 \
  -E '^nabla_cuda_tests[.]'
sed -n '/tests passed/,$p' "$LOG/ctest.log" 2>/dev/null | head -n 60

CUDA_TESTS="$BUILD/nabla_cuda_tests"
if [ -x "$CUDA_TESTS" ]; then
  run_step cuda_tests 150 130 "$LOG/cuda_tests.log" "$CUDA_TESTS" --gtest_brief=1
  grep -E '^\[  (FAILED|PASSED|SKIPPED) *\]|tests? from .* ran' "$LOG/cuda_tests.log" | head -n 60
else
  record cuda_tests "FAIL (not built)" 0
fi

fi  # want core || want tests

# GPU_CHECK_PART=cuda: the CUDA suite alone, optionally a part of it (CUDA_TEST_FILTER, a gtest filter such as
# '*Embedding*:*Yolo*'): a short call after a change to a few kernels.
if want cuda && ! want core && ! want tests; then
  run_step cuda_tests 150 60 "$LOG/cuda_tests.log" "$BUILD/nabla_cuda_tests" --gtest_brief=1 \
    --gtest_filter="${CUDA_TEST_FILTER:-*}"
  grep -E '^\[  (FAILED|PASSED|SKIPPED) *\]|tests? from .* ran' "$LOG/cuda_tests.log" | head -n 40
fi

# ---- 4. benchmarks ---------------------------------------------------------------------------------------
if want core; then
NABLA_JSONL="$LOG/bench_nabla.jsonl"
TORCH_JSONL="$LOG/bench_torch.jsonl"
: >"$NABLA_JSONL"
BENCH="$BUILD/bench_gpu"
if [ -x "$BENCH" ]; then
  run_step bench_gpu 150 75 "$NABLA_JSONL" "$BENCH"
  # A crash, or a sticky CUDA error that fails every later benchmark, loses results: rerun each benchmark
  # without a result in a process of its own (not those that failed for a missing kernel: they would again).
  # shellcheck disable=SC2046  # one argument per benchmark name
  redo=$(python3 - "$NABLA_JSONL" $("$BENCH" --list) <<'EOF'
import json, sys
done = set()
for line in open(sys.argv[1], errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if "ms" in rec or "kernel slot" in str(rec.get("error", "")):
        done.add(rec.get("name"))
print(" ".join(n for n in sys.argv[2:] if n not in done))
EOF
  )
  if [ -n "$redo" ]; then
    banner "bench_gpu: rerunning one per process: $redo"
    for name in $redo; do
      left=$((START + BUDGET - $(now) - 70))
      if ((left < 10)); then
        echo "{\"impl\": \"nabla\", \"name\": \"$name\", \"error\": \"not rerun: no time left\"}" >>"$NABLA_JSONL"
        continue
      fi
      out=$(timeout --kill-after=5 $((left < 60 ? left : 60)) "$BENCH" --only "$name" 2>>"$LOG/bench_nabla_rerun.err")
      rc=$?
      printf '%s\n' "$out" | grep -v '"_meta"' >>"$NABLA_JSONL"
      if ! printf '%s\n' "$out" | grep -q "\"name\": *\"$name\""; then
        echo "{\"impl\": \"nabla\", \"name\": \"$name\", \"error\": \"crashed or timed out (rc $rc) in a process of its own\"}" >>"$NABLA_JSONL"
      fi
    done
  fi
  grep -c '"ms"' "$NABLA_JSONL" | xargs -I{} echo "nabla: {} benchmarks with a result"
  grep -v '^{' "$NABLA_JSONL" | tail -n 5
  tail -n 5 "$LOG/bench_nabla_rerun.err" 2>/dev/null
else
  record bench_gpu "FAIL (not built)" 0
fi

run_step bench_torch 150 15 "$TORCH_JSONL" python3 benchmarks/bench_gpu_torch.py
grep -c '"ms"' "$TORCH_JSONL" | xargs -I{} echo "torch: {} benchmarks with a result"
grep -v '^{' "$TORCH_JSONL" | tail -n 5

run_step compare 20 0 "$LOG/compare.txt" python3 benchmarks/compare_gpu.py "$NABLA_JSONL" "$TORCH_JSONL"
cat "$LOG/compare.txt"

# Fashion-MNIST is not installed there: the lead carries the Debian package's files in .gpu-data/ (ignored
# by git; `carry` in the device call). LeNet-5, 10 epochs, --device cuda, as the CPU main job.
if [[ -d "$FMNIST" && -x "$BUILD/train_classifier" ]]; then
  run_step train_classifier 120 0 "$LOG/train_classifier.log" "$BUILD/train_classifier" --device cuda \
    --data-dir "$FMNIST" --no-progress --print-every 500
  grep -E '^epoch|error|train_classifier:' "$LOG/train_classifier.log" | tail -n 12
else
  record train_classifier "skipped (no $FMNIST)" 0
fi

fi  # want core

# ---- 5. ResNet: speed against PyTorch, the input pipeline, ResNet-20 on Fashion-MNIST ------------------------
if want resnet; then
  RESNET_LOG="$LOG" run_step resnet_bench 200 150 "$LOG/resnet_bench.log" bash benchmarks/resnet_bench.sh "$BUILD"
  tail -n 6 "$LOG/resnet_bench.log"
  if [ -x "$BUILD/bench_resnet_pipeline" ]; then
    run_step resnet_pipeline 40 130 "$LOG/resnet_pipeline.log" "$BUILD/bench_resnet_pipeline" 512 64 16
    cat "$LOG/resnet_pipeline.log"
  fi
  if [[ -d "$FMNIST" && -x "$BUILD/train_classifier" ]]; then
    # The CIFAR ResNet recipe (He et al. 2016) on 32² Fashion-MNIST: SGD momentum 0.9, lr 0.1, batch 128,
    # cosine after 200 warm-up steps, weight decay 5e-4 (not on BN and biases), random crops and flips.
    run_step resnet20_fmnist 300 0 "$LOG/resnet20_fmnist.log" "$BUILD/train_classifier" --device cuda \
      --data-dir "$FMNIST" --model resnet20 --pad 32 --augment --epochs 20 --batch-size 128 --lr 0.1 \
      --momentum 0.9 --weight-decay 5e-4 --schedule cosine --warmup-steps 200 --workers 4 --no-progress \
      --print-every 1000 --metrics "$LOG/resnet20_fmnist.jsonl"
    grep -E '^epoch|^throughput|error|train_classifier:' "$LOG/resnet20_fmnist.log" | tail -n 22
    # The same run with the forward and backward replayed from a CUDA graph (--cuda-graph).
    run_step resnet20_fmnist_graph 200 0 "$LOG/resnet20_fmnist_graph.log" "$BUILD/train_classifier" --device cuda \
      --data-dir "$FMNIST" --model resnet20 --pad 32 --augment --epochs 20 --batch-size 128 --lr 0.1 \
      --momentum 0.9 --weight-decay 5e-4 --schedule cosine --warmup-steps 200 --workers 4 --no-progress \
      --print-every 1000 --metrics "$LOG/resnet20_fmnist_graph.jsonl" --cuda-graph
    grep -E '^epoch 20|^throughput|^cuda graph|error|train_classifier:' "$LOG/resnet20_fmnist_graph.log" | tail -n 5
  else
    record resnet20_fmnist "skipped (no $FMNIST)" 0
  fi
fi

# ---- 5b. VRGD step cost (issue 7) and the ResNet-50 profile (issue 5), each a part of its own ------------
if want vrgd && [ -x "$BUILD/bench_vrgd" ]; then
  run_step bench_vrgd 120 0 "$LOG/bench_vrgd.log" "$BUILD/bench_vrgd" --device cuda --model resnet50 --batch 256 --k 8
  grep '^{' "$LOG/bench_vrgd.log" | tail -n 1
fi
if want profile; then
  run_step profile_resnet 200 0 "$LOG/profile_resnet.log" bash benchmarks/profile_resnet.sh "$BUILD" "$LOG/profile"
  head -n 30 "$LOG/profile/nabla_profile.txt" 2>/dev/null
  # Where the host's time goes in the host-bound ResNet-18 step at 32²: NABLA_PROFILE=host (no syncs), one
  # step per window so that the host never waits for a full launch queue.
  if [ -x "$BUILD/bench_resnet" ]; then
    NABLA_PROFILE=host run_step profile_host 60 0 "$LOG/profile_host_resnet18.txt" "$BUILD/bench_resnet" \
      --model resnet18 --batch 512 --image-size 32 --classes 10 --warmup 20 --steps 1 --windows 50
    head -n 25 "$LOG/profile_host_resnet18.txt"
  fi
fi

# ---- 5b'. ResNet fusion (issue 27): batch_norm_add_relu fused against NABLA_RESNET_FUSED=0, and the
# NABLA_CONV_CACHE file's cold and warm process (scripts/resnet_fusion_experiments.sh prints its table last).
if want resnet_fusion && [ -x "$BUILD/bench_resnet" ]; then
  OUT="$LOG/resnet_fusion" run_step resnet_fusion 330 0 "$LOG/resnet_fusion.log" \
    bash scripts/resnet_fusion_experiments.sh "$BUILD"
  sed -n '/^case /,$p' "$LOG/resnet_fusion.log"
fi

# ---- 5c. oracles: our tokenizers, BERT and GPT-2 against Hugging Face's (transformers is only on the GPU machine)
# The lead carries .cache/tokenizers (scripts/prepare_tokenizers.sh) and .gpu-data/sentiment.tar.xz (a copy of
# ../shared/data/sentiment). docs/tokenizers.md, docs/bert.md and docs/gpt.md say what each check asserts.
if want oracles; then
  if [ -f .gpu-data/sentiment.tar.xz ] && [ ! -d .gpu-data/sentiment ]; then tar -C .gpu-data -xJf .gpu-data/sentiment.tar.xz; fi
  if [ -d .cache/tokenizers ] && [ -d .gpu-data/sentiment ]; then
    run_step tokenizer_oracle 120 60 "$LOG/tokenizer_oracle.log" python3 benchmarks/tokenizer_oracle.py --build "$BUILD" \
      --data .gpu-data/sentiment --tokenizers .cache/tokenizers
    tail -n 8 "$LOG/tokenizer_oracle.log"
  else
    record tokenizer_oracle "skipped (no .cache/tokenizers or sentiment data)" 0
  fi
  rm -rf "$LOG/bert_oracle" "$LOG/gpt_oracle"
  run_step bert_oracle_make 60 40 "$LOG/bert_oracle_make.log" python3 benchmarks/bert_hf_oracle.py --out "$LOG/bert_oracle" &&
    NABLA_BERT_ORACLE_DIR="$LOG/bert_oracle" run_step bert_oracle_ours 60 40 "$LOG/bert_oracle_ours.log" \
      "$BUILD/nabla_models_tests" --gtest_filter='BertHfOracle.*' &&
    run_step bert_oracle_back 60 40 "$LOG/bert_oracle_back.log" python3 benchmarks/bert_hf_oracle.py --check-ours "$LOG/bert_oracle/ours"
  tail -n 4 "$LOG"/bert_oracle_*.log
  run_step gpt_oracle_make 60 20 "$LOG/gpt_oracle_make.log" python3 benchmarks/gpt_hf_oracle.py --make "$LOG/gpt_oracle" &&
    NABLA_GPT_ORACLE_DIR="$LOG/gpt_oracle" run_step gpt_oracle_ours 60 20 "$LOG/gpt_oracle_ours.log" \
      "$BUILD/nabla_models_tests" --gtest_filter='GptHfOracle.*' &&
    run_step gpt_oracle_back 60 10 "$LOG/gpt_oracle_back.log" python3 benchmarks/gpt_hf_oracle.py --check-ours "$LOG/gpt_oracle"
  tail -n 4 "$LOG"/gpt_oracle_*.log
fi

# ---- 5d. fused attention (ops/attention.h) against PyTorch's scaled_dot_product_attention ----------------------
if want attention && [ -x "$BUILD/bench_attention" ]; then
  run_step bench_attention 150 20 "$LOG/bench_attention.jsonl" "$BUILD/bench_attention"
  run_step attention_torch 90 0 "$LOG/attention_torch.jsonl" python3 benchmarks/attention_torch.py
  python3 - "$LOG/bench_attention.jsonl" "$LOG/attention_torch.jsonl" <<'EOF' | tee "$LOG/attention_compare.txt"
import json, sys
rows = {}
for side, path in (("nabla", sys.argv[1]), ("torch", sys.argv[2])):
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "ms" not in r:
            continue
        impl = r.get("impl", side)
        rows.setdefault((r.get("name"), r.get("dtype"), r.get("pass")), {})[impl] = r["ms"]
impls = sorted({k for v in rows.values() for k in v})
# ratio: PyTorch SDPA ms / Nabla fused ms (> 1: the fused op is faster); scalar: the same for the
# scalar kernels (NABLA_ATTENTION_KERNEL=scalar), the A/B of the tensor-core path.
def ratio(row, impl):
    return "%.2fx" % (row["torch_sdpa"] / row[impl]) if impl in row and "torch_sdpa" in row else "-"
print("attention, median ms: case | " + " | ".join(impls) + " | fused vs torch | scalar vs torch")
for key in sorted(rows, key=str):
    r = rows[key]
    print(" ".join(map(str, key)), "|", " | ".join("%.3f" % r[i] if i in r else "-" for i in impls), "|",
          ratio(r, "nabla_fused"), "|", ratio(r, "nabla_fused_scalar"))
EOF
fi

# ---- 5e. YOLOv3 from a Darknet cfg (benchmarks/bench_yolo.cpp) against the same cfg in PyTorch (yolo_torch.py) ----
# Training step (surrogate loss on both sides) and inference at 416², each case in both layouts on both sides
# (NCHW, and channels-last: bench_yolo --channels-last, yolo_torch.py --channels-last): bf16 at batch 32
# first, then TF32 at batch 32, then the ablation of the BN + leaky fusion (NABLA_DARKNET_FUSED=0) and
# Nabla with Darknet's loss (on the GPU, cuda/yolo_loss.cu, and by the old host route,
# NABLA_YOLO_LOSS_HOST=1); later cases are skipped when the budget runs out. One table: img/s per side and
# layout, each layout's ratio, and best layout against best layout.
if want yolo && [ -x "$BUILD/bench_yolo" ]; then
  YCFG=/usr/share/darknet/cfg/yolov3.cfg
  [ -f "$YCFG" ] || YCFG=tests/yolo/fixtures/yolov3.cfg
  : >"$LOG/bench_yolo.jsonl"
  : >"$LOG/yolo_torch.jsonl"
  # YOLO_CASES: the cases, comma-separated "mode batch amp" (default these four; "train 16 off,infer 16 off"
  # are the TF32 cases of the 2026-12-03 table); YOLO_EXTRA=0 skips the three Nabla-only rows (fusion off,
  # Darknet's loss on the GPU and on the host). YOLO_REPEAT=N runs each case N times, the two sides
  # alternating (Nabla, PyTorch, Nabla, ...): the table takes each side's median and lists the N ratios, an
  # error bar for a ratio near 1 (TF32 channels-last training measured 0.99x and 1.01x in two calls).
  IFS=, read -r -a YOLO_CASE_LIST <<<"${YOLO_CASES:-train 32 bf16,infer 32 bf16,train 32 off,infer 32 off}"
  for c in "${YOLO_CASE_LIST[@]}"; do
    read -r ymode ybatch yamp <<<"$c"
    for yrep in $(seq 1 "${YOLO_REPEAT:-1}"); do
    for ylayout in nchw cl; do
      ytag=${ymode}_${ybatch}_${yamp}_${ylayout}
      [ "$yrep" = 1 ] || ytag+=_r$yrep
      yflag=()
      [ "$ylayout" = cl ] && yflag=(--channels-last)
      run_step "bench_yolo $c $ylayout" 60 15 "$LOG/bench_yolo.$ytag.log" "$BUILD/bench_yolo" --cfg "$YCFG" --mode "$ymode" --batch "$ybatch" --amp "$yamp" ${yflag[@]+"${yflag[@]}"}
      cat "$LOG/bench_yolo.$ytag.log" >>"$LOG/bench_yolo.jsonl"
      run_step "yolo_torch $c $ylayout" 60 15 "$LOG/yolo_torch.$ytag.log" python3 benchmarks/yolo_torch.py --cfg "$YCFG" --mode "$ymode" --batch "$ybatch" --amp "$yamp" ${yflag[@]+"${yflag[@]}"}
      cat "$LOG/yolo_torch.$ytag.log" >>"$LOG/yolo_torch.jsonl"
    done
    done
  done
  [ "${YOLO_EXTRA:-1}" = 1 ] && run_step "bench_yolo train 32 bf16 cl, BN + leaky unfused" 60 10 "$LOG/bench_yolo.unfused.log" env NABLA_DARKNET_FUSED=0 "$BUILD/bench_yolo" --cfg "$YCFG" --mode train --batch 32 --amp bf16 --channels-last --name train_b32_416_bf16_unfused_cl
  cat "$LOG/bench_yolo.unfused.log" >>"$LOG/bench_yolo.jsonl" 2>/dev/null
  # TF32 channels-last training with cuDNN free to pick non-deterministic algorithms (PyTorch's default;
  # Nabla's default keeps to deterministic ones): the one case below 1.0x on 2026-12-03 (0.99x)
  [ "${YOLO_EXTRA:-1}" = 1 ] && run_step "bench_yolo train 32 TF32 cl, non-deterministic cuDNN" 60 10 "$LOG/bench_yolo.nondet.log" env NABLA_CUDNN_DETERMINISTIC=0 "$BUILD/bench_yolo" --cfg "$YCFG" --mode train --batch 32 --amp off --channels-last --name train_b32_416_tf32_nondet_cl
  cat "$LOG/bench_yolo.nondet.log" >>"$LOG/bench_yolo.jsonl" 2>/dev/null
  # The same case with the forward and backward replayed from a CUDA graph (bench_yolo --cuda-graph; SGD
  # eager), against PyTorch eager: its row is train_b32_416_tf32_graph, PyTorch's figure that of the eager case.
  [ "${YOLO_EXTRA:-1}" = 1 ] && run_step "bench_yolo train 32 TF32 cl, CUDA graph" 60 10 "$LOG/bench_yolo.graph.log" "$BUILD/bench_yolo" --cfg "$YCFG" --mode train --batch 32 --amp off --channels-last --cuda-graph
  cat "$LOG/bench_yolo.graph.log" >>"$LOG/bench_yolo.jsonl" 2>/dev/null
  [ "${YOLO_EXTRA:-1}" = 1 ] && run_step "bench_yolo darknet loss on the GPU" 60 5 "$LOG/bench_yolo.darknetloss.log" "$BUILD/bench_yolo" --cfg "$YCFG" --mode train --batch 16 --amp bf16 --loss darknet
  cat "$LOG/bench_yolo.darknetloss.log" >>"$LOG/bench_yolo.jsonl" 2>/dev/null
  [ "${YOLO_EXTRA:-1}" = 1 ] && run_step "bench_yolo darknet loss on the host" 60 5 "$LOG/bench_yolo.darknetloss_host.log" env NABLA_YOLO_LOSS_HOST=1 "$BUILD/bench_yolo" --cfg "$YCFG" --mode train --batch 16 --amp bf16 --loss darknet
  cat "$LOG/bench_yolo.darknetloss_host.log" >>"$LOG/bench_yolo.jsonl" 2>/dev/null
  python3 - "$LOG/bench_yolo.jsonl" "$LOG/yolo_torch.jsonl" <<'EOF2' | tee "$LOG/yolo_compare.txt"
import json, sys
import statistics
rows = {}  # case name without the layout suffix -> {(impl, layout): [records, in run order]}
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        name = str(r.get("name"))
        layout = "cl" if name.endswith("_cl") else "nchw"
        rows.setdefault(name[:-3] if layout == "cl" else name, {}).setdefault((r.get("impl"), layout), []).append(r)
def ips(rs):  # the median over the repeats that gave a figure
    v = [r["img_per_s"] for r in rs or [] if "img_per_s" in r]
    return statistics.median(v) if v else None
def fmt(rs):
    if not rs:
        return "-"
    v = ips(rs)
    return "%.1f" % v if v else "error: " + str(rs[-1].get("error", "-"))[:50]
def ratio(a, b):
    return "%.3fx" % (a / b) if a and b else "-"
print("| yolov3 416² case | Nabla NCHW | PyTorch NCHW | ratio | Nabla CL | PyTorch CL | ratio | best / best |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name in sorted(rows, key=str):
    g = dict(rows[name])
    if name.endswith("_graph"):  # Nabla replaying a CUDA graph: PyTorch's figures are the eager case's
        for k, v in rows.get(name[:-len("_graph")], {}).items():
            if k[0] == "torch":
                g.setdefault(k, v)
    nn_, tn, nc, tc = (g.get(k) for k in (("nabla", "nchw"), ("torch", "nchw"), ("nabla", "cl"), ("torch", "cl")))
    best_n = max([v for v in (ips(nn_), ips(nc)) if v] or [0])
    best_t = max([v for v in (ips(tn), ips(tc)) if v] or [0])
    print(f"| {name} | {fmt(nn_)} | {fmt(tn)} | {ratio(ips(nn_), ips(tn))} | {fmt(nc)} | {fmt(tc)} | "
          f"{ratio(ips(nc), ips(tc))} | {ratio(best_n, best_t)} |")
for name in sorted(rows, key=str):  # with YOLO_REPEAT > 1: each repeat's ratio
    g = rows[name]
    for lay in ("nchw", "cl"):
        a, b = g.get(("nabla", lay)) or [], g.get(("torch", lay)) or []
        if min(len(a), len(b)) > 1:
            rs = [ratio(x.get("img_per_s"), y.get("img_per_s")) for x, y in zip(a, b)]
            print(f"{name} {lay}: ratio per repeat {', '.join(rs)}")
EOF2
fi

# ---- 5f. DLRM training steps (models/dlrm.h) against the same model in PyTorch (benchmarks/dlrm_torch.py) -----
# DLRM_PARTS: a comma list of main (the two batches, 26 x 100k tables), ab (the A/B rows), kaggle (Kaggle-sized
# tables); default all three.
DLRM_PARTS=${DLRM_PARTS:-main,ab,kaggle}
dlrm_want() { [[ ",$DLRM_PARTS," == *",$1,"* ]]; }
if want dlrm && [ -x "$BUILD/bench_dlrm" ]; then
  if dlrm_want main; then
  run_step bench_dlrm 150 60 "$LOG/bench_dlrm.jsonl" "$BUILD/bench_dlrm"
  run_step dlrm_torch 150 0 "$LOG/dlrm_torch.jsonl" python3 benchmarks/dlrm_torch.py
  python3 scripts/dlrm_compare.py "DLRM 26 x 100k x 128, SGD, TF32" "$LOG/bench_dlrm.jsonl" \
    "$LOG/dlrm_torch.jsonl" | tee "$LOG/dlrm_compare.txt"
  fi
  if dlrm_want ab; then
  # The parts of the batch-65,536 step, A/B in the same call (docs/dlrm.md, "All tables at once"): the
  # per-table lookups, and linear's weight gradient without the row chunks.
  run_step bench_dlrm_ab 90 30 "$LOG/bench_dlrm_ab.jsonl" bash -c "'$BUILD/bench_dlrm' --batch 65536 --modes sparse \
    --embeddings per-table; NABLA_LINEAR_SPLIT_WGRAD=0 '$BUILD/bench_dlrm' --batch 65536 --modes sparse"
  python3 - "$LOG/bench_dlrm.jsonl" "$LOG/bench_dlrm_ab.jsonl" <<'EOF' | tee -a "$LOG/dlrm_compare.txt"
import json, sys
print("DLRM batch 65,536, sparse tables, Nabla variants | embeddings | split weight grad | samples/s | ms/step")
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("batch") == 65536 and r.get("mode") == "sparse":
            print("| %s | %s | %s | %s" % (r.get("embeddings"), r.get("split_wgrad"),
                  "%.0f" % r["samples_per_s"] if "samples_per_s" in r else r.get("error", "-")[:40],
                  "%.2f" % r["ms_per_step"] if "ms_per_step" in r else "-"))
EOF
  fi
  # Kaggle-sized tables: the reference's 26 Kaggle cardinalities capped at 10M rows (--max-ind-range), 33.6M
  # rows x 16 (2.15 GB f32), the reference's Kaggle MLPs, both sides, dense and sparse tables, batches 2,048
  # and 65,536 (about 60 s in all; the tables are initialised on the device on the PyTorch side).
  if dlrm_want kaggle; then
  KAGGLE_ARGS="--sizes kaggle --dim 16 --bottom 13-512-256-64-16 --top 512-256-1"
  run_step bench_dlrm_kaggle 75 30 "$LOG/bench_dlrm_kaggle.jsonl" "$BUILD/bench_dlrm" $KAGGLE_ARGS
  run_step dlrm_torch_kaggle 75 0 "$LOG/dlrm_torch_kaggle.jsonl" python3 benchmarks/dlrm_torch.py $KAGGLE_ARGS
  python3 scripts/dlrm_compare.py --init \
    "DLRM Kaggle tables (26, 33,631,350 rows x 16), MLPs 13-512-256-64-16 / 512-256-1, SGD, TF32" \
    "$LOG/bench_dlrm_kaggle.jsonl" "$LOG/dlrm_torch_kaggle.jsonl" | tee -a "$LOG/dlrm_compare.txt"
  fi
fi

# ---- 5g. GPT-2 124M (models/gpt.h): training step and generation against plain PyTorch -------------------------
# bench_gpt with the composed and the fused causal attention, benchmarks/gpt_torch.py eager and compiled; one
# table with tokens/s, peak memory and the ratios to PyTorch eager (> 1: Nabla faster). B 16, T 1024, bf16.
if want gpt && [ -x "$BUILD/bench_gpt" ]; then
  run_step bench_gpt_composed 120 60 "$LOG/bench_gpt_composed.jsonl" "$BUILD/bench_gpt" --attention composed
  run_step bench_gpt_fused 120 50 "$LOG/bench_gpt_fused.jsonl" "$BUILD/bench_gpt" --attention fused
  run_step gpt_torch 200 0 "$LOG/gpt_torch.jsonl" python3 benchmarks/gpt_torch.py
  python3 - "$LOG/bench_gpt_composed.jsonl" "$LOG/bench_gpt_fused.jsonl" "$LOG/gpt_torch.jsonl" <<'EOF' | tee "$LOG/gpt_compare.txt"
import json, sys
rows = []
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and "impl" in r:
            rows.append(r)
ref = {}
for r in rows:
    if r["impl"] == "torch_eager" and "tok_per_s" in r:
        ref[(r["what"], r.get("batch"))] = r["tok_per_s"]
print("GPT-2 124M, B 16 x T 1024, bf16: case | impl | tokens/s | vs torch eager | peak GiB")
for r in rows:
    if "error" in r:
        print("%s | %s | error: %s" % (r["what"], r["impl"], r["error"][:120]))
        continue
    key = (r["what"], r.get("batch"))
    ratio = r["tok_per_s"] / ref[key] if key in ref else float("nan")
    what = "train step" if r["what"] == "train" else "generate b=%d" % r["batch"]
    print("%s | %s | %.0f | %.2fx | %s" % (what, r["impl"], r["tok_per_s"], ratio,
                                          "%.2f" % r["peak_mem_gib"] if "peak_mem_gib" in r else "-"))
EOF
fi

# ---- 5h. BERT pretraining steps (MLM + NSP, AdamW) against Hugging Face's BertForPreTraining (SDPA) --------
if want bert && [ -x "$BUILD/bench_bert" ]; then
  run_step bench_bert 200 60 "$LOG/bench_bert.jsonl" "$BUILD/bench_bert"
  run_step bert_torch 150 0 "$LOG/bert_torch.jsonl" python3 benchmarks/bert_torch.py
  python3 - "$LOG/bench_bert.jsonl" "$LOG/bert_torch.jsonl" <<'EOF' | tee "$LOG/bert_compare.txt"
import json, sys
rows, errors = {}, []
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        key = (r.get("name"), r.get("precision"))
        impl = "torch" if r.get("impl") == "torch" else "nabla_" + r.get("attention", "?")
        if "error" in r:
            errors.append(f"{impl} {key}: {r['error'][:200]}")
        elif "seq_per_s" in r:
            rows.setdefault(key, {})[impl] = r
impls = ["nabla_composed", "nabla_fused", "torch"]
print("BERT pretraining step (MLM + NSP, AdamW), seq/s (peak MiB); ratios against PyTorch")
print("| case | precision | " + " | ".join(impls) + " | composed / torch | fused / torch |")
print("| --- | --- | " + " | ".join("---" for _ in impls) + " | --- | --- |")
for key in sorted(rows, key=str):
    r = rows[key]
    cell = lambda i: "%.0f (%.0f)" % (r[i]["seq_per_s"], r[i]["peak_mib"]) if i in r else "-"
    ratio = lambda i: "%.2fx" % (r[i]["seq_per_s"] / r["torch"]["seq_per_s"]) if i in r and "torch" in r else "-"
    print(f"| {key[0]} | {key[1]} | " + " | ".join(cell(i) for i in impls) +
          f" | {ratio('nabla_composed')} | {ratio('nabla_fused')} |")
for e in errors:
    print("error:", e)
EOF
fi

# ---- 5i. inspect: a traced ResNet-50 step on the GPU (docs/inspect.md) ------------------------------------
# train_classifier on synthetic 224² images, batch 64, 30 steps: once plain, once under NABLA_TRACE (every
# kernel with its host time, and its device time from CUDA events on the "GPU 0" compute/copy tracks). The
# 25th step is rendered to $LOG/resnet50_step.svg (scripts/trace_to_svg.py; no browser needed), with the
# kernels that take the most device time; nabla_inspect prints the model's summary, and the live tensors of
# one training step by creating op ($LOG/resnet50_live_tensors.json; the text in $LOG/inspect.log). The median
# steps of the two runs give the cost of tracing, and nabla_inspect trace-cost measures it again in one process.
# The device tool brings back at most 8 files from $OUT, so this part keeps its step logs and the trace JSON
# (tens of MiB) in $ILOG and puts three files in $LOG: the SVG, the snapshot JSON and inspect.log (every
# step log's text, concatenated).
ILOG=${INSPECT_LOG_DIR:-$BUILD/inspect_logs}
if want inspect; then
  mkdir -p "$ILOG" && ILOG=$(cd "$ILOG" && pwd)
  INSPECT_ARGS=(--device cuda --model resnet50 --dataset synthetic --image-size 224 --classes 1000 --channels 3
    --batch-size 64 --epochs 1 --limit-train 1920 --max-steps 30)
  run_step inspect_summary 30 180 "$ILOG/inspect_summary.log" "$BUILD/nabla_inspect" summary --model resnet50
  tail -n 2 "$ILOG/inspect_summary.log"
  run_step inspect_plain 120 130 "$ILOG/inspect_plain.log" "$BUILD/train_classifier" "${INSPECT_ARGS[@]}"
  run_step inspect_traced 120 70 "$ILOG/inspect_traced.log" env NABLA_TRACE="$ILOG/resnet50_trace.json" \
    "$BUILD/train_classifier" "${INSPECT_ARGS[@]}"
  run_step inspect_svg 60 0 "$ILOG/inspect_svg.log" python3 scripts/trace_to_svg.py "$ILOG/resnet50_trace.json" \
    "$LOG/resnet50_step.svg" --step 25 --top 8 --title "Nabla: one ResNet-50 training step, batch 64, 224², H200"
  cat "$ILOG/inspect_svg.log"
  grep -h '^throughput' "$ILOG/inspect_plain.log" "$ILOG/inspect_traced.log"
  # The live tensors of one training step (engine/memory.h snapshot): after forward and loss, and after the step.
  run_step inspect_memory 60 90 "$ILOG/inspect_memory.log" "$BUILD/nabla_inspect" memory --model resnet50 \
    --batch 64 --device cuda --rows 30 --json "$LOG/resnet50_live_tensors.json"
  sed -n '1,60p' "$ILOG/inspect_memory.log"
  # The same cost in one process, untraced and traced steps alternating (less exposed to drift).
  run_step inspect_cost 90 0 "$ILOG/inspect_cost.log" "$BUILD/nabla_inspect" trace-cost --model resnet50 --batch 64 \
    --device cuda --pairs 10
  cat "$ILOG/inspect_cost.log"
  for f in summary plain traced svg memory cost; do
    printf '\n==== %s\n' "inspect_$f.log"
    cat "$ILOG/inspect_$f.log" 2>/dev/null
  done >"$LOG/inspect.log"
fi

# ---- 5j. DARTS / B-DARTS search step (algorithms/nas search_step) against the same supernets in plain PyTorch --
# bench_darts and benchmarks/darts_torch.py: one first-order search step (architecture step on a validation
# batch, Adam on the alphas; weight step on a training batch, SGD momentum, clip 5) on the BCNN supernet (3 cells)
# and the 8-cell DARTS supernet, C 16, 32², batches DARTS_BATCHES (default 256,64): Nabla eager and with the two
# forward + backward passes replayed from CUDA graphs (nas::GraphedSearchStep), PyTorch eager; one table: ms/step,
# the ratios (> 1: Nabla faster), the graph run's final loss against the eager run's, peak memory, and both
# parameter counts (checked equal).
if want darts && [ -x "$BUILD/bench_darts" ]; then
  DARTS_ARGS=(--batches "${DARTS_BATCHES:-256,64}" --steps "${DARTS_STEPS:-6}" --windows 3 --warmup 5)
  run_step bench_darts 110 60 "$LOG/bench_darts.jsonl" "$BUILD/bench_darts" "${DARTS_ARGS[@]}"
  run_step darts_torch 100 0 "$LOG/darts_torch.jsonl" python3 benchmarks/darts_torch.py "${DARTS_ARGS[@]}"
  python3 - "$LOG/bench_darts.jsonl" "$LOG/darts_torch.jsonl" <<'EOF' | tee "$LOG/darts_compare.txt"
import json, sys
rows = {}
for side, path in (("nabla", sys.argv[1]), ("torch", sys.argv[2])):
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "net" in r and "batch" in r:
            key = "graph" if r.get("mode") == "graph" else side
            rows.setdefault((r["net"], r["batch"]), {})[key] = r
def ms(r):
    return r.get("ms_per_step") if r else None
def cell(r, key, fmt):
    return fmt % r[key] if r and key in r else (str(r.get("error", "-"))[:40] if r else "-")
def ratio(a, b):
    return "%.2fx" % (ms(b) / ms(a)) if ms(a) and ms(b) else "-"
print("| DARTS search step, first order, C 16, 32² | batch | Nabla eager ms | Nabla graph ms | PyTorch eager ms |"
      " eager / PyTorch | graph / PyTorch | graph loss vs eager | Nabla peak MiB | PyTorch peak MiB |"
      " parameters (Nabla = PyTorch) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (net, b) in sorted(rows, key=lambda k: (k[0] != "bcnn", -k[1])):
    n, g, t = (rows[(net, b)].get(k) for k in ("nabla", "graph", "torch"))
    pn, pt = (n or {}).get("params"), (t or {}).get("params")
    params = "-" if not (pn and pt) else (f"{pn:,} = {pt:,}" if pn == pt else f"MISMATCH {pn:,} != {pt:,}")
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (net, b, cell(n, "ms_per_step", "%.1f"),
          cell(g, "ms_per_step", "%.1f"), cell(t, "ms_per_step", "%.1f"), ratio(n, t), ratio(g, t),
          cell(g, "loss_rel_diff", "%.1e"), cell(n, "peak_mib", "%.0f"), cell(t, "peak_mib", "%.0f"), params))
EOF
fi

# ---- 6. multi-GPU -----------------------------------------------------------------------------------------
# Multi-GPU (dist/): NCCL tests, all-reduce bandwidth, data-parallel ResNet-50 against PyTorch DDP; only with
# >= 2 GPUs (scripts/dist_check.sh prints its own table; its last lines are repeated in the summary).
if want dist && [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -ge 2 ]; then
  run_step dist_check 400 0 "$LOG/dist_check.log" bash scripts/dist_check.sh "$BUILD" "$LOG/dist"
  sed -n '/dist_check summary/,$p' "$LOG/dist_check.log"
fi

# ---- 7. summary (last) -----------------------------------------------------------------------------------
ctest_line=$(grep -E 'tests passed' "$LOG/ctest.log" 2>/dev/null | tail -n 1)
ctest_failed=$(sed -n '/The following tests FAILED:/,$p' "$LOG/ctest.log" 2>/dev/null |
  grep -E '^[[:space:]]+[0-9]+ - ' | sed -E 's/^[[:space:]]+[0-9]+ - //; s/ \(.*$//' | head -n 12 | paste -sd, -)
cuda_count() { grep -E "^\[  $1 *\] [0-9]+ tests?" "$LOG/cuda_tests.log" 2>/dev/null | tail -n 1 | awk '{print $4}'; }
cuda_failed=$(sed -n '/tests\?, listed below:/,$p' "$LOG/cuda_tests.log" 2>/dev/null |
  grep -E '^\[  FAILED  \] [A-Za-z_]' | awk '{print $4}' | sed 's/,$//' | sort -u | head -n 12 | paste -sd, -)

echo
echo "==================== gpu_check summary ===================="
printf '%-18s %-34s %s\n' step status seconds
for i in "${!STEP_NAMES[@]}"; do
  printf '%-18s %-34s %s\n' "${STEP_NAMES[$i]}" "${STEP_STATUS[$i]}" "${STEP_SECS[$i]}"
done
echo "ctest:            ${ctest_line:-no summary line}${ctest_failed:+ | failed: $ctest_failed}"
echo "nabla_cuda_tests: $(cuda_count PASSED || true) passed, $(cuda_count FAILED || true) failed, $(cuda_count SKIPPED || true) skipped${cuda_failed:+ | failed: $cuda_failed}"
if [ -s "${NABLA_JSONL:-}" ]; then  # the op benchmarks ran (part core)
  echo "benchmarks, Nabla/PyTorch throughput (>1: Nabla faster):"
  python3 benchmarks/compare_gpu.py --brief "$NABLA_JSONL" "$TORCH_JSONL" 2>&1 | sed 's/^/  /'
fi
grep -E '^add_' "$LOG/compare.txt" 2>/dev/null | sed 's/^/  /'
grep -E '^epoch 10/10' "$LOG/train_classifier.log" 2>/dev/null | sed 's/^/lenet5 cuda: /'
if [ -s "$LOG/resnet_nabla.jsonl" ]; then
  echo "resnet training steps, Nabla/PyTorch img/s (>1: Nabla faster):"
  python3 benchmarks/compare_resnet.py "$LOG/resnet_nabla.jsonl" "$LOG/resnet_torch.jsonl" 2>&1 | sed 's/^/  /'
fi
sed -n '2,$p' "$LOG/gpt_compare.txt" 2>/dev/null | sed 's/^/gpt: /'
sed -n '3,$p' "$LOG/darts_compare.txt" 2>/dev/null | sed 's/^/darts search step: /'
grep -E '^workers' "$LOG/resnet_pipeline.log" 2>/dev/null | sed 's/^/jpeg pipeline: /'
grep -E '^epoch 20/20|^throughput' "$LOG/resnet20_fmnist.log" 2>/dev/null | sed 's/^/resnet20 fmnist cuda: /'
grep -E '^epoch 20/20|^throughput' "$LOG/resnet20_fmnist_graph.log" 2>/dev/null | sed 's/^/resnet20 fmnist cuda graph: /'
sed -n '/dist_check summary/,$p' "$LOG/dist_check.log" 2>/dev/null
grep '^{' "$LOG/bench_vrgd.log" 2>/dev/null | tail -n 1 | python3 -c 'import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("vrgd step cost (%s, batch %d, k=%d): fwd+bwd %.1f ms, VR overhead %.2f ms (%.1f%%), rank mode %.2f ms (%.1f%%), op-by-op rank mode %s ms, whole step +%.1f%%" % (
        r["model"], r["batch"], r["k"], r["fwd_bwd_ms"], r["vr_overhead_ms"], 100 * r["overhead_fraction"], r["rank_mode_overhead_ms"],
        100 * r["rank_mode_overhead_fraction"], r.get("rank_mode_reference_ms", "-"), 100 * r["step_overhead_fraction"]))' 2>/dev/null
if want inspect && [ -s "$ILOG/inspect_traced.log" ]; then  # part inspect
  plain_ms=$(grep -o 'median step [0-9.]* ms' "$ILOG/inspect_plain.log" | awk '{print $3}')
  traced_ms=$(grep -o 'median step [0-9.]* ms' "$ILOG/inspect_traced.log" | awk '{print $3}')
  echo "inspect: resnet50 b64 224² cuda, median step ${plain_ms:-?} ms untraced, ${traced_ms:-?} ms under NABLA_TRACE;" \
    "trace $(du -h "$ILOG/resnet50_trace.json" 2>/dev/null | cut -f1), picture $LOG/resnet50_step.svg"
  grep -h '^trace cost' "$ILOG/inspect_cost.log" 2>/dev/null | sed 's/^/inspect: /'
  grep -h -A1 '^after forward' "$ILOG/inspect_memory.log" 2>/dev/null | tail -n 1 | sed 's/^/inspect: after forward, /'
  ls -l "$LOG/resnet50_step.svg" "$LOG/resnet50_live_tensors.json" 2>/dev/null | sed 's/^/inspect: /'
fi
echo "total $(elapsed) s; logs in $LOG"

#!/usr/bin/env bash
# train_classifier under mpirun -n 2 (ctest: dist_train_classifier_mpirun): a few data-parallel steps of
# LeNet-5 on Fashion-MNIST must finish, print the epoch line once (rank 0 only), announce the data-parallel
# set-up, and refuse a global batch that the ranks cannot split evenly.
#   bash tests/dist/train_classifier_mpirun.sh BUILD_DIR MPIEXEC
set -uo pipefail
build=${1:?build dir}
mpiexec=${2:-mpirun}
data=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -d "$data" ]; then
  echo "SKIP: no Fashion-MNIST at $data (Debian package dataset-fashion-mnist)"
  exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NABLA_DIST_TIMEOUT=60
# BLAS threads pinned to one, for every rank and for the single-process runs they are compared with. The
# comparisons below hold the two runs to the summation-order noise of one thread each (VRGD: 1e-4 relative
# L2 on the parameters). The OpenMP build of OpenBLAS follows OMP_NUM_THREADS (and --threads), but the
# pthread build (the GPU machine's only one) ignores both and starts a thread per core of its own, whose
# GEMM splits change with the machine's core count and differ between a 2-rank run (two BLAS instances
# competing for the cores) and a single process: there the VRGD comparison drifted to 1.39e-3. With
# OPENBLAS_NUM_THREADS=1 every GEMM sums in the same order on every machine (here 6.6e-6).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 GOTO_NUM_THREADS=1 MKL_NUM_THREADS=1
# -x: Open MPI passes only what it is told to the ranks it starts (on this host it copies the whole
# environment, on other nodes not): name the pinning variables explicitly.
run() {
  "$mpiexec" --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x GOTO_NUM_THREADS \
    -x MKL_NUM_THREADS -n 2 "$build/train_classifier" --data-dir "$data" "$@" 2>&1
}
fail() {
  echo "FAIL: $*"
  exit 1
}

args=(--epochs 1 --limit-train 768 --batch-size 64 --warmup-steps 0 --no-progress --eval-batch-size 500 --threads 1)
out=$(run "${args[@]}")
rc=$?
echo "$out"
[ $rc -eq 0 ] || fail "exit code $rc"
# The loader's shards of a global batch are exactly the single-process batch, and gradients are averaged:
# one process with the same options must reach the same loss and accuracy (up to f32 summation order).
single=$("$build/train_classifier" --data-dir "$data" "${args[@]}" 2>&1) || fail "single-process run: $single"
echo "$single"
python3 - "$out" "$single" <<'PY' || fail "data-parallel and single-process runs differ"
import re, sys
def nums(s):
    m = re.search(r"train loss ([0-9.]+) \| train acc ([0-9.]+)% \| test acc ([0-9.]+)%", s)
    return [float(x) for x in m.groups()]
dp, one = nums(sys.argv[1]), nums(sys.argv[2])
print("data-parallel", dp, "single", one)
ok = abs(dp[0] - one[0]) <= 2e-3 and abs(dp[1] - one[1]) <= 0.5 and abs(dp[2] - one[2]) <= 0.3
sys.exit(0 if ok else 1)
PY
[ "$(grep -c '^epoch 1/1 ' <<<"$out")" -eq 1 ] || fail "expected exactly one 'epoch 1/1' line (rank 0 prints alone)"
[ "$(grep -c '^model lenet5' <<<"$out")" -eq 1 ] || fail "expected exactly one model line"
grep -q '^data-parallel: 2 processes (mpirun, mpi) | global batch 64 = 2 x 32 per rank' <<<"$out" ||
  fail "no data-parallel line"
# The test accuracy is a count over the whole test set (sharded, summed): a percentage with two decimals.
grep -qE 'test acc [0-9]+\.[0-9]{2}%' <<<"$out" || fail "no test accuracy"

# VRGD in rank mode: 2 ranks x 2 micro-batches each are the same 4 partitions as 4 strided micro-batches in
# one process (apps/common/vrgd_step.h), so VR-SGD must reach the same loss and accuracies.
vr_args=(--epochs 1 --limit-train 2048 --batch-size 128 --warmup-steps 0 --no-progress --eval-batch-size 500
  --threads 1 --optimizer vr-momentum --gsnr-partitions 4 --lr 0.3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$(run "${vr_args[@]}" --checkpoint "$tmp/ranks.ckpt" --metrics "$tmp/ranks.jsonl") ||
  fail "VR data-parallel run: $out"
echo "$out"
single=$("$build/train_classifier" --data-dir "$data" "${vr_args[@]}" --checkpoint "$tmp/micro.ckpt" \
  --metrics "$tmp/micro.jsonl" 2>&1) || fail "VR single-process run: $single"
echo "$single"
# The same check as scripts/scale_check.sh part 3 (there on GPUs): per-layer GSNR statistics and the final
# parameters (from the checkpoints) agree, not just the loss.
echo "$out" >"$tmp/ranks.log"
echo "$single" >"$tmp/micro.log"
python3 "$(dirname "${BASH_SOURCE[0]}")/../../scripts/compare_vr_runs.py" "$tmp/ranks" "$tmp/micro" 0 0 2 ||
  fail "VRGD rank mode and micro-batch mode: GSNR or parameters differ"
grep -q '^VRGD: 4 partitions of 32 examples per step (2 per rank)' <<<"$out" || fail "no VRGD rank-mode line"
python3 - "$out" "$single" <<'PY' || fail "VRGD rank mode and micro-batch mode differ"
import re, sys
def nums(s):
    m = re.search(r"train loss ([0-9.]+) \| train acc ([0-9.]+)% \| test acc ([0-9.]+)%", s)
    return [float(x) for x in m.groups()]
dp, one = nums(sys.argv[1]), nums(sys.argv[2])
print("VRGD ranks", dp, "micro-batches", one)
sys.exit(0 if abs(dp[0] - one[0]) <= 2e-3 and abs(dp[1] - one[1]) <= 0.5 and abs(dp[2] - one[2]) <= 0.3 else 1)
PY

out=$(run --epochs 1 --max-steps 2 --limit-train 256 --batch-size 63 --no-progress)
rc=$?
echo "$out"
[ $rc -ne 0 ] || fail "--batch-size 63 on 2 ranks should fail"
grep -q "must be a multiple of the 2 processes" <<<"$out" || fail "no clear error for an indivisible batch"
echo "PASS"

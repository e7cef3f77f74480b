#!/usr/bin/env bash
# scripts/launch.sh (ctest: dist_launcher): every rank gets its torchrun-style environment; a rank that dies
# ends the others at once and its exit code is the launcher's; and a CPU train_classifier started as a
# torchrun-style rank (CPU collectives need mpirun) stops at once with an error that says what to do. (A peer
# that never arrives at the TCP rendezvous is tested in tests/dist/test_startup.cpp.)
#   bash tests/dist/launcher.sh BUILD_DIR
set -uo pipefail
build=${1:?build dir}
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
fail() {
  echo "FAIL: $*"
  exit 1
}
port=$((29500 + RANDOM % 2000))

# 1. The environment of each rank.
out=$(scripts/launch.sh -n 3 --port "$port" -- bash -c 'echo "rank=$RANK world=$WORLD_SIZE local=$LOCAL_RANK addr=$MASTER_ADDR port=$MASTER_PORT"')
rc=$?
echo "$out"
[ $rc -eq 0 ] || fail "3 ranks that all succeed: launcher exit $rc"
for r in 0 1 2; do
  grep -q "rank=$r world=3 local=$r addr=127.0.0.1 port=$port" <<<"$out" || fail "rank $r's environment"
done

# 2. Rank 1 dies with code 5 while rank 0 would wait a minute: the launcher ends rank 0 and returns 5.
start=$(date +%s)
scripts/launch.sh -n 2 --port "$((port + 1))" -- bash -c '[ "$RANK" = 1 ] && exit 5; sleep 60'
rc=$?
secs=$(($(date +%s) - start))
echo "a rank died with 5: launcher exit $rc after $secs s"
[ $rc -eq 5 ] || fail "expected the dead rank's exit code 5, got $rc"
[ $secs -lt 20 ] || fail "the surviving rank was not ended promptly ($secs s)"

# 3. A CPU run as rank 0 of 2 without mpirun: a clear error, not a wait for a peer (synthetic data, so the
#    check does not depend on Fashion-MNIST being installed, as on the GPU machine).
start=$(date +%s)
out=$(RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((port + 2)) NABLA_DIST_TIMEOUT=2 \
  "$build/train_classifier" --dataset synthetic --max-steps 1 --batch-size 32 --no-progress 2>&1)
rc=$?
secs=$(($(date +%s) - start))
echo "$out" | tail -n 3
[ $rc -ne 0 ] || fail "a CPU run of 2 torchrun-style ranks should fail"
grep -q "needs MPI" <<<"$out" && grep -q "mpirun" <<<"$out" || fail "no clear error naming mpirun"
[ $secs -lt 30 ] || fail "took $secs s"
echo PASS

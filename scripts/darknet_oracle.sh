#!/usr/bin/env bash
# Darknet as the oracle for models/darknet: runs Debian's darknet (libdarknet and the `darknet` binary) on a
# cfg, a .weights file and an image, and leaves what tests/models/test_darknet.cpp compares against.
#
#   scripts/darknet_oracle.sh <cfg> <weights> <image> <outdir> [thresh=0.5] [dump_all=0]
#
# outdir gets: image.bin, input.bin, layer_NNN.bin, dets.txt (see tests/models/fixtures/darknet_oracle.c)
# and detector_test.txt, the output of `darknet detector test` (the "name: NN%" lines) on the same files.
# Exits 77 (skip) when darknet or its header is not installed (Debian package `darknet`).
set -euo pipefail
if [[ $# -lt 4 ]]; then
  sed -n '2,9p' "$0"
  exit 2
fi
cfg=$(realpath "$1") weights=$(realpath "$2") img=$(realpath "$3") out=$4 thresh=${5:-0.5} dump_all=${6:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
inc=/usr/lib/darknet/include lib=/usr/lib/darknet
if [[ ! -f $inc/darknet.h || ! -f $lib/libdarknet.so || ! -x /usr/bin/darknet ]]; then
  echo "darknet_oracle: Debian's darknet is not installed (apt-get install darknet): skipping" >&2
  exit 77
fi
mkdir -p "$out"
out=$(realpath "$out")
bin=$out/darknet_oracle
src=$here/tests/models/fixtures/darknet_oracle.c
if [[ ! -x $bin || $src -nt $bin ]]; then
  cc -O2 -o "$bin" "$src" -I"$inc" -L"$lib" -ldarknet -Wl,-rpath,"$lib" -lm
fi
# libdarknet is single-threaded on the CPU; its stderr (the layer table) goes to a log.
"$bin" "$cfg" "$weights" "$img" "$out" "$thresh" "$dump_all" 2>"$out/oracle.log"
# The binary, as a user runs it. It loads data/labels/*.png and writes predictions.jpg in its working
# directory, so it runs inside outdir with data/ linked to Debian's.
classes=$(grep -m1 -E '^\s*classes\s*=' "$cfg" | tr -d ' ' | cut -d= -f2)
names=/usr/share/darknet/data/coco.names
if [[ ${classes:-80} != 80 ]]; then
  names=$out/names.txt
  seq 0 $((classes - 1)) | sed 's/^/class/' >"$names"
fi
printf 'classes=%s\nnames=%s\n' "${classes:-80}" "$names" >"$out/oracle.data"
ln -sfn /usr/share/darknet/data "$out/data"
(cd "$out" && QT_QPA_PLATFORM=offscreen darknet detector test "$out/oracle.data" "$cfg" "$weights" "$img" \
  -thresh "$thresh" -out "$out/predictions" >"$out/detector_test.txt" 2>"$out/detector_test.log")
echo "darknet_oracle: wrote $out ($(wc -l <"$out/dets.txt") detections)"

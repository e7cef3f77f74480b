#!/usr/bin/env bash
# Downloads what the GPU machine lacks into .gpu-deps/ (ignored by git), to be named in the device call's
# `carry`: Debian 12's Boost 1.74 headers and Program_options library (the GPU machine has Boost 1.83 headers
# only; headers and library must be of one version). scripts/gpu_check.sh unpacks them with `dpkg -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .gpu-deps
grep -qxF '/.gpu-deps/' .git/info/exclude 2>/dev/null || grep -qxF '/.gpu-deps/' .gitignore || echo '/.gpu-deps/' >>.gitignore
cd .gpu-deps
apt-get download libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0
ls -l

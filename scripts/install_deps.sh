#!/usr/bin/env bash
# Installs the Debian 12 packages Nabla needs (scripts/debian-packages.txt), only those missing.
# Optional extras: pass --extras for python3-torch (reference checks, benchmarks) and python3-matplotlib (plots).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mapfile -t pkgs < <(grep -v '^\s*#' "$here/debian-packages.txt" | sed '/^\s*$/d')
if [[ "${1:-}" == "--extras" ]]; then pkgs+=(python3-torch python3-matplotlib); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

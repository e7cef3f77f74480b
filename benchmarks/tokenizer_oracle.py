#!/usr/bin/env python3
"""Compares Nabla's tokenizers with Hugging Face's on every line of the sentiment data.

Nabla's ids come from the test driver TokenizerDump.WritesIdsForTheOracle in nabla_data_tests; Hugging Face's
from BertTokenizer (the same vocab.txt, do_lower_case=True) and GPT2TokenizerFast (the same encoder.json and
vocab.bpe). Every distinct non-empty line of every file under the data folder is one text (sentences, with
their labels where the file has them on the same line). Prints the first mismatches of each tokenizer and a
count; BERT pairs (text i with text i + 1 for the first 2,000, truncated longest-first to 32 and padded)
are compared too. Exits 1 on any mismatch.

Run on the GPU machine (it has transformers), from the repository root, after building nabla_data_tests and
running scripts/prepare_tokenizers.sh here (carry .cache/tokenizers and a copy of ../shared/data/sentiment):
  python3 benchmarks/tokenizer_oracle.py --build build --data .gpu-data/sentiment --tokenizers .cache/tokenizers
Steps can be split: --stage extract (standard library only, any Python), dump (needs the build), compare
(needs transformers).
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


def compare(tokenizers_dir, texts_path, ids_path, show):
    import transformers
    from transformers import BertTokenizer, GPT2TokenizerFast

    bert = BertTokenizer(vocab_file=os.path.join(tokenizers_dir, "bert-base-uncased", "vocab.txt"), do_lower_case=True)
    gpt = GPT2TokenizerFast(vocab_file=os.path.join(tokenizers_dir, "gpt2", "encoder.json"),
                            merges_file=os.path.join(tokenizers_dir, "gpt2", "vocab.bpe"))
    print(f"transformers {transformers.__version__}: {type(bert).__name__}, {type(gpt).__name__}")
    texts = [json.loads(l) for l in open(texts_path, encoding="utf-8")]
    ours = [json.loads(l) for l in open(ids_path, encoding="utf-8")]
    assert len(texts) == len(ours), f"{len(texts)} texts but {len(ours)} rows of ids"
    failed = 0
    for key, tok in (("bert", bert), ("gpt2", gpt)):
        theirs = tok(texts, add_special_tokens=False)["input_ids"]
        bad = [i for i in range(len(texts)) if theirs[i] != ours[i][key]]
        print(f"{key}: {len(texts) - len(bad)}/{len(texts)} texts give identical ids, {len(bad)} mismatches")
        for i in bad[:show]:
            print(f"  text {texts[i]!r}\n    ours {ours[i][key]}\n    hf   {theirs[i]}")
        failed += len(bad)
    # Pairs with longest-first truncation and padding (BERT): text i with text i + 1, as the driver pairs them.
    n = sum(1 for row in ours if "pair" in row)
    enc = bert(texts[:n], texts[1:n + 1], truncation="longest_first", max_length=32, padding="max_length")
    keys = ("input_ids", "token_type_ids", "attention_mask")
    bad = [i for i in range(n) if any(list(enc[k][i]) != ours[i]["pair"][k] for k in keys)]
    print(f"bert pairs (max_length 32, padded): {n - len(bad)}/{n} identical, {len(bad)} mismatches")
    for i in bad[:show]:
        print(f"  pair {texts[i]!r} | {texts[i + 1]!r}")
        for k in keys:
            print(f"    {k}: ours {ours[i]['pair'][k]}\n    {' ' * len(k)}  hf   {list(enc[k][i])}")
    failed += len(bad)
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build folder with nabla_data_tests")
    ap.add_argument("--data", default="../shared/data/sentiment", help="folder of text files")
    ap.add_argument("--tokenizers", default=".cache/tokenizers", help="output of scripts/prepare_tokenizers.sh")
    ap.add_argument("--work", default=".cache/tokenizer_oracle", help="folder for texts.jsonl and ids.jsonl")
    ap.add_argument("--stage", choices=["all", "extract", "dump", "compare"], default="all")
    ap.add_argument("--show", type=int, default=10, help="mismatches printed per tokenizer")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    texts, ids = os.path.join(a.work, "texts.jsonl"), os.path.join(a.work, "ids.jsonl")
    if a.stage in ("all", "extract"):
        extract(a.data, texts)
    if a.stage in ("all", "dump"):
        dump(a.build, a.tokenizers, texts, ids)
    if a.stage in ("all", "compare"):
        failed = compare(a.tokenizers, texts, ids, a.show)
        print("tokenizer oracle:", "PASS" if failed == 0 else f"FAIL ({failed} mismatches)")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Plots a train_bert pretraining metrics file (JSONL) as a PNG: the training loss (MLM + NSP) of the logged
steps, the held-out MLM loss of each evaluation, and the unigram baseline of the held-out text.

  /usr/bin/python3 scripts/plot_bert_pretraining.py pre.jsonl -o pre.png [--title "bert-tiny, CPU"]

Records used (apps/train_bert.cpp): {"kind": "baseline", "unigram_nats"}, {"kind": "step", "step", "loss"},
{"kind": "eval", "step", "mlm_loss"}. The file is appended to: the last run (from its last "baseline" record)
is plotted. Needs Debian's matplotlib (/usr/bin/python3); the Agg backend, no display.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("metrics")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--title", default="BERT pretraining")
    a = p.parse_args()
    records = [json.loads(line) for line in open(a.metrics) if line.strip()]
    starts = [i for i, r in enumerate(records) if r.get("kind") == "baseline"]
    if not starts:
        raise SystemExit(f"{a.metrics}: no baseline record (not a train_bert pretraining file?)")
    run = records[starts[-1]:]
    unigram = run[0]["unigram_nats"]
    steps = [(r["step"], r["loss"]) for r in run if r.get("kind") == "step"]
    evals = [(r["step"], r["mlm_loss"]) for r in run if r.get("kind") == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if steps:
        ax.plot(*zip(*steps), color="0.6", lw=1, label="training loss (MLM + NSP)")
    if evals:
        ax.plot(*zip(*evals), "o-", color="C0", label="held-out MLM loss")
    ax.axhline(unigram, color="C3", ls="--", label=f"unigram baseline {unigram:.2f} nats")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.set_title(a.title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"{a.out}: {len(steps)} steps, {len(evals)} evaluations")


if __name__ == "__main__":
    main()

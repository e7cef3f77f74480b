"""Plots a train_classifier metrics file (JSONL) as a PNG: training loss per step, and accuracy per epoch.

  /usr/bin/python3 scripts/plot_metrics.py run.jsonl -o run.png
  /usr/bin/python3 scripts/plot_metrics.py run.jsonl -o run.png --smooth 0.95 --title "LeNet-5, lr 0.05"

The file holds one JSON object per line, written by apps/train_classifier.cpp:
  {"kind": "step",  "step", "epoch" (0-based), "loss", "lr", "step_ms", "img_per_s"}   every 10th step and the last
  {"kind": "epoch", "epoch" (1-based), "step", "train_loss", "train_acc", "test_acc", "elapsed_s"[, "train_s"]}
Left panel: the loss of each logged step (faint) and its exponential moving average (weight --smooth,
bias-corrected as in TensorBoard: s_t = (w s_{t-1} + (1 - w) x_t), shown as s_t / (1 - w^t)), with dotted
lines at epoch ends. Right panel: train and test accuracy per epoch.

train_classifier appends, so one file may hold several runs, and a resumed run repeats the steps after its
checkpoint. The script plots the last run (a run starts where the step count drops to a first logged step,
<= 10) and, within it, keeps the latest record of each step and each epoch (what a resume rewrote).
Needs matplotlib (Debian's, for /usr/bin/python3); draws with the Agg backend, no display needed.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

FIRST_LOGGED_STEP = 10  # train_classifier logs steps 10, 20, ...


def fail(msg):
    sys.exit(f"plot_metrics: {msg}")


def read_records(path):
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{n}: not JSON ({e.msg} at column {e.colno})")
            if isinstance(r, dict) and r.get("kind") in ("step", "epoch"):
                records.append((n, r))
    if not records:
        fail(f"{path}: no step or epoch records (expected JSONL from train_classifier --metrics)")
    return records


def last_run(records, path):
    """Records of the last run; later records replace earlier ones of the same step / epoch (resumes)."""
    starts = [0]
    prev_step = None
    for i, (_, r) in enumerate(records):
        if r["kind"] != "step":
            continue
        if prev_step is not None and r["step"] < prev_step and r["step"] <= FIRST_LOGGED_STEP:
            starts.append(i)
        prev_step = r["step"]
    if len(starts) > 1:
        print(f"plot_metrics: {path} holds {len(starts)} runs; plotting the last (from line {records[starts[-1]][0]})")
    steps, epochs = {}, {}
    for n, r in records[starts[-1]:]:
        try:
            if r["kind"] == "step":
                steps[int(r["step"])] = (float(r["loss"]), int(r["epoch"]))
            else:
                epochs[int(r["epoch"])] = (float(r["train_acc"]), float(r["test_acc"]), int(r["step"]))
        except (KeyError, TypeError, ValueError) as e:
            fail(f"{path}:{n}: {r['kind']} record without a usable field ({e})")
    return sorted(steps.items()), sorted(epochs.items())


def ema(values, weight):
    out, s = [], 0.0
    for t, x in enumerate(values, 1):
        s = weight * s + (1 - weight) * x
        out.append(s / (1 - weight ** t))
    return out


def plot(steps, epochs, out, title, smooth):
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
    fig.suptitle(title, fontsize=11)

    if steps:
        x = [s for s, _ in steps]
        loss = [v for _, (v, _) in steps]
        ax_loss.plot(x, loss, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss (logged steps)")
        ax_loss.plot(x, ema(loss, smooth), color="tab:blue", linewidth=1.8, label=f"smoothed (EMA {smooth:g})")
        for _, (_, _, end_step) in epochs[:-1]:
            ax_loss.axvline(end_step, color="grey", linestyle=":", linewidth=0.8)
        ax_loss.set_ylim(bottom=0)
        ax_loss.legend(loc="upper right", fontsize=8)
    else:
        ax_loss.text(0.5, 0.5, "no step records", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    ax_loss.grid(alpha=0.3)

    if epochs:
        e = [k for k, _ in epochs]
        train = [100 * a for _, (a, _, _) in epochs]
        test = [100 * a for _, (_, a, _) in epochs]
        ax_acc.plot(e, train, "o-", color="tab:orange", label="train (running, during the epoch)")
        ax_acc.plot(e, test, "s-", color="tab:green", label="test (end of epoch)")
        ax_acc.annotate(f"{test[-1]:.2f}%", (e[-1], test[-1]), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8, color="tab:green")
        ax_acc.set_xticks(e)
        lo = min(train + test)
        ax_acc.set_ylim(max(0.0, lo - 5), min(100.0, max(train + test) + 3))
        ax_acc.legend(loc="lower right", fontsize=8)
    else:
        ax_acc.text(0.5, 0.5, "no epoch records", ha="center", va="center", transform=ax_acc.transAxes)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description="Plot a train_classifier JSONL metrics file as a PNG.")
    ap.add_argument("metrics", help="JSONL file written by train_classifier --metrics")
    ap.add_argument("-o", "--output", help="PNG to write (default: the metrics file with .png)")
    ap.add_argument("--smooth", type=float, default=0.9, help="EMA weight of the smoothed loss, in [0, 1) (default 0.9)")
    ap.add_argument("--title", help="figure title (default: the metrics file's name)")
    a = ap.parse_args()
    if not 0 <= a.smooth < 1:
        fail(f"--smooth must be in [0, 1), got {a.smooth}")
    out = a.output or os.path.splitext(a.metrics)[0] + ".png"

    steps, epochs = last_run(read_records(a.metrics), a.metrics)
    plot(steps, epochs, out, a.title or os.path.basename(a.metrics), a.smooth)
    print(f"plot_metrics: {len(steps)} steps, {len(epochs)} epochs -> {out}")


if __name__ == "__main__":
    main()

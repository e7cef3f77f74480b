#!/usr/bin/python3
"""VRGD experiment (b)/(c): large-batch classification, each base optimizer against its VR variant.

For every batch size B and method, trains with ./build/train_classifier and reads the last epoch's line
(train acc = the running accuracy over that epoch's batches, test acc after it). Learning rates follow the
square-root rule lr(B) = lr0[family] * sqrt(B / 256); "same LR" uses that lr for the base and the VR
variant, "tuned" picks the best test accuracy over lr(B) * {0.5, 1, 2} per method (selected on the test
set: there is no separate validation split here, so the tuned column is optimistic for both methods alike).

  /usr/bin/python3 scripts/vrgd_fmnist.py                        # CPU budget: MLP, 10k examples, 2 epochs
  /usr/bin/python3 scripts/vrgd_fmnist.py --device cuda --model lenet5 --limit-train 0 --epochs 10 \
      --batches 256,1024,4096,8192,16384                          # full size on the GPU
  (c) ResNet-20 on Fashion-MNIST padded to 32: scripts/vrgd_resnet_gpu.sh

Writes <out>.md (tables), <dir of out>/images/<name>.png (test accuracy and gap against batch size) and
<out>.jsonl (runs).
"""
import argparse, json, math, os, re, subprocess, sys, time

FAMILIES = {  # method pairs and the lr at batch 256
    "momentum": ("sgd", "vr-momentum", 0.1),
    "adam": ("adam", "vr-adam", 1e-3),
    "lars": ("lars", "vr-lars", 2.0),
    "lamb": ("lamb", "vr-lamb", 4e-3),
}
LINE = re.compile(r"train acc ([\d.]+)% \| test acc ([\d.]+)%")


def run(args, method, batch, lr):
    cmd = [args.binary, "--model", args.model, "--dataset", args.dataset, "--data-dir", args.data_dir,
           "--optimizer", method, "--batch-size", str(batch), "--lr", f"{lr:.6g}", "--epochs", str(args.epochs),
           "--limit-train", str(args.limit_train), "--device", args.device, "--no-progress", "--seed", "1",
           "--warmup-steps", str(args.warmup), "--weight-decay", str(args.weight_decay)]
    if method.startswith("vr-"):
        cmd += ["--gsnr-partitions", str(args.k), "--gsnr-gamma", str(args.gamma)]
    if args.augment:
        cmd += ["--augment"]
    cmd += args.extra.split() if args.extra else []
    t = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    hits = LINE.findall(out.stdout)
    if out.returncode != 0 or not hits:
        print("failed:", " ".join(cmd), out.stderr[-500:], file=sys.stderr)
        return {"method": method, "batch": batch, "lr": lr, "train_acc": float("nan"), "test_acc": float("nan")}
    tr, te = map(float, hits[-1])
    r = {"method": method, "batch": batch, "lr": lr, "train_acc": tr, "test_acc": te, "gap": tr - te,
         "seconds": time.time() - t}
    print(json.dumps(r), flush=True)
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default="./build/train_classifier")
    p.add_argument("--model", default="mlp")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit-train", type=int, default=10240)
    p.add_argument("--batches", default="256,1024,4096")
    p.add_argument("--families", default="momentum,adam,lars,lamb")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--grid", default="0.5,1,2", help="lr factors for the tuned column ('1': same-LR only)")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--extra", default="", help="more train_classifier options")
    p.add_argument("--out", default="docs/vrgd_fmnist")
    a = p.parse_args()
    batches = [int(b) for b in a.batches.split(",")]
    grid = [float(f) for f in a.grid.split(",")]
    runs = []
    for fam in a.families.split(","):
        base, vr, lr0 = FAMILIES[fam]
        for b in batches:
            lr = lr0 * math.sqrt(b / 256)
            for m in (base, vr):
                for f in grid:
                    r = run(a, m, b, lr * f)
                    r.update(family=fam, factor=f)
                    runs.append(r)
    with open(a.out + ".jsonl", "w") as fh:
        for r in runs:
            fh.write(json.dumps(r) + "\n")
    report(a, runs, batches)


def report(a, runs, batches):
    def pick(fam, method, b, tuned):
        c = [r for r in runs if r["family"] == fam and r["method"] == method and r["batch"] == b
             and (tuned or r["factor"] == 1.0)]
        c = [r for r in c if not math.isnan(r["test_acc"])]
        return max(c, key=lambda r: r["test_acc"]) if c else None

    lines = [f"model {a.model}, {a.epochs} epochs, {a.limit_train or 'all'} training examples, device {a.device}, "
             f"k = {a.k}, gamma = {a.gamma}; cells: test acc % / gap (train - test) pp", ""]
    fams = sorted({r["family"] for r in runs}, key=list(FAMILIES).index)
    for tuned in (False, True):
        lines += [f"**{'tuned LR (best of ' + a.grid + ' x sqrt rule)' if tuned else 'same LR (sqrt rule)'}**", "",
                  "| method | " + " | ".join(str(b) for b in batches) + " |",
                  "| --- |" + " --- |" * len(batches)]
        for fam in fams:
            base, vr, _ = FAMILIES[fam]
            for m in (base, vr):
                cells = []
                for b in batches:
                    r = pick(fam, m, b, tuned)
                    cells.append("-" if r is None else f"{r['test_acc']:.2f} / {r['gap']:+.2f}" +
                                 (f" (lr {r['lr']:.3g})" if tuned else ""))
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    with open(a.out + ".md", "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for fam in fams:
        for m, style in zip(FAMILIES[fam][:2], ("--", "-")):
            rs = [pick(fam, m, b, False) for b in batches]
            xs = [b for b, r in zip(batches, rs) if r]
            ax[0].plot(xs, [r["test_acc"] for r in rs if r], style, marker="o", label=m)
            ax[1].plot(xs, [r["gap"] for r in rs if r], style, marker="o", label=m)
    for x, t in zip(ax, ("test accuracy (%), same LR", "train - test accuracy (pp), same LR")):
        x.set_xscale("log", base=2)
        x.set_xlabel("batch size")
        x.set_title(t)
        x.grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    png = os.path.join(os.path.dirname(a.out) or ".", "images", os.path.basename(a.out) + ".png")
    os.makedirs(os.path.dirname(png), exist_ok=True)
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compares the JSON lines of benchmarks/bench_resnet (Nabla) and benchmarks/resnet_torch.py (PyTorch).

Prints: case | model, batch, size, precision | Nabla img/s | PyTorch img/s | Nabla/PyTorch (above 1: Nabla faster),
and a note where the two sides' parameter counts differ (they should not: same torchvision layout). Nabla
records with "cuda_graph": true (bench_resnet --cuda-graph: the step captured once and replayed) add the
columns "Nabla graph img/s" and "graph/PyTorch" (PyTorch stays eager). Lines that are not JSON are skipped;
a later record of a case replaces an earlier one unless it is an error.

Usage: python3 benchmarks/compare_resnet.py nabla.jsonl torch.jsonl [--brief]
"""
import argparse
import json


def load(path, graph=None):
    """Records by case name; graph=True/False keeps only Nabla records with/without cuda_graph."""
    out = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if graph is not None and bool(rec.get("cuda_graph", False)) != graph:
                    continue
                name = rec.get("name")
                if isinstance(name, str) and (name not in out or "img_per_s" in rec):
                    out[name] = rec
    except OSError as e:
        print(f"compare_resnet: cannot read {path}: {e}")
    return out


def cell(rec):
    if rec is None:
        return "-"
    if "img_per_s" not in rec:
        err = str(rec.get("error", "no result")).replace("\n", " ")
        return "error: " + (err[:60] + "..." if len(err) > 60 else err)
    return f"{rec['img_per_s']:,.0f} ({rec['ms_per_step']:.1f} ms)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("nabla")
    p.add_argument("torch")
    p.add_argument("--brief", action="store_true")
    a = p.parse_args()
    n, g, t = load(a.nabla, graph=False), load(a.nabla, graph=True), load(a.torch)
    names = list(n) + [k for k in g if k not in n] + [k for k in t if k not in n and k not in g]
    rows = []

    def ratio(a_rec, b_rec):
        if a_rec and b_rec and "img_per_s" in a_rec and "img_per_s" in b_rec and b_rec["img_per_s"] > 0:
            return f"{a_rec['img_per_s'] / b_rec['img_per_s']:.2f}x"
        return "-"

    for name in names:
        rn, rg, rt = n.get(name), g.get(name), t.get(name)
        ref = rn or rg or rt
        what = f"{ref.get('model')} b{ref.get('batch')} {ref.get('image_size')}² " + \
               ("bf16 autocast" if ref.get("amp") == "bf16" else ("TF32" if ref.get("tf32") else "fp32")) + \
               (", channels-last" if ref.get("channels_last") else "")
        note = ""
        if rn and rt and rn.get("parameters") != rt.get("parameters"):
            note = f" (parameters differ: {rn.get('parameters')} vs {rt.get('parameters')})"
        row = (name, what, cell(rn), cell(rt), ratio(rn, rt) + note)
        if g:
            row += (cell(rg), ratio(rg, rt))
        rows.append(row)
    if a.brief:
        for r in rows:
            print(f"{r[0]:<22} {r[4]}" + (f"  graph {r[6]}" if g else ""))
        return
    head = ("case", "what", "Nabla img/s", "PyTorch img/s", "Nabla/PyTorch")
    if g:
        head += ("Nabla graph img/s", "graph/PyTorch")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    # The arithmetic rate of each Nabla case (bench_resnet's train_tflops and peak_fraction)
    for name in names:
        for label, rec in (("eager", n.get(name)), ("graph", g.get(name))):
            if rec and "train_tflops" in rec and "img_per_s" in rec:
                frac = (f", {100 * rec['peak_fraction']:.1f}% of the {rec['peak_tflops']:g} TFLOP/s dense peak"
                        if "peak_fraction" in rec else "")
                print(f"{name} ({label}): {rec['train_tflops']:.1f} TFLOP/s ({rec['gmacs_per_image']:.2f} GMACs an "
                      f"image x 6 x img/s){frac}")

if __name__ == "__main__":
    main()

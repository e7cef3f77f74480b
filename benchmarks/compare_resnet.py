#!/usr/bin/env python3
"""Compares the JSON lines of benchmarks/bench_resnet (Nabla) and benchmarks/resnet_torch.py (PyTorch).

Prints: case | model, batch, size, precision | Nabla img/s | PyTorch img/s | Nabla/PyTorch (above 1: Nabla faster),
and a note where the two sides' parameter counts differ (they should not: same torchvision layout). Lines that
are not JSON are skipped; a later record of a case replaces an earlier one unless it is an error.

Usage: python3 benchmarks/compare_resnet.py nabla.jsonl torch.jsonl [--brief]
"""
import argparse
import json


def load(path):
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
    n, t = load(a.nabla), load(a.torch)
    names = list(n) + [k for k in t if k not in n]
    rows = []
    for name in names:
        rn, rt = n.get(name), t.get(name)
        ref = rn or rt
        what = f"{ref.get('model')} b{ref.get('batch')} {ref.get('image_size')}² " + \
               ("bf16 autocast" if ref.get("amp") == "bf16" else ("TF32" if ref.get("tf32") else "fp32")) + \
               (", channels-last" if ref.get("channels_last") else "")
        ratio = "-"
        if rn and rt and "img_per_s" in rn and "img_per_s" in rt and rt["img_per_s"] > 0:
            ratio = f"{rn['img_per_s'] / rt['img_per_s']:.2f}x"
        note = ""
        if rn and rt and rn.get("parameters") != rt.get("parameters"):
            note = f" (parameters differ: {rn.get('parameters')} vs {rt.get('parameters')})"
        rows.append((name, what, cell(rn), cell(rt), ratio + note))
    if a.brief:
        for r in rows:
            print(f"{r[0]:<22} {r[4]}")
        return
    head = ("case", "what", "Nabla img/s", "PyTorch img/s", "Nabla/PyTorch")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()

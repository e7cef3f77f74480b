#!/usr/bin/env python3
"""Compares two VRGD runs of train_classifier that split the same global batch into the same partitions:
one with the partitions as ranks (or ranks of several micro-batches), one with them as micro-batches in one
process (scripts/scale_check.sh, part 3).

    compare_vr_runs.py PREFIX_A PREFIX_B [RC_A RC_B [RANKS]]

Reads PREFIX.log (the "train loss | train acc" line), PREFIX.jsonl (the GSNR records of --metrics) and
PREFIX.ckpt (the safetensors checkpoint of --checkpoint), and prints one line per comparison and a verdict:
  - training loss within 2e-3 and accuracy within 0.2 points;
  - the GSNR at every recorded step: the layers' mean ratios within 1e-3 on average (weighted by size),
    and at most 1e-3 of all elements clipped (at gamma or 1) differently;
  - the parameters ("model.*" less the BatchNorm running statistics, which the micro-batch run updates once
    per micro-batch) within a relative L2 difference of 1e-4, all together.
The tolerances are for f32 rounding (a different summation order of the all-reduce) compounded over the
steps of training; a wrong partition or a missing all-reduce shows up as differences of order 1.
The checkpoint is parsed here (8-byte header length, JSON header, raw little-endian data) with the
standard library only.
"""
import array
import json
import math
import re
import struct
import sys

CODES = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "U8": "B", "I8": "b"}


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            half = array.array("H", data[begin:end])
            values = array.array("f", struct.pack(f"<{len(half)}I", *(h << 16 for h in half)))
        elif info["dtype"] in CODES:
            values = array.array(CODES[info["dtype"]], data[begin:end])
        else:
            continue
        out[name] = (tuple(info["shape"]), values)
    return out


def train_line(path):
    m = re.search(r"train loss ([0-9.]+) \| train acc ([0-9.]+)%", open(path, errors="replace").read())
    return [float(x) for x in m.groups()] if m else None


def gsnr_records(path):
    recs = {}
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("kind") == "gsnr":
                recs[r["step"]] = r
    return recs


def main():
    a, b = sys.argv[1], sys.argv[2]
    rc = sys.argv[3:5] if len(sys.argv) >= 5 else ["0", "0"]
    ranks = sys.argv[5] if len(sys.argv) >= 6 else "?"
    if rc != ["0", "0"]:
        print(f"FAIL (exit {rc[0]} / {rc[1]})")
        return 1
    ok = True
    la, lb = train_line(a + ".log"), train_line(b + ".log")
    if not la or not lb:
        print("FAIL: no 'train loss | train acc' line")
        return 1
    same = abs(la[0] - lb[0]) <= 2e-3 and abs(la[1] - lb[1]) <= 0.2
    ok &= same
    print(f"train: {ranks} ranks loss {la[0]:.4f} acc {la[1]:.2f}% | micro-batches loss {lb[0]:.4f} acc {lb[1]:.2f}%")

    # GSNR: per recorded step, the element-weighted mean over layers of |difference| of each layer's mean
    # ratio, and the fraction of all elements whose clipping changed (an element whose normalised r sits at
    # gamma or 1 flips with any rounding, and a 16-element BatchNorm tensor then moves by 1/16, so the
    # per-layer fractions are reported, not compared).
    ga, gb = gsnr_records(a + ".jsonl"), gsnr_records(b + ".jsonl")
    steps = sorted(set(ga) & set(gb))
    ratio_diff = clip_diff = 0.0
    worst_layer = (0.0, "")
    for s in steps:
        n = r = c = 0.0
        layers = ga[s]["layers"]
        numel = ga[s].get("numel", {})
        for layer, va in layers.items():
            vb = gb[s]["layers"].get(layer)
            if vb is None:
                r = float("inf")
                continue
            w = numel.get(layer, 1)
            n += w
            r += w * abs(va[0] - vb[0])
            c += w * (abs(va[1] - vb[1]) + abs(va[2] - vb[2]))
            worst_layer = max(worst_layer, (max(abs(x - y) for x, y in zip(va, vb)), f"{layer} at step {s}"))
        ratio_diff, clip_diff = max(ratio_diff, r / max(n, 1)), max(clip_diff, c / max(n, 1))
    gsnr_ok = bool(steps) and ratio_diff <= 1e-3 and clip_diff <= 1e-3
    ok &= gsnr_ok
    print(f"gsnr: steps {steps}, {len(ga[steps[-1]]['layers']) if steps else 0} layers: mean |diff| of the layers' "
          f"mean ratio {ratio_diff:.2e}, fraction of elements clipped differently {clip_diff:.2e} "
          f"(largest single-layer difference {worst_layer[0]:.2e}, {worst_layer[1]})")

    ca, cb = load_safetensors(a + ".ckpt"), load_safetensors(b + ".ckpt")
    params = [k for k in ca if k.startswith("model.") and not re.search(r"running_|num_batches_tracked", k)]
    # Parameters: the relative L2 difference of all of them together (a per-tensor ratio would blow up for
    # the BatchNorm biases, which start at zero and are still ~1e-3 after a few steps); the worst tensor's
    # largest element difference is printed alongside.
    diff2 = norm2 = 0.0
    worst = (0.0, "")
    for k in params:
        if k not in cb or ca[k][0] != cb[k][0]:
            diff2 = float("inf")
            continue
        x, y = ca[k][1], cb[k][1]
        diff2 += sum((p - q) ** 2 for p, q in zip(x, y))
        norm2 += sum(p * p for p in x)
        worst = max(worst, (max(abs(p - q) for p, q in zip(x, y)), k[len("model."):]))
    rel = math.sqrt(diff2 / max(norm2, 1e-30))
    param_ok = bool(params) and rel <= 1e-4
    ok &= param_ok
    print(f"parameters: {len(params)} tensors, relative L2 difference {rel:.2e} "
          f"(largest element difference {worst[0]:.2e}, in {worst[1]})")
    print(("ok" if ok else "DIFFER") + f": {ranks} ranks vs one process of micro-batches: loss, GSNR and parameters "
          + ("agree" if ok else "differ beyond the tolerances"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

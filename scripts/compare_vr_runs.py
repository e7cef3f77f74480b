#!/usr/bin/env python3
"""Compares two VRGD runs of train_classifier that split the same global batch into the same partitions:
one with the partitions as ranks (or ranks of several micro-batches), one with them as micro-batches in one
process (scripts/scale_check.sh, part 3).

    compare_vr_runs.py PREFIX_A PREFIX_B [RC_A RC_B [RANKS]] [--noise PREFIX_C]

Reads PREFIX.log (the "train loss | train acc" line), PREFIX.jsonl (the GSNR records of --metrics) and
PREFIX.ckpt (the safetensors checkpoint of --checkpoint), and prints one line per comparison and a verdict:
  - training loss within 2e-3 and accuracy within 0.2 points;
  - the GSNR at every recorded step: the layers' mean ratios within 1e-3 on average (weighted by size),
    and at most 1e-3 of all elements clipped (at gamma or 1) differently;
  - the parameters ("model.*" less the BatchNorm running statistics, which the micro-batch run updates once
    per micro-batch) within a relative L2 difference of 1e-4, all together.
The tolerances are for f32 rounding (a different summation order of the all-reduce) compounded over the
steps of training; a wrong partition or a missing all-reduce shows up as differences of order 1. With
--noise PREFIX_C (a repeat of run B), each tolerance becomes the larger of the fixed one and twice C's
difference from B: on a GPU two identical runs differ already (cuDNN algorithms that are not
bit-reproducible), by about as much as ranks and micro-batches do.
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


def differences(a, b):
    """The three measures between runs a and b (prefixes), with lines describing them."""
    out = {}
    # GSNR: per recorded step, the element-weighted mean over layers of |difference| of each layer's mean
    # ratio, and the fraction of all elements whose clipping changed (an element whose normalised r sits at
    # gamma or 1 flips with any rounding, and a 16-element BatchNorm tensor then moves by 1/16, so the
    # per-layer fractions are reported, not compared).
    ga, gb = gsnr_records(a + ".jsonl"), gsnr_records(b + ".jsonl")
    steps = sorted(set(ga) & set(gb))
    ratio_diff = clip_diff = 0.0 if steps else float("inf")
    worst_layer = (0.0, "")
    for s in steps:
        n = r = c = 0.0
        numel = ga[s].get("numel", {})
        for layer, va in ga[s]["layers"].items():
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
    out["ratio"], out["clip"] = ratio_diff, clip_diff
    out["gsnr_line"] = (f"gsnr: steps {steps}, {len(ga[steps[-1]]['layers']) if steps else 0} layers: mean |diff| "
                        f"of the layers' mean ratio {ratio_diff:.2e}, fraction of elements clipped differently "
                        f"{clip_diff:.2e} (largest single-layer difference {worst_layer[0]:.2e}, {worst_layer[1]})")

    # Parameters: the relative L2 difference of all of them together (a per-tensor ratio would blow up for
    # the BatchNorm biases, which start at zero and are still ~1e-3 after a few steps); the worst tensor's
    # largest element difference is printed alongside.
    ca, cb = load_safetensors(a + ".ckpt"), load_safetensors(b + ".ckpt")
    params = [k for k in ca if k.startswith("model.") and not re.search(r"running_|num_batches_tracked", k)]
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
    out["params"] = math.sqrt(diff2 / max(norm2, 1e-30)) if params else float("inf")
    out["param_line"] = (f"parameters: {len(params)} tensors, relative L2 difference {out['params']:.2e} "
                         f"(largest element difference {worst[0]:.2e}, in {worst[1]})")
    return out


TOLERANCES = {"ratio": 1e-3, "clip": 1e-3, "params": 1e-4}


def main():
    args = sys.argv[1:]
    noise = None
    if "--noise" in args:  # a repeat of run B: its difference from B is the noise floor of the machine
        i = args.index("--noise")
        noise = args[i + 1]
        del args[i:i + 2]
    a, b = args[0], args[1]
    rc = args[2:4] if len(args) >= 4 else ["0", "0"]
    ranks = args[4] if len(args) >= 5 else "?"
    if rc != ["0", "0"]:
        print(f"FAIL (exit {rc[0]} / {rc[1]})")
        return 1
    la, lb = train_line(a + ".log"), train_line(b + ".log")
    if not la or not lb:
        print("FAIL: no 'train loss | train acc' line")
        return 1
    ok = abs(la[0] - lb[0]) <= 2e-3 and abs(la[1] - lb[1]) <= 0.2
    print(f"train: {ranks} ranks loss {la[0]:.4f} acc {la[1]:.2f}% | micro-batches loss {lb[0]:.4f} acc {lb[1]:.2f}%")
    d = differences(a, b)
    print(d["gsnr_line"])
    print(d["param_line"])
    # On a GPU, cuDNN's algorithms are not all bit-reproducible, so two runs of the same process differ too:
    # with --noise, each tolerance is the larger of the fixed one and twice that floor (a wrong partition or a
    # missing all-reduce differs by orders of magnitude more).
    tol = dict(TOLERANCES)
    if noise:
        n = differences(noise, b)
        print(f"noise floor (a repeat of the micro-batch run): mean ratio {n['ratio']:.2e}, clipped "
              f"{n['clip']:.2e}, parameters {n['params']:.2e}")
        tol = {k: max(v, 2 * n[k]) for k, v in TOLERANCES.items()}
    ok = ok and all(d[k] <= tol[k] for k in tol)
    print(("ok" if ok else "DIFFER") + f": {ranks} ranks vs one process of micro-batches: loss, GSNR and parameters "
          + ("agree" if ok else "differ beyond the tolerances")
          + f" (tolerances: mean ratio {tol['ratio']:.1e}, clipped {tol['clip']:.1e}, parameters {tol['params']:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

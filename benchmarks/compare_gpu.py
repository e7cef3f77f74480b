#!/usr/bin/env python3
"""Compares the JSON lines of benchmarks/bench_gpu (Nabla) and benchmarks/bench_gpu_torch.py (PyTorch).

Prints a table: benchmark | shape | Nabla | PyTorch | ratio, where ratio = Nabla throughput / PyTorch throughput
(TFLOP/s or GB/s of the same work formula, so also PyTorch ms / Nabla ms): above 1, Nabla is faster. Then
the element-wise add's GB/s as a percentage of the H200's measured 4.2 TB/s device-to-device copy (bytes read
+ written), for both sides.

A name may appear more than once in a file (scripts/gpu_check.sh appends reruns of failed benchmarks): a
successful line wins over an error line, and a later line over an earlier one of the same kind. Lines that
are not JSON (e.g. a crash message) are skipped.

Usage: python3 benchmarks/compare_gpu.py nabla.jsonl torch.jsonl [--brief]
  --brief prints one line per benchmark (name, ratio) for a summary.
"""
import argparse
import json
import sys

COPY_GBS = 4200.0  # H200 device-to-device copy, GB/s (shared/DEVICE.md, 2026-11-28)


def load(path):
    """name -> record, in first-seen order; records with "ms" beat error records."""
    out = {}
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        print(f"compare_gpu: cannot read {path}: {e}", file=sys.stderr)
        return out
    with f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            name = rec.get("name")
            if not isinstance(name, str):
                continue
            prev = out.get(name)
            if prev is None or "ms" in rec or "ms" not in prev:
                out[name] = rec
    return out


def throughput(rec):
    """(value, unit) or (None, None)."""
    if rec is None or "ms" not in rec:
        return None, None
    for key, unit in (("tflops", "TFLOP/s"), ("gbs", "GB/s")):
        v = rec.get(key)
        if isinstance(v, (int, float)):
            return float(v), unit
    return None, None


def cell(rec):
    if rec is None:
        return "-"
    if "ms" not in rec:
        err = str(rec.get("error", "no result")).replace("\n", " ")
        return "error: " + (err[:70] + "..." if len(err) > 70 else err)
    v, unit = throughput(rec)
    ms = rec["ms"]
    ms_s = f"{ms:.3f} ms" if isinstance(ms, (int, float)) else "? ms"
    return f"{ms_s}, {v:,.1f} {unit}" if v is not None else ms_s


def ratio(a, b):
    va, ua = throughput(a)
    vb, ub = throughput(b)
    if va is None or vb is None or ua != ub or vb <= 0:
        return None
    return va / vb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nabla")
    ap.add_argument("torch")
    ap.add_argument("--brief", action="store_true")
    args = ap.parse_args()
    nab, tor = load(args.nabla), load(args.torch)
    names = [n for n in nab if not n.startswith("_")]
    names += [n for n in tor if not n.startswith("_") and n not in nab]
    if not names:
        print("compare_gpu: no benchmark results in either file")
        return 1

    if args.brief:
        width = max(len(n) for n in names)
        for n in names:
            r = ratio(nab.get(n), tor.get(n))
            if r is not None:
                print(f"{n:<{width}}  {r:6.2f}x")
            else:
                side, rec = ("nabla", nab.get(n)) if throughput(nab.get(n))[0] is None else ("torch", tor.get(n))
                why = f"{side} " + (cell(rec) if rec is not None else "no result")
                print(f"{n:<{width}}  n/a ({why[:80]})")
        return 0

    for side, recs in (("nabla", nab), ("torch", tor)):
        meta = recs.get("_meta")
        if meta:
            info = {k: v for k, v in meta.items() if k not in ("impl", "name")}
            print(f"{side}: {json.dumps(info)}")

    rows = [("benchmark", "shape", "Nabla", "PyTorch", "Nabla/PyTorch")]
    for n in names:
        a, b = nab.get(n), tor.get(n)
        shape = (a or b or {}).get("shape", "")
        r = ratio(a, b)
        rows.append((n, shape, cell(a), cell(b), f"{r:.2f}x" if r is not None else "n/a"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("ratio = Nabla throughput / PyTorch throughput (> 1: Nabla faster)")

    for n in names:
        if not n.startswith("add_"):
            continue
        parts = []
        for side, recs in (("Nabla", nab), ("PyTorch", tor)):
            v, unit = throughput(recs.get(n))
            if v is not None and unit == "GB/s":
                parts.append(f"{side} {v:,.0f} GB/s = {100.0 * v / COPY_GBS:.0f}%")
            else:
                parts.append(f"{side} n/a")
        print(f"{n}: {'; '.join(parts)} of the {COPY_GBS / 1000:.1f} TB/s copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())

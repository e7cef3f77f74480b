#!/usr/bin/env python3
"""The DLRM speed tables of scripts/gpu_check.sh (part dlrm): bench_dlrm's and benchmarks/dlrm_torch.py's
JSONL lines joined by (batch, mode), one markdown row each.

    python3 scripts/dlrm_compare.py TITLE NABLA.jsonl TORCH.jsonl [--init]

TITLE heads the table; --init adds both sides' table initialisation seconds (the Kaggle-sized tables), else
the table gets Nabla's rate against PyTorch's best mode at the same batch.
"""
import json
import sys


def read(path):
    for line in open(path, errors="replace"):
        try:
            yield json.loads(line)
        except ValueError:
            continue


def rate(r):
    return r["samples_per_s"] if r and "samples_per_s" in r else None


def cell(r, key, fmt):
    return fmt % r[key] if r and key in r else (r.get("error", "-")[:40] if r else "-")


def main(argv):
    init = "--init" in argv
    title, nabla, torch = [a for a in argv if a != "--init"]
    rows = {}
    for side, path in (("nabla", nabla), ("torch", torch)):
        for r in read(path):
            if "batch" in r:
                rows.setdefault((r["batch"], r["mode"]), {})[side] = r
    best_torch = {}
    for (b, _), v in rows.items():
        t = rate(v.get("torch"))
        if t:
            best_torch[b] = max(best_torch.get(b, 0), t)
    extra = " | nabla init s | torch init s" if init else " | nabla/torch's best mode"
    print(f"{title} | batch | tables | nabla samples/s | torch samples/s | nabla/torch{extra}"
          " | nabla peak MiB | torch peak MiB")
    for (b, m) in sorted(rows):
        n, t = rows[(b, m)].get("nabla"), rows[(b, m)].get("torch")
        ratio = "%.2fx" % (rate(n) / rate(t)) if rate(n) and rate(t) else "-"
        if init:
            more = "%s | %s" % (cell(n, "init_s", "%.1f"), cell(t, "init_s", "%.1f"))
        else:
            more = "%.2fx" % (rate(n) / best_torch[b]) if rate(n) and b in best_torch else "-"
        print("| %d | %s | %s | %s | %s | %s | %s | %s" % (b, m, cell(n, "samples_per_s", "%.0f"),
              cell(t, "samples_per_s", "%.0f"), ratio, more, cell(n, "peak_mib", "%.0f"),
              cell(t, "peak_mib", "%.0f")))


if __name__ == "__main__":
    main(sys.argv[1:])

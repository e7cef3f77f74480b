#!/usr/bin/python3
"""Tables of the PSTRN synthetic experiment (docs/pstrn.md) from search_pstrn's outputs and the authors' logs.

usage: pstrn_synthetic_table.py RUN_DIR [LOG_DIR]
RUN_DIR holds pstrn.ckpt (the search's checkpoint: every evaluation) and {equal,ga,random,grid}.jsonl (the
baselines' --metrics files; the ga one is a search's per-generation file); LOG_DIR the authors' search_logs/.
Prints, per method, the best error, its ranks, the evaluations until it was first reached and the networks
trained; then the "interest region": per rank element, the spread of the 10 best distinct rank vectors.
"""
import json
import re
import statistics
import sys
from pathlib import Path


def region(records, k=10):
    seen, top = set(), []
    for ranks, err in sorted(records, key=lambda r: r[1]):
        if tuple(ranks) in seen:
            continue
        seen.add(tuple(ranks))
        top.append(ranks)
        if len(top) == k:
            break
    cols = list(zip(*top))
    return " ".join(f"r{i + 1}: {min(c)}-{max(c)} (median {statistics.median(c):g})" for i, c in enumerate(cols))


def summary(name, records, nets):
    best = min(records, key=lambda r: r[1])
    first = next(i for i, r in enumerate(records) if r[1] <= best[1])
    print(f"| {name} | {len(records)} | {nets} | {best[1]:.4f} | {best[0]} | {first + 1} |")


def main():
    run = Path(sys.argv[1])
    logs = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    print("| method | evaluations | networks trained | best val MSE | ranks | first reached at evaluation |")
    print("| --- | --- | --- | --- | --- | --- |")
    regions = {}
    ck = run / "pstrn.ckpt"
    if ck.exists():
        st = json.loads(ck.read_text())
        recs = [(h["ranks"], h["error"]) for h in st["history"]]
        summary("PSTRN (3 phases x 10 gen x 20)", recs, len(st["cache"]))
        regions["PSTRN"] = recs
    for name in ["ga", "random", "grid", "equal"]:
        f = run / f"{name}.jsonl"
        if not f.exists():
            continue
        lines = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
        if name == "ga":
            ckg = run / "ga.ckpt"
            if ckg.exists():
                st = json.loads(ckg.read_text())
                recs = [(h["ranks"], h["error"]) for h in st["history"]]
                summary("plain NSGA-II, ranks 2..20", recs, len(st["cache"]))
                regions["plain GA"] = recs
            else:  # per-generation records only
                gens = [l for l in lines if "best" in l]
                best = gens[-1]["best"]
                first = next(g for g in gens if g["best"]["error"] <= best["error"])
                print(f"| plain NSGA-II, ranks 2..20 | {gens[-1]['evaluations']} | {gens[-1]['networks']} | "
                      f"{best['error']:.4f} | {best['ranks']} | within generation ending at {first['evaluations']} |")
            continue
        recs = [(l["ranks"], l["error"]) for l in lines if "eval" in l]
        if recs:
            summary(name, recs, len({tuple(r[0]) for r in recs}))
            regions[name] = recs
    if logs:
        recs = []
        for phase in ["initial_phase", "immediate_phase", "final_phase"]:
            text = (logs / f"{phase}.txt").read_text()
            ranks = [[int(v) for v in m.split(",")] for m in re.findall(r"RANK = \[([\d, ]+)\]", text)]
            errs = [float(v) for v in re.findall(r"accuracy = ([\d.]+)", text)]
            recs += list(zip(ranks, errs))
        summary("authors' logs (their units)", recs, len({tuple(r[0]) for r in recs}))
        regions["authors' logs"] = recs
    print()
    print("Interest region: the 10 best distinct rank vectors, per element")
    for name, recs in regions.items():
        print(f"- {name}: {region(recs)}")


if __name__ == "__main__":
    main()

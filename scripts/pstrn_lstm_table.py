#!/usr/bin/python3
"""Tables of the TR-LSTM search (docs/pstrn.md) from search_pstrn --task lstm outputs.

usage: pstrn_lstm_table.py RUN_DIR
RUN_DIR holds pstrn.ckpt (the search's checkpoint: every evaluation), and the --metrics files of the baselines
equal.jsonl, random.jsonl (one line per evaluation) and ga.jsonl (a search: per-generation Pareto fronts; with
ga.ckpt every evaluation; without it the GA's interest region is over its fronts only). Prints
  1. per method: evaluations, networks trained, best validation error, its ranks and TR-layer compression;
  2. the same-budget comparison: for each equal-rank net, the best error every method reached with a TR layer
     at least as compressed (the front of error against compression read at that budget);
  3. the interest region: per rank element, the spread of the 10 best distinct rank vectors.
"""
import json
import statistics
import sys
from pathlib import Path


def load(run):
    methods = {}
    ck = run / "pstrn.ckpt"
    if ck.exists():
        st = json.loads(ck.read_text())
        recs = [(h["ranks"], h["error"], h["compression"]) for h in st["history"]]
        methods["PSTRN"] = (recs, len(st["cache"]), len(recs))
    ckg = run / "ga.ckpt"
    if ckg.exists():
        st = json.loads(ckg.read_text())
        recs = [(h["ranks"], h["error"], h["compression"]) for h in st["history"]]
        methods["plain GA"] = (recs, len(st["cache"]), len(recs))
    elif (run / "ga.jsonl").exists():  # fronts only: the union of the per-generation fronts
        lines = [json.loads(l) for l in (run / "ga.jsonl").read_text().splitlines() if l.strip()]
        recs = [(p["ranks"], p["error"], p["compression"]) for l in lines for p in l.get("pareto_front", [])]
        if lines:
            methods["plain GA"] = (recs, lines[-1]["networks"], lines[-1]["evaluations"])
    for name in ["random", "equal"]:
        f = run / f"{name}.jsonl"
        if f.exists():
            lines = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
            recs = [(l["ranks"], l["error"], l["compression"]) for l in lines if "eval" in l]
            if recs:
                methods[name] = (recs, len({tuple(r[0]) for r in recs}), len(recs))
    return methods


def best_at(recs, budget):
    ok = [r for r in recs if r[2] >= budget - 1e-9]
    return min(ok, key=lambda r: r[1]) if ok else None


def region(recs, k=10):
    seen, top = set(), []
    for ranks, err, _ in sorted(recs, key=lambda r: r[1]):
        if tuple(ranks) not in seen:
            seen.add(tuple(ranks))
            top.append(ranks)
        if len(top) == k:
            break
    cols = list(zip(*top))
    return " | ".join(f"{min(c)}-{max(c)} (median {statistics.median(c):g})" for c in cols)


def main():
    run = Path(sys.argv[1])
    methods = load(run)
    print("| method | evaluations | networks trained | best val error % | ranks | TR-layer compression |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (recs, nets, evals) in methods.items():
        b = min(recs, key=lambda r: r[1])
        print(f"| {name} | {evals} | {nets} | {b[1]:.1f} | {b[0]} | {b[2]:.1f} |")
    if "equal" in methods:
        others = [m for m in methods if m != "equal"]
        print()
        print("Same budget: best val error % with a TR layer compressed at least as much as equal ranks r")
        print("| r | compression | equal | " + " | ".join(others) + " |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in others) + " |")
        wins = {m: [0, 0, 0] for m in others}
        for ranks, err, cr in sorted(methods["equal"][0], key=lambda r: r[0][0]):
            cells = []
            for m in others:
                b = best_at(methods[m][0], cr)
                if b is None:
                    cells.append("none")
                    continue
                cells.append(f"{b[1]:.1f} {b[0]}")
                wins[m][0 if b[1] < err else 1 if b[1] == err else 2] += 1
            print(f"| {ranks[0]} | {cr:.1f} | {err:.1f} | " + " | ".join(cells) + " |")
        for m, (w, t, l) in wins.items():
            print(f"- {m}: lower error than equal ranks at {w} budgets, equal at {t}, higher at {l}")
    print()
    print("Interest region (10 best distinct rank vectors, per element R0 | R1 | R2 | R3):")
    for name, (recs, _, _) in methods.items():
        if name != "equal":
            print(f"- {name}: {region(recs)}")


if __name__ == "__main__":
    main()

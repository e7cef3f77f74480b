#!/usr/bin/env python3
"""HKF rows over language-model seeds (scripts/hkf_experiments.sh with HKF_LM_SEEDS).

Each argument is one run's output folder (rank_<label>.json, features_<label>.json from `hkf --stage rank`
and `--stage features`), all on the same split; the folders differ only in the seed of the LM's pretraining
and LoRA tuning. Prints one markdown table: every (label, task, users) ranking row as mean ± sample standard
deviation over the folders that have it, then the DLRM rows (AUC over every LM seed x DLRM seed).

    python3 scripts/hkf_seed_table.py out/lm_s1 out/lm_s2 old_seed0_run
"""
import glob
import json
import os
import statistics
import sys


def mean_sd(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main(dirs):
    if not dirs:
        sys.exit("usage: hkf_seed_table.py RUN_DIR...")
    rows = {}  # (label, task, group) -> {metric: [values]}
    users = {}
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "rank_*.json"))):
            r = json.load(open(path))
            for task in ("genre", "item_sampled", "item_full"):
                if task not in r or (task == "genre" and r["label"].endswith("-full")):
                    continue
                for group in ("all", "cold"):
                    m = r[task][group]
                    key = (r["label"], task, group)
                    users[key] = m["users"]
                    for k in ("hr5", "ndcg5", "hr10", "ndcg10"):
                        if m.get(k) is not None:
                            rows.setdefault(key, {}).setdefault(k, []).append(m[k])
    print(f"| method / task / users | HR@5 | NDCG@5 | HR@10 | NDCG@10 | users | LM seeds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key in sorted(rows):
        cells = " | ".join(mean_sd(rows[key][k]) if k in rows[key] else "n/a"
                           for k in ("hr5", "ndcg5", "hr10", "ndcg10"))
        print(f"| {' '.join(key)} | {cells} | {users[key]} | {len(rows[key]['hr5'])} |")
    feats = {}  # (label, variant) -> {"auc": [], "auc_cold": []}
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "features_*.json"))):
            f = json.load(open(path))
            for variant in ("without", "with_lm"):
                for x in f.get(variant, []):
                    e = feats.setdefault((f["label"], variant), {"auc": [], "auc_cold": [], "rank": {}})
                    e["auc"].append(x["auc"])
                    for group in ("all", "cold"):
                        for k in ("hr10", "ndcg10"):
                            v = x.get("ranking", {}).get(group, {}).get(k)
                            if v is not None:
                                e["rank"].setdefault(f"{k} {group}", []).append(v)
                    if x.get("auc_cold") is not None:
                        e["auc_cold"].append(x["auc_cold"])
    if feats:
        print()
        cols = ("hr10 all", "ndcg10 all", "hr10 cold", "ndcg10 cold")
        print("| DLRM | AUC | cold-start AUC | item HR@10 all | item NDCG@10 all | item HR@10 cold | "
              "item NDCG@10 cold | runs (LM seed x DLRM seed) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (label, variant), e in sorted(feats.items()):
            cold = mean_sd(e["auc_cold"]) if e["auc_cold"] else "n/a"
            ranks = " | ".join(mean_sd(e["rank"][c]) if c in e["rank"] else "n/a" for c in cols)
            print(f"| {label} {variant} | {mean_sd(e['auc'])} | {cold} | {ranks} | {len(e['auc'])} |")


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Tables and a figure from scripts/darts_experiments.sh's output folder (docs/bdarts.md).

    /usr/bin/python3 scripts/darts_summary.py OUT_DIR [--figure docs/images/bdarts.png]

Runs are OUT_DIR/<net>_<clr|noclr>_s<seed>.jsonl (search_darts --metrics): one JSON line per epoch with the
softmax of every edge's alphas, the derived genotype and its weight-free operation counts.
"""
import glob
import json
import os
import re
import sys

WEIGHT_FREE = [0, 1, 2, 3]  # none, max_pool_3x3, avg_pool_3x3, skip_connect (kPrimitives order)


def load(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def mass(rows):
    """Mean softmax mass on the weight-free operations over the edges."""
    return sum(sum(r[k] for k in WEIGHT_FREE) for r in rows) / len(rows)


def main():
    out = sys.argv[1]
    fig = sys.argv[sys.argv.index('--figure') + 1] if '--figure' in sys.argv else None
    runs = {}
    for p in sorted(glob.glob(os.path.join(out, '*_s*.jsonl'))):
        m = re.match(r'(bcnn|darts)_(clr|noclr)_s(\d+)\.jsonl$', os.path.basename(p))
        if m:
            recs = load(p)
            if recs:
                runs[(m.group(1), m.group(2), int(m.group(3)))] = recs
    print('| supernet | CLR | seed | epochs | val acc | weight-free ops (conv/normal cell) | weight-free ops '
          '(enhancement/reduce cell) | weight-free softmax mass (normal, reduce) |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for (net, clr, seed), recs in sorted(runs.items()):
        r = recs[-1]
        print(f"| {net} | {'yes' if clr == 'clr' else 'no'} | {seed} | {r['epoch']} | {100 * r['val_acc']:.2f}% | "
              f"{r['weight_free_normal']}/8 | {r['weight_free_reduce']}/8 | "
              f"{mass(r['alphas_normal']):.3f}, {mass(r['alphas_reduce']):.3f} |")
    print()
    print('| supernet | CLR | runs | mean val acc | mean weight-free ops, normal + reduce (of 16) | trajectory of the '
          'weight-free count per epoch (mean over seeds) |')
    print('| --- | --- | --- | --- | --- | --- |')
    groups = {}
    for (net, clr, seed), recs in runs.items():
        groups.setdefault((net, clr), []).append(recs)
    for (net, clr), rs in sorted(groups.items()):
        n = min(len(r) for r in rs)
        acc = sum(r[n - 1]['val_acc'] for r in rs) / len(rs)
        wf = sum(r[n - 1]['weight_free_normal'] + r[n - 1]['weight_free_reduce'] for r in rs) / len(rs)
        traj = [sum(r[e]['weight_free_normal'] + r[e]['weight_free_reduce'] for r in rs) / len(rs) for e in range(n)]
        print(f"| {net} | {'yes' if clr == 'clr' else 'no'} | {len(rs)} | {100 * acc:.2f}% | {wf:.1f} | "
              f"{' '.join(f'{t:.1f}' for t in traj)} |")
    for net in sorted({k[0] for k in runs}):
        cost = os.path.join(out, f'cost_{net}.jsonl')
        if os.path.exists(cost) and load(cost):
            r = load(cost)[-1]
            print(f"\ncost {net}: {r['step_s']:.3f} s/step (wall), peak {r['peak_mb']:.0f} MiB")
    if fig and runs:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        nets = sorted({k[0] for k in runs})
        f, axes = plt.subplots(len(nets), 3, figsize=(14, 3.6 * len(nets)), squeeze=False)
        for i, net in enumerate(nets):
            for (n2, clr, seed), recs in sorted(runs.items()):
                if n2 != net:
                    continue
                e = [r['epoch'] for r in recs]
                style = dict(color='tab:blue' if clr == 'clr' else 'tab:red', alpha=0.8,
                             label=f"{'CLR' if clr == 'clr' else 'no CLR'} s{seed}",
                             linestyle=['-', '--', ':', '-.'][seed % 4])
                axes[i][0].plot(e, [mass(r['alphas_normal']) for r in recs], **style)
                axes[i][1].plot(e, [mass(r['alphas_reduce']) for r in recs], **style)
                axes[i][2].plot(e, [r['weight_free_normal'] + r['weight_free_reduce'] for r in recs], **style)
            cells = ('conv cell', 'enhancement cell') if net == 'bcnn' else ('normal cell', 'reduction cell')
            axes[i][0].set_title(f'{net}: softmax mass on weight-free ops, {cells[0]}')
            axes[i][1].set_title(f'{net}: same, {cells[1]}')
            axes[i][2].set_title(f'{net}: weight-free ops in the derived cells (of 16)')
            for a in axes[i]:
                a.set_xlabel('epoch')
            axes[i][2].legend(fontsize=7)
        f.tight_layout()
        f.savefig(fig, dpi=110)
        print(f'\nfigure: {fig}')


if __name__ == '__main__':
    main()

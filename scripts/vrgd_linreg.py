#!/usr/bin/python3
"""VRGD experiment (a): the paper's linear regression (W_i = i, 10 dims, batch 2048, 100 steps), SGD vs VR-SGD
on the same batches, k in {8, 32, 128, 256} at a small and a near-edge learning rate, plus a gamma sweep.
Reports the test loss at steps 25/50/100 and the first step at which VR-SGD reaches SGD's step-T loss
(T = 100, or 50 when SGD's step-100 loss is 0 in f64). Writes docs/vrgd_linreg.md and docs/images/vrgd_linreg.png.

  ninja -C build vrgd_linreg && /usr/bin/python3 scripts/vrgd_linreg.py
"""
import json, subprocess, sys

BIN = "./build/vrgd_linreg"


def runs(**kw):
    cmd = [BIN] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {json.loads(l)["method"]: json.loads(l)["test_loss"] for l in out.splitlines()}


def reach(sgd, vr):
    t = 100 if sgd[100] > 0 else 50
    return t, next((i for i in range(1, len(vr)) if vr[i] <= sgd[t]), None)


def main():
    rows = ["| lr | k | gamma | SGD loss @25 / @50 / @100 | VR-SGD loss @25 / @50 / @100 | VR-SGD reaches SGD's step-T loss at |",
            "| --- | --- | --- | --- | --- | --- |"]
    curves = {}
    for lr in (0.1, 0.9):
        for k in (8, 32, 128, 256):
            r = runs(k=k, lr=lr, gamma=0.1)
            t, at = reach(r["sgd"], r["vr-sgd"])
            f = lambda c: " / ".join(f"{c[i]:.2e}" for i in (25, 50, 100))
            rows.append(f"| {lr} | {k} | 0.1 | {f(r['sgd'])} | {f(r['vr-sgd'])} | {at} (T = {t}) |")
            if k == 32:
                curves[lr] = r
    for g in (0.02, 0.04, 0.1, 0.2, 0.5, 1.0):
        r = runs(k=32, lr=0.9, gamma=g)
        t, at = reach(r["sgd"], r["vr-sgd"])
        f = lambda c: " / ".join(f"{c[i]:.2e}" for i in (25, 50, 100))
        rows.append(f"| 0.9 | 32 | {g} | {f(r['sgd'])} | {f(r['vr-sgd'])} | {at} (T = {t}) |")
    text = "\n".join(rows) + "\n"
    open("docs/vrgd_linreg.md", "w").write(text)
    print(text)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for x, lr in zip(ax, (0.1, 0.9)):
        for m, s in (("sgd", "--"), ("vr-sgd", "-")):
            x.semilogy([max(v, 1e-30) for v in curves[lr][m]], s, label=m)
        x.set_title(f"lr {lr}, batch 2048, k 32, gamma 0.1")
        x.set_xlabel("step")
        x.set_ylabel("test MSE")
        x.grid(alpha=0.3)
        x.legend()
    fig.tight_layout()
    fig.savefig("docs/images/vrgd_linreg.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())

"""Nabla's kernels beside PyTorch's for one training step: two tables written as
    # steps S
    <total ns>\t<calls>\t<kernel name>
one by benchmarks/kernel_trace.cpp (CUPTI, LD_PRELOAD into bench_resnet / bench_yolo), one by
benchmarks/torch_profile.py (torch.profiler, TORCH_KERNEL_TSV=path). Prints the time per step by kind of
kernel (convolution, GEMM, batch norm, element-wise, ...) on both sides, then each side's top kernels.

    python3 benchmarks/kernel_compare.py nabla_kernels.tsv torch_kernels.tsv [--top 25]
    python3 benchmarks/kernel_compare.py before.tsv after.tsv --labels before,after
"""
import argparse
import re

# First match wins; the names are the demangled kernel names (cuDNN's and cuBLAS's included).
KINDS = [
    ("batch norm", r"batch_?norm|bn_|welford"),  # first: cuDNN's are cudnn::bn_* (PyTorch's NCHW f32 path)
    ("conv dgrad", r"dgrad|backward_data|bwd_data|convolve_dgrad"),
    ("conv wgrad", r"wgrad|backward_filter|bwd_filter|convolve_wgrad"),
    ("conv fprop", r"fprop|conv2d|convolve|implicit_gemm|implicit_convolve|cudnn::|winograd|fft"),
    ("GEMM", r"gemm|cutlass|Kernel2|cublas|matmul|nvjet"),
    ("pooling", r"pool"),
    ("loss / softmax", r"softmax|cross_?entropy|nll|loss|yolo"),
    ("optimizer", r"sgd|momentum|multi_tensor|optim|adam\b|lars|lamb_"),
    ("memset / memcpy", r"^memset|^memcpy|fill"),
    ("element-wise", r"elementwise|binary|unary|vectorized|unrolled|relu|leaky|add|mul|copy|convert|cast|upsample|concat|cat_|"
                     r"scale|where|sigmoid|exp|contig|transpose|permute|nchw|nhwc"),
    ("reduction", r"reduce|sum|mean"),
]


def read(path):
    steps, rows = 1, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# steps"):
                steps = max(1, int(line.split()[2]))
            elif line and not line.startswith("#"):
                ns, calls, name = line.split("\t", 2)
                rows.append((int(ns), int(calls), name))
    return steps, rows


def kind(name):
    low = name.lower()
    for k, pat in KINDS:
        if re.search(pat, low):
            return k
    return "other"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("nabla")
    p.add_argument("torch")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--labels", default="Nabla,PyTorch",
                   help="the two tables' names (e.g. before,after to compare two Nabla runs)")
    a = p.parse_args()
    la, lb = (a.labels.split(",") + ["B"])[:2]
    sides = {}
    for label, path in ((la, a.nabla), (lb, a.torch)):
        try:
            sides[label] = read(path)
        except OSError as e:
            print(f"{label}: {e}")
            sides[label] = (1, [])
    per_kind = {label: {} for label in sides}
    for label, (steps, rows) in sides.items():
        for ns, calls, name in rows:
            d = per_kind[label].setdefault(kind(name), [0.0, 0.0])
            d[0] += ns / 1e6 / steps
            d[1] += calls / steps
    kinds = [k for k, _ in KINDS] + ["other"]
    print(f"| kind | {la} ms/step | launches | {lb} ms/step | launches | {la} - {lb} ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    tot = {label: [0.0, 0.0] for label in sides}
    for k in kinds:
        n = per_kind[la].get(k, [0.0, 0.0])
        t = per_kind[lb].get(k, [0.0, 0.0])
        if n == [0.0, 0.0] and t == [0.0, 0.0]:
            continue
        for label, v in ((la, n), (lb, t)):
            tot[label][0] += v[0]
            tot[label][1] += v[1]
        print(f"| {k} | {n[0]:.2f} | {n[1]:.0f} | {t[0]:.2f} | {t[1]:.0f} | {n[0] - t[0]:+.2f} |")
    n, t = tot[la], tot[lb]
    print(f"| **all kernels** | **{n[0]:.2f}** | {n[1]:.0f} | **{t[0]:.2f}** | {t[1]:.0f} | {n[0] - t[0]:+.2f} |")
    for label, (steps, rows) in sides.items():
        total = sum(r[0] for r in rows) or 1
        print(f"\n{label}: top kernels, ms per step (share, calls per step, kind)")
        for ns, calls, name in sorted(rows, key=lambda r: -r[0])[:a.top]:
            print(f"{ns / 1e6 / steps:8.3f} {100 * ns / total:5.1f}% {calls / steps:6.1f}  {kind(name):14s} {name[:120]}")


if __name__ == "__main__":
    main()

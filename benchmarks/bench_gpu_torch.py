#!/usr/bin/env python3
"""PyTorch twin of benchmarks/bench_gpu.cpp: the same benchmarks, names, shapes, work formulas and timing, one
JSON line per benchmark on stdout, for benchmarks/compare_gpu.py.

Timing: `warmup` untimed calls, torch.cuda.synchronize(), then `runs` calls each bracketed by two
torch.cuda.Event records on the current stream; the reported ms is the median of the `runs` intervals (no host
synchronisation between timed calls, as in bench_gpu.cpp).

Work per call (identical to bench_gpu.cpp):
  GEMM 2 M N K flops; conv2d forward 2 N K OH OW C kh kw flops, forward+backward 3x (2x for the stem, whose
  input needs no gradient); layer_norm forward+backward 5 * numel * 4 bytes; softmax 2 * numel * 4 bytes;
  add 3 * numel * 4 bytes; MLP step: GEMM flops of forward + backward (no dX for the first layer).

Precision per case: f32 GEMM with TF32 off, TF32 GEMM, bf16 GEMM; convolutions and the MLP with TF32 on (as
Nabla's default), set per case through torch.backends.cuda.matmul.allow_tf32 and
torch.backends.cudnn.allow_tf32 (Nabla's one switch, set_tf32_enabled, covers both GEMM and convolution).
cudnn.benchmark is on (the usual setting for fixed-shape training); its algorithm search happens in the
warm-up calls.

Usage: python3 benchmarks/bench_gpu_torch.py [--runs N] [--warmup N] [--filter SUBSTRING] [--only A,B]
"""
import argparse
import json
import statistics
import sys
import warnings

import torch
import torch.nn.functional as F

DEV = torch.device("cuda", 0)


def set_tf32(on: bool) -> None:
    # The legacy flags only: since PyTorch 2.9 their setters also set the new fp32_precision state
    # consistently, while setting both APIs can leave them disagreeing ("mix of legacy and new APIs" errors).
    # The deprecation warning is silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def median_ms(fn, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for i in range(runs):
        starts[i].record()
        fn()
        ends[i].record()
    ends[-1].synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


class Runner:
    def __init__(self, args):
        self.args = args

    def case(self, name, shape, dtype, tf32, unit, work, measure):
        line = {"impl": "torch", "name": name, "shape": shape, "dtype": dtype, "tf32": tf32}
        try:
            set_tf32(tf32)
            ms = measure()
            torch.cuda.synchronize()
            line["ms"] = ms
            if unit == "tflops":
                line["tflops"] = work / (ms * 1e-3) / 1e12 if ms > 0 else None
            else:
                line["gbs"] = work / (ms * 1e-3) / 1e9 if ms > 0 else None
            line["runs"] = self.args.runs
            line["warmup"] = self.args.warmup
        except Exception as e:  # one failing case must not stop the others
            line["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(line), flush=True)

    def time(self, fn):
        return median_ms(fn, self.args.warmup, self.args.runs)


# ---- the benchmarks (each returns the median ms) ------------------------------------------------------
def randn(*shape, dtype=torch.float32, requires_grad=False):
    return torch.randn(*shape, device=DEV, dtype=torch.float32).to(dtype).requires_grad_(requires_grad)


def gemm_case(r, name, n, dtype, tf32):
    def measure():
        a, b = randn(n, n, dtype=dtype), randn(n, n, dtype=dtype)
        return r.time(lambda: torch.matmul(a, b))

    dname = {torch.float32: "f32", torch.bfloat16: "bf16"}[dtype]
    r.case(name, f"{n}x{n}x{n}", dname, tf32, "tflops", 2.0 * n * n * n, measure)


CONVS = [  # tag, N, C, H, K, k, stride, padding
    ("64x56_3x3", 128, 64, 56, 64, 3, 1, 1),
    ("256x56_1x1", 128, 256, 56, 64, 1, 1, 0),
    ("128x28_3x3", 128, 128, 28, 128, 3, 1, 1),
    ("stem_7x7s2", 128, 3, 224, 64, 7, 2, 3),
]


def conv_name(tag, backward):
    return ("conv_fwdbwd_" if backward else "conv_fwd_") + tag


def conv_case(r, spec, backward):
    tag, n, c, h, k, kk, s, p = spec
    oh = (h + 2 * p - kk) // s + 1
    stem = c == 3
    fwd = 2.0 * n * k * oh * oh * c * kk * kk
    work = fwd * (2.0 if stem else 3.0) if backward else fwd
    shape = f"{n}x{c}x{h}x{h} k{k} {kk}x{kk} s{s} p{p}"

    def measure():
        x = randn(n, c, h, h, requires_grad=backward and not stem)
        w = randn(k, c, kk, kk, requires_grad=backward)
        if not backward:
            return r.time(lambda: F.conv2d(x, w, None, s, p))
        gy = randn(n, k, oh, oh)

        def step():
            w.grad = None
            if not stem:
                x.grad = None
            y = F.conv2d(x, w, None, s, p)
            y.backward(gy)

        return r.time(step)

    r.case(conv_name(tag, backward), shape, "f32", True, "tflops", work, measure)


def conv_cl_case(r, spec):
    # bf16, torch.channels_last activations and weights (what ResNet-50 uses under autocast).
    tag, n, c, h, k, kk, s, p = spec
    oh = (h + 2 * p - kk) // s + 1
    stem = c == 3
    work = 2.0 * n * k * oh * oh * c * kk * kk * (2.0 if stem else 3.0)
    shape = f"{n}x{c}x{h}x{h} k{k} {kk}x{kk} s{s} p{p}"
    cl = torch.channels_last

    def measure():
        x = randn(n, c, h, h, dtype=torch.bfloat16).contiguous(memory_format=cl).requires_grad_(not stem)
        w = randn(k, c, kk, kk, dtype=torch.bfloat16).contiguous(memory_format=cl).requires_grad_(True)
        gy = randn(n, k, oh, oh, dtype=torch.bfloat16).contiguous(memory_format=cl)

        def step():
            w.grad = None
            if not stem:
                x.grad = None
            y = F.conv2d(x, w, None, s, p)
            y.backward(gy)

        return r.time(step)

    r.case("conv_bf16_cl_fwdbwd_" + tag, shape, "bf16", True, "tflops", work, measure)


def layer_norm_case(r):
    rows, cols = 8192, 1024

    def measure():
        x = randn(rows, cols, requires_grad=True)
        w = torch.ones(cols, device=DEV, requires_grad=True)
        b = torch.zeros(cols, device=DEV, requires_grad=True)
        gy = randn(rows, cols)

        def step():
            x.grad = w.grad = b.grad = None
            y = F.layer_norm(x, (cols,), w, b, 1e-5)
            y.backward(gy)

        return r.time(step)

    r.case("layer_norm_fwdbwd", "8192x1024", "f32", False, "gbs", 5.0 * rows * cols * 4, measure)


def softmax_case(r):
    rows, cols = 8192, 4096

    def measure():
        x = randn(rows, cols)
        return r.time(lambda: torch.softmax(x, 1))

    r.case("softmax_fwd", "8192x4096", "f32", False, "gbs", 2.0 * rows * cols * 4, measure)


def add_case(r):
    n = 256 << 20

    def measure():
        a, b = randn(n), randn(n)
        return r.time(lambda: torch.add(a, b))

    r.case("add_f32_256M", str(n), "f32", False, "gbs", 3.0 * n * 4, measure)


def mlp_case(r):
    batch, width, classes = 4096, 4096, 1000
    l1 = 2.0 * batch * width * width
    l3 = 2.0 * batch * width * classes
    work = 3.0 * (l1 + l1 + l3) - l1  # no dX for the first layer

    def measure():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(width, width), torch.nn.ReLU(),
            torch.nn.Linear(width, width), torch.nn.ReLU(),
            torch.nn.Linear(width, classes)).to(DEV)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = randn(batch, width)
        labels = torch.randint(0, classes, (batch,), device=DEV)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()

        return r.time(step)

    r.case("mlp_step", "batch 4096, 4096-4096-4096-1000", "f32", True, "tflops", work, measure)


def all_cases(r):
    cases = [
        ("gemm_f32_4096", lambda: gemm_case(r, "gemm_f32_4096", 4096, torch.float32, False)),
        ("gemm_tf32_4096", lambda: gemm_case(r, "gemm_tf32_4096", 4096, torch.float32, True)),
        ("gemm_bf16_4096", lambda: gemm_case(r, "gemm_bf16_4096", 4096, torch.bfloat16, False)),
        ("gemm_bf16_8192", lambda: gemm_case(r, "gemm_bf16_8192", 8192, torch.bfloat16, False)),
    ]
    for backward in (False, True):
        for spec in CONVS:
            cases.append((conv_name(spec[0], backward), lambda spec=spec, bw=backward: conv_case(r, spec, bw)))
    for spec in CONVS:
        cases.append(("conv_bf16_cl_fwdbwd_" + spec[0], lambda spec=spec: conv_cl_case(r, spec)))
    cases += [
        ("layer_norm_fwdbwd", lambda: layer_norm_case(r)),
        ("softmax_fwd", lambda: softmax_case(r)),
        ("add_f32_256M", lambda: add_case(r)),
        ("mlp_step", lambda: mlp_case(r)),
    ]
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--filter", default="", help="run the benchmarks whose name contains this")
    ap.add_argument("--only", default="", help="comma-separated exact names")
    ap.add_argument("--list", action="store_true", help="print the names and exit")
    args = ap.parse_args()
    args.runs = max(1, args.runs)
    args.warmup = max(0, args.warmup)
    only = [n for n in args.only.split(",") if n]
    r = Runner(args)
    cases = [(n, f) for n, f in all_cases(r)
             if args.filter in n and (not only or n in only)]
    if args.list:
        print("\n".join(n for n, _ in cases))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({"impl": "torch", "name": "_meta", "error": "no CUDA device"}), flush=True)
        return 1
    torch.backends.cudnn.benchmark = True
    print(json.dumps({
        "impl": "torch", "name": "_meta", "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": True,
        "runs": args.runs, "warmup": args.warmup}), flush=True)
    for _, run in cases:
        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

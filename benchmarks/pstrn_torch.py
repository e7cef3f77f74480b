#!/usr/bin/env python3
"""TR-LeNet5 in PyTorch eager, as the authors' code contracts it (tensor_fc.py / tensor_conv.py: merge the
cores by GEMMs, 1x1 conv, kernel conv on [B R0, Ra, H, W], 1x1 projection), trained the way search_pstrn
evaluates one network: Adam 2e-3, batch 512, one epoch over the first --train-size Fashion-MNIST images,
then the 10k test set. Prints one line: seconds and networks per second, for scripts/pstrn_experiments.sh
(part bench) to set against `search_pstrn --retrain` on the same GPU.

usage: pstrn_torch.py DATA_DIR RANKS [--train-size N] [--device cuda] [--repeats K]
"""
import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def read_idx(path):
    p = Path(path)
    if not p.exists():
        p = Path(str(path) + ".gz")
    raw = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def merge(cores):
    """cores [R, n, R'] -> [R_first, prod n, R_last], by GEMMs left to right."""
    acc = cores[0].reshape(-1, cores[0].shape[2])
    n = cores[0].shape[1]
    for z in cores[1:]:
        acc = acc.reshape(-1, z.shape[0]) @ z.reshape(z.shape[0], -1)
        n *= z.shape[1]
    return acc.reshape(cores[0].shape[0], n, cores[-1].shape[2])


def core(shape, std):
    return torch.nn.Parameter(torch.randn(*shape) * std)


class TRLinear(torch.nn.Module):
    def __init__(self, ins, outs, ranks):
        super().__init__()
        a = len(ins)
        rin, rout = ranks[:a + 1], ranks[a:] + [ranks[0]]
        self.r0, self.ra = ranks[0], ranks[a]
        self.i, self.o = math.prod(ins), math.prod(outs)
        self.inc = torch.nn.ParameterList(
            [core((rin[k], ins[k], rin[k + 1]), math.sqrt(1 / self.i) if k == 0 else 1 / math.sqrt(rin[k]))
             for k in range(a)])
        self.outc = torch.nn.ParameterList(
            [core((rout[k], outs[k], rout[k + 1]),
                  math.sqrt(2 / (self.ra * self.r0)) if k == 0 else 1 / math.sqrt(rout[k])) for k in range(len(outs))])
        self.bias = torch.nn.Parameter(torch.zeros(self.o))

    def forward(self, x):
        u = merge(list(self.inc)).permute(0, 2, 1).reshape(self.r0 * self.ra, self.i)
        v = merge(list(self.outc)).permute(1, 2, 0).reshape(self.o, self.r0 * self.ra)
        return F.linear(F.linear(x, u), v, self.bias)


class TRConv(torch.nn.Module):
    def __init__(self, ins, outs, rin, rout, k, pad):
        super().__init__()
        self.cin, self.cout, self.pad = math.prod(ins), math.prod(outs), pad
        self.r0, self.ra, self.rb = rin[0], rin[-1], rout[0]
        ro = rout + [rin[0]]
        self.inc = torch.nn.ParameterList(
            [core((rin[j], ins[j], rin[j + 1]), math.sqrt(1 / self.cin) if j == 0 else 1 / math.sqrt(rin[j]))
             for j in range(len(ins))])
        self.kernel = core((self.rb, self.ra, k, k), math.sqrt(2 / (self.ra * k * k)))
        self.outc = torch.nn.ParameterList(
            [core((ro[j], outs[j], ro[j + 1]),
                  math.sqrt(1 / (self.r0 * self.rb)) if j == 0 else 1 / math.sqrt(ro[j])) for j in range(len(outs))])
        self.bias = torch.nn.Parameter(torch.zeros(self.cout))

    def forward(self, x):
        b, _, h, w = x.shape
        u = merge(list(self.inc)).permute(0, 2, 1).reshape(self.r0 * self.ra, self.cin, 1, 1)
        v = merge(list(self.outc)).permute(1, 2, 0).reshape(self.cout, self.r0 * self.rb, 1, 1)
        t = F.conv2d(x, u).reshape(b * self.r0, self.ra, h, w)
        t = F.conv2d(t, self.kernel, padding=self.pad)
        t = t.reshape(b, self.r0 * self.rb, t.shape[2], t.shape[3])
        return F.conv2d(t, v, self.bias)


class TRLeNet5(torch.nn.Module):
    def __init__(self, r):
        super().__init__()
        self.c1 = TRConv([1], [4, 5], r[0:2], r[2:4], 5, 2)
        self.c3 = TRConv([4, 5], [5, 10], r[4:7], r[7:9], 5, 0)
        self.fc5 = TRLinear([5, 5, 5, 10], [5, 8, 8], r[9:16])
        self.fc6 = TRLinear([5, 8, 8], [10], r[16:20])

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        h = F.max_pool2d(F.relu(self.c3(h)), 2)
        return self.fc6(F.relu(self.fc5(h.flatten(1))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("ranks")
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--test-size", type=int, default=10000)
    a = ap.parse_args()
    ranks = [int(v) for v in a.ranks.split(",")]
    dev = torch.device(a.device)
    d = Path(a.data_dir)
    norm = lambda u8: torch.tensor((u8.astype(np.float32) / 255 - 0.2860) / 0.3530).unsqueeze(1)
    x = norm(read_idx(d / "train-images-idx3-ubyte")[:a.train_size]).to(dev)
    y = torch.tensor(read_idx(d / "train-labels-idx1-ubyte")[:a.train_size].astype(np.int64)).to(dev)
    xt = norm(read_idx(d / "t10k-images-idx3-ubyte")[:a.test_size]).to(dev)
    yt = torch.tensor(read_idx(d / "t10k-labels-idx1-ubyte")[:a.test_size].astype(np.int64)).to(dev)
    times = []
    for rep in range(a.repeats + 1):  # the first is a warm-up
        torch.manual_seed(233)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        net = TRLeNet5(ranks).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        perm = torch.randperm(a.train_size, device=dev)
        for s in range(0, a.train_size, a.batch_size):
            i = perm[s:s + a.batch_size]
            loss = F.cross_entropy(net(x[i]), y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            correct = sum((net(xt[s:s + 1000]).argmax(1) == yt[s:s + 1000]).sum().item() for s in range(0, a.test_size, 1000))
        sync()
        if rep > 0:
            times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    print(f"pytorch {torch.__version__} {a.device}: TR-LeNet5 one epoch on {a.train_size} images + {a.test_size} test: "
          f"{med:.3f} s (median of {a.repeats}) = {1 / med:.2f} nets/s | test error {100 - 100 * correct / a.test_size:.2f}%")


if __name__ == "__main__":
    main()

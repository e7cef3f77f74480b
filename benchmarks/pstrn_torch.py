#!/usr/bin/env python3
"""TR-LeNet5 in PyTorch eager, as the authors' code contracts it (tensor_fc.py / tensor_conv.py: merge the
cores by GEMMs, 1x1 conv, kernel conv on [B R0, Ra, H, W], 1x1 projection), trained the way search_pstrn
evaluates one network: Adam 2e-3, batch 512, --epochs over the first --train-size Fashion-MNIST images,
then the 10k test set in batches of 1000. --nets networks are trained one after another in this process
(data on the device once); it prints the median seconds per network without the first (the warm-up), the
same measure as `search_pstrn --bench N`, for scripts/pstrn_experiments.sh (part bench).

usage: pstrn_torch.py DATA_DIR RANKS [--train-size N] [--epochs E] [--device cuda] [--nets N]
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
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--nets", type=int, default=6, help="networks trained one after another; the first is the warm-up")
    ap.add_argument("--test-size", type=int, default=10000)
    a = ap.parse_args()
    if a.nets < 2:
        ap.error(f"--nets: at least 2 (the first is the warm-up), got {a.nets}")
    ranks = [int(v) for v in a.ranks.split(",")]
    if len(ranks) != 20:
        ap.error(f"RANKS: TR-LeNet5 has 20 ranks, got {len(ranks)} ('{a.ranks}')")
    dev = torch.device(a.device)
    d = Path(a.data_dir)
    norm = lambda u8: torch.tensor((u8.astype(np.float32) / 255 - 0.2860) / 0.3530).unsqueeze(1)
    # The data on the device once, as search_pstrn does (load_images)
    x = norm(read_idx(d / "train-images-idx3-ubyte")[:a.train_size]).to(dev)
    y = torch.tensor(read_idx(d / "train-labels-idx1-ubyte")[:a.train_size].astype(np.int64)).to(dev)
    xt = norm(read_idx(d / "t10k-images-idx3-ubyte")[:a.test_size]).to(dev)
    yt = torch.tensor(read_idx(d / "t10k-labels-idx1-ubyte")[:a.test_size].astype(np.int64)).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for rep in range(a.nets):  # the first is the warm-up
        torch.manual_seed(233)
        sync()
        t0 = time.perf_counter()
        net = TRLeNet5(ranks).to(dev)
        params = sum(p.numel() for p in net.parameters())
        # Adam 2e-3 (torch's default implementation for the device), batch 512, no host read per step;
        # then the test set in batches of 1000, as search_pstrn's train_net
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(a.epochs):
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
        times.append(time.perf_counter() - t0)
    warm = sorted(times[1:])
    med = warm[len(warm) // 2]
    print(f"pytorch {torch.__version__} {a.device}: TR-LeNet5 ({params} parameters) {a.epochs} epoch(s) on {a.train_size} "
          f"images + {a.test_size} test, batch {a.batch_size}: {med:.4f} s/net (median of {len(warm)}, the first net "
          f"{times[0]:.3f} s excluded) = {1 / med:.2f} nets/s | test error {100 - 100 * correct / a.test_size:.2f}%")


if __name__ == "__main__":
    main()

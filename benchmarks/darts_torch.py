#!/usr/bin/env python3
"""PyTorch twin of benchmarks/bench_darts.cpp: one first-order DARTS / B-DARTS search step on the BCNN and the
8-cell DARTS supernets, in plain PyTorch (no NAS library), eager. One JSON line per (network, batch):

    {"impl": "torch", "net", "batch", "c", "image", "params", "alphas", "ms_per_step", "img_per_s", "peak_mib"}

The supernets are ports of models/bcnn.cpp (BcnnSearch, DartsSearch) and models/darts/ (operations, cells),
which follow zixiangding/BNASv2 model_search_b.py and DARTS's model_search.py: the same modules, channel
counts and parameter count (the table of scripts/gpu_check.sh GPU_CHECK_PART=darts checks they are equal).
As in the C++ MixedOp, the `none` operation (w * 0) is skipped: it adds exactly nothing.

The step is algorithms/nas/search.h search_step:
  architecture: CE on the validation batch, gradient of the alphas only (torch.autograd.grad; the C++ side
                switches the weights' requires_grad off: the same work), Adam (0.5, 0.999), weight decay 1e-3,
                lr 3e-4 x CLR confidence 0.5 (set every step)
  weights:      CE on the training batch, backward, clip_grad_norm_ 5, SGD lr 0.1 momentum 0.9 wd 3e-4
Fixed random [B, 3, 32, 32] batches on the device, 10 classes. cudnn.benchmark on (as DARTS's code), TF32 for
cuDNN and matmul (Nabla's default). After --warmup steps, --windows windows of --steps steps, the device
synchronised around each; ms_per_step is the median window's mean.

    python3 benchmarks/darts_torch.py                              # CUDA, C 16, 32², batches 256 and 64
    python3 benchmarks/darts_torch.py --device cpu --init-channels 4 --batches 8 --image-size 16 --steps 2 --windows 1
    python3 benchmarks/darts_torch.py --params-only --init-channels 4 --image-size 16   # parameter counts
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS, MULTIPLIER, NUM_OPS = 4, 4, 8


def bn(c, affine):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1, affine=affine)


class ReLUConvBN(nn.Module):
    def __init__(self, ci, co, k, s, p, affine):
        super().__init__()
        self.conv = nn.Conv2d(ci, co, k, s, p, bias=False)
        self.bn = bn(co, affine)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class DilConv(nn.Module):
    def __init__(self, ci, co, k, s, p, d, affine):
        super().__init__()
        self.depthwise = nn.Conv2d(ci, ci, k, s, p, d, groups=ci, bias=False)
        self.pointwise = nn.Conv2d(ci, co, 1, bias=False)
        self.bn = bn(co, affine)

    def forward(self, x):
        return self.bn(self.pointwise(self.depthwise(F.relu(x))))


class SepConv(nn.Module):
    def __init__(self, ci, co, k, s, p, affine):
        super().__init__()
        self.first = DilConv(ci, ci, k, s, p, 1, affine)
        self.second = DilConv(ci, co, k, 1, p, 1, affine)

    def forward(self, x):
        return self.second(self.first(x))


class FactorizedReduce(nn.Module):
    def __init__(self, ci, co, affine):
        super().__init__()
        assert co % 2 == 0
        self.conv1 = nn.Conv2d(ci, co // 2, 1, 2, bias=False)
        self.conv2 = nn.Conv2d(ci, co // 2, 1, 2, bias=False)
        self.bn = bn(co, affine)

    def forward(self, x):
        r = F.relu(x)
        return self.bn(torch.cat([self.conv1(r), self.conv2(r[:, :, 1:, 1:])], 1))


class Pool(nn.Module):  # the search supernet's pool + BN(affine=False)
    def __init__(self, is_max, c, s):
        super().__init__()
        self.pool = nn.MaxPool2d(3, s, 1) if is_max else nn.AvgPool2d(3, s, 1, count_include_pad=False)
        self.bn = bn(c, False)

    def forward(self, x):
        return self.bn(self.pool(x))


class MixedOp(nn.Module):
    def __init__(self, c, s):
        super().__init__()
        self.ops = nn.ModuleList([
            Pool(True, c, s), Pool(False, c, s),
            nn.Identity() if s == 1 else FactorizedReduce(c, c, False),
            SepConv(c, c, 3, s, 1, False), SepConv(c, c, 5, s, 2, False),
            DilConv(c, c, 3, s, 2, 2, False), DilConv(c, c, 5, s, 4, 2, False)])

    def forward(self, x, w):  # w: the edge's 8 softmax weights; w[0] (none) contributes 0
        out = None
        for k, op in enumerate(self.ops, start=1):
            y = op(x) * w[k]
            out = y if out is None else out + y
        return out


class SearchCell(nn.Module):
    def __init__(self, cpp, cp, c, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(cpp, c, False) if reduction_prev else ReLUConvBN(cpp, c, 1, 1, 0, False)
        self.pre1 = ReLUConvBN(cp, c, 1, 1, 0, False)
        self.edges = nn.ModuleList()
        for i in range(STEPS):
            for j in range(2 + i):
                self.edges.append(MixedOp(c, 2 if reduction and j < 2 else 1))

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(STEPS):
            s = None
            for j, h in enumerate(states):
                y = self.edges[offset + j](h, weights[offset + j])
                s = y if s is None else s + y
            offset += len(states)
            states.append(s)
        return torch.cat(states[-MULTIPLIER:], 1)


def ke(ci, co):  # knowledge embedding: affine ReLUConvBN 1x1
    return ReLUConvBN(ci, co, 1, 1, 0, True)


def fr(c):
    return FactorizedReduce(c, c, True)


def stem(ci, co):
    return nn.Sequential(nn.Conv2d(ci, co, 3, 1, 1, bias=False), bn(co, True))


def new_alphas():
    k = STEPS * (STEPS + 3) // 2
    return 1e-3 * torch.randn(k, NUM_OPS)


class BcnnSearch(nn.Module):
    """models/bcnn.cpp BcnnSearch (model_search_b.py Network): 2 convolution blocks + 1 enhancement cell."""

    def __init__(self, C=16, classes=10, in_ch=3, layers=2, en_layers=1):
        super().__init__()
        m = MULTIPLIER
        c_curr = 3 * C
        self.stem = stem(in_ch, c_curr)
        self.gap_ke, self.gap_fr, self.en_ke, self.en_fr, self.out_ke = (nn.ModuleList() for _ in range(5))
        self.conv_cells, self.en_cells = nn.ModuleList(), nn.ModuleList()
        cpp = cp = c_curr
        c_curr = C
        c_gap, c_en, red_prev = [], [], False
        for i in range(layers):
            c_out, c_in = (C, 3 * C) if i == 0 else (c_curr, m * c_curr)
            self.gap_ke.append(ke(c_in, c_out))
            c_gap.append(c_out)
            for t in range(len(c_gap) - 1):
                self.gap_fr.append(fr(c_gap[t]))
            c_curr *= 2
            self.conv_cells.append(SearchCell(cpp, cp, c_curr, True, red_prev))
            red_prev = True
            cpp, cp = cp, m * c_curr
            last = i + 1 == layers
            c_out_conv = c_curr * m if last else c_curr
            self.en_ke.append(ke(cp, c_out_conv))
            c_en.append(c_out_conv)
            for t in range(len(c_en) - 1):
                self.en_fr.append(fr(c_en[t]))
            if last:
                for cg in c_gap:
                    self.gap_fr.append(fr(cg))
        for j in range(en_layers):
            self.en_cells.append(SearchCell(c_en[0], c_en[1], c_curr, False, False) if j == 0
                                 else SearchCell(cpp, cp, c_curr, False, False))
            cpp, cp = cp, m * c_curr
            self.out_ke.append(ke(cp, cp if j + 1 == en_layers else c_curr))
        self.classifier = nn.Linear((en_layers - 1) * c_curr + cp + sum(c_gap), classes)
        self.alphas_normal = new_alphas().requires_grad_(True)
        self.alphas_reduce = new_alphas().requires_grad_(True)

    def arch_parameters(self):
        return [self.alphas_normal, self.alphas_reduce]

    def forward(self, x):
        conv_inputs, en_inputs, en_outputs = [], [], []
        rg = re = 0
        s0 = s1 = self.stem(x)
        w_conv, w_en = F.softmax(self.alphas_normal, -1), F.softmax(self.alphas_reduce, -1)
        n = len(self.conv_cells)
        for i, cell in enumerate(self.conv_cells):
            conv_inputs.append(self.gap_ke[i](s1))
            for k in range(len(conv_inputs) - 1):
                conv_inputs[k] = self.gap_fr[rg](conv_inputs[k]); rg += 1
            if i + 1 == n:
                for k in range(len(conv_inputs)):
                    conv_inputs[k] = self.gap_fr[rg](conv_inputs[k]); rg += 1
            s0, s1 = s1, cell(s0, s1, w_conv)
            en_inputs.append(self.en_ke[i](s1))
            for k in range(len(en_inputs) - 1):
                en_inputs[k] = self.en_fr[re](en_inputs[k]); re += 1
        for j, cell in enumerate(self.en_cells):
            nxt = cell(en_inputs[0], en_inputs[1], w_en) if j == 0 else cell(s0, s1, w_en)
            s0, s1 = s1, nxt
            en_outputs.append(self.out_ke[j](s1))
        f = torch.cat(conv_inputs + en_outputs, 1)
        return self.classifier(F.adaptive_avg_pool2d(f, 1).flatten(1))


class DartsSearch(nn.Module):
    """models/bcnn.cpp DartsSearch (DARTS's model_search.py Network without its auxiliary parts): 8 cells."""

    def __init__(self, C=16, classes=10, in_ch=3, layers=8):
        super().__init__()
        c_curr = 3 * C
        self.stem = stem(in_ch, c_curr)
        cpp = cp = c_curr
        c_curr, red_prev = C, False
        self.cells = nn.ModuleList()
        for i in range(layers):
            red = i in (layers // 3, 2 * layers // 3)
            if red:
                c_curr *= 2
            self.cells.append(SearchCell(cpp, cp, c_curr, red, red_prev))
            red_prev = red
            cpp, cp = cp, MULTIPLIER * c_curr
        self.classifier = nn.Linear(cp, classes)
        self.alphas_normal = new_alphas().requires_grad_(True)
        self.alphas_reduce = new_alphas().requires_grad_(True)

    def arch_parameters(self):
        return [self.alphas_normal, self.alphas_reduce]

    def forward(self, x):
        s0 = s1 = self.stem(x)
        w_normal, w_reduce = F.softmax(self.alphas_normal, -1), F.softmax(self.alphas_reduce, -1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def make(net, C, in_ch):
    if net == "bcnn":
        return BcnnSearch(C, 10, in_ch)
    if net == "darts":
        return DartsSearch(C, 10, in_ch)
    raise SystemExit(f"darts_torch.py: --networks names bcnn and darts, got '{net}'")


def count(model):
    return sum(p.numel() for p in model.parameters())


def bench(a, net, batch, dev):
    torch.manual_seed(1)
    model = make(net, a.init_channels, a.in_channels).to(dev).train()
    alphas = [t.detach().to(dev).requires_grad_(True) for t in model.arch_parameters()]
    model.alphas_normal, model.alphas_reduce = alphas
    weights = list(model.parameters())
    sgd = torch.optim.SGD(weights, lr=0.1, momentum=0.9, weight_decay=3e-4)
    adam = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    shape = (batch, a.in_channels, a.image_size, a.image_size)
    xt, yt = torch.randn(shape, device=dev), torch.randint(0, 10, (batch,), device=dev)
    xv, yv = torch.randn(shape, device=dev), torch.randint(0, 10, (batch,), device=dev)
    confidence = 0.5

    def step():
        # architecture step (first order): the alphas' gradient of the validation loss
        for g in adam.param_groups:
            g["lr"] = 3e-4 * confidence
        adam.zero_grad(set_to_none=True)
        vloss = F.cross_entropy(model(xv), yv)
        grads = torch.autograd.grad(vloss, alphas)
        for t, g in zip(alphas, grads):
            t.grad = g
        adam.step()
        # weight step
        sgd.zero_grad(set_to_none=True)
        for t in alphas:
            t.grad = None
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(weights, 5.0)
        sgd.step()
        for t in alphas:
            t.grad = None
        return loss.detach()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    loss = None
    for _ in range(a.warmup):
        loss = step()
    ms = []
    for _ in range(a.windows):
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        sync()
        ms.append((time.perf_counter() - t0) * 1000 / a.steps)
    ms.sort()
    m = ms[len(ms) // 2]
    r = {"impl": "torch", "net": net, "batch": batch, "c": a.init_channels, "image": a.image_size,
         "device": str(dev), "params": count(model), "alphas": sum(t.numel() for t in alphas),
         "ms_per_step": m, "ms_min": ms[0], "img_per_s": 1000.0 * batch / m, "loss": float(loss),
         "torch": torch.__version__}
    if dev.type == "cuda":
        r["peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--networks", default="bcnn,darts")
    p.add_argument("--batches", default="256,64")
    p.add_argument("--init-channels", type=int, default=16)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--params-only", action="store_true", help="print the parameter counts and exit")
    a = p.parse_args()
    nets = [n for n in a.networks.split(",") if n]
    try:
        batches = [int(b) for b in a.batches.split(",")]
        assert all(b > 0 for b in batches)
    except (ValueError, AssertionError):
        raise SystemExit(f"darts_torch.py: --batches expects a comma list of positive integers, got '{a.batches}'")
    if a.params_only:
        for net in nets:
            print(json.dumps({"impl": "torch", "net": net, "c": a.init_channels, "params":
                              count(make(net, a.init_channels, a.in_channels))}))
        return
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
    for net in nets:
        for batch in batches:
            try:
                print(json.dumps(bench(a, net, batch, dev)), flush=True)
            except Exception as e:  # one failing case (e.g. out of memory) still leaves the others' lines
                print(json.dumps({"impl": "torch", "net": net, "batch": batch, "error": repr(e)[:200]}), flush=True)
                print(f"darts_torch.py: {net} batch {batch}: {e!r}", file=sys.stderr)


if __name__ == "__main__":
    main()

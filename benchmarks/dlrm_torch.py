"""PyTorch side of benchmarks/bench_dlrm.cpp: the same DLRM (facebookresearch/dlrm's dlrm_s_pytorch.py model,
written in plain PyTorch eager with nn.EmbeddingBag) and the same timed step.

Model: 26 nn.EmbeddingBag(100000, 128, mode="sum") tables (one id per row and table: input [B, 1]), bottom MLP
13-512-256-128, the reference's dot interaction (T = cat([x] + ly).view(B, -1, D); Z = bmm(T, T^T); Z[:, li, lj]
for the strictly lower triangle; cat with x), top MLP 1024-1024-512-256-1, BCEWithLogitsLoss, torch.optim.SGD lr
0.01. Init as the reference (Linear N(0, sqrt(2/(m+n))), bias N(0, sqrt(1/m)); tables U(+-sqrt(1/n))). TF32 on.

Table sizes, as bench_dlrm's --sizes: uniform (--tables x --rows) or kaggle (the reference's 26 Kaggle
cardinalities, each capped at --max-ind-range = 10,000,000 as the reference's flag: 33,631,350 rows; run it with
the reference's Kaggle dims --dim 16 --bottom 13-512-256-64-16 --top 512-256-1). The tables are made on the
device and initialised there in one uniform_ pass (nn.EmbeddingBag's _weight argument skips its own normal_
init), so 2 GB of Kaggle tables take a fraction of a second; "init_s" reports it. Ids are uniform per table.

Table modes, as bench_dlrm: "dense" (sparse=False: a dense [100000, 128] gradient per table, what the issue's
260k / 2.39M samples/s were measured with) and "sparse" (nn.EmbeddingBag(sparse=True): sparse COO gradients,
which torch.optim.SGD applies to the touched rows only). Both run; gpu_check's table shows each beside
Nabla's mode of the same name.

Timing: --warmup untimed steps, then --steps steps between two torch.cuda.synchronize() calls. Peak memory:
torch.cuda.max_memory_allocated() over the timed steps. One JSON line per case:
{"impl": "torch", "batch", "mode", "ms_per_step", "samples_per_s", "peak_mib"}.

Usage: python dlrm_torch.py [--batch 2048,65536] [--steps 20] [--warmup 5] [--modes dense,sparse] [--device cuda]
       [--sizes uniform|kaggle] [--max-ind-range 10000000] [--dim 128] [--bottom ...] [--top ...]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn

# The Criteo Kaggle table sizes (the reference's counts; data/criteo.h's kKaggleTableSizes).
KAGGLE_TABLE_SIZES = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
                      5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572]


def mlp(widths, sigmoid_last=False, relu_last=True):
    layers = []
    for i in range(len(widths) - 1):
        m, n = widths[i], widths[i + 1]
        lin = nn.Linear(m, n, bias=True)
        with torch.no_grad():
            lin.weight.normal_(0.0, math.sqrt(2.0 / (m + n)))
            lin.bias.normal_(0.0, math.sqrt(1.0 / n))
        layers.append(lin)
        if i + 2 < len(widths) or relu_last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, sizes, dim, bottom, top, sparse, device):
        super().__init__()
        self.bot_l = mlp(bottom, relu_last=True)
        self.emb_l = nn.ModuleList()
        for rows in sizes:
            # Made and initialised on the device (one uniform_ pass; _weight skips EmbeddingBag's normal_).
            w = torch.empty(rows, dim, device=device).uniform_(-math.sqrt(1.0 / rows), math.sqrt(1.0 / rows))
            self.emb_l.append(nn.EmbeddingBag(rows, dim, mode="sum", sparse=sparse, _weight=w))
        tables = len(sizes)
        n = tables + 1
        self.li = torch.tensor([i for i in range(n) for j in range(i)])
        self.lj = torch.tensor([j for i in range(n) for j in range(i)])
        self.top_l = mlp([dim + n * (n - 1) // 2] + top, relu_last=False)

    def forward(self, dense, ids):
        x = self.bot_l(dense)
        ly = [e(ids[:, f : f + 1]) for f, e in enumerate(self.emb_l)]
        b, d = x.shape
        T = torch.cat([x] + ly, dim=1).view((b, -1, d))
        Z = torch.bmm(T, torch.transpose(T, 1, 2))
        Zflat = Z[:, self.li, self.lj]
        return self.top_l(torch.cat([x, Zflat], dim=1)).view(-1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--rows", type=int, default=100000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--bottom", default="13-512-256-128")
    p.add_argument("--top", default="1024-1024-512-256-1")
    p.add_argument("--batch", default="2048,65536")
    p.add_argument("--modes", default="dense,sparse")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--sizes", default="uniform", choices=["uniform", "kaggle"])
    p.add_argument("--max-ind-range", type=int, default=10000000)
    a = p.parse_args()
    sizes = [a.rows] * a.tables
    if a.sizes == "kaggle":
        sizes = [min(n, a.max_ind_range) for n in KAGGLE_TABLE_SIZES]
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    bottom = [int(v) for v in a.bottom.split("-")]
    top = [int(v) for v in a.top.split("-")]
    for batch in [int(v) for v in a.batch.split(",")]:
        for mode in ("dense", "sparse"):
            if mode not in a.modes.split(","):
                continue
            line = {"impl": "torch", "batch": batch, "mode": mode, "device": a.device, "torch": torch.__version__,
                    "sizes": a.sizes, "table_rows": sum(sizes), "dim": a.dim}
            try:
                torch.manual_seed(1)
                t0 = time.perf_counter()
                model = DLRM(sizes, a.dim, bottom, top, mode == "sparse", dev).to(dev)
                model.li, model.lj = model.li.to(dev), model.lj.to(dev)
                if cuda:
                    torch.cuda.synchronize()
                line["init_s"] = time.perf_counter() - t0
                opt = torch.optim.SGD(model.parameters(), lr=0.01)
                loss_fn = nn.BCEWithLogitsLoss()
                dense = torch.randn(batch, 13, device=dev)
                ids = torch.cat([torch.randint(0, n, (batch, 1), device=dev) for n in sizes], dim=1)
                labels = torch.randint(0, 2, (batch,), device=dev).float()

                def step():
                    opt.zero_grad(set_to_none=True)
                    loss_fn(model(dense, ids), labels).backward()
                    opt.step()

                for _ in range(a.warmup):
                    step()
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    step()
                if cuda:
                    torch.cuda.synchronize()
                s = time.perf_counter() - t0
                line["ms_per_step"] = 1e3 * s / a.steps
                line["samples_per_s"] = a.steps * batch / s
                line["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
                del model, opt
            except Exception as e:  # noqa: BLE001 (one case failing must not stop the others)
                line["error"] = str(e)
            if cuda:
                torch.cuda.empty_cache()
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Darknet YOLO throughput in plain PyTorch eager, the counterpart of benchmarks/bench_yolo.cpp.

The network is built from the same Darknet .cfg (convolutional with batch_normalize and leaky/linear/mish,
shortcut, route, upsample, maxpool with Darknet's padding, yolo), so both sides run the same layers. A
training step is zero_grad, forward in training mode (bf16 autocast with --amp bf16), the surrogate loss
sum over the [yolo] heads of 0.5 * mean(head^2), backward, SGD (momentum 0.9, weight decay 5e-4).
Inference: eval mode under no_grad, with the yolo layers' logistic on x, y, objectness and classes.
Timing as bench_yolo: warm-up steps, then windows of steps bracketed by CUDA events; the median window.
--channels-last: model.to(memory_format=torch.channels_last) and a channels-last input, as bench_yolo's
--channels-last. One JSON line per case.

  python3 benchmarks/yolo_torch.py --cfg yolov3.cfg --mode train --batch 16 --size 416 --amp bf16 [--channels-last]
"""
import argparse
import contextlib
import json
import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_cfg(path):
    sections = []
    for raw in open(path):
        line = raw.split("#")[0].strip().replace(" ", "")
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            sections.append({"type": line.strip("[]"), "opts": {}})
        else:
            k, v = line.split("=", 1)
            sections[-1]["opts"][k] = v
    return sections


class Darknet(nn.Module):
    def __init__(self, sections, size):
        super().__init__()
        net, layers = sections[0], sections[1:]
        self.defs = []
        self.mods = nn.ModuleList()
        channels = [int(net["opts"].get("channels", 3))]
        out_c = []
        for i, s in enumerate(layers):
            t, o = s["type"], s["opts"]
            c_in = out_c[-1] if out_c else channels[0]
            mod = nn.Identity()
            if t in ("convolutional", "conv"):
                f, k, st = int(o.get("filters", 1)), int(o.get("size", 1)), int(o.get("stride", 1))
                pad = k // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
                bn = int(o.get("batch_normalize", 0))
                seq = [nn.Conv2d(c_in, f, k, st, pad, groups=int(o.get("groups", 1)), bias=not bn)]
                if bn:
                    seq.append(nn.BatchNorm2d(f, momentum=0.01, eps=1e-5))
                act = o.get("activation", "logistic")
                if act == "leaky":
                    seq.append(nn.LeakyReLU(0.1))
                elif act == "mish":
                    seq.append(nn.Mish())
                elif act == "relu":
                    seq.append(nn.ReLU())
                mod = nn.Sequential(*seq)
                c = f
                self.defs.append(("conv", None))
            elif t == "shortcut":
                src = int(o["from"])
                src = src + i if src < 0 else src
                c = c_in
                self.defs.append(("shortcut", src))
            elif t == "route":
                srcs = [int(x) for x in o["layers"].split(",")]
                srcs = [x + i if x < 0 else x for x in srcs]
                c = sum(out_c[x] for x in srcs)
                self.defs.append(("route", srcs))
            elif t == "upsample":
                c = c_in
                self.defs.append(("upsample", int(o.get("stride", 2))))
            elif t in ("maxpool", "max"):
                st = int(o.get("stride", 1))
                k = int(o.get("size", st))
                p = int(o.get("padding", k - 1))
                c = c_in
                self.defs.append(("maxpool", (k, st, p)))
            elif t == "yolo":
                n = len(o["mask"].split(","))
                c = c_in
                self.defs.append(("yolo", (n, int(o.get("classes", 20)))))
            else:
                raise SystemExit(f"yolo_torch: [{t}] is not supported")
            self.mods.append(mod)
            out_c.append(c)

    def forward(self, x):
        outs, heads = [], []
        for (kind, arg), mod in zip(self.defs, self.mods):
            if kind == "conv":
                x = mod(x)
            elif kind == "shortcut":
                x = x + outs[arg]
            elif kind == "route":
                x = torch.cat([outs[a] for a in arg], 1) if len(arg) > 1 else outs[arg[0]]
            elif kind == "upsample":
                x = F.interpolate(x, scale_factor=arg, mode="nearest")
            elif kind == "maxpool":
                k, st, p = arg
                if p:
                    x = F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), value=float("-inf"))
                x = F.max_pool2d(x, k, st)
            elif kind == "yolo":
                if not self.training:
                    n, classes = arg
                    b, _, h, w = x.shape
                    v = x.reshape(b, n, 5 + classes, h, w)
                    x = torch.cat([v[:, :, :2].sigmoid(), v[:, :, 2:4], v[:, :, 4:].sigmoid()], 2).reshape(b, -1, h, w)
                heads.append(x)
            outs.append(x)
        return heads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cfg", required=True)
    ap.add_argument("--name", default="")
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--amp", choices=["off", "bf16"], default="off")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--no-tf32", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--profile", type=int, default=0,
                    help="after the timed windows, run this many steps under torch.profiler and print the "
                         "kernels' device time on stderr (benchmarks/profile_yolo.sh)")
    a = ap.parse_args()
    tf32 = not a.no_tf32
    name = a.name or (f"{a.mode}_b{a.batch}_{a.size}_" + ("bf16" if a.amp == "bf16" else ("tf32" if tf32 else "fp32"))
                      + ("_cl" if a.channels_last else ""))
    rec = {"impl": "torch", "name": name, "cfg": a.cfg, "mode": a.mode, "batch": a.batch, "size": a.size,
           "amp": a.amp, "loss": "surrogate", "tf32": tf32, "channels_last": a.channels_last,
           "torch": torch.__version__}
    try:
        dev = torch.device(a.device)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
        torch.manual_seed(0)
        net = Darknet(read_cfg(a.cfg), a.size).to(dev)
        rec["parameters"] = sum(p.numel() for p in net.parameters())
        images = torch.randn(a.batch, 3, a.size, a.size, device=dev)
        if a.channels_last:
            net = net.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        amp = a.amp == "bf16" and dev.type == "cuda"
        state = {}

        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()

        def train_step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                heads = net(images)
                loss = sum(0.5 * (h.float() * h.float()).mean() for h in heads)
            loss.backward()
            opt.step()
            state["loss"] = loss

        def infer_step():
            with torch.no_grad(), autocast():
                state["out"] = net(images)[-1]

        net.train(a.mode == "train")
        step = train_step if a.mode == "train" else infer_step
        for _ in range(a.warmup):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if a.mode == "train":
            rec["loss_after_warmup"] = state["loss"].item()
        ips = []
        for _ in range(a.windows):
            if dev.type == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                for _ in range(a.steps):
                    step()
                e.record()
                e.synchronize()
                ms = s.elapsed_time(e)
            else:
                import time
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    step()
                ms = (time.perf_counter() - t0) * 1e3
            ips.append(a.batch * a.steps / (ms * 1e-3))
        rec["img_per_s"] = statistics.median(ips)
        rec["windows_img_per_s"] = ips
        if a.mode == "train":
            rec["loss_last"] = state["loss"].item()
        if dev.type == "cuda":
            rec["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if a.profile and dev.type == "cuda":
            from torch_profile import print_kernel_table
            print_kernel_table(step, a.profile, 1e3 * a.batch / rec["img_per_s"])
    except Exception as e:  # one JSON line whatever happens
        rec["error"] = repr(e)
    print(json.dumps(rec), flush=True)
    return 1 if "error" in rec else 0


if __name__ == "__main__":
    raise SystemExit(main())

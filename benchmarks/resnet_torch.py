#!/usr/bin/env python3
"""PyTorch twin of benchmarks/bench_resnet.cpp: ResNet training steps on synthetic data, one JSON line per case.

The models are torchvision's ResNets (v1.5: stride on the 3x3 conv of the bottleneck), defined here so that the
script needs PyTorch alone (the GPU machine's Python may lack torchvision); parameter counts are printed so a
difference from Nabla's shows. One step = zero_grad (set_to_none), forward (under torch.autocast bf16 with
--amp bf16), cross_entropy, backward, SGD(lr 0.1, momentum 0.9, weight_decay 1e-4). Data: one batch of
torch.randn images and uniform labels made on the device once.

Timing as bench_resnet.cpp: `warmup` untimed steps, synchronize, then `windows` windows of `steps` steps between
two CUDA events, no host synchronisation inside a window; img/s of the median window. cudnn.benchmark on; TF32
for matmul and cuDNN unless --no-tf32. On --device cpu (for checking the script on a machine without a GPU)
the windows are timed with time.perf_counter.

Usage: python3 benchmarks/resnet_torch.py --name resnet50_b128_tf32 --model resnet50 --batch 128 --image-size 224
                                          --classes 1000 [--amp bf16] [--warmup 10] [--steps 10] [--windows 5]
"""
import argparse
import json
import statistics
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


SPECS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


class ResNet(nn.Module):
    def __init__(self, name, num_classes):
        super().__init__()
        block, layers = SPECS[name]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, inplanes = [], 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], layers)):
            blocks = []
            for b in range(n):
                blocks.append(block(inplanes, planes, 2 if (b == 0 and i > 0) else 1))
                inplanes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", default="")
    p.add_argument("--model", default="resnet50", choices=sorted(SPECS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--no-tf32", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--device", default="cuda")
    p.add_argument("--profile", type=int, default=0,
                   help="after the timed windows, run this many steps under torch.profiler and print the "
                        "kernels' device time on stderr (benchmarks/profile_resnet.sh)")
    a = p.parse_args()
    name = a.name or f"{a.model}_b{a.batch}_{'bf16' if a.amp == 'bf16' else 'tf32'}{'_cl' if a.channels_last else ''}"
    rec = {"impl": "torch", "name": name, "model": a.model, "batch": a.batch, "image_size": a.image_size,
           "classes": a.classes, "amp": a.amp, "channels_last": a.channels_last, "tf32": not a.no_tf32, "torch": torch.__version__}
    try:
        dev = torch.device(a.device)
        cuda = dev.type == "cuda"
        if cuda:
            with warnings.catch_warnings():  # the legacy flags only (see bench_gpu_torch.py)
                warnings.simplefilter("ignore")
                torch.backends.cuda.matmul.allow_tf32 = not a.no_tf32
                torch.backends.cudnn.allow_tf32 = not a.no_tf32
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(0)
        fmt = torch.channels_last if a.channels_last else torch.contiguous_format
        model = ResNet(a.model, a.classes).to(dev, memory_format=fmt)
        rec["parameters"] = sum(t.numel() for t in model.parameters())
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x = torch.randn(a.batch, 3, a.image_size, a.image_size, device=dev).contiguous(memory_format=fmt)
        y = torch.randint(0, a.classes, (a.batch,), device=dev)
        amp = a.amp == "bf16"
        last = {}

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            last["loss"] = loss

        for _ in range(a.warmup):
            step()
        if cuda:
            torch.cuda.synchronize()
        rec["loss_after_warmup"] = last["loss"].item() if a.warmup else None
        rates = []
        for _ in range(a.windows):
            if cuda:
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(a.steps):
                    step()
                stop.record()
                stop.synchronize()
                ms = start.elapsed_time(stop)
            else:
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    step()
                ms = (time.perf_counter() - t0) * 1e3
            rates.append(a.batch * a.steps / (ms * 1e-3))
        median = sorted(rates)[len(rates) // 2]
        rec.update({"img_per_s": median, "ms_per_step": 1e3 * a.batch / median, "windows_img_per_s": rates,
                    "steps_per_window": a.steps, "warmup": a.warmup, "loss_last": last["loss"].item()})
        if cuda:
            rec["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if a.profile and cuda:
            from torch_profile import print_kernel_table
            print_kernel_table(step, a.profile, 1e3 * a.batch / median)
    except Exception as e:  # one line per case, even for a failure
        rec["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(rec), flush=True)
    return 1 if "error" in rec else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""PyTorch side of benchmarks/lenet_cpu_vs_torch.sh: one epoch of LeNet-5 on Fashion-MNIST, on the CPU.

It mirrors what build/train_classifier does for `--epochs 1 --schedule constant --warmup-steps 0`:
  data       the four IDX files (raw or .gz), the whole set preprocessed once, outside the timed loop:
             x = (u8 / 255 - 0.2860) / 0.3530, f32 [N, 1, 28, 28]
  model      models/classifiers.cpp's lenet5: conv5x5 1->6 pad 2, relu, maxpool2, conv5x5 6->16, relu,
             maxpool2, flatten, fc 400->120, relu, fc 120->84, relu, fc 84->10
  optimizer  SGD, momentum 0.9, weight decay 5e-4 on weights only (split_decay_groups: tensors of dim <= 1,
             the biases, get none), constant lr 0.05
  loop       a fresh random permutation, batches of 64 with drop_last (937 steps); per step: gather the batch,
             forward, cross-entropy (mean), zero_grad, backward, step, loss.item() and the batch's correct
             count, the same bookkeeping as train_classifier's loop. The timer covers the whole loop, as
             train_classifier's train_s does; evaluation (batches of 1000, no_grad, eval mode) is outside.

Prints `train_s <seconds>` and `test_acc <fraction>` lines (the shell script reads them), plus a summary.
Run: /usr/bin/python3 benchmarks/lenet_torch.py --threads 2
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801


def read_idx(path, magic):
    """An IDX file (gzip detected by its first two bytes, like data/idx.cpp) as a numpy u8 array."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        sys.exit(f"lenet_torch: {path}: bad magic 0x{got:08x} at byte 0, expected 0x{magic:08x}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def find_file(data_dir, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    sys.exit(f"lenet_torch: no {stem} or {stem}.gz in {data_dir}")


def load(data_dir, train):
    prefix = "train" if train else "t10k"
    images = read_idx(find_file(data_dir, f"{prefix}-images-idx3-ubyte"), IMAGES_MAGIC)
    labels = read_idx(find_file(data_dir, f"{prefix}-labels-idx1-ubyte"), LABELS_MAGIC)
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0).sub_(0.2860).div_(0.3530).unsqueeze(1).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


class LeNet5(nn.Module):
    def __init__(self, in_channels=1, image_size=28, num_classes=10):
        super().__init__()
        s2 = ((image_size + 4 - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * s2 * s2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


@torch.no_grad()
def evaluate(model, x, y, batch_size):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    model.train()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x_train, y_train = load(a.data_dir, True)
    x_test, y_test = load(a.data_dir, False)

    model = LeNet5()
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=a.momentum)

    n = x_train.shape[0]
    steps = n // a.batch_size  # drop_last
    loss_sum, correct = 0.0, 0
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for s in range(steps):
        idx = perm[s * a.batch_size:(s + 1) * a.batch_size]
        xb, yb = x_train.index_select(0, idx), y_train.index_select(0, idx)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item()
        with torch.no_grad():
            correct += (logits.argmax(1) == yb).sum().item()
    train_s = time.perf_counter() - t0
    test_acc = evaluate(model, x_test, y_test, 1000)

    print(f"torch {torch.__version__} | threads {torch.get_num_threads()} | {steps} steps of {a.batch_size} | "
          f"train loss {loss_sum / steps:.4f} | train acc {100 * correct / (steps * a.batch_size):.2f}% | "
          f"test acc {100 * test_acc:.2f}% | {steps * a.batch_size / train_s:,.0f} img/s")
    print(f"train_s {train_s:.3f}")
    print(f"test_acc {test_acc:.4f}")


if __name__ == "__main__":
    main()

#!/bin/bash
# VRGD experiment (c) on the GPU machine: ResNet-20 on Fashion-MNIST (28x28 with --augment's pad-2 random
# crops; the CIFAR ResNet ends in adaptive pooling, so no padding to 32 is needed), each base optimizer against
# its VR variant, batch 256 to 8k with square-root LR scaling, same LR and tuned (x0.5, x1, x2), then the
# VR step-cost benchmark on ResNet-50. Prints the tables (docs/vrgd_resnet.md) and one JSON line from
# bench_vrgd; about 20-25 minutes on one H200.
#   bash scripts/vrgd_resnet_gpu.sh [data dir]
set -euo pipefail
DATA=${1:-/usr/share/datasets/fashion-mnist}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
ninja -C build train_classifier bench_vrgd
/usr/bin/python3 scripts/vrgd_fmnist.py --device cuda --model resnet20 --data-dir "$DATA" --limit-train 0 \
  --epochs 4 --batches 256,1024,4096,8192 --k 8 --augment --grid 0.5,1,2 --out docs/vrgd_resnet
./build/bench_vrgd --device cuda --model resnet50 --batch 256 --k 8

"""The kernels of a few training steps under torch.profiler, printed as a table on stderr: the device time per
step of each kernel, its share and its calls per step, most expensive first. Shared by resnet_torch.py and
yolo_torch.py (--profile N), which benchmarks/profile_resnet.sh and profile_yolo.sh run beside Nabla's
NABLA_PROFILE=1 op table. TORCH_KERNEL_TSV=path also writes the kernels as a table for
benchmarks/kernel_compare.py (total ns, calls, name per line).
"""
import os
import sys

import torch


def print_kernel_table(step, steps, timed_ms, top=40, out=sys.stderr):
    """Runs `step` `steps` times under torch.profiler (CUDA) and prints the table; timed_ms is the step's
    time from the timed windows, printed beside the kernels' sum."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    events = prof.key_averages()
    attr = "device_time_total" if hasattr(events[0], "device_time_total") else "cuda_time_total"
    # Device events only, and not the user annotations that torch.profiler also puts on the GPU timeline
    # ("Optimizer.step#SGD.step" spans the optimizer's kernels: counting it would count them twice).
    kernels = [e for e in events if getattr(e, attr, 0) > 0 and e.device_type.name == "CUDA"
               and not getattr(e, "is_user_annotation", False)
               and not e.key.startswith(("Optimizer.", "ProfilerStep#"))]
    total = sum(getattr(e, attr) for e in kernels)
    tsv = os.environ.get("TORCH_KERNEL_TSV")
    if tsv:  # the table benchmarks/kernel_compare.py reads (benchmarks/kernel_trace.cpp writes Nabla's)
        with open(tsv, "w") as f:
            f.write(f"# steps {steps}\n")
            for e in kernels:
                f.write(f"{int(getattr(e, attr) * 1000)}\t{e.count}\t{e.key}\n")
    print(f"torch.profiler, {steps} steps: kernel time {total / 1e3 / steps:.2f} ms/step "
          f"(timed step {timed_ms:.2f} ms)", file=out)
    for e in sorted(kernels, key=lambda e: -getattr(e, attr))[:top]:
        t = getattr(e, attr)
        print(f"{t / 1e3 / steps:9.3f} ms/step {100 * t / total:5.1f}% {e.count // steps:5d}/step  {e.key[:110]}",
              file=out)

"""PyTorch side of benchmarks/bench_attention.cpp: torch.nn.functional.scaled_dot_product_attention on the
same cases (BERT-base B 32 H 12 T 128 D 64 with the last quarter of each sequence padded; GPT-2 B 16 H 12
T 1024 D 64 causal; causal_d128 B 8 H 16 T 1024 D 128), f32 (TF32 on), bf16 and f16, forward and forward+backward, timed the same way (warm-up
calls, then CUDA events around each call, the median), one JSON line per case with impl "torch_sdpa".

The BERT mask is a boolean [B, 1, 1, T] attn_mask (True = attend), which keeps PyTorch off the flash backend
(flash takes no mask) and on the memory-efficient or cuDNN one, as Hugging Face's BERT with SDPA attention;
GPT-2 uses is_causal=True (the flash backend for bf16). The backend PyTorch picked is not reported.

Usage: python attention_torch.py [--runs N] [--warmup N]
"""
import argparse
import json

import torch
import torch.nn.functional as F


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for i in range(runs):
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    ms = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return ms[runs // 2] if runs % 2 else 0.5 * (ms[runs // 2 - 1] + ms[runs // 2])


def run(name, b, h, t, d, causal, dtype, args):
    fwd_flops = 4.0 * b * h * t * t * d * (0.5 if causal else 1.0)
    for pas in ("fwd", "fwd_bwd"):
        line = {"impl": "torch_sdpa", "name": name, "dtype": {torch.bfloat16: "bf16", torch.float16: "f16"}.get(dtype, "f32"),
                "shape": f"{b}x{h}x{t}x{d}", "pass": pas}
        try:
            bwd = pas == "fwd_bwd"
            q, k, v = (torch.randn(b, h, t, d, device="cuda", dtype=dtype, requires_grad=bwd) for _ in range(3))
            mask = None
            if not causal:
                keep = torch.ones(b, t, dtype=torch.bool, device="cuda")
                keep[:, t * 3 // 4:] = False
                mask = keep[:, None, None, :]
            cot = torch.randn(b, h, t, d, device="cuda", dtype=dtype)

            def step():
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
                if bwd:
                    out.backward(cot)
                    q.grad = k.grad = v.grad = None

            ms = median_ms(step, args.runs, args.warmup)
            line.update(ms=ms, tflops=(3.5 if bwd else 1.0) * fwd_flops / (ms * 1e-3) / 1e12, runs=args.runs)
        except Exception as e:  # noqa: BLE001 - one line per case, as the C++ side
            line["error"] = str(e)
        print(json.dumps(line), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    for name, b, h, t, d, causal in (("bert_base", 32, 12, 128, 64, False), ("gpt2", 16, 12, 1024, 64, True),
                                     ("causal_d128", 8, 16, 1024, 128, True)):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            run(name, b, h, t, d, causal, dtype, args)


if __name__ == "__main__":
    main()

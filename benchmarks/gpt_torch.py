#!/usr/bin/env python3
"""GPT-2 124M in plain PyTorch, timed like benchmarks/bench_gpt.cpp: the same shapes and JSON lines.

Training step: random ids (vocab 50257), logits of x against the shifted ids, bf16 autocast with f32
weights, backward, clip_grad_norm_(1.0), AdamW(lr 6e-4, betas (0.9, 0.95), weight decay 0.1 on >= 2-D
tensors). Attention is F.scaled_dot_product_attention(is_causal=True). `--warmup` untimed steps, then the
median of `--steps` steps timed with CUDA events; peak memory = torch.cuda.max_memory_allocated over them.
Runs eager, then torch.compile(model) (skipped with a note if compiling fails).
Generation: a KV cache per layer (concatenated each step), greedy, prompt --gen-prompt random ids, --gen-tokens
new tokens, batch 1 and 32; tokens/s = batch x new tokens / wall time (prefill included), as bench_gpt.

Usage: python3 benchmarks/gpt_torch.py [--batch 16] [--context 1024] [--steps 10] [--no-compile]
Lines: {"impl": "torch_eager" | "torch_compile", "what": "train" | "generate", ...}
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, e, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(e)
        self.c_attn = nn.Linear(e, 3 * e)
        self.c_proj = nn.Linear(e, e)
        self.ln_2 = nn.LayerNorm(e)
        self.c_fc = nn.Linear(e, 4 * e)
        self.mlp_proj = nn.Linear(4 * e, e)

    def forward(self, x, cache=None):
        b, t, e = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(e, dim=2)
        q, k, v = (z.view(b, t, self.h, e // self.h).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # With a cache and one new query, every key is in the past: no mask needed.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) == k.size(2) and q.size(2) > 1)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, e))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab=50257, ctx=1024, e=768, layers=12, heads=12):
        super().__init__()
        self.wte = nn.Embedding(vocab, e)
        self.wpe = nn.Embedding(ctx, e)
        self.h = nn.ModuleList(Block(e, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(e)
        for n, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if n.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif n.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids, caches=None, past=0):
        pos = torch.arange(past, past + ids.size(1), device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i])
        return self.ln_f(x) @ self.wte.weight.t()  # tied head


def median_ms(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
    ms.sort()
    return ms[len(ms) // 2]


def bench_train(impl, model, args):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator(device="cuda").manual_seed(7)
    w = torch.randint(0, 50257, (args.batch, args.context + 1), device="cuda", generator=g)
    x, y = w[:, :-1].contiguous(), w[:, 1:].contiguous()
    fwd = torch.compile(model) if impl == "torch_compile" else model
    params = list(model.parameters())
    last = {}

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        last["loss"] = loss

    ms = median_ms(step, args.steps, args.warmup)
    print(json.dumps({"impl": impl, "what": "train", "model": "gpt2", "batch": args.batch, "context": args.context,
                      "amp": "bf16", "ms": ms, "tok_per_s": args.batch * args.context / (ms / 1e3),
                      "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                      "loss": float(last["loss"])}), flush=True)


@torch.no_grad()
def bench_generate(impl, model, args):
    model.eval()
    for b in [int(s) for s in args.gen_batches.split(",")]:
        g = torch.Generator(device="cuda").manual_seed(11)
        prompt = torch.randint(0, 50257, (b, args.gen_prompt), device="cuda", generator=g)

        def run(n):
            caches = [dict() for _ in model.h]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(prompt, caches, 0)
                nxt = logits[:, -1].float().argmax(-1, keepdim=True)
                for i in range(n - 1):
                    logits = model(nxt, caches, args.gen_prompt + i)
                    nxt = logits[:, -1].float().argmax(-1, keepdim=True)
                    nxt.cpu()  # the token goes to the host each step, as in Nabla's generate
            return nxt

        run(2)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        run(args.gen_tokens)
        torch.cuda.synchronize()
        s = time.perf_counter() - t0
        print(json.dumps({"impl": impl, "what": "generate", "batch": b, "prompt": args.gen_prompt,
                          "new_tokens": args.gen_tokens, "s": s, "tok_per_s": b * args.gen_tokens / s}), flush=True)
    model.train()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gen-batches", default="1,32")
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--gen-prompt", type=int, default=64)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(1)
    model = GPT(ctx=max(1024, args.context)).cuda()
    bench_train("torch_eager", model, args)
    bench_generate("torch_eager", model, args)
    if not args.no_compile:
        try:
            bench_train("torch_compile", model, args)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(json.dumps({"impl": "torch_compile", "what": "train", "error": repr(e)[:300]}), flush=True)


if __name__ == "__main__":
    main()

"""PyTorch side of benchmarks/bench_bert.cpp: full pretraining steps of Hugging Face's BertForPreTraining
(attn_implementation="sdpa", random weights built from a BertConfig: nothing is downloaded) with
torch.optim.AdamW (lr 1e-4, weight decay 0.01 except biases and LayerNorm weights, fused=False: the
default foreach implementation), on the same cases and the same kind of batch: ids uniform over
[999, vocab), segments 0 then 1 at the middle, no padding (attention_mask all ones), 15% of the positions
labelled for the MLM with the same fixed pattern, random NSP labels, dropout 0.1.

Cases: bert-base b32 s128 TF32 and bf16 autocast, 4L-312 (TinyBERT-4: 12 heads, 1200) b64 s128 TF32.
Timing as the C++ side: warm-up steps, then CUDA events around each step, the median; peak memory is
torch.cuda.max_memory_allocated over the timed steps. One JSON line per case with impl "torch".

Usage: python bert_torch.py [--runs N] [--warmup N] [--case NAME:PRESET:BATCH:SEQ:PRECISION]...
"""
import argparse
import json

import torch

PRESETS = {
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "6L-768": dict(hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072),
    "4L-312": dict(hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200),
    "bert-tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
}
DEFAULT_CASES = ["bert_base_b32_s128:bert-base:32:128:tf32", "bert_base_b32_s128:bert-base:32:128:bf16",
                 "4l312_b64_s128:4L-312:64:128:tf32"]


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for i in range(runs):
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    ms = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return ms[runs // 2] if runs % 2 else 0.5 * (ms[runs // 2 - 1] + ms[runs // 2])


def run(spec, args):
    from transformers import BertConfig, BertForPreTraining

    name, preset, batch, seq, precision = spec.split(":")
    b, s = int(batch), int(seq)
    line = {"impl": "torch", "attention": "sdpa", "name": name, "precision": precision, "batch": b, "seq": s}
    try:
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.manual_seed(1234)
        cfg = BertConfig(vocab_size=30522, **PRESETS[preset])
        try:
            model = BertForPreTraining._from_config(cfg, attn_implementation="sdpa")
        except (TypeError, ValueError, AttributeError):
            cfg._attn_implementation = "sdpa"
            model = BertForPreTraining(cfg)
        model = model.cuda().train()
        line["attn_implementation"] = getattr(model.config, "_attn_implementation", "?")
        decay, no_decay = [], []
        for n, p in model.named_parameters():
            (no_decay if p.dim() <= 1 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
        g = torch.Generator().manual_seed(42)
        ids = torch.randint(999, cfg.vocab_size, (b, s), generator=g)
        pos = torch.arange(b * s).reshape(b, s)
        types = (pos % s >= s // 2).long()
        labelled = ((pos * 7 + 3) % 20 < 3) & (pos % s != 0)
        labels = torch.where(labelled, ids, torch.full_like(ids, -100))
        nsp = torch.randint(0, 2, (b,), generator=g)
        ids, types, labels, nsp = (t.cuda() for t in (ids, types, labels, nsp))
        mask = torch.ones_like(ids)
        bf16 = precision == "bf16"

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels,
                            next_sentence_label=nsp)
            out.loss.backward()
            opt.step()

        ms = median_ms(step, args.runs, args.warmup)
        line.update(ms=ms, seq_per_s=b / (ms * 1e-3), peak_mib=torch.cuda.max_memory_allocated() / 2**20,
                    runs=args.runs, torch=torch.__version__)
    except Exception as e:  # noqa: BLE001 - one line per case, as the C++ side
        line["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(line), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--case", action="append", default=None, help="NAME:PRESET:BATCH:SEQ:PRECISION")
    args = p.parse_args()
    for spec in args.case or DEFAULT_CASES:
        run(spec, args)


if __name__ == "__main__":
    main()

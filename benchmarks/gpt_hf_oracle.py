#!/usr/bin/env python3
"""Hugging Face oracle for Nabla's GPT-2 (models/gpt.h) and LoRA files (models/nn/lora.h).

Needs torch, transformers, safetensors and (for --check-ours) peft; no network. Two directions:

  --make DIR        a random-initialised GPT2LMHeadModel (2 layers, 128 wide, 4 heads, vocab 1000,
                    64 positions, every parameter perturbed so that biases and LayerNorms are not 0/1) saved
                    with save_pretrained to DIR/hf_model (model.safetensors + config.json), and
                    DIR/hf_io.safetensors: input_ids [3, 20], HF logits and loss (labels = input_ids), and
                    left-padded rows (lengths 20, 13, 7) with attention_mask, position_ids and their logits.
                    Then: NABLA_GPT_ORACLE_DIR=DIR ./build/nabla_models_tests --gtest_filter='GptHfOracle.*'
                    asserts our logits within 1e-4 (f32) and writes DIR/ours/ (our save_pretrained model, a
                    LoRA adapter in PEFT's format, and our logits).
  --check-ours DIR  loads DIR/ours/model in GPT2LMHeadModel and DIR/ours/adapter with
                    peft.PeftModel.from_pretrained, and compares their logits with the ones we dumped.

  --reference-ours DIR   the same comparison as --check-ours against a plain-torch GPT-2 written here from
                    transformers' modeling_gpt2.py (Conv1D as addmm(b, x, W), gelu_new, the PEFT LoRA
                    formula), needing only torch and numpy: it runs on the CI machine with Debian's
                    python3-torch (the GptTorchReference gtest calls it).

Exit status 0 when every comparison is within tolerance; a JSON summary is printed either way.
"""
import argparse
import json
import os
import sys

import math
import struct

import numpy as np
import torch

try:
    from safetensors.torch import load_file, save_file
except ImportError:  # --reference-ours only needs the reader below
    load_file = save_file = None

TOL = 1e-4


def make(out):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=1000, n_positions=64, n_embd=128, n_layer=2, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=999, eos_token_id=999)
    model = GPT2LMHeadModel(config).eval()  # the default attention (SDPA in transformers 5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.02 * torch.randn_like(p))
    model.save_pretrained(os.path.join(out, "hf_model"), safe_serialization=True)

    ids = torch.randint(0, 1000, (3, 20))
    with torch.no_grad():
        out_full = model(ids, labels=ids)
        lengths = [20, 13, 7]
        padded = torch.zeros(3, 20, dtype=torch.long)
        mask = torch.zeros(3, 20, dtype=torch.long)
        for r, n in enumerate(lengths):
            padded[r, 20 - n:] = ids[r, :n]
            mask[r, 20 - n:] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        padded_logits = model(padded, attention_mask=mask, position_ids=pos).logits
    save_file({"input_ids": ids.contiguous(), "logits": out_full.logits.float().contiguous(),
               "loss": out_full.loss.float().reshape(()).contiguous(), "padded_ids": padded,
               "attention_mask": mask, "position_ids": pos.contiguous(),
               "padded_logits": padded_logits.float().contiguous()},
              os.path.join(out, "hf_io.safetensors"))
    keys = sorted(load_file(os.path.join(out, "hf_model", "model.safetensors")).keys())
    print(json.dumps({"made": out, "loss": out_full.loss.item(), "keys": len(keys), "first_keys": keys[:4]}))
    return 0


def check_ours(d):
    from transformers import GPT2LMHeadModel

    ours = os.path.join(d, "ours")
    io = load_file(os.path.join(ours, "io.safetensors"))
    model = GPT2LMHeadModel.from_pretrained(os.path.join(ours, "model")).eval()
    ids = io["input_ids"]
    result = {}
    with torch.no_grad():
        base = model(ids).logits
    result["base_max_abs_diff"] = (base - io["logits_base"]).abs().max().item()

    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, os.path.join(ours, "adapter")).eval()
    n_lora = sum(1 for n, _ in peft_model.named_parameters() if "lora_" in n)
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
    result["lora_tensors_in_peft_model"] = n_lora
    result["lora_max_abs_diff"] = (adapted - io["logits_lora"]).abs().max().item()
    result["lora_effect"] = (io["logits_lora"] - io["logits_base"]).abs().max().item()
    ok = (result["base_max_abs_diff"] < TOL and result["lora_max_abs_diff"] < TOL
          and result["lora_effect"] > 1e-3 and n_lora > 0)
    result["ok"] = ok
    print(json.dumps(result))
    return 0 if ok else 1


_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8,
           "F16": np.float16}


def read_safetensors(path):
    """A plain reader of the safetensors format (header length, JSON header, data), for torch-only machines."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        a = np.frombuffer(data[b:end], dtype=_DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


def gpt2_reference(sd, config, ids, lora=None):
    """GPT-2 logits as transformers' modeling_gpt2.py computes them (eval mode), in f64.

    sd: transformers' state dict (Conv1D weights [in, out]); lora: {layer name: (A [r, in], B [out, r], s)}."""
    sd = {k: v.double() for k, v in sd.items()}
    if "transformer.wte.weight" not in sd:
        sd = {"transformer." + k: v for k, v in sd.items()}
    e, nh, eps = config["n_embd"], config["n_head"], config.get("layer_norm_epsilon", 1e-5)
    d = e // nh

    def conv1d(name, x):  # transformers' Conv1D: addmm(bias, x, weight), weight [in, out]
        y = torch.addmm(sd[name + ".bias"], x.reshape(-1, x.shape[-1]), sd[name + ".weight"])
        y = y.reshape(*x.shape[:-1], -1)
        if lora and name in lora:
            a, b, s = lora[name]
            y = y + (x @ a.double().t() @ b.double().t()) * s
        return y

    def ln(name, x):
        return torch.nn.functional.layer_norm(x, (e,), sd[name + ".weight"], sd[name + ".bias"], eps)

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    bsz, t = ids.shape
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][torch.arange(t)][None]
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    for layer in range(config["n_layer"]):
        p = "transformer.h.%d." % layer
        q, k, v = conv1d(p + "attn.c_attn", ln(p + "ln_1", x)).split(e, dim=2)
        q, k, v = (z.reshape(bsz, t, nh, d).transpose(1, 2) for z in (q, k, v))
        w = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        w = w.masked_fill(~causal, torch.finfo(w.dtype).min).softmax(-1)
        a = (w @ v).transpose(1, 2).reshape(bsz, t, e)
        x = x + conv1d(p + "attn.c_proj", a)
        x = x + conv1d(p + "mlp.c_proj", gelu_new(conv1d(p + "mlp.c_fc", ln(p + "ln_2", x))))
    return ln("transformer.ln_f", x) @ sd["transformer.wte.weight"].t()


def reference_ours(d):
    ours = os.path.join(d, "ours")
    io = read_safetensors(os.path.join(ours, "io.safetensors"))
    sd = read_safetensors(os.path.join(ours, "model", "model.safetensors"))
    with open(os.path.join(ours, "model", "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(ours, "adapter", "adapter_config.json")) as f:
        acfg = json.load(f)
    adapter = read_safetensors(os.path.join(ours, "adapter", "adapter_model.safetensors"))
    s = acfg["lora_alpha"] / acfg["r"]
    lora = {}
    for k, v in adapter.items():
        assert k.startswith("base_model.model.") and (k.endswith(".lora_A.weight") or k.endswith(".lora_B.weight")), k
        layer = k[len("base_model.model."):].rsplit(".lora_", 1)[0]
        a_or_b = 0 if k.endswith(".lora_A.weight") else 1
        lora.setdefault(layer, [None, None, s])[a_or_b] = v
    ids = io["input_ids"]
    result = {}
    with torch.no_grad():
        base = gpt2_reference(sd, config, ids)
        adapted = gpt2_reference(sd, config, ids, {k: tuple(v) for k, v in lora.items()})
    result["base_max_abs_diff"] = (base - io["logits_base"].double()).abs().max().item()
    result["lora_layers"] = len(lora)
    result["lora_max_abs_diff"] = (adapted - io["logits_lora"].double()).abs().max().item()
    result["lora_effect"] = (io["logits_lora"] - io["logits_base"]).abs().max().item()
    ok = (result["base_max_abs_diff"] < TOL and result["lora_max_abs_diff"] < TOL and result["lora_effect"] > 1e-3)
    result["ok"] = ok
    print(json.dumps(result))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--make", metavar="DIR")
    g.add_argument("--check-ours", metavar="DIR")
    g.add_argument("--reference-ours", metavar="DIR")
    a = ap.parse_args()
    if a.make:
        os.makedirs(a.make, exist_ok=True)
        return make(a.make)
    if a.reference_ours:
        return reference_ours(a.reference_ours)
    return check_ours(a.check_ours)


if __name__ == "__main__":
    sys.exit(main())

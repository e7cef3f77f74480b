#!/usr/bin/env python3
"""Hugging Face oracle for Nabla's BERT (models/bert.h): writes the files that the gtest
BertHfOracle.LogitsLossAndGradientsMatchTransformers compares with, and checks the model that the test
writes back.

  # 1. transformers' side: a random-initialised BertForPreTraining, its checkpoint, fixed inputs, its outputs
  python3 benchmarks/bert_hf_oracle.py --out /tmp/bert_oracle
  # 2. ours: loads the checkpoint, compares logits/loss/gradients, writes /tmp/bert_oracle/ours
  NABLA_BERT_ORACLE_DIR=/tmp/bert_oracle ./build/nabla_models_tests --gtest_filter='BertHfOracle.*'
  # 3. transformers loads our checkpoint and compares its logits with the ones we dumped
  python3 benchmarks/bert_hf_oracle.py --check-ours /tmp/bert_oracle/ours

--out DIR writes
  config.json, model.safetensors   transformers' save_pretrained of the model (weights perturbed away from the
                                   init, so LayerNorm weights and biases are not all 1 and 0)
  inputs.safetensors               input_ids, token_type_ids (sentence pairs), attention_mask (rows padded to
                                   different lengths), labels (MLM: ~15% of the real tokens, -100 elsewhere),
                                   next_sentence_label; all int64
  outputs.safetensors              prediction_logits, seq_relationship_logits, loss (eval mode: no dropout),
                                   and grad.<name> of every parameter for that loss (the tied decoder's
                                   gradient is in grad.bert.embeddings.word_embeddings.weight)
--check-ours DIR loads DIR (our config.json + model.safetensors) with transformers, runs DIR/inputs.safetensors
  and compares with DIR/ours_outputs.safetensors; exit status 0 when every difference is below --tol.

--reference torch uses a plain-PyTorch BERT written below (the same state-dict names and maths) instead of
transformers: for machines without transformers (Debian's python3-torch), to test this script and the
file formats. The default, auto, takes transformers when it imports.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

# ---- safetensors without the safetensors package (the format is a JSON header and raw little-endian data) ----
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
_TORCH = {v: k for k, v in _DTYPES.items()}


def save_tensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        data = t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def load_tensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(raw[8 + n + b:8 + n + end])
        dtype = _TORCH[e["dtype"]]
        t = torch.frombuffer(buf, dtype=torch.uint8).view(dtype) if buf else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


# ---- a plain-PyTorch BertForPreTraining with transformers' names (the --reference torch fallback) ----
class _Cfg:
    def __init__(self, d):
        self.__dict__.update(d)


def _act(name, x):
    if name == "gelu":
        return torch.nn.functional.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return torch.nn.functional.gelu(x, approximate="tanh")
    if name == "relu":
        return torch.relu(x)
    raise ValueError(f"hidden_act {name!r} not supported")


class _Embeddings(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = torch.nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = torch.nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = torch.nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = torch.nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = torch.nn.Dropout(c.hidden_dropout_prob)

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1], device=ids.device)
        e = self.word_embeddings(ids) + self.token_type_embeddings(types)
        return self.dropout(self.LayerNorm(e + self.position_embeddings(pos)))


class _SelfAttention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.d = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.query = torch.nn.Linear(c.hidden_size, c.hidden_size)
        self.key = torch.nn.Linear(c.hidden_size, c.hidden_size)
        self.value = torch.nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = torch.nn.Dropout(c.attention_probs_dropout_prob)

    def forward(self, x, mask):
        b, s, _ = x.shape
        q, k, v = (t(x).view(b, s, self.heads, self.d).permute(0, 2, 1, 3) for t in (self.query, self.key, self.value))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + mask
        ctx = self.dropout(scores.softmax(-1)) @ v
        return ctx.permute(0, 2, 1, 3).reshape(b, s, self.heads * self.d)


class _ResidualOutput(torch.nn.Module):
    def __init__(self, c, n_in):
        super().__init__()
        self.dense = torch.nn.Linear(n_in, c.hidden_size)
        self.LayerNorm = torch.nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = torch.nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class _Attention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _ResidualOutput(c, c.hidden_size)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class _Intermediate(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = torch.nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = c.hidden_act

    def forward(self, x):
        return _act(self.act, self.dense(x))


class _Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _ResidualOutput(c, c.intermediate_size)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class _Encoder(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = torch.nn.ModuleList([_Layer(c) for _ in range(c.num_hidden_layers)])


class _Pooler(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = torch.nn.Linear(c.hidden_size, c.hidden_size)


class _Bert(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.encoder = _Encoder(c)
        self.pooler = _Pooler(c)


class _Transform(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = torch.nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = torch.nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class _Predictions(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transform = _Transform(c)
        self.bias = torch.nn.Parameter(torch.zeros(c.vocab_size))


class _Cls(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = _Predictions(c)
        self.seq_relationship = torch.nn.Linear(c.hidden_size, 2)


class TorchBertForPreTraining(torch.nn.Module):
    """transformers' BertForPreTraining in plain PyTorch (tied decoder, eager attention)."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.bert = _Bert(c)
        self.cls = _Cls(c)
        for m in self.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                torch.nn.init.normal_(m.weight, 0.0, c.initializer_range)
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.zeros_(m.bias)

    def forward(self, input_ids, token_type_ids, attention_mask, labels=None, next_sentence_label=None):
        c, bert = self.config, self.bert
        mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = bert.embeddings(input_ids, token_type_ids)
        for layer in bert.encoder.layer:
            h = layer(h, mask)
        pooled = torch.tanh(bert.pooler.dense(h[:, 0]))
        t = self.cls.predictions.transform
        z = t.LayerNorm(_act(c.hidden_act, t.dense(h)))
        mlm = z @ bert.embeddings.word_embeddings.weight.t() + self.cls.predictions.bias
        nsp = self.cls.seq_relationship(pooled)
        loss = None
        if labels is not None and next_sentence_label is not None:
            ce = torch.nn.functional.cross_entropy
            loss = ce(mlm.view(-1, c.vocab_size), labels.view(-1), ignore_index=-100) + ce(nsp, next_sentence_label)
        return loss, mlm, nsp


# ---- the two references behind one interface ----
def pick_reference(kind):
    if kind in ("auto", "transformers"):
        try:
            import transformers  # noqa: F401
            return "transformers"
        except ImportError:
            if kind == "transformers":
                raise
            print("bert_hf_oracle: transformers is not importable; using the plain-PyTorch reference", file=sys.stderr)
    return "torch"


def build_model(reference, cfg, attn):
    if reference == "torch":
        return TorchBertForPreTraining(_Cfg(cfg)), f"plain PyTorch {torch.__version__}"
    import transformers
    config = transformers.BertConfig(**cfg)
    try:
        model = transformers.BertForPreTraining._from_config(config, attn_implementation=attn)
    except (AttributeError, TypeError, ValueError) as e:
        print(f"bert_hf_oracle: attn_implementation={attn!r} not taken ({e}); transformers' default", file=sys.stderr)
        model = transformers.BertForPreTraining(config)
    return model, f"transformers {transformers.__version__} ({attn})"


def load_model(reference, path, attn):
    if reference == "torch":
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        model = TorchBertForPreTraining(_Cfg(cfg))
        state, meta = load_tensors(os.path.join(path, "model.safetensors"))
        assert meta.get("format") == "pt", f"{path}/model.safetensors: metadata format is {meta.get('format')!r}, expected 'pt'"
        info = model.load_state_dict(state, strict=False)
        return model, {"missing_keys": list(info.missing_keys), "unexpected_keys": list(info.unexpected_keys)}
    import transformers
    try:
        model, info = transformers.BertForPreTraining.from_pretrained(path, output_loading_info=True,
                                                                      attn_implementation=attn)
    except (TypeError, ValueError):
        model, info = transformers.BertForPreTraining.from_pretrained(path, output_loading_info=True)
    return model.float(), info


def run(reference, model, inputs):
    if reference == "torch":
        loss, mlm, nsp = model(inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"],
                               inputs["labels"], inputs["next_sentence_label"])
        return loss, mlm, nsp
    out = model(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"],
                attention_mask=inputs["attention_mask"], labels=inputs["labels"],
                next_sentence_label=inputs["next_sentence_label"])
    return out.loss, out.prediction_logits, out.seq_relationship_logits


def save_model(reference, model, out_dir, cfg):
    if reference == "torch":
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(dict(cfg, model_type="bert", architectures=["BertForPreTraining"]), f, indent=2)
        state = {k: v for k, v in model.state_dict().items()}
        save_tensors(os.path.join(out_dir, "model.safetensors"), state, {"format": "pt"})
        return
    model.save_pretrained(out_dir)
    if not os.path.exists(os.path.join(out_dir, "model.safetensors")):
        sys.exit(f"bert_hf_oracle: save_pretrained wrote no model.safetensors in {out_dir}: {sorted(os.listdir(out_dir))}")


# Names of tied parameters as our state dict has them.
_CANONICAL = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
              "cls.predictions.decoder.bias": "cls.predictions.bias"}


def make_inputs(cfg, batch, seq, gen):
    v = cfg["vocab_size"]
    ids = torch.randint(5, v, (batch, seq), generator=gen)
    lengths = [seq] + [max(3, seq - 3 - 4 * i) for i in range(1, batch)]
    mask = torch.zeros(batch, seq, dtype=torch.int64)
    types = torch.zeros(batch, seq, dtype=torch.int64)
    labels = torch.full((batch, seq), -100, dtype=torch.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        types[b, n // 2:n] = 1
        ids[b, n:] = cfg["pad_token_id"]
        pick = torch.rand(n, generator=gen) < 0.15
        pick[1] = True  # at least one label per row
        labels[b, :n][pick] = ids[b, :n][pick]
        ids[b, :n][pick] = 3  # the [MASK] stand-in
    nsp = torch.randint(0, 2, (batch,), generator=gen)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels,
            "next_sentence_label": nsp}


def write_oracle(args):
    reference = pick_reference(args.reference)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    cfg = {"vocab_size": args.vocab, "hidden_size": args.hidden, "num_hidden_layers": args.layers,
           "num_attention_heads": args.heads, "intermediate_size": args.intermediate, "hidden_act": args.act,
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64,
           "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "initializer_range": 0.02}
    model, name = build_model(reference, cfg, args.attn)
    with torch.no_grad():  # away from the init: LayerNorm weights and every bias become non-trivial
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    model.eval()
    inputs = make_inputs(cfg, args.batch, args.seq, gen)
    loss, mlm, nsp = run(reference, model, inputs)
    model.zero_grad()
    loss.backward()
    outputs = {"prediction_logits": mlm, "seq_relationship_logits": nsp, "loss": loss.reshape(())}
    for n, p in model.named_parameters():
        if p.grad is not None:
            outputs["grad." + _CANONICAL.get(n, n)] = p.grad
    os.makedirs(args.out, exist_ok=True)
    save_model(reference, model, args.out, cfg)
    save_tensors(os.path.join(args.out, "inputs.safetensors"), inputs)
    save_tensors(os.path.join(args.out, "outputs.safetensors"), outputs, {"reference": name})
    keys = sorted(load_tensors(os.path.join(args.out, "model.safetensors"))[0])
    print(f"bert_hf_oracle: {name}: wrote {args.out} ({len(keys)} tensors in model.safetensors, "
          f"{sum(k.startswith('grad.') for k in outputs)} gradients, loss {loss.item():.6f})")


def check_ours(args):
    reference = pick_reference(args.reference)
    model, info = load_model(reference, args.check_ours, args.attn)
    tied = set(_CANONICAL)

    def keys(what):  # a dict in transformers 4.x; tolerate an object with attributes too
        v = info.get(what, []) if isinstance(info, dict) else getattr(info, what, [])
        return sorted(str(k) for k in (v or []))

    missing = [k for k in keys("missing_keys") if k not in tied]
    unexpected = keys("unexpected_keys")
    mismatched = keys("mismatched_keys")
    print(f"bert_hf_oracle: loaded {args.check_ours}: missing {missing}, unexpected {unexpected}, mismatched {mismatched}")
    model.eval()
    inputs, _ = load_tensors(os.path.join(args.check_ours, "inputs.safetensors"))
    ours, _ = load_tensors(os.path.join(args.check_ours, "ours_outputs.safetensors"))
    with torch.no_grad():
        loss, mlm, nsp = run(reference, model, inputs)
    diffs = {"prediction_logits": (mlm - ours["prediction_logits"]).abs().max().item(),
             "seq_relationship_logits": (nsp - ours["seq_relationship_logits"]).abs().max().item(),
             "loss": abs(loss.item() - ours["loss"].item())}
    ok = not missing and not unexpected and not mismatched and all(d < args.tol for d in diffs.values())
    for k, d in diffs.items():
        print(f"  max |diff| {k}: {d:.3g}")
    who = "transformers" if reference == "transformers" else "the plain-PyTorch reference"
    print("bert_hf_oracle: " + (f"OK: {who} reproduces our logits" if ok else f"FAILED (tolerance {args.tol})"))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the oracle folder here")
    p.add_argument("--check-ours", help="load our checkpoint folder in the reference and compare logits")
    p.add_argument("--reference", choices=["auto", "transformers", "torch"], default="auto")
    p.add_argument("--attn", default="sdpa", help="transformers' attn_implementation (sdpa or eager)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=512)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--act", default="gelu")
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    torch.backends.cuda.matmul.allow_tf32 = False
    if bool(args.out) == bool(args.check_ours):
        p.error("give exactly one of --out DIR and --check-ours DIR")
    if args.out:
        write_oracle(args)
        return 0
    return check_ours(args)


if __name__ == "__main__":
    sys.exit(main())

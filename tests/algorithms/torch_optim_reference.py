"""Runs torch.optim on parameters and gradients read from JSON and writes the final parameters back.

Used by tests/algorithms/test_optim.cpp (OptimTorchParity). Input: a list of cases
  {"optimizer": "sgd" | "adam" | "adamw", "options": {...},
   "params": [{"shape": [...], "values": [...]}, ...], "grads": [[values per param] per step]}
Output: a list (one per case) of lists of flattened final parameters. Everything in float64.
"""
import json
import sys

import torch


def make_optimizer(kind, params, o):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], dampening=o["dampening"],
                               weight_decay=o["weight_decay"], nesterov=o["nesterov"])
    if kind == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                                weight_decay=o["weight_decay"])
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                                 weight_decay=o["weight_decay"])
    raise ValueError("unknown optimizer " + kind)


def run_case(case):
    params = [torch.tensor(p["values"], dtype=torch.float64).reshape(p["shape"]).requires_grad_()
              for p in case["params"]]
    opt = make_optimizer(case["optimizer"], params, case["options"])
    for grads in case["grads"]:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float64).reshape(p.shape)
        opt.step()
    return [p.detach().reshape(-1).tolist() for p in params]


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    with open(sys.argv[2], "w") as f:
        json.dump([run_case(c) for c in cases], f)


if __name__ == "__main__":
    main()

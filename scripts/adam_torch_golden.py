#!/usr/bin/env python3
"""Writes crates/bae-ref/tests/data/adam_torch_f32.json: float32 trajectories of torch.optim.Adam, the
reference that `crates/bae-ref/tests/adam_torch.rs` checks bae_ref::Adam against bit for bit.

torch's own optimiser runs (foreach=True, the path the official code takes on CUDA, and the default
single-tensor path; both must agree), with one substitution: on the CPU torch's f32 sqrt goes through
MKL's vector math (within 1 ulp, not correctly rounded: ~18 % of results differ from IEEE sqrt here),
while CUDA's sqrtf, which the official training used, is correctly rounded. The script replaces the
sqrt torch's Adam calls by an IEEE one (f64 sqrt of an f32, rounded to f32: exact) and checks that
replacement against numpy's f32 sqrt. Every other operation is torch's own: lerp and addcmul (fused
multiply-adds on the CPU, as nvcc contracts them on CUDA), the division and addcdiv.

Needs torch and numpy (scripts/crosscheck_setup.sh makes data/venv with both):
    data/venv/bin/python scripts/adam_torch_golden.py
"""
import json
import pathlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/bae-ref/tests/data/adam_torch_f32.json"

# the shapes of a tiny BAE (d = 5, d' = 19), in bae_ref::Params order; odd lengths exercise the
# vector loops' tails
D, DC = 5, 19
SHAPES = {"w_enc": D * DC, "b_enc": DC, "w_dec": DC * D, "b_dec": D}
STEPS = 20
CHECKPOINTS = [1, 2, 3, 10, 20]
CONFIGS = [
    {"name": "official", "lr": 5e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    {"name": "fast", "lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
]


_TORCH_SQRT = torch.sqrt


def ieee_sqrt(t):
    out = _TORCH_SQRT(t.double()).float()
    assert np.array_equal(out.numpy(), np.sqrt(t.numpy())), "f64 sqrt rounded to f32 is not IEEE"
    return out


def bits(t):
    return t.detach().numpy().astype(np.float32).view(np.uint32).tolist()


def gradients(seed):
    """Mixed scales, exact zeros and a sign flip between steps, so eps and every rounding matter."""
    g = torch.Generator().manual_seed(seed)
    steps = []
    for s in range(STEPS):
        step = {}
        for name, n in SHAPES.items():
            scale = torch.exp(torch.empty(n).uniform_(-14.0, 2.0, generator=g))
            x = torch.randn(n, generator=g) * scale
            x[torch.rand(n, generator=g) < 0.1] = 0.0
            if s % 7 == 3:
                x = -x
            step[name] = x.float()
        steps.append(step)
    return steps


def run(config, init, grads, foreach):
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    opt = torch.optim.Adam(
        list(params.values()),
        lr=config["lr"],
        betas=(config["beta1"], config["beta2"]),
        eps=config["eps"],
        foreach=foreach,
    )
    out = []
    for s, g in enumerate(grads, start=1):
        for k, p in params.items():
            p.grad = g[k].clone()
        opt.step()
        if s in CHECKPOINTS:
            out.append({"step": s, **{k: bits(p) for k, p in params.items()}})
    state = [opt.state[p] for p in params.values()]
    moments = {
        "m": {k: bits(st["exp_avg"]) for k, st in zip(params, state)},
        "v": {k: bits(st["exp_avg_sq"]) for k, st in zip(params, state)},
    }
    return out, moments


def main():
    torch.set_num_threads(1)
    torch._foreach_sqrt = lambda ts: [ieee_sqrt(t) for t in ts]
    torch.Tensor.sqrt = ieee_sqrt
    cases = []
    for i, config in enumerate(CONFIGS):
        g = torch.Generator().manual_seed(100 + i)
        init = {k: (torch.randn(n, generator=g) * 0.1).float() for k, n in SHAPES.items()}
        grads = gradients(200 + i)
        traj, moments = run(config, init, grads, foreach=True)
        single, single_moments = run(config, init, grads, foreach=False)
        assert traj == single and moments == single_moments, "foreach and single-tensor Adam differ"
        cases.append(
            {
                "config": config,
                "init": {k: bits(v) for k, v in init.items()},
                "grads": [{k: bits(v) for k, v in step.items()} for step in grads],
                "checkpoints": traj,
                "final_moments": moments,
            }
        )
    doc = {
        "what": "torch.optim.Adam float32 trajectories (IEEE sqrt); values are f32 bit patterns",
        "torch": torch.__version__,
        "d": D,
        "d_code": DC,
        "steps": STEPS,
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    main()

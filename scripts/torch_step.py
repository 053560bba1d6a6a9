#!/usr/bin/env python3
"""The official BAE training step in PyTorch, timed on a GPU (or the CPU): the baseline for our trainer.

Re-expresses the official trainer's step faithfully (float32):
  * encoder / decoder: nn.Linear with bias (d -> d', d' -> d), torch's default init
  * H = 1[Z > 0] via a custom autograd Function whose backward is the official `sign_s`
    estimator dL/dZ = G * (1 - G) on the upstream gradient G (`--estimator ste`: dL/dZ = G)
  * loss = element-mean MSE
         + lambda_e * summed Bernoulli entropy in bits (eps 1e-10; the constant 0 when negative)
         + lambda_c * sum_{j != k} |torch.cov(H.T)|_jk
  * Adam(lr 5e-4, betas (0.9, 0.999), eps 1e-8), float32, TF32 off.
and a best-effort variant: bf16 autocast + torch.compile of forward and loss.

Timing: CUDA events (on the CPU: a monotonic clock) around whole steps (forward, loss, backward,
optimizer.step), after warm-up, median of many, at d=2048, d'=8192, n=512 and d=3072, d'=12288, n=512. Prints tokens/s and the
achieved TFLOP/s counting the autoencoder's dense products (10 n d d') and, separately, the
covariance products torch really runs (~6 n d'^2: cov forward and its backward).

  python3 scripts/torch_step.py                # both variants, both sizes
  python3 scripts/torch_step.py --no-compile   # official float32 only
  python3 scripts/torch_step.py --sizes 2048,8192,512 --reps 100
  python3 scripts/torch_step.py --device cpu --threads 2 --no-compile --sizes 576,2304,512
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class StepSignS(torch.autograd.Function):
    """H = 1[z > 0]; backward: G * (1 - G) (official `sign_s`)."""

    @staticmethod
    def forward(ctx, z):
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        return g * (1 - g)


class StepSTE(torch.autograd.Function):
    """H = 1[z > 0]; backward: identity straight-through (official `sign`)."""

    @staticmethod
    def forward(ctx, z):
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


class BAE(nn.Module):
    def __init__(self, d, dc, estimator):
        super().__init__()
        self.encoder = nn.Linear(d, dc)
        self.decoder = nn.Linear(dc, d)
        self.binarize = StepSignS if estimator == "sign_s" else StepSTE

    def forward(self, x):
        h = self.binarize.apply(self.encoder(x))
        return h, self.decoder(h)


def entropy_bits(h):
    p = h.mean(0)
    ent = -(p * torch.log2(p + 1e-10) + (1 - p) * torch.log2(1 - p + 1e-10)).sum()
    # the official trainer optimises a constant 0 when the (epsilon-biased) sum is negative
    return torch.where(ent < 0, torch.zeros_like(ent), ent)


def covariance_term(h):
    c = torch.cov(h.T)
    return (c - torch.diag(torch.diagonal(c))).abs().sum()


def loss_fn(model, x, lambda_e, lambda_c, entropy_on):
    h, x_hat = model(x)
    loss = F.mse_loss(x_hat, x)
    if entropy_on:
        loss = loss + lambda_e * entropy_bits(h)
    if lambda_c != 0.0:
        loss = loss + lambda_c * covariance_term(h)
    return loss


def time_steps(step, reps, warmup, dev):
    for _ in range(warmup):
        step()
    if dev.type == "cpu":
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            step()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times), min(times), max(times)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), min(times), max(times)


def run(d, dc, n, variant, args):
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = BAE(d, dc, args.estimator).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    batches = [torch.randn(n, d, device=dev) for _ in range(4)]  # rotate: no cache-warm repeats
    it = [0]
    lam_c = 0.0 if args.no_cov else args.lambda_c

    compute = loss_fn
    if variant == "bf16+compile":
        def compute(model, x, le, lc, on):
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                return loss_fn(model, x, le, lc, on)
        compute = torch.compile(compute)

    def step():
        x = batches[it[0] % len(batches)]
        it[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = compute(model, x, args.lambda_e, lam_c, True)
        loss.backward()
        opt.step()

    med, lo, hi = time_steps(step, args.reps, args.warmup, dev)
    ae_flops = 10.0 * n * d * dc
    cov_flops = 6.0 * n * dc * dc if lam_c != 0.0 else 0.0
    s = med / 1e3
    print(
        f"{variant:<14} d={d:<5} d'={dc:<6} n={n:<4} step {med:8.3f} ms (min {lo:.3f}, max {hi:.3f})  "
        f"{n / s:10.0f} tok/s  AE {ae_flops / s / 1e12:6.1f} TFLOP/s  "
        f"AE+cov {(ae_flops + cov_flops) / s / 1e12:6.1f} TFLOP/s"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2048,8192,512;3072,12288,512", help="d,d',n;d,d',n")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--estimator", choices=["sign_s", "ste"], default="sign_s")
    ap.add_argument("--lambda-e", type=float, default=1e-7)
    ap.add_argument("--lambda-c", type=float, default=1e-7)
    ap.add_argument("--no-cov", action="store_true", help="drop the covariance term")
    ap.add_argument("--no-compile", action="store_true", help="official float32 variant only")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        where = torch.cuda.get_device_name()
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}")
    variants = ["f32"] + ([] if args.no_compile else ["bf16+compile"])
    for spec in args.sizes.split(";"):
        d, dc, n = (int(v) for v in spec.split(","))
        for v in variants:
            run(d, dc, n, v, args)


if __name__ == "__main__":
    main()

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
optimizer.step), after warm-up, median of many, at d=576, d'=2304, n=512 and d=2048, d'=8192, n=512
(the sizes of our bench). Every config prints one greppable line as soon as it is measured:

  TORCH variant=f32|bf16+compile d=.. dc=.. n=.. median_ms=.. min_ms=.. max_ms=.. reps=.. tok_s=..
        ae_tflops=.. ae_cov_tflops=..
  TORCH variant=.. d=.. dc=.. n=.. FAILED <error>          (the other configs still run)

counting the autoencoder's dense products (10 n d d') and, separately, the covariance products torch
really runs (~6 n d'^2: cov forward and its backward). `--ceilings` (CUDA) first measures the two
rates a floor is made of, as lines `CEILING torch_bf16_matmul m=.. n=.. k=.. median_ms=.. tflops=..`
and `CEILING torch_dtod_copy bytes=.. median_ms=.. gbps=..` (bytes read + written).

  python3 scripts/torch_step.py                # both variants, both sizes
  python3 scripts/torch_step.py --ceilings     # the same, the GEMM and copy rates first
  python3 scripts/torch_step.py --no-compile   # official float32 only
  python3 scripts/torch_step.py --sizes 2048,8192,512 --reps 100
  python3 scripts/torch_step.py --device cpu --threads 2 --no-compile --sizes 576,2304,512
  python3 scripts/torch_step.py --device cpu --smoke   # seconds: tiny sizes, 3 reps, both variants
"""
import argparse
import statistics
import sys
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
        torch._dynamo.reset()  # a fresh compile per size (no automatic-dynamic recompiles)

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
        f"TORCH variant={variant} d={d} dc={dc} n={n} median_ms={med:.4f} min_ms={lo:.4f} "
        f"max_ms={hi:.4f} reps={args.reps} tok_s={n / s:.0f} "
        f"ae_tflops={ae_flops / s / 1e12:.2f} ae_cov_tflops={(ae_flops + cov_flops) / s / 1e12:.2f}",
        flush=True,
    )


def ceilings(reps):
    """The bf16 GEMM rate (8192^3, random operands) and the device-to-device copy rate (1 GiB)."""
    k = 8192
    a = torch.randn(k, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(k, k, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(k, k, device="cuda", dtype=torch.bfloat16)
    med, _, _ = time_steps(lambda: torch.matmul(a, b, out=c), reps, 3, torch.device("cuda"))
    print(
        f"CEILING torch_bf16_matmul m={k} n={k} k={k} median_ms={med:.4f} "
        f"tflops={2.0 * k**3 / (med / 1e3) / 1e12:.1f}",
        flush=True,
    )
    del a, b, c
    src = torch.rand(1 << 28, device="cuda")  # 1 GiB of f32
    dst = torch.empty_like(src)
    med, _, _ = time_steps(lambda: dst.copy_(src), reps, 3, torch.device("cuda"))
    nbytes = 2 * src.numel() * src.element_size()
    print(
        f"CEILING torch_dtod_copy bytes={nbytes} median_ms={med:.4f} "
        f"gbps={nbytes / (med / 1e3) / 1e9:.0f} (bytes read + written)",
        flush=True,
    )
    del src, dst
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="576,2304,512;2048,8192,512", help="d,d',n;d,d',n")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--estimator", choices=["sign_s", "ste"], default="sign_s")
    ap.add_argument("--lambda-e", type=float, default=1e-7)
    ap.add_argument("--lambda-c", type=float, default=1e-7)
    ap.add_argument("--no-cov", action="store_true", help="drop the covariance term")
    ap.add_argument("--no-compile", action="store_true", help="official float32 variant only")
    ap.add_argument("--ceilings", action="store_true", help="CUDA: time a bf16 GEMM and a device copy first")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 3 reps, 1 warm-up (a rehearsal)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.reps, args.warmup = "64,256,32;48,96,17", 3, 1

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("torch_step: torch sees no CUDA device (use --device cpu)")
        # the official trainer's float32: no TF32 anywhere
        try:
            torch.backends.cuda.matmul.fp32_precision = "ieee"
            torch.backends.cudnn.fp32_precision = "ieee"
        except (AttributeError, RuntimeError, ValueError):
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        where = torch.cuda.get_device_name()
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}", flush=True)
    if args.ceilings and args.device == "cuda":
        ceilings(max(args.reps, 10))
    variants = ["f32"] + ([] if args.no_compile else ["bf16+compile"])
    sizes = [tuple(int(v) for v in spec.split(",")) for spec in args.sizes.split(";") if spec.strip()]
    failed = 0
    # all float32 configs first: their numbers come back even if a compile runs out of time
    for v in variants:
        for d, dc, n in sizes:
            try:
                run(d, dc, n, v, args)
            except Exception as e:  # report and go on with the other configs
                failed += 1
                msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
                print(f"TORCH variant={v} d={d} dc={dc} n={n} FAILED {msg}", flush=True)
            if args.device == "cuda":
                torch.cuda.empty_cache()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

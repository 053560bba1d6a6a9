#!/usr/bin/env python3
"""bae's statistics from Python against the numpy equivalents, on random codes (firing rate 5 %).

    data/py-venv/bin/python scripts/python_bench.py [--n 4096] [--dc 2304,8192] [--reps 5]

Prints one markdown table: median wall time of each (after one warm-up) and the ratio numpy / bae.
Every pair is checked for equal results first (integer counts exactly, entropies to 1e-9).
"""

import argparse
import statistics
import time

import numpy as np

import bae

EPS = 1e-10


def timed(f, reps, warm=True):
    if warm:
        f()  # warm-up (and page faults of fresh outputs)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def numpy_entropy(h):
    p = h.mean(axis=0, dtype=np.float64)
    return float(-(p * np.log2(p + EPS) + (1 - p) * np.log2(1 - p + EPS)).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--dc", default="2304,8192")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"n = {a.n}, firing rate 5 %, median of {a.reps} (after a warm-up); ratio = numpy / bae")
    print()
    print("| d' | operation | bae | numpy | ratio |")
    print("|---|---|---|---|---|")
    for dc in [int(v) for v in a.dc.split(",")]:
        h = rng.random((a.n, dc), dtype=np.float32) < 0.05
        hf = h.astype(np.float32)
        codes = bae.PackedCodes.from_dense(h)
        # equal results first
        got = bae.coactivation_counts(codes)
        want = hf.T @ hf
        assert np.array_equal(got, want.astype(np.uint32)), "co-activation counts differ"
        assert abs(bae.entropy_bits(codes) - numpy_entropy(h)) < 1e-9 * dc
        packed = np.packbits(h, axis=1, bitorder="little")
        assert np.array_equal(codes.words().view(np.uint8)[:, : packed.shape[1]], packed)
        rows = [
            ("PackedCodes.from_dense (bool h) vs `np.packbits(h, axis=1)`",
             lambda: bae.PackedCodes.from_dense(h),
             lambda: np.packbits(h, axis=1, bitorder="little")),
            ("entropy_bits (packed codes) vs `p = h.mean(0)` + formula (bool h)",
             lambda: bae.entropy_bits(codes), lambda: numpy_entropy(h)),
            ("coactivation_counts (packed) vs float32 `h.T @ h`",
             lambda: bae.coactivation_counts(codes), lambda: hf.T @ hf),
            ("pack + coactivation_counts (from bool h) vs float32 `h.T @ h`",
             lambda: bae.coactivation_counts(bae.PackedCodes.from_dense(h)), lambda: hf.T @ hf),
        ]
        if dc <= 2304:
            # numpy's integer product has no BLAS: one timed run, no warm-up
            hi = h.astype(np.int32)
            assert np.array_equal(hi.T @ hi, got)
            rows.append(("coactivation_counts (packed) vs int32 `h.T @ h` (numpy: one run)",
                         lambda: bae.coactivation_counts(codes), lambda: hi.T @ hi))
        for name, ours, theirs in rows:
            t_ours = timed(ours, a.reps)
            t_np = timed(theirs, 1, warm=False) if "one run" in name else timed(theirs, a.reps)
            print(f"| {dc} | {name} | {t_ours * 1e3:.1f} ms | {t_np * 1e3:.1f} ms | {t_np / t_ours:.1f}× |")


if __name__ == "__main__":
    main()

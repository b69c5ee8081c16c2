"""Single-thread compress+decompress throughput of every compressor against plain NumPy.

    python benchmarks/compressors.py [--d 16777216] [--repeats 5]

Throughput is GB/s of *input* (4d bytes per compress+decompress). Each row shows the pyqsgd
kernel, a plain NumPy implementation of the same operator (the obvious vectorised code a
researcher would write), and both as a fraction of a memory-copy baseline (``np.copyto`` of
the same array) measured in the same run, so numbers from different machines compare.
Both sides decode into a preallocated output (``decompress(msg, out=...)``; NumPy writes into
``out`` where its API allows), so neither pays a 64 MB page-faulting allocation per call.
Best-of-``repeats`` timing: the minimum is the least noisy estimate on a shared machine. The
default clock is the calling thread's CPU time (everything runs on that one thread): on a busy
machine it excludes the time the process is descheduled, which wall time does not; on an idle
machine both agree. ``--clock wall`` uses ``time.perf_counter``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import pyqsgd as pq


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def best_time(fn, repeats, clock=time.thread_time):
    fn()  # warm-up: page-faults the output buffers, fills caches of small tables
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


# ---- plain NumPy versions of each operator (compress + decompress in one function) --------

def np_identity(x, rng, out):
    np.copyto(out, x)


def np_topk(k):
    def run(x, rng, out):
        idx = np.argpartition(np.abs(x), x.size - k)[x.size - k:]
        out[:] = 0
        out[idx] = x[idx]
    return run


def np_randk(k):
    def run(x, rng, out):
        idx = rng.choice(x.size, size=k, replace=False)
        out[:] = 0
        out[idx] = x[idx] * np.float32(x.size / k)
    return run


def np_sign(x, rng, out):
    np.copysign(np.float32(1), x, out=out)  # sign(0) = +1 as in pyqsgd (-0.0 aside)


def np_scaled_sign(x, rng, out):
    scale = np.float32(np.abs(x).sum(dtype=np.float64) / x.size)
    np.copysign(scale, x, out=out)


def np_qsgd(s):
    def run(x, rng, out):
        xd = x.astype(np.float64)
        norm = np.float32(np.sqrt(xd @ xd))
        r = np.abs(x) * np.float32(s / norm)
        level = np.floor(r)
        level += rng.random(x.size, dtype=np.float32) < (r - level)
        np.multiply(np.sign(x) * level, np.float32(norm / s), out=out)
    return run


def np_terngrad(x, rng, out):
    s = np.abs(x).max()
    b = rng.random(x.size, dtype=np.float32) < np.abs(x) / s
    np.multiply(np.sign(x) * s, b, out=out)


def np_natural(x, rng, out):
    a = np.abs(x)
    _, e = np.frexp(a)  # a = m 2^e with m in [0.5, 1): the lower power of two is 2^(e-1)
    low = np.ldexp(np.float32(1), e - 1).astype(np.float32)
    up = rng.random(x.size, dtype=np.float32) < (a - low) / low
    np.multiply(np.sign(x), np.where(up, 2 * low, low), out=out)


def cases(d):
    k = max(1, round(0.01 * d))
    return [
        ("Identity", pq.Identity(), np_identity),
        ("TopK(ratio=0.01)", pq.TopK(ratio=0.01), np_topk(k)),
        ("RandK(ratio=0.01)", pq.RandK(ratio=0.01), np_randk(k)),
        ("Sign", pq.Sign(), np_sign),
        ("ScaledSign", pq.ScaledSign(), np_scaled_sign),
        ("QSGD(levels=16)", pq.QSGD(levels=16), np_qsgd(16)),
        ("TernGrad", pq.TernGrad(), np_terngrad),
        ("Natural", pq.Natural(), np_natural),
        ("chain(TopK(0.01), QSGD(16))", pq.chain(pq.TopK(ratio=0.01), pq.QSGD(levels=16)), None),
        ("induced(TopK(0.01), RandK(0.01))", pq.induced(pq.TopK(ratio=0.01), pq.RandK(ratio=0.01)), None),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=1 << 24, help="vector length (default 2^24)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions; the best is reported")
    ap.add_argument("--only", default="", help="comma-separated substrings of row names to run")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="thread CPU time (default) or wall time")
    args = ap.parse_args(argv)
    clock = CLOCKS[args.clock]
    x = np.random.default_rng(0).standard_normal(args.d).astype(np.float32)
    gb = x.nbytes / 1e9
    dst = np.empty_like(x)
    with pq.threads(1):
        copy_gbs = gb / best_time(lambda: np.copyto(dst, x), args.repeats, clock)
        print(f"d = {args.d}, 1 thread, best of {args.repeats} ({args.clock} clock); "
              f"memory copy (np.copyto): {copy_gbs:.2f} GB/s\n")
        print(f"{'compressor':34s} {'pyqsgd GB/s':>11s} {'% copy':>7s} {'NumPy GB/s':>10s} {'speed-up':>9s}")
        for name, c, ref in cases(args.d):
            if args.only and not any(s in name for s in args.only.split(",")):
                continue
            t = best_time(lambda: c.decompress(c.compress(x, key=1), out=dst), args.repeats, clock)
            ours = gb / t
            if ref is None:
                print(f"{name:34s} {ours:11.3f} {100 * ours / copy_gbs:6.1f}% {'-':>10s} {'-':>9s}")
                continue
            rng = np.random.default_rng(1)
            tn = best_time(lambda: ref(x, rng, dst), args.repeats, clock)
            print(f"{name:34s} {ours:11.3f} {100 * ours / copy_gbs:6.1f}% {gb / tn:10.3f} {tn / t:8.1f}x")


if __name__ == "__main__":
    main()

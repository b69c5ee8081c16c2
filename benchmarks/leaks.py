"""Memory leaks: resident memory before and after long loops of compress/decompress, wire
round trips, Python compressors, simulate runs and concurrent calls from 8 Python threads.

Each phase runs in a fresh process (this script with ``--phase``): it warms up (first-use
caches, the OpenMP team, allocator arenas), then reads RSS from /proc/self/statm before and
after N iterations (after ``gc.collect()``). Printed per phase: RSS before/after, the growth,
growth per call, and what a leak of one message (or one simulator's buffers) per call would
have added -- the figure the growth must be far below. ``tests/test_leaks.py`` asserts the same
kind of phases against a fixed bound.

    python benchmarks/leaks.py            # ~1 minute
    python benchmarks/leaks.py --quick    # 10x fewer iterations, a few seconds
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading

import numpy as np

import pyqsgd as pq


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vec(d, seed=0):
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def phase_codec(d, c):
    x = _vec(d)

    def loop(n):
        for i in range(n):
            c.decompress(c.compress(x, key=i))
    return c, loop, len(c.compress(x).to_bytes())


def phase_wire():
    c = pq.QSGD(levels=4)
    msg = c.compress(_vec(4096), key=3)
    bad = bytearray(msg.to_bytes())
    bad[len(bad) // 2] ^= 0xFF

    def loop(n):
        for _ in range(n):
            pq.Message.from_bytes(msg.to_bytes())
            try:
                pq.Message.from_bytes(bytes(bad))
            except ValueError:
                pass
    return c, loop, len(bad)


class Dither(pq.Compressor):
    """Stochastic rounding to 4 levels of ||x||_inf, int8 codes (as tests/python_stages_lib.py)."""

    def encode(self, x, rng):
        scale = np.float32(np.abs(x).max())
        r = np.abs(x.astype(np.float64)) / float(scale) * 4
        low = np.floor(r)
        return scale.tobytes() + (np.sign(x) * (low + (rng.random(x.size) < r - low))).astype(np.int8).tobytes()

    def decode(self, data, d):
        scale = float(np.frombuffer(data, np.float32, count=1)[0])
        return (np.frombuffer(data, np.int8, offset=4).astype(np.float64) * (scale / 4)).astype(np.float32)

    def properties(self, d):
        return pq.Properties(unbiased=True, omega=d / 64, delta=None)


def _problem(n, d):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((n, d), dtype=np.float32)
    return pq.problems.LogisticRegression(A, np.where(A[:, 0] > 0, 1.0, -1.0).astype(np.float32), l2=1e-3)


def phase_simulate(method, d=4096, m=8):
    prob = _problem(16 * m, d)

    def loop(n):
        for i in range(n):
            pq.simulate(prob, method, n_workers=m, rounds=3, lr=0.1, batch_size=8, key=i)
    return method, loop, m * d * (8 + 4)  # per run: V (float64) + decoded rows (float32)


def phase_threads(c, d=4096, n_threads=8):
    xs = [_vec(d, s) for s in range(n_threads)]

    def loop(n):
        def work(j):
            for i in range(n // n_threads):
                c.decompress(c.compress(xs[j], key=i))
        ts = [threading.Thread(target=work, args=(j,)) for j in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return c, loop, len(c.compress(xs[0]).to_bytes())


PHASES = {  # name -> (make, iterations, what one iteration is)
    "QSGD(levels=4) compress+decompress, d=4096": (lambda: phase_codec(4096, pq.QSGD(levels=4)), 100_000, "call"),
    "TopK(ratio=0.1) compress+decompress, d=1e5": (lambda: phase_codec(100_000, pq.TopK(ratio=0.1)), 10_000, "call"),
    "induced(TopK, RandK) compress+decompress, d=4096": (
        lambda: phase_codec(4096, pq.induced(pq.TopK(k=100), pq.RandK(k=100))), 100_000, "call"),
    "to_bytes/from_bytes + corrupt from_bytes (error)": (phase_wire, 40_000, "call"),
    "Python compressor (Dither) compress+decompress": (lambda: phase_codec(4096, Dither()), 20_000, "call"),
    "simulate EF21(chain(TopK, QSGD)), 8 x 4096": (
        lambda: phase_simulate(pq.methods.EF21(pq.chain(pq.TopK(ratio=0.05), pq.QSGD(levels=8)))), 200, "run"),
    "simulate DIANA(Python Dither), 8 x 4096": (lambda: phase_simulate(pq.methods.DIANA(Dither())), 100, "run"),
    "8 Python threads, shared QSGD, d=4096": (lambda: phase_threads(pq.QSGD(levels=4)), 100_000, "call"),
}


def child(name, scale):
    make, n, _ = PHASES[name]
    n = max(8, int(n * scale))
    obj, loop, unit = make()
    loop(max(8, n // 5))  # warm-up
    gc.collect()
    r0, refs0 = rss(), sys.getrefcount(obj)
    loop(n)
    gc.collect()
    r1, refs1 = rss(), sys.getrefcount(obj)
    print(json.dumps({"n": n, "before": r0, "after": r1, "unit": unit, "refs": refs1 - refs0}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10x fewer iterations")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        child(args.phase, args.scale)
        return
    scale = 0.1 if args.quick else 1.0
    print(f"pyqsgd {pq.__version__}; RSS from /proc/self/statm, one fresh process per phase, after warm-up "
          f"(1/5 of the iterations) and gc.collect(); OMP_NUM_THREADS=2")
    print()
    hdr = (f"| {'phase':<50} | {'iterations':>10} | {'RSS before':>10} | {'RSS after':>10} | {'growth':>9} "
           f"| {'per iter':>9} | {'1 leak/iter':>11} | {'refs':>4} |")
    print(hdr)
    print("|" + "|".join("-" * (len(c) + 0) for c in hdr.split("|")[1:-1]) + "|")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    for name, (_, _, unit) in PHASES.items():
        res = subprocess.run([sys.executable, __file__, "--phase", name, "--scale", str(scale)], capture_output=True,
                             text=True, env=env, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        g = r["after"] - r["before"]
        print(f"| {name:<50} | {r['n']:>10} | {r['before'] / 2**20:>6.1f} MiB | {r['after'] / 2**20:>6.1f} MiB "
              f"| {g / 2**10:>5.0f} KiB | {g / r['n']:>7.1f} B | {r['unit'] * r['n'] / 2**20:>7.1f} MiB | "
              f"{r['refs']:>4} |")
    print()
    print("growth: RSS after - before (pages the allocator kept, not necessarily leaked); per iter: growth / "
          "iterations; 1 leak/iter: what keeping one message (wire bytes) or one simulator's m x d buffers per "
          "iteration would add; refs: change in the shared object's reference count (0 = no reference leaked).")


if __name__ == "__main__":
    main()

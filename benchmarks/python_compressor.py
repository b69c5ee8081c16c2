"""Cost of a compressor written in Python: a NumPy TopK inside the native simulator.

    python benchmarks/python_compressor.py            # full run: 100 workers, 100 rounds
    python benchmarks/python_compressor.py --small    # quick run: 20 workers, 20 rounds

A subclass of ``pq.Compressor`` with ``encode``/``decode``/``properties`` runs inside
``pq.simulate``, which calls back into Python (GIL taken) once per message for encode and once
for decode. This script measures what that costs, on EF21 + TopK (k ~ 5% of d) on w8a logistic
regression (or, when the file is absent, a synthetic CSR stand-in of the same shape and
density, as in benchmarks/simulate.py), at 1 thread:

1. ``NumpyTopK`` (argpartition, sorted uint32 indices + float32 values) is checked to decode
   to the same vector as ``pq.TopK(k=k)`` on random vectors without ties.
2. rounds/s of ``pq.simulate`` with native ``pq.TopK`` vs ``NumpyTopK``, same rounds.
3. Per-message callback overhead: everything a Python compressor costs beyond the user's own
   encode and decode bodies, measured two ways:
   (a) bare: a compressor whose bodies return a precomputed payload / vector (user time ~0)
       through the native adapter, minus native Identity through the same binding, so the
       difference is the C++ -> Python -> C++ round trips (GIL, buffers, generator lease,
       checks) of one encode and one decode;
   (b) in simulate: ``NumpyTopK`` with its bodies timed from inside (so the user's NumPy time is
       taken under the simulation's own cache conditions, not in a hot loop):
       (T_python - T_native - user time) / (rounds x workers). This also removes the native
       TopK kernel it replaces (about 1 us at d = 300), so it slightly understates; it is the
       difference of two whole simulations, whose run-to-run spread on a shared machine is
       tens of microseconds per message, so it is printed for information only.
   The target (the issue): <= 20 us per message, judged on (a).

Timing: ``time.perf_counter``, best of ``--loops`` (micro) or ``--repeats`` (simulate)
interleaved repetitions: on a shared machine a burst of load then hits every side, and the
minimum is the least noisy estimate.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import pyqsgd as pq
from _w8a import load  # the shared workload (benchmarks/_w8a.py)

L2 = 1e-4
RATIO = 0.05
TARGET_US = 20.0


class NumpyTopK(pq.Compressor):
    """TopK in NumPy: the k largest |x_j|, sent as sorted uint32 indices then float32 values."""

    def __init__(self, *, k):
        self.k = k

    def encode(self, x, rng):
        idx = np.sort(np.argpartition(np.abs(x), x.size - self.k)[x.size - self.k:]).astype(np.uint32)
        return idx.tobytes() + x[idx].tobytes()

    def decode(self, data, d):
        idx = np.frombuffer(data, np.uint32, count=self.k)
        out = np.zeros(d, np.float32)
        out[idx] = np.frombuffer(data, np.float32, offset=4 * self.k)
        return out

    def properties(self, d):
        return pq.Properties(unbiased=False, omega=None, delta=self.k / d)


class TimedNumpyTopK(NumpyTopK):
    """NumpyTopK whose encode/decode bodies add their own wall time to ``spent``."""

    spent = 0.0

    def encode(self, x, rng):
        t0 = time.perf_counter()
        out = super().encode(x, rng)
        TimedNumpyTopK.spent += time.perf_counter() - t0
        return out

    def decode(self, data, d):
        t0 = time.perf_counter()
        out = super().decode(data, d)
        TimedNumpyTopK.spent += time.perf_counter() - t0
        return out


class Constant(pq.Compressor):
    """Bodies that do nothing: returns a fixed payload and a fixed vector (the bare round trip)."""

    payload, vector = b"", np.zeros(0, np.float32)

    def encode(self, x, rng):
        return Constant.payload

    def decode(self, data, d):
        return Constant.vector

    def properties(self, d):
        return pq.Properties(unbiased=True, omega=0.0, delta=1.0)


def check_same(k, d, trials=50):
    """NumpyTopK decodes to exactly what pq.TopK(k=k) decodes to (continuous x: no ties)."""
    rng = np.random.default_rng(1)
    ours, ref = NumpyTopK(k=k), pq.TopK(k=k)
    for t in range(trials):
        x = rng.standard_normal(d).astype(np.float32)
        a, b = ours(x, key=t), ref(x, key=t)
        assert np.array_equal(a, b), f"NumpyTopK != pq.TopK on trial {t}"
        assert ours.compress(x, key=t).bits == 8 * 8 * k  # 4 bytes index + 4 bytes value each


def per_call(fns, n, loops):
    """Best over `loops` rounds of the time per call of each of `fns`, each timed on `n` calls
    in turn within a round (interleaved, so a burst of load from other processes hits all)."""
    for fn in fns:
        for _ in range(min(n, 100)):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(loops):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best[j] = min(best[j], (time.perf_counter() - t0) / n)
    return best


def run_sim(prob, parts, compressor, rounds, lr):
    t0 = time.perf_counter()
    pq.simulate(prob, pq.methods.EF21(compressor), n_workers=len(parts), rounds=rounds, lr=lr,
                partition=parts, log_every=max(rounds, 1), key=0)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5, help="simulate runs per compressor; the best is kept")
    ap.add_argument("--calls", type=int, default=2000, help="calls per micro-timing loop")
    ap.add_argument("--loops", type=int, default=15, help="micro-timing loops; the best is kept")
    ap.add_argument("--small", "--quick", action="store_true", help="quick run: 20 workers, 20 rounds")
    args = ap.parse_args(argv)
    if args.small:
        args.workers, args.rounds, args.repeats, args.calls, args.loops = 20, 20, 3, 1000, 5

    X, y, parts, source = load(args.workers)
    n, d = X.shape
    k = max(1, int(round(RATIO * d)))
    prob = pq.problems.LogisticRegression(X, y, l2=L2)
    lr = 1.0 / prob.smoothness()
    msgs = args.rounds * args.workers
    print(f"data: {source}; n={n}, d={d}, nnz={X.nnz}; {args.workers} workers, {args.rounds} rounds; "
          f"EF21(TopK(k={k})), 1 thread; pyqsgd {pq.__version__}")
    la = os.getloadavg()
    print(f"load average: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores")

    check_same(k, d)
    check_same(50, 1000)
    print("NumpyTopK decodes identically to pq.TopK on random vectors without ties: OK")

    native, python, timed = pq.TopK(k=k), NumpyTopK(k=k), TimedNumpyTopK(k=k)
    x = np.random.default_rng(2).standard_normal(d).astype(np.float32)
    Constant.payload, Constant.vector = x.tobytes(), x.copy()
    constant = Constant()  # the native adapter holds it weakly: keep it alive
    bare, ident, key = constant._native, pq.Identity()._native, pq.Key(seed=1)
    bare_msg, ident_msg = bare.compress(x, key), ident.compress(x, key)
    rng = np.random.default_rng(3)
    with pq.threads(1):
        # (a) the bare round trips, and the user's NumPy bodies in a hot loop for reference.
        t_bare_c, t_ident_c, t_bare_d, t_ident_d, t_user = per_call(
            [lambda: bare.compress(x, key), lambda: ident.compress(x, key),
             lambda: bare.decompress(bare_msg), lambda: ident.decompress(ident_msg),
             lambda: python.decode(python.encode(x, rng), d)], args.calls, args.loops)
        over_bare = (t_bare_c - t_ident_c) + (t_bare_d - t_ident_d)
        # (b) simulate: interleaved repeats, best of each; the timed twin for the user's share.
        run_sim(prob, parts, native, 2, lr)
        run_sim(prob, parts, python, 2, lr)
        best = {"native": float("inf"), "python": float("inf")}
        over_sim, user_sim = float("inf"), float("inf")
        for _ in range(args.repeats):
            best["native"] = min(best["native"], run_sim(prob, parts, native, args.rounds, lr))
            best["python"] = min(best["python"], run_sim(prob, parts, python, args.rounds, lr))
            TimedNumpyTopK.spent = 0.0
            t_timed = run_sim(prob, parts, timed, args.rounds, lr)
            over = (t_timed - best["native"] - TimedNumpyTopK.spent) / msgs
            if over < over_sim:
                over_sim, user_sim = over, TimedNumpyTopK.spent / msgs

    per_msg_sim = (best["python"] - best["native"]) / msgs
    us = 1e6

    print()
    print(f"| {'pq.simulate, EF21, 1 thread':<40} | {'time (s)':>9} | {'rounds/s':>9} | {'vs native':>9} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
    for name, key in ((f"native pq.TopK(k={k})", "native"), (f"NumpyTopK(k={k}) (Python)", "python")):
        t = best[key]
        print(f"| {name:<40} | {t:>9.3f} | {args.rounds / t:>9.1f} | {best['native'] / t:>8.2f}x |")
    print()
    print(f"| {'per message (compress + decompress)':<58} | {'us':>8} |")
    print(f"|{'-' * 60}|{'-' * 10}|")
    rows = [("user's NumPy: decode(encode(x, rng)) in a hot loop", t_user),
            ("user's NumPy inside simulate (timed from the bodies)", user_sim),
            ("simulate: (T_python - T_native) / (rounds x workers)", per_msg_sim),
            ("**overhead, bare round trips (encode + decode)**", over_bare),
            ("**overhead, simulate: difference - user's NumPy inside**", over_sim)]
    for name, t in rows:
        print(f"| {name:<58} | {t * us:>8.2f} |")
    print()
    # The verdict uses the bare round trip: it isolates the callback machinery and is stable.
    # The in-simulate estimate subtracts two whole simulations; on a shared 2-core machine
    # their run-to-run spread (tens of microseconds per message) swamps it, so it is shown
    # for information only.
    verdict = "MET" if over_bare <= TARGET_US / us else "NOT MET"
    print(f"callback overhead per message: {over_bare * us:.2f} us (bare round trips; target <= {TARGET_US:.0f} us: "
          f"{verdict}); in-simulate estimate {over_sim * us:.2f} us (noisy, for information)")


if __name__ == "__main__":
    main()

"""Simulator throughput and memory: EF21 + TopK(ratio=0.05) on w8a with 100 workers.

Compares ``pq.simulate`` (C++/OpenMP) at 1 and 2 threads with a straightforward NumPy/SciPy
implementation of the same algorithm (per-worker sparse matvecs, one vectorised
``np.argpartition`` top-k over all workers, float32 on the wire), checks that both compute the
same iterates, and measures peak memory and whether memory grows with the number of rounds.

    python benchmarks/simulate.py              # full run (~1-2 minutes)
    python benchmarks/simulate.py --quick      # fewer rounds

Targets (DESIGN.md / project plan): >= 20x faster than the NumPy loop; >= 1.6x from 1 to 2
threads (depressed when other processes use the cores -- the load average is printed);
memory <= dataset + O(workers x d), flat in the number of rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

import pyqsgd as pq
from _memory import rss_kb  # benchmarks/_memory.py
from _w8a import load  # the shared workload (benchmarks/_w8a.py)

L2 = 1e-4
RATIO = 0.05


def run_engine(prob, parts, rounds, lr, threads):
    method = pq.methods.EF21(pq.TopK(ratio=RATIO))
    with pq.threads(threads):
        t0 = time.perf_counter()
        hist = pq.simulate(prob, method, n_workers=len(parts), rounds=rounds, lr=lr, partition=parts,
                           log_every=max(rounds, 1), key=0)
        return time.perf_counter() - t0, hist


class NumpyEF21:
    """EF21 exactly as the engine runs it: c_i = TopK(float32(grad f_i(x) - g_i)), g_i += c_i,
    g += mean_i c_i, x <- x - lr g (Mean weights, full local gradients)."""

    def __init__(self, X, y, parts, lr):
        self.shards = [(sp.csr_matrix(X[p], dtype=np.float64), y[p].astype(np.float64)) for p in parts]
        self.m, self.d = len(parts), X.shape[1]
        self.k = max(1, int(round(RATIO * self.d)))
        self.lr = lr
        self.x = np.zeros(self.d)
        self.gi = np.zeros((self.m, self.d))
        self.g = np.zeros(self.d)

    def round(self):
        x = self.x
        G = np.empty((self.m, self.d))
        for i, (Xi, yi) in enumerate(self.shards):
            s = -yi * expit(-yi * (Xi @ x))
            G[i] = Xi.T @ s / Xi.shape[0] + L2 * x
        diff = (G - self.gi).astype(np.float32)
        # Top-k by magnitude per row, ties to the smaller index (as TopK specifies; w8a's binary
        # features make exact ties common): the k-th largest |v| from argpartition, then
        # everything above it plus the first equal ones in index order.
        a = np.abs(diff)
        kth = np.take_along_axis(a, np.argpartition(-a, self.k - 1, axis=1)[:, self.k - 1:self.k], axis=1)
        above = a > kth
        ties = (a == kth) & (np.cumsum(a == kth, axis=1) <= self.k - above.sum(axis=1, keepdims=True))
        C = np.where(above | ties, diff, np.float32(0)).astype(np.float64)
        self.gi += C
        self.g += C.mean(axis=0)
        self.x = x - self.lr * self.g


def memory_child(rounds, npz):
    """Runs in a fresh process: memory of building the problem and of one run of `rounds`.

    Data come from an .npz written by the parent (cheap to load), so the process's peak RSS is
    set by the problem and the simulation, not by parsing LIBSVM text."""
    z = np.load(npz)
    X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    y = z["y"]
    parts = np.split(z["perm"], z["cuts"])
    rss0 = rss_kb("VmRSS")
    prob = pq.problems.LogisticRegression(X, y, l2=L2)
    rss1 = rss_kb("VmRSS")
    tracemalloc.start()
    run_engine(prob, parts, rounds, 1.0, 1)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"rounds": rounds, "data_kb": rss0, "problem_kb": rss1, "after_kb": rss_kb("VmRSS"),
                      "peak_kb": rss_kb("VmHWM"), "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "py_peak": py_peak}))


def memory(X, y, parts):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "data.npz")
        sizes = np.cumsum([len(p) for p in parts])[:-1]
        np.savez(npz, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape), y=y,
                 perm=np.concatenate(parts), cuts=sizes)
        out = []
        for r in (200, 2000):
            res = subprocess.run([sys.executable, __file__, "--memory-child", str(r), "--npz", npz],
                                 capture_output=True, text=True, check=True)
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1000, help="engine rounds per timing")
    ap.add_argument("--numpy-rounds", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--npz", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.npz)
        return
    if args.quick:
        args.rounds, args.numpy_rounds, args.repeats = 200, 20, 2

    X, y, parts, source = load(args.workers)
    prob = pq.problems.LogisticRegression(X, y, l2=L2)
    lr = 1.0 / prob.smoothness()
    n, d = X.shape
    print(f"data: {source}; n={n}, d={d}, nnz={X.nnz}; {args.workers} workers; EF21(TopK(ratio={RATIO})), "
          f"full local gradients, lr=1/L={lr:.4g}, log_every=rounds; pyqsgd {pq.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")

    # Same iterates? 20 rounds of each (only summation order differs: ~1e-12 expected).
    ref = NumpyEF21(X, y, parts, lr)
    for _ in range(20):
        ref.round()
    _, h = run_engine(prob, parts, 20, lr, 1)
    agree = np.linalg.norm(h.x - ref.x) / np.linalg.norm(ref.x)
    print(f"engine vs NumPy after 20 rounds: relative difference {agree:.2e}")

    run_engine(prob, parts, 20, lr, 2)  # warm-up of the thread team
    # Interleave 1- and 2-thread repeats so a burst of load from other processes hits both;
    # keep the best of each.
    best = {1: float("inf"), 2: float("inf")}
    for _ in range(args.repeats):
        for threads in (1, 2):
            best[threads] = min(best[threads], run_engine(prob, parts, args.rounds, lr, threads)[0])
    rates = {t: args.rounds / best[t] for t in best}
    ref = NumpyEF21(X, y, parts, lr)
    t0 = time.perf_counter()
    for _ in range(args.numpy_rounds):
        ref.round()
    rates["numpy"] = args.numpy_rounds / (time.perf_counter() - t0)
    # Logging cost: the full objective and gradient every round instead of twice per run.
    with pq.threads(1):
        t0 = time.perf_counter()
        pq.simulate(prob, pq.methods.EF21(pq.TopK(ratio=RATIO)), n_workers=args.workers, rounds=args.rounds // 4,
                    lr=lr, partition=parts, log_every=1)
        rate_log1 = (args.rounds // 4) / (time.perf_counter() - t0)
    load_after = os.getloadavg()[0]

    mem = memory(X, y, parts)
    data_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes + y.nbytes) / 2**20
    state_mb = args.workers * d * (8 + 8 + 4) / 2**20  # V (f64), EF21 g_i (f64), decoded (f32)

    print()
    print(f"| {'configuration':<44} | {'rounds/s':>10} | {'vs NumPy':>8} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 10}|")
    print(f"| {'NumPy/SciPy loop':<44} | {rates['numpy']:>10.1f} | {1.0:>7.1f}x |")
    print(f"| {'pq.simulate, 1 thread':<44} | {rates[1]:>10.1f} | {rates[1] / rates['numpy']:>7.1f}x |")
    print(f"| {'pq.simulate, 2 threads':<44} | {rates[2]:>10.1f} | {rates[2] / rates['numpy']:>7.1f}x |")
    print(f"| {'pq.simulate, 1 thread, log_every=1':<44} | {rate_log1:>10.1f} | "
          f"{rate_log1 / rates['numpy']:>7.1f}x |")
    print()
    print(f"speed-up 1 -> 2 threads: {rates[2] / rates[1]:.2f}x (target >= 1.6x); "
          f"load average during run ~{load_after:.2f} on {os.cpu_count()} cores")
    print(f"speed-up over NumPy (1 thread): {rates[1] / rates['numpy']:.1f}x (target >= 20x)")
    print()
    print(f"| {'memory (MiB)':<44} | {'200 rounds':>12} | {'2000 rounds':>12} |")
    print(f"|{'-' * 46}|{'-' * 14}|{'-' * 14}|")
    rows = [("RSS after imports + data", lambda r: r["data_kb"]),
            ("native problem (RSS increase)", lambda r: r["problem_kb"] - r["data_kb"]),
            ("simulation (peak RSS - RSS before the run)", lambda r: r["peak_kb"] - r["problem_kb"]),
            ("RSS after the run", lambda r: r["after_kb"]),
            ("peak RSS (VmHWM)", lambda r: r["peak_kb"]),
            ("Python-side peak in simulate (tracemalloc)", lambda r: r["py_peak"] / 1024)]
    for name, f in rows:
        print(f"| {name:<44} | {f(mem[0]) / 1024:>12.2f} | {f(mem[1]) / 1024:>12.2f} |")
    print()
    print(f"dataset (CSR float32 + labels): {data_mb:.2f} MiB; workers x d state (V, g_i, decoded): "
          f"{state_mb:.2f} MiB; peak RSS 2000 vs 200 rounds: "
          f"{(mem[1]['peak_kb'] - mem[0]['peak_kb']) / 1024:+.2f} MiB")


if __name__ == "__main__":
    main()

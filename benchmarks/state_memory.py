"""Peak memory of many-worker runs: streamed vs buffered simulator, float64 vs float32 state.

    python benchmarks/state_memory.py            # d = 1M, 10/100/1000 workers (~5 minutes)
    python benchmarks/state_memory.py --quick    # d = 100k, 10/100 workers, seconds

Setting: EF + TopK(ratio=0.001) on a sparse logistic regression with d coordinates (8 non-zeros
per sample, 4 samples per worker, batch 2), two rounds, one OpenMP thread. Every row runs in a
fresh process: it builds the data, runs a small warm-up simulation, then resets the peak
(Linux /proc/self/clear_refs) and reads VmHWM after the run. Printed next to the measured
increase is the formula of docs/guides/memory.md:

* streamed (default): s m d b + S d (8 + 4 + c), with s state rows per worker (EF: 1),
  b = 8 (float64) or 4 (float32) bytes, S = max(8, 4 x threads) chunk slots and c the
  per-slot scratch of the method and compressor (EF + TopK: 8 + 4 + 4 bytes per coordinate);
* buffered (``streaming=False``, and always for votes or Python aggregators):
  s m d b + m d (8 + 4 + c).

Buffered rows whose formula exceeds ``--max-gib`` (default: half the machine's memory) are not
run, and say so. With torch installed, a last table runs a ``TorchProblem`` (an MLP with
d = 998,070) with ``--torch-workers`` (default 1000) workers in both state dtypes: the Python
path, whose local vectors come a window of workers at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import pyqsgd as pq
from _memory import reset_peak as _reset_peak  # benchmarks/_memory.py
from _memory import rss_kb

RATIO = 0.001
SCRATCH = 8 + 4 + 4  # per slot and coordinate: EF's p (f64), the float32 copy, TopK's scratch


def formula(m, d, state_bytes, streamed, threads=1):
    rows = min(m, max(8, 4 * threads)) if streamed else m
    return m * d * state_bytes + rows * d * (8 + 4 + SCRATCH)


def child(m, d, dtype, streamed):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, nnz = 4 * m, 8
    rows = np.repeat(np.arange(n), nnz)
    X = sp.csr_matrix((rng.standard_normal(n * nnz).astype(np.float32), (rows, rng.integers(0, d, n * nnz))),
                      shape=(n, d))
    prob = pq.problems.LogisticRegression(X, np.where(rng.random(n) < 0.5, -1.0, 1.0))
    pq.set_num_threads(1)
    method = pq.methods.EF(pq.TopK(ratio=RATIO))
    pq.simulate(prob, method, n_workers=8, rounds=1, lr=0.1)  # warm-up: first-use caches, arenas
    reset = _reset_peak()
    before = rss_kb("VmRSS")
    import time

    t0 = time.perf_counter()
    hist = pq.simulate(prob, method, n_workers=m, rounds=2, lr=0.1, batch_size=2, state_dtype=dtype,
                       streaming=streamed)
    seconds = time.perf_counter() - t0
    print(json.dumps({"before_kb": before, "peak_kb": rss_kb("VmHWM"), "reset": reset, "seconds": seconds,
                      "streaming": hist.meta["streaming"], "state": str(hist.state["error"].dtype)}))


def torch_child(m, dtype):
    """The same for a TorchProblem: an MLP with d ~ 1M parameters, batch 4 per worker."""
    import torch

    from pyqsgd.problems_torch import TorchProblem

    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 900),
                                  torch.nn.ReLU(), torch.nn.Linear(900, 10))
    X, y = pq.data.load_bundled("digits")
    X, y = np.tile(X, (3, 1)), np.tile(y, 3)  # 5391 samples: >= 4 per worker at m = 1000
    prob = TorchProblem(net, X, y)
    pq.set_num_threads(1)
    method = pq.methods.EF(pq.TopK(ratio=RATIO))
    pq.simulate(prob, method, n_workers=8, rounds=1, lr=0.1, batch_size=4, x0=prob.x0)  # warm-up
    reset = _reset_peak()
    before = rss_kb("VmRSS")
    import time

    t0 = time.perf_counter()
    hist = pq.simulate(prob, method, n_workers=m, rounds=1, lr=0.1, batch_size=4, x0=prob.x0, state_dtype=dtype,
                       log_every=1)
    print(json.dumps({"before_kb": before, "peak_kb": rss_kb("VmHWM"), "reset": reset, "d": prob.dim,
                      "seconds": time.perf_counter() - t0, "state": str(hist.state["error"].dtype)}))


def torch_rows(m):
    print()
    print(f"TorchProblem: MLP 64-1024-900-10, EF(TopK(ratio={RATIO})), {m} workers, batch 4, one round, 1 thread "
          "(the round includes logging the full-data loss and gradient twice)")
    print(f"| {'workers':>7} | {'state':<7} | {'d':>8} | {'state rows':>10} | {'peak - before':>13} | {'s':>6} |")
    print(f"|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 12}|{'-' * 15}|{'-' * 8}|")
    for dtype, b in (("float64", 8), ("float32", 4)):
        res = subprocess.run([sys.executable, __file__, "--torch-child", str(m), dtype], capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"state_memory: torch row {dtype} failed:\n{res.stderr}")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        grew = (out["peak_kb"] - out["before_kb"]) * 1024
        print(f"| {m:>7} | {dtype:<7} | {out['d']:>8} | {m * out['d'] * b / 2**20:>6.0f} MiB | {grew / 2**20:>9.0f} MiB | "
              f"{out['seconds']:>6.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=1_000_000)
    ap.add_argument("--workers", type=lambda s: [int(v) for v in s.split(",")], default=[10, 100, 1000])
    ap.add_argument("--max-gib", type=float, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--torch-workers", type=int, default=1000, help="TorchProblem rows (0: skip)")
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--torch-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_child:
        torch_child(int(args.torch_child[0]), args.torch_child[1])
        return
    if args.child:
        m, d, dtype, streamed = args.child
        child(int(m), int(d), dtype, streamed == "1")
        return
    if args.quick:
        args.d, args.workers = 100_000, [10, 100]
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    max_bytes = args.max_gib * 2**30 if args.max_gib else total / 2
    d = args.d
    print(f"EF(TopK(ratio={RATIO})), sparse logistic regression d={d}, 2 rounds, 1 thread; pyqsgd {pq.__version__}; "
          f"machine memory {total / 2**30:.1f} GiB, buffered rows above {max_bytes / 2**30:.1f} GiB skipped")
    print(f"| {'workers':>7} | {'path':<9} | {'state':<7} | {'formula':>11} | {'peak - before':>13} | {'s/round':>7} |")
    print(f"|{'-' * 9}|{'-' * 11}|{'-' * 9}|{'-' * 13}|{'-' * 15}|{'-' * 9}|")
    resets = []
    for m in args.workers:
        for streamed in (True, False):
            for dtype, b in (("float64", 8), ("float32", 4)):
                f = formula(m, d, b, streamed)
                path = "streamed" if streamed else "buffered"
                if f > max_bytes:
                    print(f"| {m:>7} | {path:<9} | {dtype:<7} | {f / 2**20:>7.0f} MiB | {'(not run)':>13} | {'':>7} |")
                    continue
                res = subprocess.run([sys.executable, __file__, "--child", str(m), str(d), dtype,
                                      "1" if streamed else "0"], capture_output=True, text=True)
                if res.returncode:
                    sys.exit(f"state_memory: row m={m} {path} {dtype} failed:\n{res.stderr}")
                out = json.loads(res.stdout.strip().splitlines()[-1])
                assert out["streaming"] == streamed and out["state"] == dtype, out
                resets.append(out["reset"])
                grew = (out["peak_kb"] - out["before_kb"]) * 1024
                print(f"| {m:>7} | {path:<9} | {dtype:<7} | {f / 2**20:>7.0f} MiB | {grew / 2**20:>9.0f} MiB | "
                      f"{out['seconds'] / 2:>7.2f} |")
    print(f"peak reset before each run: {all(resets)}; formula: docs/guides/memory.md (s=1 state row, c={SCRATCH} B)")
    if args.quick:
        args.torch_workers = min(args.torch_workers, 50)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("TorchProblem rows skipped: PyTorch is not installed")
        return
    if args.torch_workers:
        torch_rows(args.torch_workers)


if __name__ == "__main__":
    main()

"""TorchProblem: batched (torch.func.vmap over workers) vs a per-worker autograd loop.

    python benchmarks/torch_problems.py            # full run (a few minutes on 2 busy cores)
    python benchmarks/torch_problems.py --quick    # smoke run, seconds

Setting: a small CNN (Conv2d(1,8,3)-ReLU-Conv2d(8,16,3)-ReLU-Linear(256,10), d = 3818,
float32) on the bundled digits (8x8 images), EF21 + TopK(ratio=0.01), 100 workers, in two
settings (``--settings``):

* ``iid32``: batch 32 on every worker (the digits twice, n = 3594, an iid split of 36 samples
  per worker): equal batches, one vmap call per round;
* ``dirichlet``: a Dirichlet(alpha=0.5) label split of the plain digits (n = 1797, 18 samples
  per worker on average), batch min(32, shard): unequal batches, i.e. the padded path.

``batched=True`` computes all workers' gradients of a round in one vmap call;
``batched=False`` loads the parameters and runs forward/backward once per worker, the way
Flower or FedLab run their clients. Both run through ``pq.simulate`` with ``log_every=rounds``;
the full-data loss and gradient it logs at round 0 and at the last round are timed as they run
(``Timed``) and left out, so rounds/s is the rate of the rounds themselves. torch's and pyqsgd's thread
counts are set explicitly and equal (``--threads``, default 1 and 2); repeats are interleaved and the best kept, so load
from other processes hits both paths alike. The script re-runs itself with glibc keeping freed
blocks (``--allocator keep``, the default; ``--allocator system`` for glibc's defaults), as a
caching allocator would: otherwise the batched call's large temporaries are returned to the OS
and faulted in again every call, which makes its speed bimodal across processes.

Memory: each worker count runs in a fresh process (peaks do not accumulate) on the digits
replicated 18x (n = 32346, so 1000 workers x batch 32 fit; copies, not new images; 2x in
``--quick``) with an iid split and batch 32. Each process first warms torch up (one logged
metric evaluation and one grad_batch call: kernel initialisation and allocator pools are not
the simulator's), then resets its peak (Linux ``/proc/self/clear_refs``) and runs, once with
float64 and once with float32 method state (``simulate(state_dtype=...)``). The simulator
streams EF21's workers a chunk at a time (docs/guides/memory.md): what grows with m is the
m x d float64 gradient matrix the Python path fills each round (8 m d bytes) and EF21's m x d
estimates (8 or 4 m d bytes), i.e. 16 or 12 m d bytes, printed next to the measured increase;
grad_batch's float32 result (4 m d bytes) exists while it is copied in. The "simulator alone"
column repeats the float64 run, in another fresh process, with gradients that cost nothing: the
simulator's own footprint apart from the torch problem.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _keep_freed_blocks():
    """Re-executes this script with glibc keeping freed blocks (``--allocator keep``, default).

    glibc hands the multi-MiB blocks torch frees after every call back to the OS and faults
    them in again on the next: the batched call then takes 18-24 ms instead of 15-17 (bimodal
    across processes). PyTorch's CPU tuning guide recommends a caching allocator (jemalloc,
    tcmalloc) for this; the glibc settings are the same idea, for both paths. It runs before
    torch and pyqsgd are imported, so the new process starts exactly as this one would have
    (pyqsgd's import sets OMP_WAIT_POLICY, which must not leak into torch's OpenMP runtime).
    """
    argv = sys.argv[1:]
    system = "--allocator=system" in argv or any(a == "--allocator" and b == "system" for a, b in zip(argv, argv[1:]))
    if __name__ != "__main__" or system or "--memory-child" in argv or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="134217728", MALLOC_TRIM_THRESHOLD_="536870912")
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)


_keep_freed_blocks()

try:
    import torch
except ImportError:  # `pyqsgd bench` runs every script: without torch there is nothing to measure
    print("torch_problems: skipped, PyTorch is not installed (pip install 'pyqsgd[torch]')")
    sys.exit(0)

import numpy as np

import pyqsgd as pq
from pyqsgd.problems_torch import TorchProblem
from _memory import reset_peak as _reset_peak  # benchmarks/_memory.py
from _memory import rss_kb

RATIO = 0.01
LR = 0.5


def cnn():
    # Seeded init without touching the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3),
                                   torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))


def digits(copies=1, npz=None):
    """The digits as (n, 1, 8, 8) images, ``copies`` times; from ``npz`` in the children (the
    bundled loader imports scikit-learn, seconds a memory row need not spend)."""
    if npz is None:
        X, y = pq.data.load_bundled("digits")
    else:
        z = np.load(npz)
        X, y = z["X"], z["y"]
    return np.tile(X.reshape(-1, 1, 8, 8), (copies, 1, 1, 1)), np.tile(y, copies)


class Timed:
    """The problem as simulate sees it, clocking ``loss`` and ``grad``: with ``grad_batch``
    present simulate calls those two only to log the full-data metrics."""

    def __init__(self, prob):
        self.prob, self.seconds = prob, 0.0
        self.n_samples, self.dim = prob.n_samples, prob.dim

    def _clock(self, f, *args):
        t0 = time.perf_counter()
        try:
            return f(*args)
        finally:
            self.seconds += time.perf_counter() - t0

    def loss(self, x):
        return self._clock(self.prob.loss, x)

    def grad(self, x, indices):
        return self._clock(self.prob.grad, x, indices)

    def grad_batch(self, x, batches):
        return self.prob.grad_batch(x, batches)


class Free:
    """A problem whose gradients cost nothing: the same run measures the simulator alone."""

    def __init__(self, n, d):
        self.n_samples, self.dim, self.x0 = n, d, np.zeros(d)

    def loss(self, x):
        return 0.0

    def grad(self, x, indices):
        return np.zeros(self.dim)

    def grad_batch(self, x, batches):
        return np.full((len(batches), self.dim), 1e-3)


def run(prob, parts, batch, rounds, threads, state_dtype="float64"):
    """(rounds/s without the logged metrics, seconds of one metric evaluation, history)."""
    torch.set_num_threads(threads)
    pq.set_num_threads(threads)  # the simulator (EF21 + TopK) gets the same cores on both paths
    timed = Timed(prob)
    t0 = time.perf_counter()
    hist = pq.simulate(timed, pq.methods.EF21(pq.TopK(ratio=RATIO)), n_workers=len(parts), rounds=rounds, lr=LR,
                       partition=parts, batch_size=batch, x0=prob.x0, key=0, log_every=max(rounds, 1),
                       state_dtype=state_dtype)
    seconds = time.perf_counter() - t0
    return rounds / (seconds - timed.seconds), timed.seconds / 2, hist


def memory_child(m, rounds, threads, copies, npz, free, state_dtype):
    """One configuration in a fresh process: RSS before the run and the peak during it; with
    ``free``, the simulator alone (its own process: pages a torch warm-up left behind would
    otherwise absorb its allocations)."""
    torch.set_num_threads(threads)
    X, y = digits(copies, npz)
    parts = pq.data.partition(len(y), m, key=0)
    if free:
        d = sum(p.numel() for p in cnn().parameters())
        reset = _reset_peak()
        before = rss_kb("VmRSS")
        run(Free(len(y), d), parts, 32, rounds, threads)
        print(json.dumps({"free_kb": rss_kb("VmHWM") - before, "reset": reset}))
        return
    prob = TorchProblem(cnn(), X, y)
    # Warm-up: a logged metric evaluation and a full vmap chunk (4096 samples) of worker batches.
    prob.loss(prob.x0)
    prob.grad(prob.x0, np.arange(prob.n_samples))
    prob.grad_batch(prob.x0, [p[:32] for p in parts[:128]])
    reset = _reset_peak()
    before = rss_kb("VmRSS")
    rate, _, hist = run(prob, parts, 32, rounds, threads, state_dtype)
    print(json.dumps({"m": m, "state_dtype": str(hist.state["g_workers"].dtype) if m > 1 else state_dtype, "d": prob.dim, "n": len(y), "before_kb": before, "peak_kb": rss_kb("VmHWM"),
                      "reset": reset, "rate": rate, "loss": float(hist.loss[-1]),
                      "data_mb": (prob.X.numel() * 4 + prob.y.numel() * 8) / 2**20}))


def speed(args, setting):
    """``setting="iid32"``: the issue's setting, batch 32 on every worker (the digits twice, an iid
    split of 36 samples per worker: one unpadded vmap call per round). ``"dirichlet"``: the
    non-IID split of the plain digits, batches min(32, shard): unequal, so padded calls."""
    if setting == "iid32":
        X, y = digits(2)
        parts = pq.data.partition(len(y), args.workers, key=0)
        batch = [32] * len(parts)
        split = f"iid split, shard sizes {min(map(len, parts))}-{max(map(len, parts))}, batch 32"
    else:
        X, y = digits()
        parts = pq.data.partition(y, args.workers, scheme="dirichlet", alpha=0.5, key=0)
        batch = [min(32, len(p)) for p in parts]
        split = (f"Dirichlet(alpha=0.5) split, shard sizes {min(map(len, parts))}-{max(map(len, parts))}, "
                 f"batch min(32, shard) (mean {np.mean(batch):.1f})")
    probs = {"batched": TorchProblem(cnn(), X, y), "loop": TorchProblem(cnn(), X, y, batched=False)}
    rounds = {"batched": args.rounds, "loop": args.loop_rounds}
    print()
    print(f"== {setting}: bundled digits, n={len(y)}, images (1, 8, 8); CNN d={probs['batched'].dim} (float32); "
          f"{args.workers} workers, {split}; EF21(TopK(ratio={RATIO})), "
          f"lr={LR}; pyqsgd {pq.__version__}, torch {torch.__version__}")
    keep = "MALLOC_TRIM_THRESHOLD_" in os.environ
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores; "
          f"torch threads set to {args.threads} in turn (torch.set_num_threads), the same for pq.set_num_threads; "
          f"allocator: {'glibc keeping freed blocks' if keep else 'glibc defaults'}")
    for name, prob in probs.items():  # warm-up: first calls initialise torch's kernels
        run(prob, parts, batch, 1, args.threads[0])
    best = {(name, t): 0.0 for name in probs for t in args.threads}
    metric = {}
    for _ in range(args.repeats):
        for t in args.threads:
            for name, prob in probs.items():
                rate, seconds, _ = run(prob, parts, batch, rounds[name], t)
                best[name, t] = max(best[name, t], rate)
                metric[name, t] = min(metric.get((name, t), float("inf")), seconds)
    # Agreement: the same rounds on both paths (float32 rounding only).
    r = min(rounds.values())
    xs = [run(probs[name], parts, batch, r, args.threads[0])[2] for name in probs]
    rel = np.abs(xs[0].x - xs[1].x).max() / np.abs(xs[1].x).max()
    load_after = os.getloadavg()[0]
    print()
    print(f"| {'path':<44} | {'threads':>7} | {'rounds':>6} | {'rounds/s':>9} | {'vs loop':>7} | "
          f"{'log (s)':>7} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 8}|{'-' * 11}|{'-' * 9}|{'-' * 9}|")
    for t in args.threads:
        for name, label in (("loop", "per-worker autograd loop (batched=False)"),
                            ("batched", "one vmap call per round (batched=True)")):
            print(f"| {label:<44} | {t:>7} | {rounds[name]:>6} | {best[name, t]:>9.2f} | "
                  f"{best[name, t] / best['loop', t]:>6.1f}x | {metric[name, t]:>7.3f} |")
    print("rounds/s: best of the repeats, without the logged metrics; log (s): one full-data loss + gradient")
    print()
    for t in args.threads:
        print(f"speed-up batched vs loop at {t} thread(s): {best['batched', t] / best['loop', t]:.1f}x (target >= 5x)")
    print(f"load average after: {load_after:.2f}; batched vs loop after {r} rounds: max |dx| / max |x| = {rel:.1e}, "
          f"loss {xs[0].loss[-1]:.6f} vs {xs[1].loss[-1]:.6f}")


def memory(args):
    import tempfile

    X, y = pq.data.load_bundled("digits")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "digits.npz")
        np.savez(npz, X=X, y=y)
        # Peak memory under glibc's defaults: a kept-blocks allocator would report its pools.
        system_malloc = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        for m in args.memory_workers:
            for state_dtype in ("float64", "float32"):
                row = {}
                free_rows = args.free_rows and state_dtype == "float64"
                for extra in ([], ["--free"]) if free_rows else ([],):
                    res = subprocess.run([sys.executable, __file__, "--memory-child", str(m), "--rounds",
                                          str(args.memory_rounds), "--threads", str(args.threads[0]), "--copies",
                                          str(args.copies), "--npz", npz, "--state-dtype", state_dtype] + extra,
                                         capture_output=True, text=True, env=system_malloc)
                    if res.returncode:
                        sys.exit(f"torch_problems: memory row m={m} {state_dtype} {' '.join(extra)} failed:\n"
                                 f"{res.stderr}")
                    out = json.loads(res.stdout.strip().splitlines()[-1])
                    out["reset"] = out["reset"] and row.get("reset", True)
                    row.update(out)
                rows.append(row)
    first = rows[0]
    print()
    print(f"memory (glibc defaults): digits x{args.copies} (n={first['n']}, X float32 {first['data_mb']:.1f} MiB with labels), iid "
          f"split, batch 32, {args.memory_rounds} rounds, batched, one fresh process per row, torch threads "
          f"{args.threads[0]}; peak reset after warm-up: {all(r['reset'] for r in rows)}")
    print(f"| {'workers':>7} | {'state':<7} | {'RSS before run':>14} | {'peak RSS':>9} | {'peak - before':>13} | "
          f"{'simulator alone':>15} | {'formula':>9} | {'rounds/s':>8} |")
    print(f"|{'-' * 9}|{'-' * 9}|{'-' * 16}|{'-' * 11}|{'-' * 15}|{'-' * 17}|{'-' * 11}|{'-' * 10}|")
    for r in rows:
        md = r["m"] * r["d"] / 2**20
        per = 16 if r["state_dtype"] == "float64" else 12
        free = f"{r['free_kb'] / 1024:>11.1f} MiB" if "free_kb" in r else f"{'-':>15}"
        print(f"| {r['m']:>7} | {r['state_dtype']:<7} | {r['before_kb'] / 1024:>10.1f} MiB | "
              f"{r['peak_kb'] / 1024:>5.1f} MiB | {(r['peak_kb'] - r['before_kb']) / 1024:>9.1f} MiB | {free} | "
              f"{per * md:>5.1f} MiB | {r['rate']:>8.2f} |")
    print("peak - before: the CNN run; simulator alone: the float64 run with gradients that cost nothing; "
          "formula: 16 m d B (float64 state) or 12 m d B (float32): the m x d float64 gradients of the Python path "
          "plus EF21's estimates; grad_batch's float32 result (4 m d B) is transient")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=40, help="batched rounds per timing")
    ap.add_argument("--loop-rounds", type=int, default=10, help="per-worker-loop rounds per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    ap.add_argument("--allocator", choices=["keep", "system"], default="keep",
                    help="keep (default): glibc keeps freed blocks (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_, "
                         "set for both paths); system: glibc's defaults")
    ap.add_argument("--settings", type=lambda s: s.split(","), default=["iid32", "dirichlet"],
                    help="speed settings: iid32 (batch 32 everywhere), dirichlet (non-IID, padded)")
    ap.add_argument("--memory-workers", type=lambda s: [int(v) for v in s.split(",")], default=[10, 100, 1000])
    ap.add_argument("--memory-rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, default=18, help="replications of the digits for the memory rows")
    ap.add_argument("--quick", action="store_true")
    ap.set_defaults(free_rows=True)  # --quick skips the simulator-alone processes
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--npz", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--free", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--state-dtype", default="float64", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.rounds, args.threads[0], args.copies, args.npz, args.free,
                     args.state_dtype)
        return
    if args.quick:
        args.rounds, args.loop_rounds, args.repeats, args.threads = 3, 2, 1, args.threads[:1]
        args.settings = args.settings[:1]
        args.memory_workers, args.memory_rounds, args.copies, args.free_rows = [100], 2, 2, False
    for setting in args.settings:
        speed(args, setting)
    memory(args)


if __name__ == "__main__":
    main()

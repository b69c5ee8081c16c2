"""Is the GIL released? Throughput of native calls from 1 vs 2 Python threads, OpenMP off.

``pq.set_num_threads(1)`` makes every native call single-threaded, so the only parallelism is
the Python threads: if a binding held the GIL during its work, 2 threads would give the same
throughput as 1; with the GIL released they give up to 2x on 2 free cores. Each thread makes
the same number of calls on its own input (the compressor objects are shared); throughput is
total calls / wall time, the best of ``--repeats`` interleaved repeats (a burst of load from
other processes hits both thread counts alike). The load average is printed: on a machine
shared with other jobs the 2-thread figure is depressed by whatever else runs.

A control row runs pure Python (only one thread can run it at a time): it shows ~1x whatever
the machine, so a speed-up in the other rows is the GIL being released, not an artefact. The
``CPU/wall`` column is the process's CPU time over wall time during the 2-thread measurement:
above 1 means two threads computed at the same moment, which a held GIL forbids.

Because the throughput ratio depends on free cores, a second table measures the GIL directly,
independent of load: while one thread makes a single long native call, the main thread runs a
Python loop and records the longest gap between its iterations. A call that held the GIL would
stall the loop for the whole call; a released one lets it run (gaps of a few ms: the
interpreter's switch interval and the OS scheduler). ``sum(range(n))`` is the control that
does hold the GIL (a C loop that never yields).

    python benchmarks/gil_threads.py            # ~1 minute
    python benchmarks/gil_threads.py --quick    # smoke run, a few seconds
"""
from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np

import pyqsgd as pq


def _problem():
    # Dense logistic regression big enough that one run is ~10 ms of native work.
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4096, 256), dtype=np.float32)
    y = np.where(A[:, 0] + rng.standard_normal(4096, dtype=np.float32) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(A, y, l2=1e-3)


def workloads(d):
    """name -> (make_call(thread_index) -> zero-argument callable, what one call is)."""
    topk, qsgd = pq.TopK(ratio=0.01), pq.QSGD(levels=4)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(d).astype(np.float32) for _ in range(2)]  # one input per thread
    prob = _problem()
    method = pq.methods.EF21(pq.TopK(ratio=0.05))

    def compress(c):
        return lambda j: (lambda: c.compress(xs[j], key=j))

    def roundtrip(c):
        return lambda j: (lambda: c.decompress(c.compress(xs[j], key=j)))

    def simulate(j):
        return lambda: pq.simulate(prob, method, n_workers=8, rounds=20, lr=0.5, batch_size=64, key=j,
                                   log_every=20)

    def control(j):
        return lambda: sum(i * i for i in range(20000))

    return {
        f"TopK(ratio=0.01).compress, d={d:.0e}": (compress(topk), "call"),
        f"QSGD(levels=4).compress, d={d:.0e}": (compress(qsgd), "call"),
        f"QSGD(levels=4) compress+decompress, d={d:.0e}": (roundtrip(qsgd), "call"),
        "simulate EF21/TopK, 8 workers x 20 rounds": (simulate, "run"),
        "control: pure-Python loop (holds the GIL)": (control, "call"),
    }


def throughput(make, n_threads, calls):
    """(calls per second, CPU time / wall time) with n_threads Python threads, each making
    `calls` calls."""
    fns = [make(j) for j in range(n_threads)]
    for f in fns:  # warm-up: first-use caches, page faults of the inputs
        f()
    barrier = threading.Barrier(n_threads + 1)

    def work(f):
        barrier.wait()
        for _ in range(calls):
            f()

    ts = [threading.Thread(target=work, args=(f,)) for f in fns]
    for t in ts:
        t.start()
    barrier.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return n_threads * calls / wall, (time.process_time() - c0) / wall


def longest_gap(call):
    """(duration of call() on another thread, longest gap between this thread's loop iterations
    while it ran). The worker starts its call only once this thread is looping, so a call that
    holds the GIL stalls the loop (not an untimed wait before it)."""
    go, out = threading.Event(), {}

    def work():
        go.wait()
        t0 = time.perf_counter()
        call()
        out["duration"] = time.perf_counter() - t0

    t = threading.Thread(target=work)
    t.start()
    gap, last = 0.0, time.perf_counter()
    go.set()
    while t.is_alive():
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    t.join()
    return out["duration"], gap


def gil_table(quick):
    prob = _problem()
    # Calls of >= ~100 ms, well above the gaps a running loop sees anyway (the 5 ms switch
    # interval, OS time slices on a loaded machine).
    rounds = 60 if quick else 150
    n = 2 * 10**7
    x = np.random.default_rng(2).standard_normal(n, dtype=np.float32)
    calls = {
        # chunk=rounds: the whole run is ONE native call (the default splits it into chunks)
        f"pq.simulate, {rounds} rounds in one call (chunk={rounds})": lambda: pq.simulate(
            prob, pq.methods.EF21(pq.TopK(ratio=0.05)), n_workers=8, rounds=rounds, lr=0.5, batch_size=256,
            log_every=rounds, chunk=rounds),
        f"QSGD(levels=4).compress, d={x.size:.0e}": lambda: pq.QSGD(levels=4).compress(x, key=1),
        f"TopK(ratio=0.01).compress, d={x.size:.0e}": lambda: pq.TopK(ratio=0.01).compress(x, key=1),
        "control: sum(range(n)) (holds the GIL)": lambda: sum(range(n)),
    }
    print()
    print(f"| {'one long call on another thread':<52} | {'duration':>9} | {'longest stall':>13} | {'GIL':>8} |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 15}|{'-' * 10}|")
    for name, call in calls.items():
        call()  # warm-up
        dur, gap = min((longest_gap(call) for _ in range(1 if quick else 3)), key=lambda r: r[1])
        verdict = "held" if gap > 0.5 * dur else "released" if gap < 0.25 * dur else "unclear"
        print(f"| {name:<52} | {dur * 1e3:>6.0f} ms | {gap * 1e3:>10.1f} ms | {verdict:>8} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=float, default=1e6, help="vector length of the compress rows")
    ap.add_argument("--seconds", type=float, default=1.5, help="target time of one measurement per thread")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: short measurements, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.repeats = 0.2, 1
    pq.set_num_threads(1)
    assert pq.get_num_threads() == 1
    d = int(args.d)
    load = os.getloadavg()
    print(f"pyqsgd {pq.__version__}; OpenMP threads {pq.get_num_threads()} (pq.set_num_threads(1)); "
          f"{os.cpu_count()} cores; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = []
    for name, (make, unit) in workloads(d).items():
        f = make(0)
        f()
        t0 = time.perf_counter()
        f()
        one = time.perf_counter() - t0
        calls = max(3, int(args.seconds / max(one, 1e-6)))  # same count for both thread numbers
        best, cpu = {1: 0.0, 2: 0.0}, 0.0
        for _ in range(args.repeats):
            for n in (1, 2):
                rate, busy = throughput(make, n, calls)
                if rate > best[n]:
                    best[n] = rate
                    cpu = busy if n == 2 else cpu
        rows.append((name, unit, calls, best[1], best[2], cpu))
    load_after = os.getloadavg()[0]
    print()
    print(f"| {'workload':<46} | {'calls/thread':>12} | {'1 thread /s':>12} | {'2 threads /s':>12} | {'2 vs 1':>6} "
          f"| {'CPU/wall':>8} |")
    print(f"|{'-' * 48}|{'-' * 14}|{'-' * 14}|{'-' * 14}|{'-' * 8}|{'-' * 10}|")
    for name, unit, calls, r1, r2, cpu in rows:
        print(f"| {name:<46} | {calls:>12} | {r1:>10.1f} {unit[0]} | {r2:>10.1f} {unit[0]} | {r2 / r1:>5.2f}x "
              f"| {cpu:>8.2f} |")
    print()
    print(f"(c = calls, r = simulate runs; CPU/wall of the best 2-thread repeat.) Load average after: "
          f"{load_after:.2f} on {os.cpu_count()} cores. Native rows near 2x and the control near 1x: the GIL is "
          "released around native work; below 2x on a loaded machine is the other processes' share of the cores.")
    gil_table(args.quick)


if __name__ == "__main__":
    main()

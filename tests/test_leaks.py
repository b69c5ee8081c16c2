"""No memory leaks: 10^5 compress/decompress calls and 200 simulate calls leave RSS flat.

Each phase runs in a fresh subprocess (this file run as a script), so what the other tests
allocated, and the allocator's state they leave, cannot pollute or mask the measurement. The
phase warms up first (first-use caches, NumPy/pybind11 type objects, the OpenMP thread team,
glibc arenas reaching their working size), then measures resident memory from /proc/self/statm
before and after N calls, after ``gc.collect()``.

The bound. A healthy loop reuses the same few buffers; what remains is allocator noise: glibc
keeps freed chunks, and the RSS of a loop with no leak drifts by well under 1 MiB here (the
figures of ``benchmarks/leaks.py``). ``BOUND`` = 8 MiB leaves an order of magnitude for other
machines and allocators. Each phase asserts that the smallest leak it exists to catch -- one
message, payload or decoded vector per call, or one simulator per run -- would exceed the
bound at least ``MARGIN`` = 5 times over, so the bound cannot be loose enough to hide it:

* compress/decompress, QSGD(levels=4) at d = 4096: a message is 32 + 4 d bits = 2 KiB, the
  decoded vector 16 KiB; one leaked message per call is 10^5 x 2 KiB = 196 MiB;
* the wire: to_bytes/from_bytes, and from_bytes of corrupt bytes (the error path): 4 x 10^4
  calls leaking one 2 KiB wire buffer each = 81 MiB;
* a Python compressor (Dither, d = 4096 int8 codes): 2 x 10^4 calls leaking the 4 KiB payload
  = 78 MiB;
* simulate, 8 workers, d = 4096, 200 runs: the engine's per-run buffers (gradients V, m x d
  float64 = 256 KiB; decoded rows, m x d float32 = 128 KiB; ...) are >= 384 KiB, so one leaked
  simulator per run is >= 75 MiB.

Python references are checked exactly as well: the shared compressor and method objects must
have the same reference count after the loop as before (a leaked reference per call would add
10^5 or 200).

The whole file takes ~15-25 s.
"""
import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest

BOUND = 8 << 20  # bytes of RSS growth tolerated per phase (see the module docstring)
MARGIN = 5  # the smallest leak each phase targets must exceed BOUND this many times
D = 4096
N_CALLS = 100_000
N_WIRE = 40_000
N_PY = 20_000
N_SIM = 200
HERE = os.path.dirname(os.path.abspath(__file__))


def rss_bytes():
    """Resident set size: field 2 of /proc/self/statm (pages), times the page size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- phases (run in the child process) ------------------------------------------------------

def _codec_loop():
    import pyqsgd as pq

    c = pq.QSGD(levels=4)
    x = np.random.default_rng(0).standard_normal(D).astype(np.float32)
    out = np.empty(D, np.float32)

    def loop(k):
        for i in range(k):
            msg = c.compress(x, key=i)
            if i % 2:
                c.decompress(msg)  # a fresh output array
            else:
                c.decompress(msg, out=out)  # into the caller's buffer
    return c, loop, c.compress(x).bits // 8


def _wire_loop():
    import pyqsgd as pq

    c = pq.QSGD(levels=4)
    msg = c.compress(np.random.default_rng(1).standard_normal(D).astype(np.float32), key=3)
    wire = msg.to_bytes()
    bad = bytearray(wire)
    bad[len(bad) // 2] ^= 0xFF  # a flipped payload byte: the checksum rejects it

    def loop(k):
        for _ in range(k):
            pq.Message.from_bytes(msg.to_bytes())
            try:
                pq.Message.from_bytes(bytes(bad))
            except ValueError:
                pass
            else:  # pragma: no cover
                raise AssertionError("corrupt bytes were accepted")
    return c, loop, len(wire)


def _python_loop():
    sys.path.insert(0, HERE)
    from python_stages_lib import Dither

    c = Dither(levels=4)
    x = np.random.default_rng(2).standard_normal(D).astype(np.float32)

    def loop(k):
        for i in range(k):
            c.decompress(c.compress(x, key=i))
    return c, loop, 4 + D


def _simulate_loop():
    import pyqsgd as pq

    rng = np.random.default_rng(3)
    A = rng.standard_normal((128, D), dtype=np.float32)  # 16 samples per worker: cheap rounds
    y = np.where(A[:, 0] > 0, 1.0, -1.0).astype(np.float32)
    prob = pq.problems.LogisticRegression(A, y, l2=1e-3)
    method = pq.methods.EF21(pq.chain(pq.TopK(ratio=0.05), pq.QSGD(levels=8)))

    def loop(k):
        for i in range(k):
            h = pq.simulate(prob, method, n_workers=8, rounds=3, lr=0.1, batch_size=8, key=i)
            assert h.status == "ok"
    m = 8
    return method, loop, m * D * 8 + m * D * 4  # V (float64) + decoded rows (float32) per run


PHASES = {"codec": (_codec_loop, N_CALLS, N_CALLS // 5), "wire": (_wire_loop, N_WIRE, N_WIRE // 5),
          "python": (_python_loop, N_PY, N_PY // 5), "simulate": (_simulate_loop, N_SIM, 20)}


def measure(phase, n=None):
    """Warm up, then run n iterations of ``phase``; returns the figures as a dict."""
    make, default_n, warm = PHASES[phase]
    n = default_n if n is None else n
    obj, loop, unit = make()
    loop(warm)
    gc.collect()
    refs0, rss0 = sys.getrefcount(obj), rss_bytes()
    loop(n)
    gc.collect()
    rss1, refs1 = rss_bytes(), sys.getrefcount(obj)
    return {"phase": phase, "n": n, "warmup": warm, "rss_before": rss0, "rss_after": rss1, "growth": rss1 - rss0,
            "per_call": (rss1 - rss0) / n, "leak_unit": unit, "one_leak_per_call": unit * n,
            "refs_before": refs0, "refs_after": refs1}


def _child(phase):
    print(json.dumps(measure(phase)))


# ---- the test ------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc (Linux)")
@pytest.mark.parametrize("phase", list(PHASES))
def test_rss_stays_flat(phase):
    # OMP_NUM_THREADS=2: the thread team is part of the warm-up, not of the growth.
    env = dict(os.environ, OMP_NUM_THREADS="2")
    res = subprocess.run([sys.executable, __file__, phase], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(res.stdout.strip().splitlines()[-1])
    # The bound must be far below the leak the phase exists to catch (see the module docstring).
    assert r["one_leak_per_call"] >= MARGIN * BOUND, r
    assert r["growth"] < BOUND, (f"{phase}: RSS grew {r['growth'] / 2**20:.2f} MiB over {r['n']} calls "
                                 f"({r['per_call']:.1f} B/call; bound {BOUND >> 20} MiB)")
    assert r["refs_after"] == r["refs_before"], f"{phase}: a reference leaked per call? {r}"


if __name__ == "__main__":
    _child(sys.argv[1])

"""False-alarm rate of pq.testing.check_compressor on correct compressors.

    python benchmarks/check_compressor_false_alarms.py --keys 20      # every built-in config x 20 keys
    python benchmarks/check_compressor_false_alarms.py --small        # 3 keys

The kit promises at most alpha = 1e-3 false alarms per call on a correct compressor. Each call
here is independent (a different key), so with N calls the expected number of false alarms is
at most N alpha; the script prints the count, the calls and the smallest margin seen. The
compressors are the test suite's registry (tests/compressors/registry.py) plus the Python
compressors of tests/python_stages_lib.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests", "compressors"), os.path.join(HERE, "..", "tests")]

import pyqsgd as pq  # noqa: E402
from python_stages_lib import Dither, Largest, NumpyRandK, NumpyTopK  # noqa: E402
from registry import CONFIGS  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--small", action="store_true", help="3 keys")
    args = ap.parse_args(argv)
    keys = 3 if args.small else args.keys
    makers = [(c.id, c.make, max(args.d, c.min_d)) for c in CONFIGS]
    makers += [(repr(m()), m, args.d) for m in (lambda: NumpyTopK(k=6), lambda: NumpyRandK(k=6),
                                                 lambda: Dither(levels=3), lambda: Largest(k=6))]
    calls = alarms = 0
    t0 = time.perf_counter()
    for name, make, d in makers:
        for key in range(100, 100 + keys):
            calls += 1
            try:
                pq.testing.check_compressor(make(), d=d, trials=args.trials, key=key)
            except AssertionError as e:
                alarms += 1
                print(f"FALSE ALARM {name} key={key}: {str(e)[:300]}")
    print(f"{alarms} false alarms in {calls} calls ({len(makers)} compressors x {keys} keys, "
          f"trials={args.trials}, d={args.d}); promised <= {calls * 1e-3:.2f} expected; "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

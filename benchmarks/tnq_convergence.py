"""Distributed SGD with TNQSGD vs QSGD at equal bits (ALGORITHMS.md §4.4): loss against rounds
and against uplink bits on real data (a9a.t; bundled breast_cancer when absent).

DCGD with stochastic gradients (batch 64 per worker), 20 workers, lr = 0.5/L. For b = 2, 3, 4
bits per coordinate: TruncatedQuantizer(bits=b) (32 + d b bits) against QSGD with
1 + ceil(log2(s + 1)) = b (the same 32 + d b bits), and uncompressed SGD (32 d bits).

    python benchmarks/tnq_convergence.py            # ~10 s
    python benchmarks/tnq_convergence.py --small
"""
from __future__ import annotations

import argparse

import numpy as np

import pyqsgd as pq


def problem():
    path = pq.data.find_libsvm("a9a.t")
    if path is not None:
        X, y = pq.data.load_libsvm(path, n_features=123)
        return "a9a.t", pq.problems.LogisticRegression(X, y, l2=1e-3)
    X, y = pq.data.load_bundled("breast_cancer", add_bias=True)
    return "breast_cancer (a9a.t not found)", pq.problems.LogisticRegression(X, y, l2=1e-3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="fewer rounds and seeds")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rounds, seeds = (200, 1) if args.small else (args.rounds, args.seeds)
    name, prob = problem()
    L = prob.smoothness()
    f_star = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=1, rounds=5000, lr=1 / L,
                         log_every=5000).loss[-1]
    qsgd_levels = {2: 1, 3: 3, 4: 7}  # 1 sign bit + ceil(log2(s + 1)) level bits = b
    rows = [("uncompressed SGD", pq.Identity())]
    for b in (2, 3, 4):
        rows += [(f"TNQ b={b}", pq.TruncatedQuantizer(bits=b)), (f"QSGD b={b}", pq.QSGD(levels=qsgd_levels[b]))]
    log = max(1, rounds // 4)
    print(f"{name}: n={prob.n_samples} d={prob.dim}, 20 workers, batch 64, lr=0.5/L, {rounds} rounds, "
          f"mean of {seeds} seeds; f - f* at rounds {list(range(log, rounds + 1, log))}")
    print(f"{'compressor':18} {'bits/coord':>10} {'f - f*':>44} {'uplink bits':>12}")
    for label, c in rows:
        hs = [pq.simulate(prob, pq.methods.DCGD(c), n_workers=20, rounds=rounds, lr=0.5 / L, batch_size=64, key=s,
                          log_every=log) for s in range(seeds)]
        gap = np.mean([h.loss - f_star for h in hs], axis=0)[1:]
        bits = int(hs[0].bits_up[-1])
        per_coord = bits / (20 * rounds * prob.dim)
        print(f"{label:18} {per_coord:10.2f} {np.array2string(gap, precision=5, floatmode='fixed'):>44} {bits:12d}")


if __name__ == "__main__":
    main()

"""Sign-based methods (ALGORITHMS.md §4.1, §4.3) on real and dense data.

1. EF-SignGD vs LE-SignGD on a9a.t (20 workers, l2 = 1e-2, lr = 1/L, 1000 rounds): relative
   suboptimality, uploads (worker-rounds actually sent), skipped uploads and uplink bits.
2. signSGD-MV vs -FV (and FV with leave-one-out agreement) with heterogeneous batch sizes,
   averaged over seeds, on dense synthetic data and on sparse a9a.t: suboptimality over rounds
   and the learned vote weights (large-batch workers first). On a9a the agreement estimator's
   independence assumption fails (correlated signs on absent features): this script measures it.
   Also FV per coordinate (our tie rule) and FV as the authors run it (``authors_compat=True``:
   per-coordinate weights, ties count as disagreement, sign(0) = 0), with uplink bits per round.

    python benchmarks/sign_methods.py            # ~1 minute
    python benchmarks/sign_methods.py --small    # seconds
"""
from __future__ import annotations

import argparse

import numpy as np
import scipy.optimize as so

import pyqsgd as pq


def optimum(X, y, l2):
    def f(x):
        z = y * (X @ x)
        return np.mean(np.logaddexp(0, -z)) + 0.5 * l2 * x @ x, -(X.T @ (y / (1 + np.exp(z)))) / len(y) + l2 * x
    return so.minimize(f, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B",
                       options=dict(maxiter=10000, gtol=1e-12, ftol=1e-16)).fun


def a9a(l2):
    path = pq.data.find_libsvm("a9a.t")
    if path is None:
        return None
    X, y = pq.data.load_libsvm(path, n_features=123)
    return pq.problems.LogisticRegression(X, y, l2=l2), optimum(X.astype(np.float64), y.astype(np.float64), l2)


def lazy(rounds):
    data = a9a(1e-2)
    if data is None:
        print("a9a.t not found: skipping EF-SignGD vs LE-SignGD")
        return
    prob, f_star = data
    L = prob.smoothness()
    parts = pq.data.partition(prob.n_samples, 20, key=0)
    print(f"\n[1] a9a.t, 20 workers, l2=1e-2, lr=1/L={1 / L:.4f}, {rounds} rounds")
    print(f"{'method':28} {'rel. subopt':>12} {'uploads':>9} {'skipped':>8} {'bits_up':>12}")
    for meth in [pq.methods.EFSignSGD(), pq.methods.LESignSGD(), pq.methods.LESignSGD(xi=0.0)]:
        h = pq.simulate(prob, meth, n_workers=20, rounds=rounds, lr=1 / L, partition=parts, log_every=rounds)
        rel = (h.loss[-1] - f_star) / (h.loss[0] - f_star)
        share = h.uploads[-1] / (20 * rounds)
        print(f"{meth!r:28} {rel:12.3e} {share:8.1%} {int(h.skipped[-1]):8d} {int(h.bits_up[-1]):12d}")


def votes(prob, f_star, name, bs, rounds, seeds, lr):
    print(f"\n[2] {name}: batch sizes {bs}, lr={lr}, mean over {seeds} seeds")
    methods = {"MV": pq.methods.SignSGDMV(), "FV": pq.methods.SignSGDFV(T_in=20),
               "FV (leave-one-out)": pq.methods.SignSGDFV(T_in=20, leave_one_out=True),
               "FV (per coordinate)": pq.methods.SignSGDFV(T_in=20, per_coordinate=True),
               "FV (authors_compat)": pq.methods.SignSGDFV(T_in=20, authors_compat=True)}
    log = max(1, rounds // 4)
    for label, meth in methods.items():
        runs = [pq.simulate(prob, meth, n_workers=len(bs), rounds=rounds, lr=lr, batch_size=bs, key=s, log_every=log)
                for s in range(seeds)]
        gaps = np.mean([h.loss - f_star for h in runs], axis=0)
        rounds_logged = runs[0].round
        cells = "  ".join(f"t={int(t)}: {g:.4f}" for t, g in zip(rounds_logged[1:], gaps[1:]))
        bits = np.mean([h.bits_up[-1] for h in runs]) / (rounds * len(bs))
        print(f"  {label:20} f - f*  {cells}  bits/upload {bits:.1f}")
        if runs[0].vote_weights is not None:
            w = np.mean([h.vote_weights[-1] for h in runs], axis=0)
            print(f"  {'':20} weights {np.array2string(w, precision=3)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="fewer rounds and seeds")
    args = ap.parse_args()
    rounds, seeds = (200, 2) if args.small else (1000, 4)
    lazy(rounds)
    X, y = pq.data.synthetic_logistic(20000, 50, key=0)
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    dense = pq.problems.LogisticRegression(X, y, l2=1e-3)
    votes(dense, optimum(X, y.astype(np.float64), 1e-3), "dense synthetic (20000 x 50)", [64, 64] + [2] * 8,
          rounds // 2, seeds, 0.002)
    data = a9a(1e-3)
    if data is not None:
        votes(*data, "sparse a9a.t", pq.data.heterogeneous_batches(10, mean_batch=8, large_fraction=0.2, small=2),
              rounds // 2, seeds, 0.002)


if __name__ == "__main__":
    main()

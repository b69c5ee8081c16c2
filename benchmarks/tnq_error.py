"""MSE versus bits of TNQSGD and its baselines (ALGORITHMS.md §4.4).

    python benchmarks/tnq_error.py [--d 131072] [--trials 5]

For b = 1..6 bits per coordinate it prints E||C(x) - x||^2 / d (averaged over ``trials`` keys) of

- TNQ    TruncatedQuantizer(bits=b)                     32 + d b bits
- NUQ    NonUniformQuantizer(bits=b) (no truncation)    64 + d b bits
- TUQ    TruncatedUniformQuantizer(bits=b)              32 + d b bits
- QSGD   QSGD(levels=2**(b-1) - 1), b >= 2              32 + d b bits (1 sign + b-1 level bits)

on Laplace(0, 1) and Student-t(3) vectors and, when ``../shared/data/libsvm/a9a.t`` exists, on
mini-batch logistic-regression gradients (d = 123; relative error E||C(g) - g||^2 / ||g||^2 over
many batches instead). The measured bits per coordinate are printed next to each column header.
Then alpha*/alpha_best: alpha_best minimises the exact expected MSE (pyqsgd.tnq.expected_mse) over
a grid of thresholds c alpha* with the same level rule (Laplace quantile levels of gamma-hat).
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

import pyqsgd as pq
from pyqsgd import tnq

BITS = range(1, 7)
A9A = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "libsvm", "a9a.t")


def methods(b):
    out = {"TNQ": pq.TruncatedQuantizer(bits=b), "NUQ": pq.NonUniformQuantizer(bits=b),
           "TUQ": pq.TruncatedUniformQuantizer(bits=b)}
    if b >= 2:
        out["QSGD"] = pq.QSGD(levels=2 ** (b - 1) - 1)
    return out


def error(c, vectors, trials, relative):
    """Mean squared error over vectors and keys; bits per coordinate of the first message."""
    errs, bpc = [], None
    for i, x in enumerate(vectors):
        xd = x.astype(np.float64)
        norm = float(xd @ xd) if relative else float(len(x))
        for t in range(trials):
            m = c.compress(x, key=pq.Key(seed=t, worker=i))
            bpc = bpc or m.bits / len(x)
            e = c.decompress(m).astype(np.float64) - xd
            errs.append(float(e @ e) / norm if norm > 0 else 0.0)
    return float(np.mean(errs)), bpc


def alpha_ratio(vectors, b, relative):
    """alpha*/alpha_best with alpha_best = c_best alpha*(x) from a grid of multipliers c (2% steps)."""
    mult = np.exp(np.linspace(math.log(0.25), math.log(4.0), 140))
    total = np.zeros_like(mult)
    for x in vectors:
        xd = x.astype(np.float64)
        g = float(np.float32(np.mean(np.abs(xd))))
        if g == 0.0:
            continue
        a = tnq.optimal_threshold(b, g)
        w = 1.0 / float(xd @ xd) if relative else 1.0
        total += w * np.array([tnq.expected_mse(x, tnq.laplace_levels(b, g, c * a)).total for c in mult])
    k = int(total.argmin())
    at_star = total[np.argmin(np.abs(mult - 1.0))]
    return 1.0 / mult[k], at_star / total[k] - 1.0


def a9a_gradients(n_batches, batch, seed=0):
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(A9A, n_features=123)
    X = X.tocsr().astype(np.float64)
    # A point partway to the optimum: 50 full-gradient steps (l2 = 1e-3) from 0.
    w = np.zeros(X.shape[1])
    for _ in range(50):
        z = y * (X @ w)
        g = -(X.T @ (y / (1.0 + np.exp(z)))) / X.shape[0] + 1e-3 * w
        w -= 1.0 * g
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        idx = rng.choice(X.shape[0], size=batch, replace=False)
        Xb, yb = X[idx], y[idx]
        z = yb * (Xb @ w)
        out.append((-(Xb.T @ (yb / (1.0 + np.exp(z)))) / batch + 1e-3 * w).astype(np.float32))
    return out


def table(name, vectors, trials, relative):
    unit = "relative error ||C(g) - g||^2/||g||^2" if relative else "MSE per coordinate"
    print(f"\n## {name}: {unit} (d = {len(vectors[0])}, {len(vectors)} vector(s) x {trials} keys)")
    header = f"{'b':>2} | {'TNQ':>10} {'NUQ':>10} {'TUQ':>10} {'QSGD':>10} | {'bound':>9} | bits/coord (TNQ, NUQ, QSGD)"
    print(header)
    print("-" * len(header))
    for b in BITS:
        row, bpcs = {}, {}
        for label, c in methods(b).items():
            row[label], bpcs[label] = error(c, vectors, trials, relative)
        g = float(np.mean([np.mean(np.abs(v.astype(np.float64))) for v in vectors]))
        bound = "" if relative else f"{tnq.theory(b, g).bound:9.5f}"
        q = f"{row['QSGD']:10.4g}" if "QSGD" in row else f"{'n/a':>10}"
        qb = f"{bpcs['QSGD']:.4f}" if "QSGD" in bpcs else "n/a"
        print(f"{b:>2} | {row['TNQ']:10.4g} {row['NUQ']:10.4g} {row['TUQ']:10.4g} {q} | {bound:>9} | "
              f"{bpcs['TNQ']:.4f}, {bpcs['NUQ']:.4f}, {qb}")
    ratios = [alpha_ratio(vectors, b, relative) for b in BITS]
    print("alpha*/alpha_best: " + "  ".join(f"b={b}: {r:.3f} (+{100 * e:.1f}% MSE)" for b, (r, e) in zip(BITS, ratios)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=131072)
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    t0 = time.perf_counter()
    print("TNQSGD error versus bits (Yan et al., arXiv 2402.01160); "
          "bound = 27 gamma-hat^2/(s + k*)^2 (the Laplace-model error bound of TNQ)")
    table("Laplace(0, 1)", [rng.laplace(size=args.d).astype(np.float32)], args.trials, relative=False)
    table("Student-t(3)", [rng.standard_t(3, size=args.d).astype(np.float32)], args.trials, relative=False)
    if os.path.exists(A9A):
        table("a9a.t logistic-regression mini-batch gradients (B = 32)", a9a_gradients(200, 32), 2, relative=True)
    else:
        print(f"\n(skipping the real-gradient table: {os.path.normpath(A9A)} not found)")
    print(f"\n[{time.perf_counter() - t0:.1f} s]")


if __name__ == "__main__":
    main()

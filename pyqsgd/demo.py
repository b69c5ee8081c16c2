"""The README's main job: a short comparison of the seed methods on a bundled real dataset."""
from __future__ import annotations

import time

import numpy as np

__all__ = ["default_methods", "run_demo"]


def default_methods(d):
    """Name -> (method, step size factor x 1/L) for the demo comparison."""
    import pyqsgd as pq

    k = max(1, d // 10)
    return {
        "GD (uncompressed)": (pq.methods.DCGD(pq.Identity()), 1.0),
        "EF21 + TopK(10%)": (pq.methods.EF21(pq.TopK(ratio=0.1)), 1.0),
        "DIANA + induced(TopK, RandK)": (pq.methods.DIANA(pq.induced(pq.TopK(k=k), pq.RandK(k=k))), 0.5),
        "EF-SignGD": (pq.methods.EFSignSGD(), 1.0),
        "LE-SignGD": (pq.methods.LESignSGD(), 1.0),
        "signSGD-MV": (pq.methods.SignSGDMV(), 0.02),
        "signSGD-FV": (pq.methods.SignSGDFV(T_in=20), 0.02),
    }


def run_demo(rounds=300, n_workers=10, dataset="breast_cancer", out="pyqsgd_demo.png", key=0, verbose=True):
    """Runs every method of :func:`default_methods` on l2-regularised logistic regression over a
    bundled dataset; returns a DataFrame (one row per method) and writes a loss-vs-bits plot.
    """
    import pandas as pd

    import pyqsgd as pq

    X, y = pq.data.load_bundled(dataset, add_bias=True)
    if y.dtype.kind != "f":
        raise ValueError(f"demo: dataset {dataset!r} is not binary; use 'breast_cancer'")
    prob = pq.problems.LogisticRegression(X, y, l2=1e-2)
    L = prob.smoothness()
    ref = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=1, rounds=3000, lr=1.0 / L,
                      log_every=3000, key=key)
    f_star = float(ref.loss[-1])
    rows, curves = [], {}
    for name, (method, factor) in default_methods(prob.dim).items():
        t0 = time.perf_counter()
        hist = pq.simulate(prob, method, n_workers=n_workers, rounds=rounds, lr=factor / L, key=key,
                           log_every=max(1, rounds // 100))
        seconds = time.perf_counter() - t0
        gap = np.maximum(hist.loss - f_star, 1e-16)
        curves[name] = (hist.bits_up, gap)
        rows.append({"method": name, "final_suboptimality": float(gap[-1]), "bits_up": int(hist.bits_up[-1]),
                     "uploads": int(hist.uploads[-1]), "seconds": round(seconds, 3)})
    table = pd.DataFrame(rows).set_index("method")
    if verbose:
        with pd.option_context("display.width", 120, "display.float_format", "{:.3e}".format):
            print(f"logistic regression on {dataset} (n={prob.n_samples}, d={prob.dim}), {n_workers} workers, "
                  f"{rounds} rounds, f* = {f_star:.6f}")
            print(table)
    if out:
        _plot(curves, out, dataset)
        if verbose:
            print(f"wrote {out}")
    return table


def _plot(curves, out, dataset):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (bits, gap) in curves.items():
        ax.loglog(np.maximum(bits, 1), gap, label=name)
    ax.set_xlabel("uplink bits (all workers)")
    ax.set_ylabel("f(x) - f*")
    ax.set_title(f"pyqsgd demo: logistic regression on {dataset}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)

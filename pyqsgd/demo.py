"""The README's main job: a short comparison of the seed methods on a bundled real dataset."""
from __future__ import annotations

import textwrap
import time

import numpy as np

__all__ = ["default_methods", "run_demo", "vote_comparison"]


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

    The comparison uses full, equal local batches, a setting in which signSGD-FV has nothing to
    learn; the printout says so and adds :func:`vote_comparison`, majority versus federated
    voting with heterogeneous batch sizes (ALGORITHMS.md §4.3), where FV's weights matter.
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
    votes = vote_comparison(prob, f_star, rounds=rounds, n_workers=n_workers, key=key)
    if verbose:
        print(f"logistic regression on {dataset} (n={prob.n_samples}, d={prob.dim}), {n_workers} workers, "
              f"{rounds} rounds, full local batches, f* = {f_star:.6f}")
        print(_format(table))
        print(_FV_NOTE)
        if votes is None:
            print("(majority vs federated vote skipped: it needs at least 2 workers with 3 or more samples each)")
        else:
            print()
            print(votes.attrs["title"])
            print(_format(votes))
    if out:
        _plot(curves, out, dataset)
        if verbose:
            print(f"wrote {out}")
    return table


_FV_NOTE = textwrap.fill(
    "note: signSGD-FV trails here because of the setting, not a fault: with full, equal local "
    "batches every worker is equally reliable, so FV's learned weights only follow shard-to-shard "
    "noise and let a few workers outvote the rest. FV is meant for heterogeneous batch sizes "
    "(the next table). On sparse data (e.g. a9a) it can lose to MV even then: see the caveat in "
    "help(pyqsgd.methods.SignSGDFV).", width=100)


def vote_comparison(prob, f_star, rounds=300, n_workers=10, key=0, seeds=5, lr_factor=0.005):
    """signSGD-MV versus signSGD-FV where federated voting is meant to help: a fifth of the
    workers use their whole shard as a batch, the rest a batch of 2 (ALGORITHMS.md §4.3).

    Returns a DataFrame (rows MV, FV: mean final suboptimality over ``seeds`` keys from ``key``,
    bits, FV's mean learned weight of the large- and small-batch workers, seconds per run), or
    None when the workers are too few or their shards too small for two batch sizes. The step
    ``lr_factor / L`` is small so that the quality of the vote, not the step, sets the error.
    """
    import pandas as pd

    import pyqsgd as pq

    n_large = max(1, round(n_workers / 5))
    large, small = prob.n_samples // n_workers, 2
    if n_workers < 2 or n_large >= n_workers or large <= small:
        return None
    batches = [large] * n_large + [small] * (n_workers - n_large)
    rows = []
    for name, method in (("signSGD-MV", pq.methods.SignSGDMV()), ("signSGD-FV", pq.methods.SignSGDFV(T_in=20))):
        gaps, weights, t0 = [], [], time.perf_counter()
        for seed in range(key, key + seeds):
            hist = pq.simulate(prob, method, n_workers=n_workers, rounds=rounds, lr=lr_factor / prob.smoothness(),
                               batch_size=batches, key=seed, log_every=max(1, rounds))
            gaps.append(max(float(hist.loss[-1]) - f_star, 1e-16))
            if hist.vote_weights is not None:
                weights.append(hist.vote_weights[-1])
        w = np.mean(weights, axis=0) if weights else None
        rows.append({"method": name, "final_suboptimality": float(np.mean(gaps)), "bits_up": int(hist.bits_up[-1]),
                     "weight_large_batch": np.nan if w is None else float(np.mean(w[:n_large])),
                     "weight_small_batch": np.nan if w is None else float(np.mean(w[n_large:])),
                     "seconds": round((time.perf_counter() - t0) / seeds, 3)})
    table = pd.DataFrame(rows).set_index("method")
    table.attrs["title"] = (f"majority vs federated vote, heterogeneous batches ({n_large} workers at batch {large}, "
                            f"{n_workers - n_large} at {small}), lr = {lr_factor}/L, mean of {seeds} seeds")
    table.attrs["batches"] = batches
    return table


def _format(table):
    """Suboptimality in scientific notation, seconds and weights as plain decimals."""
    formats = {"final_suboptimality": "{:.3e}".format, "seconds": "{:.3f}".format,
               "weight_large_batch": "{:.2f}".format, "weight_small_batch": "{:.2f}".format}
    return table.to_string(formatters={c: f for c, f in formats.items() if c in table.columns}, na_rep="-")


def _plot(curves, out, dataset):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (bits, gap) in curves.items():
        sent = bits > 0  # round 0 has sent nothing: a log axis cannot show it
        ax.loglog(bits[sent], gap[sent], label=name)
    ax.set_xlabel("uplink bits (all workers)")
    ax.set_ylabel("f(x) - f*")
    ax.set_title(f"pyqsgd demo: logistic regression on {dataset} (full local batches)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)

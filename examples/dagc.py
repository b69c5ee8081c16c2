"""DAGC: data-aware per-worker compression (Lu et al., IEEE TMC 2024, arXiv 2311.07324; ALGORITHMS.md 4.5).

    python examples/dagc.py [--small] [--out dagc.png]

1. The bundled digits data split over m = 10 workers with Dirichlet label skew (alpha 0.5) and
   log-spaced volume skew 20 (the largest worker holds about 20x the data of the smallest).
2. What DAGC assigns from the volumes alone: TopK ratios (DAGC-R, average 1%) and hard
   thresholds (DAGC-A, harmonic mean tau); more data means milder compression.
3. A one-hidden-layer MLP (d = 2410) trained with 5 local SGD steps per round, error feedback and
   server weights n_i / sum n: uniform TopK vs DAGC-R (exactly the same number of values sent)
   and uniform Threshold vs DAGC-A (same harmonic-mean threshold; bits depend on the data).
More seeds, other skews and a8a: benchmarks/dagc_speedup.py.
"""
import argparse
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # tiny matrices: BLAS threads only contend (set before NumPy loads)

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import pyqsgd as pq  # noqa: E402
from pyqsgd.problems_py import MLPProblem  # noqa: E402

M, SKEW, H, RATIO, LOCAL_LR, TARGET = 10, 20, 5, 0.01, 0.1, 0.4


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="2 seeds, 60 rounds (a quick check)")
    ap.add_argument("--out", default="dagc.png")
    args = ap.parse_args()
    seeds, rounds = (2, 60) if args.small else (5, 200)

    X, y = pq.data.load_bundled("digits")
    prob = MLPProblem(X, y, hidden=32)
    runs, rows = {}, []
    for seed in range(seeds):
        parts = pq.data.partition(y, M, scheme="size_skew", skew=SKEW, alpha=0.5, key=seed)
        sizes = np.array([len(p) for p in parts])
        x0 = prob.init(key=seed)
        # tau: the hard threshold that keeps a fraction RATIO of the pooled first-round updates.
        first = np.concatenate([np.abs(H * LOCAL_LR * prob.grad(x0, p)) for p in parts])
        tau = float(np.quantile(first, 1 - RATIO))
        if seed == 0:
            summary = pq.data.summarize_partition(parts, y)
            plan = summary[["size"]].assign(top_class_share=summary.filter(like="class_").max(axis=1) / sizes)
            plan["DAGC-R ratio"] = pq.dagc.assign_ratios(sizes, RATIO)
            plan["DAGC-R k_i"] = pq.dagc.topk_counts(plan["DAGC-R ratio"].to_numpy(), prob.dim)
            plan["DAGC-A tau_i"] = pq.dagc.assign_thresholds(sizes, tau)
            print(f"seed 0 partition and DAGC plan (d = {prob.dim}; uniform TopK sends k = "
                  f"{round(RATIO * prob.dim)} per worker, uniform threshold tau = {tau:.3g}):")
            print(plan.to_string(float_format=lambda v: f"{v:.4g}"))
        wm = pq.WeightedMean("data")
        methods = {"uncompressed": pq.methods.EF(pq.Identity(), aggregator=wm),
                   "TopK": pq.methods.EF(pq.TopK(ratio=RATIO), aggregator=wm),
                   "DAGC-R": pq.methods.DAGC(variant="R", mean=RATIO),
                   "Threshold": pq.methods.EF(pq.Threshold(tau=tau), aggregator=wm),
                   "DAGC-A": pq.methods.DAGC(variant="A", mean=tau)}
        for name, method in methods.items():
            h = pq.simulate(prob, method, n_workers=M, rounds=rounds, lr=1.0, partition=parts, x0=x0, key=seed,
                            local_steps=H, local_lr=LOCAL_LR, batch_size=[min(16, n) for n in sizes])
            hit = np.flatnonzero(h.loss <= TARGET)
            runs.setdefault(name, []).append(h)
            rows.append({"method": name, "seed": seed, "rounds to target": h.round[hit[0]] if hit.size else np.nan,
                         "final loss": h.loss[-1], "accuracy": prob.accuracy(h.x), "uplink Mbit": h.bits_up[-1] / 1e6,
                         "largest/smallest worker bits": h.worker_bits_up[-1, 0] / h.worker_bits_up[-1, -1]})
    table = pd.DataFrame(rows).groupby("method", sort=False).mean().drop(columns="seed")
    reach = table["rounds to target"]
    for dagc, base in (("DAGC-R", "TopK"), ("DAGC-A", "Threshold")):
        table.loc[dagc, "speed-up %"] = 100 * (1 - reach[dagc] / reach[base])
    print(f"\nmean over {seeds} seeds, {rounds} rounds; target loss {TARGET} (speed-up = fewer rounds than the "
          "uniform baseline):")
    print(table.to_string(float_format=lambda v: f"{v:.4g}", na_rep=""))
    print("Measured with benchmarks/dagc_speedup.py: DAGC-R reaches the accuracy target ~8-11% sooner than uniform\n"
          "TopK on this MLP under skew 20-100, with no reliable gain on convex a8a; the paper reports 25.43% (DAGC-R)\n"
          "and 16.65% (DAGC-A).")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    pq.plot.convergence(runs, x="round", ax=axes[0], title="MLP on digits, skew 20: loss vs rounds")
    pq.plot.convergence(runs, x="bits_up", ax=axes[1], title="loss vs uplink bits")
    fig.tight_layout()
    pq.plot.savefig(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

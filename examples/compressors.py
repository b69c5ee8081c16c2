"""Compressors on a real gradient: unbiasedness, measured omega/delta against theory, bits.

    python examples/compressors.py [--small] [--out compressors.png]

Takes the gradient of logistic regression at a point partway to the optimum (bundled
breast_cancer data, d = 31, or a LIBSVM file with --dataset), compresses it many times with
independent keys (pyqsgd.measure) and prints, per compressor, the bits per message, the bias
test p-value, the measured E||C(x) - x||^2/||x||^2 with its confidence interval, and the
declared constant (omega for unbiased compressors, 1 - delta for contractive ones).
"""
import argparse

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import pyqsgd as pq  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="fewer trials (a quick check)")
    ap.add_argument("--dataset", default="breast_cancer")
    ap.add_argument("--out", default="compressors.png")
    args = ap.parse_args()
    trials = 400 if args.small else 5000

    prob = pq.ProblemSpec("logistic", args.dataset, l2=1e-2).build()
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=1, rounds=5, lr=1 / prob.smoothness())
    g = prob.grad(hist.x)
    d = g.size
    k = max(1, d // 8)
    families = {
        "TopK": [pq.TopK(k=k), pq.TopK(k=2 * k)],
        "RandK": [pq.RandK(k=k), pq.RandK(k=2 * k)],
        "induced(TopK, RandK)": [pq.induced(pq.TopK(k=k), pq.RandK(k=k))],
        "QSGD": [pq.QSGD(levels=s) for s in (1, 3, 15)],
        "Sign / ScaledSign": [pq.Sign(), pq.ScaledSign()],
        "TernGrad": [pq.TernGrad()],
        "Natural": [pq.Natural()],
    }
    table = pq.experiment.measure_table(families, g, trials=trials, key=0)
    table["declared"] = np.where(table["unbiased"], table["omega_theory"], 1 - table["delta_theory"].astype(float))
    cols = ["compressor", "bits", "bias_p", "omega", "omega_lo", "omega_hi", "unbiased", "declared"]
    print(f"gradient of {prob!r} (d = {d}), {trials} trials per compressor")
    print("omega = measured E||C(x)-x||^2/||x||^2; declared = omega (unbiased) or 1 - delta (contractive)")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nbias_p < 1e-3 is evidence of bias (expected for TopK, Sign, ScaledSign); for unbiased compressors "
          "the measured omega stays at or below the declared bound (equal for RandK).")
    ax = pq.plot.compressor_error(table, x="bits_per_coord", y="omega", logx=True,
                                  title=f"compression error vs bits, d = {d}")
    pq.plot.savefig(ax, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

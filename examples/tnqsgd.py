"""TNQSGD: truncated non-uniform quantization (Yan et al., arXiv 2402.01160; ALGORITHMS.md 4.4).

    python examples/tnqsgd.py [--small] [--out tnqsgd.png]

1. A real stochastic gradient (softmax regression on the bundled digits data, d = 650): its
   histogram with TNQ's truncation threshold alpha* and 2-bit levels.
2. Error versus bits of TNQ and its baselines (truncated uniform, non-uniform without
   truncation, QSGD) on that gradient, measured with pyqsgd.measure.
3. Convergence versus uplink bits of compressed SGD (DCGD, batch 16) with each quantizer.
"""
import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import pyqsgd as pq  # noqa: E402


def quantizers(b):
    out = {"TNQ": pq.TruncatedQuantizer(bits=b), "truncated uniform": pq.TruncatedUniformQuantizer(bits=b),
           "non-uniform (no truncation)": pq.NonUniformQuantizer(bits=b)}
    if b >= 2:
        out["QSGD"] = pq.QSGD(levels=2 ** (b - 1) - 1)  # 1 sign bit + (b - 1) level bits
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="fewer trials and rounds (a quick check)")
    ap.add_argument("--out", default="tnqsgd.png")
    args = ap.parse_args()
    trials, rounds = (50, 60) if args.small else (500, 600)

    prob = pq.ProblemSpec("softmax", "digits", l2=1e-3).build()
    L = prob.smoothness()
    warm = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=1, rounds=20, lr=1 / L)
    idx = np.random.default_rng(0).choice(prob.n_samples, size=32, replace=False)
    g = prob.grad(warm.x, idx)
    gamma = float(np.mean(np.abs(g)))
    alpha = pq.tnq.optimal_threshold(2, gamma)
    print(f"gradient: d = {g.size}, gamma-hat = {gamma:.3g}, alpha*(2 bits) = {alpha:.3g}, "
          f"{np.mean(np.abs(g) > alpha):.1%} of coordinates truncated")

    families, nominal = {}, {}
    for b in range(1, 6):
        for name, c in quantizers(b).items():
            families.setdefault(name, []).append(c)
            nominal.setdefault(name, []).append(b)
    table = pq.experiment.measure_table(families, g, trials=trials, key=0)
    table["b"] = [b for name in families for b in nominal[name]]
    print("relative error E||C(g) - g||^2/||g||^2 by bits per coordinate b:")
    print(table.pivot(index="family", columns="b", values="omega").to_string(float_format=lambda v: f"{v:.3g}"))

    hists = {}
    for name, c in quantizers(2).items():
        hists[f"{name}, 2 bits"] = pq.simulate(prob, pq.methods.DCGD(c), n_workers=10, rounds=rounds, lr=0.5 / L,
                                               batch_size=16, key=0, log_every=max(1, rounds // 50))
    hists["uncompressed"] = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=10, rounds=rounds,
                                        lr=0.5 / L, batch_size=16, key=0, log_every=max(1, rounds // 50))
    for name, h in hists.items():
        print(f"  {name:36} final loss {h.loss[-1]:.4f}  bits_up {int(h.bits_up[-1])}")
    print("TNQ has the lowest error per bit, but truncation is biased: here plain DCGD with it settles\n"
          "higher than with the unbiased quantizers, whose larger variance the 10-worker average absorbs.")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    pq.plot.quantizer(g, levels=pq.tnq.laplace_levels(2, gamma), threshold=alpha, ax=axes[0],
                      title="real gradient, TNQ 2-bit levels")
    pq.plot.compressor_error(table, theory=False, ax=axes[1], title="relative error vs bits")
    pq.plot.convergence(hists, x="bits_up", ax=axes[2], title="DCGD, batch 16: loss vs bits")
    fig.tight_layout()
    pq.plot.savefig(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Quickstart: three communication-efficient methods on real data, compared per bit sent.

    python examples/quickstart.py [--small] [--dataset a9a.t] [--out quickstart.png]

Logistic regression (l2 = 1e-2) on a bundled dataset (or a LIBSVM file found by
pyqsgd.data.find_libsvm, falling back to the bundled one), 10 workers: EF21 with Top-K,
DIANA with the induced compressor, LE-SignGD. Prints a table and writes loss-versus-bits.
"""
import argparse

import matplotlib

matplotlib.use("Agg")

import pyqsgd as pq  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="few rounds (a quick check)")
    ap.add_argument("--dataset", default="breast_cancer", help="bundled name or LIBSVM file (e.g. a9a.t)")
    ap.add_argument("--out", default="quickstart.png")
    args = ap.parse_args()
    rounds = 40 if args.small else 400

    prob = pq.ProblemSpec("logistic", args.dataset, l2=1e-2).build()
    L = prob.smoothness()
    f_star, _ = pq.experiment.reference_optimum(prob)
    k = max(1, prob.dim // 10)
    methods = {
        "EF21 + TopK(10%)": (pq.methods.EF21(pq.TopK(k=k)), 1.0),
        "DIANA + induced(TopK, RandK)": (pq.methods.DIANA(pq.induced(pq.TopK(k=k), pq.RandK(k=k))), 0.5),
        "LE-SignGD": (pq.methods.LESignSGD(), 1.0),
    }
    hists = {}
    print(f"{prob!r}, L = {L:.3g}, f* = {f_star:.6f}, {rounds} rounds, 10 workers")
    print(f"{'method':32} {'f - f*':>10} {'uplink bits':>12} {'uploads':>8}")
    for name, (method, factor) in methods.items():
        hist = pq.simulate(prob, method, n_workers=10, rounds=rounds, lr=factor / L, key=0,
                           log_every=max(1, rounds // 50))
        hists[name] = hist
        print(f"{name:32} {hist.loss[-1] - f_star:10.3e} {int(hist.bits_up[-1]):12d} {int(hist.uploads[-1]):8d}")
    ax = pq.plot.convergence(hists, x="bits_up", y="suboptimality", f_star=f_star,
                             title=f"logistic regression, {args.dataset}")
    pq.plot.savefig(ax, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Sign methods: EF-SignGD, LE-SignGD (lazy uploads), signSGD with majority vs federated voting.

    python examples/sign_methods.py [--small] [--out sign_methods.png]

1. EF-SignGD and LE-SignGD (ALGORITHMS.md 4.1) with full local gradients: LE-SignGD skips
   uploads whose gradient barely changed; we report uploads, skip rate and bits separately.
2. signSGD-MV vs signSGD-FV (4.3) with heterogeneous batches (a fifth of the workers at a large
   batch, the rest at 4) on dense data: FV learns larger weights for large-batch workers.
3. The sparse-data caveat: on sparse a9a (when found on this machine) small-batch workers agree
   with each other on absent features and can earn the larger weights; leave_one_out=True is
   our option that measures agreement against the others' vote.
"""
import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import pyqsgd as pq  # noqa: E402


def vote_study(prob, rounds, label, lr):
    m = 10
    batches = pq.data.heterogeneous_batches(m, mean_batch=8, large_fraction=0.2, small=4)
    out = {}
    for name, method in [("MV", pq.methods.SignSGDMV()), ("FV", pq.methods.SignSGDFV(T_in=20)),
                         ("FV leave-one-out", pq.methods.SignSGDFV(T_in=20, leave_one_out=True))]:
        h = pq.simulate(prob, method, n_workers=m, rounds=rounds, lr=lr, batch_size=batches, key=0,
                        log_every=max(1, rounds // 50))
        out[name] = h
        w = "" if h.vote_weights is None else (f"  mean weight large-batch {h.vote_weights[-1][:2].mean():6.2f}, "
                                               f"small-batch {h.vote_weights[-1][2:].mean():6.2f}")
        print(f"  {label:14} {name:17} final loss {h.loss[-1]:.5f}{w}")
    return out, batches


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="few rounds (a quick check)")
    ap.add_argument("--out", default="sign_methods.png")
    args = ap.parse_args()
    rounds = 60 if args.small else 600

    prob = pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2).build()
    L = prob.smoothness()
    print(f"1. GD vs EF-SignGD vs LE-SignGD on {prob!r}, 10 workers, {rounds} rounds")
    lazy = {}
    for name, method in [("GD", pq.methods.DCGD(pq.Identity())), ("EF-SignGD", pq.methods.EFSignSGD()),
                         ("LE-SignGD", pq.methods.LESignSGD())]:
        h = pq.simulate(prob, method, n_workers=10, rounds=rounds, lr=1 / L, key=0, log_every=max(1, rounds // 50))
        lazy[name] = h
        skip = 1 - h.uploads[-1] / (10 * rounds)
        print(f"  {name:10} loss {h.loss[-1]:.6f}  uploads {int(h.uploads[-1]):5d}  skip rate {skip:5.1%}  "
              f"bits_up {int(h.bits_up[-1])}")

    print("2. majority vs federated voting, heterogeneous batches (2 workers at a large batch, 8 at 4)")
    dense, batches = vote_study(prob, rounds, "breast_cancer", lr=0.02 / L)
    path = pq.data.find_libsvm("a9a.t")
    sparse = None
    if path is not None and not args.small:
        print("3. the same on sparse a9a.t (ALGORITHMS.md 4.3 caveat)")
        a9a = pq.ProblemSpec("logistic", str(path), l2=1e-3, n_features=123).build()
        sparse, _ = vote_study(a9a, rounds, "a9a.t", lr=0.02 / a9a.smoothness())
    else:
        print("3. (sparse caveat skipped: a9a.t not found, or --small)")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    pq.plot.convergence(lazy, x="uploads", ax=axes[0], title="EF- vs LE-SignGD: loss vs uploads")
    pq.plot.convergence(dense, ax=axes[1], title="MV vs FV (breast_cancer)")
    pq.plot.vote_weights(dense["FV"], color_by=batches, ax=axes[2], title="learned FV weights")
    fig.tight_layout()
    pq.plot.savefig(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Five comparisons at equal uplink bits on a small CNN (explained in notebooks/08_deep_learning.ipynb).

    python examples/deep_learning.py [--small] [--out deep_learning.png]
A CNN (d = 7018) TorchProblem, 1500 digits on Dirichlet shards: EF21/DCGD, MV/FV, DAGC-R/TopK, TNQ/QSGD, per-layer TopK.
"""
import argparse
import os
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # set before NumPy/pyqsgd load:
    os.environ.setdefault(_var, "1")  # on tiny matrices BLAS and OpenMP threads (pyqsgd's too) only contend
os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
try:
    import torch  # noqa: E402
except ImportError:  # torch is an optional dependency of pyqsgd
    raise SystemExit("examples/deep_learning.py needs PyTorch: pip install 'pyqsgd[torch]'") from None

import pyqsgd as pq  # noqa: E402
from pyqsgd.problems_torch import TorchProblem  # noqa: E402

torch.set_num_threads(1)  # the same reason: on 8x8 images thread hand-offs cost more than they save
RATIO, LR, SIGN_LR, ALPHA, SKEW, N_TEST = 0.05, 0.3, 0.01, 0.5, 20, 297
PANELS = {"1. EF21 vs DCGD, TopK 5%": ("EF21, TopK", "DCGD, TopK"), "2. signSGD, batches 24 / 4": ("MV", "FV"),
          "3. EF, volume skew 20": ("uniform TopK", "DAGC-R"), "4. DCGD, 2 bits/coord.": ("TNQSGD", "QSGD"),
          "5. EF21, TopK 5%": ("EF21, layer-wise TopK", "EF21, TopK")}  # pairs of runs_for labels


def cnn(seed):
    """The network, initialised from its own generator (the global torch RNG is never touched)."""
    gen, net = torch.Generator().manual_seed(seed), torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(16 * 6 * 6, 10))
    with torch.no_grad():
        for p in net.parameters():  # weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases 0
            p.uniform_(-p[0].numel() ** -0.5, p[0].numel() ** -0.5, generator=gen) if p.ndim > 1 else p.zero_()
    return net


class Tracked(TorchProblem):
    """Appends the held-out accuracy (``self.test``) to ``self.acc`` whenever the simulator logs the loss."""
    def loss(self, x, indices=None):
        if indices is None:
            self.acc.append(self.test.accuracy(x))
        return super().loss(x, indices)


def runs_for(blocks, y, m, seed):
    """{label: (method, simulate arguments)} for one seed; paired runs share data, batches and lr."""
    dirichlet = dict(partition=pq.data.partition(y, m, scheme="dirichlet", alpha=ALPHA, min_size=24, key=seed),
                     batch_size=16, lr=LR)  # min_size: every shard holds the largest batch (24)
    votes = dict(dirichlet, batch_size=pq.data.heterogeneous_batches(m, mean_batch=8), lr=SIGN_LR)
    parts = pq.data.partition(y, m, scheme="size_skew", skew=SKEW, alpha=ALPHA, key=seed)
    skew, top = dict(partition=parts, batch_size=[min(16, len(p)) for p in parts], lr=LR), pq.TopK(ratio=RATIO)
    return {"EF21, TopK": (pq.methods.EF21(top), dirichlet), "DCGD, TopK": (pq.methods.DCGD(top), dirichlet),
            "MV": (pq.methods.SignSGDMV(), votes), "FV": (pq.methods.SignSGDFV(T_in=20), votes),
            "uniform TopK": (pq.methods.EF(top, aggregator=pq.WeightedMean("data")), skew),
            "DAGC-R": (pq.methods.DAGC(variant="R", mean=RATIO), skew),
            "TNQSGD": (pq.methods.DCGD(pq.TruncatedQuantizer(bits=2)), dirichlet),
            "QSGD": (pq.methods.DCGD(pq.QSGD(levels=1)), dirichlet),  # 1 sign + 1 level bit: 32 + 2d, as TNQ
            "EF21, layer-wise TopK": (pq.methods.EF21(pq.blockwise(top, blocks)), dirichlet)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="20 workers, 2 seeds, 30 rounds (a quick check)")
    ap.add_argument("--out", default="deep_learning.png")
    args = ap.parse_args()
    m, seeds, rounds, every = (20, 2, 30, 10) if args.small else (40, 3, 300, 20)  # a log costs a full gradient
    X, y = pq.data.load_bundled("digits")
    X, order = X.reshape(-1, 1, 8, 8), np.random.default_rng(0).permutation(len(y))  # one held-out split for all
    test, train, frames = TorchProblem(cnn(0), X[order[:N_TEST]], y[order[:N_TEST]]), order[N_TEST:], []
    for seed in range(seeds):  # the seed sets the initial weights, the partitions and the batches
        prob = Tracked(cnn(seed), X[train], y[train])
        for label, (method, kw) in runs_for(prob.blocks, y[train], m, seed).items():
            prob.test, prob.acc = test, []
            h = pq.simulate(prob, method, n_workers=m, rounds=rounds, x0=prob.x0, key=seed, log_every=every, **kw)
            frames.append(h.to_frame().assign(accuracy=prob.acc, label=label, seed=seed, _curve=label, _run=seed))
    runs = pd.concat(frames, ignore_index=True)
    last = runs[runs["round"] == rounds].set_index(["label", "seed"])
    print(f"{m} workers, {seeds} seeds, {rounds} rounds, TopK ratio {RATIO}, lr {LR} (sign methods {SIGN_LR}); "
          "final held-out accuracy and uplink bits, mean ± sd over seeds; wins: seeds with the higher accuracy\n\n"
          "| comparison | method | accuracy | train loss | Mbit up | bits/worker/round | wins |\n" + "|---" * 7 + "|")
    for panel, pair in PANELS.items():
        for name, other in (pair, pair[::-1]):
            g, acc = last.loc[name], last.loc[name, "accuracy"]
            print(f"| {panel} | {name} | {acc.mean():.3f} ± {acc.std():.3f} | {g['loss'].mean():.3f} | "
                  f"{g['bits_up'].mean() / 1e6:.3f} ± {g['bits_up'].std() / 1e6:.3f} | "
                  f"{g['bits_up'].mean() / (m * rounds):.0f} | {(acc > last.loc[other, 'accuracy']).sum()}/{seeds} |")
    fig, axes = plt.subplots(1, 5, figsize=(25, 4.5), layout="constrained")
    for ax, (panel, pair) in zip(axes, PANELS.items()):
        pq.plot.convergence(runs[runs["label"].isin(pair)], x="bits_up", y="accuracy", band="minmax", logx=False,
                            logy=False, ax=ax, title=panel)
    pq.plot.savefig(fig, args.out)


if __name__ == "__main__":
    main()

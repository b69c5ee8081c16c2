"""DAGC-R / DAGC-A versus uniform compression under volume skew (ALGORITHMS.md §4.5).

    python benchmarks/dagc_speedup.py [--small] [--seeds 5] [--skew 20] [--ratio 0.01] [--ratio-a8a 0.05]

m = 10 workers, Dirichlet label skew (alpha 0.5) + log-spaced volume skew, H = 5 local SGD steps
(batch 16), error feedback, server weights n_i / sum n. (a) MLP (tanh, 32 units) on bundled digits
via the Python-problem path; (b) logistic regression on a8a (native; skipped when absent).
Uniform TopK(ratio=c) vs DAGC-R(mean=c) send exactly the same number of values; uniform
Threshold(tau) vs DAGC-A(mean=tau) share the harmonic-mean threshold (tau keeps a fraction c of the
pooled first-round updates; their bits depend on the data). Speed-up = 1 - rounds(DAGC) /
rounds(uniform) to a target train accuracy / loss, mean over seeds; misses count as the budget (>).
"""
from __future__ import annotations

import argparse
import os
import time

# Tiny matrices: BLAS threads only contend (5x slower on 2 cores); set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import pyqsgd as pq  # noqa: E402
from pyqsgd.problems_py import MLPProblem  # noqa: E402

PAPER = {"DAGC-R": "25.43%", "DAGC-A": "16.65%"}


class Tracked:
    """Python problem that records the train accuracy each time the simulator logs the loss."""

    def __init__(self, prob):
        self.prob, self.n_samples, self.dim, self.acc = prob, prob.n_samples, prob.dim, []

    def loss(self, x):
        self.acc.append(self.prob.accuracy(x))
        return self.prob.loss(x)

    def grad(self, x, indices):
        return self.prob.grad(x, indices)


def methods(c, tau):
    wm = pq.WeightedMean("data")
    return {"none": pq.methods.EF(pq.Identity(), aggregator=wm),  # reference: no compression
            "TopK": pq.methods.EF(pq.TopK(ratio=c), aggregator=wm), "DAGC-R": pq.methods.DAGC(variant="R", mean=c),
            "Threshold": pq.methods.EF(pq.Threshold(tau=tau), aggregator=wm),
            "DAGC-A": pq.methods.DAGC(variant="A", mean=tau)}


def setup(grad, y, x0, seed, a, ratio, local_lr):
    parts = pq.data.partition(y, a.workers, scheme="size_skew", skew=a.skew, alpha=0.5, key=seed)
    kw = dict(n_workers=a.workers, lr=1.0, partition=parts, x0=x0, key=seed, local_steps=a.H, local_lr=local_lr,
              batch_size=[min(16, len(p)) for p in parts])
    # tau: the hard threshold keeping a fraction `ratio` of the pooled first-round updates.
    v = np.concatenate([np.abs(a.H * local_lr * grad(x0, p)) for p in parts])
    return kw, methods(ratio, float(np.quantile(v, 1.0 - ratio)))


def setting_mlp(seed, a):
    X, y = pq.data.load_bundled("digits")
    prob = MLPProblem(X, y, hidden=32)
    kw, ms = setup(prob.grad, y, prob.init(key=seed), seed, a, a.ratio, 0.1)
    out = {}
    for name, meth in ms.items():
        t = Tracked(prob)
        h = pq.simulate(t, meth, rounds=a.rounds_mlp, **kw)
        out[name] = (np.array(t.acc), h.loss, h.bits_up, h.worker_bits_up[-1])
    return out


def setting_a8a(seed, a):
    X, y = pq.data.load_libsvm(pq.data.find_libsvm("a8a"), n_features=123)
    prob = pq.problems.LogisticRegression(X, y)
    kw, ms = setup(prob.grad, y, np.zeros(prob.dim), seed, a, a.ratio_a8a, 0.5)
    grid, out = np.arange(0, a.rounds_a8a + 1, 5), {}
    for name, meth in ms.items():
        h = pq.simulate(prob, meth, rounds=a.rounds_a8a, **kw)
        # Accuracy at checkpoints: a run of t rounds is a bitwise prefix of the long run (same key).
        acc = np.zeros(a.rounds_a8a + 1)
        for lo, hi in zip(grid[:-1], grid[1:]):
            x = pq.simulate(prob, meth, rounds=int(hi), log_every=int(hi), **kw).x
            acc[lo + 1:hi + 1] = np.mean(np.where(X @ x >= 0, 1.0, -1.0) == y)
        out[name] = (acc, h.loss, h.bits_up, h.worker_bits_up[-1])
    return out


def first(values, target, below, budget):
    hit = np.flatnonzero(values <= target if below else values >= target)
    return int(hit[0]) if hit.size else budget


def report(title, runs, targets, budget):
    print(f"\n{title}: target accuracy {targets[0]:.3f} / loss {targets[1]:.3f}, {len(runs)} seeds, {budget} rounds")
    print(f"{'method':10s} {'rounds->acc':>13s} {'rounds->loss':>13s} {'speed-up':>8s} {'(loss)':>7s} {'wins':>4s}"
          f" {'Mbit->acc':>9s} {'Mbit':>6s} {'w0/w9 bits':>10s} {'paper':>7s}")
    rows = {}
    for name in runs[0]:
        ra = np.array([first(r[name][0], targets[0], False, budget) for r in runs], float)
        rl = np.array([first(r[name][1], targets[1], True, budget) for r in runs], float)
        rows[name] = ra, rl
        base = {"DAGC-R": "TopK", "DAGC-A": "Threshold"}.get(name)
        su_a = su_l = wins = ""
        if base:
            su_a = f"{100 * (1 - ra.mean() / rows[base][0].mean()):+.1f}%"
            su_l = f"{100 * (1 - rl.mean() / rows[base][1].mean()):+.1f}%"
            wins = f"{int(np.sum(ra < rows[base][0]))}/{len(ra)}"
        mb_acc = np.mean([r[name][2][min(int(t), len(r[name][2]) - 1)] for r, t in zip(runs, ra)]) / 1e6
        mb = np.mean([r[name][2][-1] for r in runs]) / 1e6
        wb = np.mean([r[name][3][0] / r[name][3][-1] for r in runs])
        flag = ">" if (ra == budget).any() or (rl == budget).any() else " "
        print(f"{name:10s} {flag}{ra.mean():6.1f}±{ra.std():5.1f} {rl.mean():6.1f}±{rl.std():5.1f} {su_a:>8s}"
              f" {su_l:>7s} {wins:>4s} {mb_acc:9.3f} {mb:6.2f} {wb:10.2f} {PAPER.get(name, ''):>7s}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="3 seeds, short runs (about a minute)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=0.01, help="mean TopK ratio for the MLP (d = 2410)")
    ap.add_argument("--ratio-a8a", type=float, default=0.05, help="mean TopK ratio for a8a (d = 123)")
    ap.add_argument("--skew", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--H", type=int, default=5)
    ap.add_argument("--targets-mlp", type=float, nargs=2, default=(0.90, 0.40), metavar=("ACC", "LOSS"))
    ap.add_argument("--targets-a8a", type=float, nargs=2, default=(0.835, 0.36), metavar=("ACC", "LOSS"))
    a = ap.parse_args()
    a.rounds_mlp, a.rounds_a8a = (60, 100) if a.small else (200, 300)
    pq.set_num_threads(1)
    settings = [("(a) MLP on digits", setting_mlp, a.targets_mlp, a.rounds_mlp)]
    if pq.data.find_libsvm("a8a") is None:
        print("(b) a8a skipped: file not found (set PYQSGD_DATA to the LIBSVM folder)")
    else:
        settings.append(("(b) logistic regression on a8a", setting_a8a, a.targets_a8a, a.rounds_a8a))
    for title, fn, targets, budget in settings:
        t0 = time.time()
        report(title, [fn(s, a) for s in range(3 if a.small else a.seeds)], targets, budget)
        print(f"({time.time() - t0:.0f} s; m={a.workers}, skew={a.skew:g}, H={a.H}, "
              f"ratio={a.ratio if fn is setting_mlp else a.ratio_a8a:g})")


if __name__ == "__main__":
    main()

"""A compressor written in Python: natural dithering (Horváth et al. 2019, arXiv:1905.10988).

    python examples/custom_compressor.py [--small] [--dataset a9a.t] [--out custom_compressor.png]

NaturalDithering(levels=7) (4 bits per coordinate) passes pq.testing.check_compressor, then runs in EF21 and DIANA
against QSGD(levels=7) (also 4), Natural (9), TopK (EF21) and uncompressed GD on logistic regression (l2 = 1e-2, 10
workers; a9a.t when pq.data.find_libsvm finds it, else the bundled breast_cancer). Plots suboptimality vs uplink bits.
"""
import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import pyqsgd as pq  # noqa: E402


class NaturalDithering(pq.Compressor):
    """Natural dithering, s = ``levels``: y_j = |x_j| / ||x||_2 rounded at random to a neighbour in {0, 2^(1-s), ...,
    1/2, 1}, sent as a float32 norm and per coordinate a sign bit and the level 0..s (1 + ceil(log2(s + 1)) bits).
    Unbiased, U(1/8 + min(a sqrt(d), d a^2 / 4)) with a = 2^(1-s): rounding y between levels lo < y < hi has variance
    (hi - y)(y - lo): on [2^e, 2^(e+1)], with t = y / 2^e, it is y^2 (2 - t)(t - 1) / t^2 <= y^2 / 8 (at t = 4/3), and
    on [0, a] y (a - y) <= min(a y, a^2 / 4); sum over j, with sum y_j^2 = 1 and ||y||_1 <= sqrt(d) (paper: d a^2)."""

    def __init__(self, *, levels=7):
        self.levels = levels
        self._validate()

    def _validate(self):
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 62:
            raise ValueError(f"NaturalDithering: levels must be an int in [1, 62], got {self.levels!r}")

    def encode(self, x, rng):
        s, b, x64 = self.levels, 1 + self.levels.bit_length(), x.astype(np.float64)
        scale = np.float32(np.linalg.norm(x64))  # rounding is monotone: scale >= max |x_j|, so y <= 1
        y = np.abs(x64) / float(scale) if scale > 0 else np.zeros(x.size)
        k = np.where(y > 0, np.clip(np.frexp(y)[1] - 1 + s, 0, s), 0)  # level below y: 0 or 2^(k-s) (frexp: exact)
        lo = np.where(k > 0, 2.0 ** (k - s), 0.0)
        up = rng.random(x.size) * np.where(k > 0, lo, 2.0 ** (1 - s)) < y - lo  # P(up) = (y - lo) / (hi - lo)
        code = (k + up) | (np.signbit(x).astype(np.int64) << (b - 1))
        bits = ((code[:, None] >> np.arange(b)) & 1).astype(np.uint8)
        return scale.tobytes() + np.packbits(bits, axis=None, bitorder="little").tobytes()

    def decode(self, data, d):
        s, b = self.levels, 1 + self.levels.bit_length()
        scale = float(np.frombuffer(data, np.float32, count=1)[0])
        bits = np.unpackbits(np.frombuffer(data, np.uint8, offset=4), count=d * b, bitorder="little")
        code = bits.reshape(d, b).astype(np.int64) @ (1 << np.arange(b))
        k, neg = code & ((1 << (b - 1)) - 1), code >> (b - 1)
        if len(data) != 4 + (d * b + 7) // 8 or not (np.isfinite(scale) and scale >= 0) or k.max(initial=0) > s:
            raise ValueError(f"NaturalDithering: malformed payload ({len(data)} bytes for d = {d})")
        return (np.where(k > 0, scale * 2.0 ** (k - s), 0.0) * (1 - 2 * neg)).astype(np.float32)

    def properties(self, d):
        a = 2.0 ** (1 - self.levels)
        return pq.Properties(unbiased=True, omega=0.125 + min(a * np.sqrt(d), d * a * a / 4), delta=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="few trials and rounds (a quick check)")
    ap.add_argument("--dataset", default="a9a.t", help="LIBSVM file (else breast_cancer is used) or bundled name")
    ap.add_argument("--out", default="custom_compressor.png")
    args = ap.parse_args()
    trials, rounds = (1000, 60) if args.small else (2000, 600)

    dataset = args.dataset if args.dataset in pq.data.BUNDLED or pq.data.find_libsvm(args.dataset) else "breast_cancer"
    prob = pq.ProblemSpec("logistic", dataset, l2=1e-2).build()
    L, d, k = prob.smoothness(), prob.dim, max(1, prob.dim // 10)
    f_star, _ = pq.experiment.reference_optimum(prob)
    nd = NaturalDithering(levels=7)
    report = pq.testing.check_compressor(nd, d=d, trials=trials, key=0)  # raises AssertionError naming what failed
    print(f"check_compressor({nd!r}, d={d}, trials={trials}): all {len(report)} checks passed; omega rows:")
    print(report[report.check == "omega bound"][["vector", "measured", "declared", "detail"]].to_string(index=False))
    base = {"NaturalDithering(7)": nd, "QSGD(levels=7)": pq.QSGD(levels=7), "Natural": pq.Natural()}
    runs = {("EF21", n): pq.methods.EF21(c) for n, c in {**base, f"TopK(k={k})": pq.TopK(k=k)}.items()}
    runs.update({("DIANA", n): pq.methods.DIANA(c) for n, c in base.items()})
    runs[("DCGD", "uncompressed GD")] = pq.methods.DCGD(pq.Identity())
    hists = {key: pq.simulate(prob, m, n_workers=10, rounds=rounds, lr=1 / L, key=0, log_every=max(1, rounds // 50))
             for key, m in runs.items()}
    print(f"\n{dataset}: {prob!r}, f* = {f_star:.6f}, {rounds} rounds, 10 workers, lr = 1/L; declared omega: "
          + ", ".join(f"{n} {c.properties(d).omega:.3f}" for n, c in base.items()))
    for (family, name), h in hists.items():
        print(f"{family + ' + ' + name:30} f - f* = {h.loss[-1] - f_star:.3e}, {h.bits_up[-1]:9.0f} bits up "
              f"({h.bits_up[-1] / d / h.uploads[-1]:.2f} per coordinate)")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    axes[1].set_prop_cycle(color=["tab:blue", "tab:orange", "tab:green", "tab:purple"])  # EF21's colours, no TopK
    for ax, family in zip(axes, ("EF21", "DIANA")):
        curves = {name: h for (fam, name), h in hists.items() if fam in (family, "DCGD")}
        pq.plot.convergence(curves, x="bits_up", y="suboptimality", f_star=f_star, ax=ax, title=f"{family}, {dataset}")
    pq.plot.savefig(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

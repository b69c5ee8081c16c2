"""A compressor written in Python: natural dithering (Horváth et al. 2019, arXiv:1905.10988).

    python examples/custom_compressor.py [--small] [--dataset a9a.t] [--out custom_compressor.png]

NaturalDithering (not built in) rounds |x_j| / ||x||_2 stochastically to the levels 0, 2^(1-s),
..., 1/2, 1 and sends a float32 norm plus 1 + ceil(log2(s + 1)) bits per coordinate (4 for s = 7).
pq.testing.check_compressor checks unbiasedness and the declared omega on worst-case vectors;
then EF21 and DIANA run with it and with built-ins on logistic regression (l2 = 1e-2, 10 workers;
a9a.t when pq.data.find_libsvm finds it, else the bundled breast_cancer): QSGD(levels=7) (same
bits), Natural (9 bits per coordinate), TopK (EF21 only) and uncompressed GD. Writes
suboptimality versus uplink bits.
"""
import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import pyqsgd as pq  # noqa: E402


class NaturalDithering(pq.Compressor):
    """Natural dithering with s = ``levels``: unbiased, U(1/8 + min(a sqrt(d), d a^2 / 4)), a = 2^(1-s).

    Omega: with y_j = |x_j| / ||x||_2 (so sum y_j^2 = 1), rounding y_j between neighbouring levels
    lo < y_j < hi has variance (hi - y_j)(y_j - lo). On [2^e, 2^(e+1)] that is y_j^2 (2 - t)(t - 1)/t^2
    with t = y_j / 2^e in [1, 2], at most y_j^2 / 8 (at t = 4/3); on the bottom interval [0, a] it is
    y_j (a - y_j) <= min(a y_j, a^2 / 4). Summing, E||C(x) - x||^2 / ||x||^2 <= 1/8 + min(a ||y||_1, d a^2 / 4)
    <= 1/8 + min(a sqrt(d), d a^2 / 4) (||y||_1 <= sqrt(d)); Horváth et al.'s Theorem has d a^2 there."""

    def __init__(self, *, levels=7):
        self.levels = levels
        self._validate()

    def _validate(self):
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 62:
            raise ValueError(f"NaturalDithering: levels must be an int in [1, 62], got {self.levels!r}")

    def width(self):  # bits per coordinate: a sign bit and the level index 0..s
        return 1 + self.levels.bit_length()

    def encode(self, x, rng):
        s, b, x64 = self.levels, self.width(), x.astype(np.float64)
        norm = np.linalg.norm(x64)
        scale = np.float32(norm)
        scale = np.nextafter(scale, np.float32(np.inf)) if scale < norm else scale  # y <= 1 below
        y = np.abs(x64) / float(scale) if scale > 0 else np.zeros(x.size)
        e = np.frexp(y)[1]                                 # 2^(e-1) <= y < 2^e (exact, unlike log2)
        k = np.where(y > 0, np.clip(e - 1 + s, 0, s), 0)   # level below y: 0, or 2^(k-s)
        lo = np.where(k > 0, 2.0 ** (k - s), 0.0)
        up = rng.random(x.size) * np.where(k > 0, lo, 2.0 ** (1 - s)) < y - lo  # P = (y - lo)/(hi - lo)
        code = (k + up) | (np.signbit(x).astype(np.int64) << (b - 1))
        bits = ((code[:, None] >> np.arange(b)) & 1).astype(np.uint8)
        return scale.tobytes() + np.packbits(bits, axis=None, bitorder="little").tobytes()

    def decode(self, data, d):
        s, b = self.levels, self.width()
        if len(data) != 4 + (d * b + 7) // 8:
            raise ValueError(f"NaturalDithering: {len(data)} bytes, expected {4 + (d * b + 7) // 8}")
        scale = float(np.frombuffer(data, np.float32, count=1)[0])
        bits = np.unpackbits(np.frombuffer(data, np.uint8, offset=4), count=d * b, bitorder="little")
        code = bits.reshape(d, b).astype(np.int64) @ (1 << np.arange(b))
        k, neg = code & ((1 << (b - 1)) - 1), code >> (b - 1)
        if not (np.isfinite(scale) and scale >= 0) or k.max(initial=0) > s:
            raise ValueError("NaturalDithering: malformed payload")
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
    trials, rounds = (200, 60) if args.small else (2000, 600)

    nd = NaturalDithering(levels=7)
    report = pq.testing.check_compressor(nd, d=64, trials=trials, key=0)  # raises AssertionError on a violation
    measured = report[report.check == "omega bound"].set_index("vector")["measured"].round(4).to_dict()
    print(f"check_compressor({nd!r}, d=64, trials={trials}): {report.passed.sum()}/{len(report)} checks passed; "
          f"declared omega {nd.properties(64).omega:.4f}, measured E||C(x)-x||^2/||x||^2: {measured}")

    found = args.dataset in pq.data.BUNDLED or pq.data.find_libsvm(args.dataset) is not None
    dataset = args.dataset if found else "breast_cancer"
    n_features = {"a9a": 123, "a9a.t": 123, "a8a": 123, "w8a": 300}.get(dataset)  # pads a LIBSVM split
    prob = pq.ProblemSpec("logistic", dataset, l2=1e-2, n_features=n_features).build()
    L, d, k = prob.smoothness(), prob.dim, max(1, prob.dim // 10)
    f_star, _ = pq.experiment.reference_optimum(prob)
    base = {"NaturalDithering(7)": nd, "QSGD(levels=7)": pq.QSGD(levels=7), "Natural": pq.Natural()}
    runs = {("EF21", n): pq.methods.EF21(c) for n, c in {**base, f"TopK(k={k})": pq.TopK(k=k)}.items()}
    runs.update({("DIANA", n): pq.methods.DIANA(c) for n, c in base.items()})
    runs[("both", "uncompressed GD")] = pq.methods.DCGD(pq.Identity())
    hists = {key: pq.simulate(prob, m, n_workers=10, rounds=rounds, lr=1 / L, key=0, log_every=max(1, rounds // 50))
             for key, m in runs.items()}
    print(f"\n{dataset}: {prob!r}, f* = {f_star:.6f}, {rounds} rounds, 10 workers, lr = 1/L; omega(d={d}): "
          + ", ".join(f"{n} {c.properties(d).omega:.3f}" for n, c in base.items()))
    print(f"{'run':30} {'f - f*':>10} {'uplink bits':>12} {'bits/coord/upload':>18}")
    for (family, name), h in hists.items():
        print(f"{family + ' + ' + name:30} {h.loss[-1] - f_star:10.3e} {int(h.bits_up[-1]):12d} "
              f"{h.bits_up[-1] / (d * h.uploads[-1]):18.2f}")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, family in zip(axes, ("EF21", "DIANA")):
        curves = {name: h for (fam, name), h in hists.items() if fam in (family, "both")}
        pq.plot.convergence(curves, x="bits_up", y="suboptimality", f_star=f_star, ax=ax,
                            title=f"{family}: logistic regression on {dataset}")
    fig.tight_layout()
    pq.plot.savefig(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

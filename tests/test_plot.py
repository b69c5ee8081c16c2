"""pyqsgd.plot: every plot accepts its documented inputs, returns Axes/Figure and saves files."""
import doctest

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pyqsgd as pq  # noqa: E402
from pyqsgd import experiment  # noqa: E402


@pytest.fixture(scope="module")
def prob():
    return pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2).build()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def run(prob, method, key=0, rounds=20):
    return pq.simulate(prob, method, n_workers=4, rounds=rounds, lr=1.0 / prob.smoothness(), key=key, log_every=5)


def test_plot_is_lazy_and_doctests_pass():
    import subprocess
    import sys

    code = "import sys, pyqsgd; print('matplotlib' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True, cwd="/").strip() == "False"
    result = doctest.testmod(pq.plot, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_convergence_from_histories(prob, tmp_path):
    h1 = run(prob, pq.methods.EF21(pq.TopK(k=3)))
    ax = pq.plot.convergence(h1, x="rounds", save=tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    seeds = [run(prob, pq.methods.DCGD(pq.RandK(k=3)), key=k) for k in range(3)]
    ax = pq.plot.convergence({"EF21": h1, "DCGD+RandK": seeds}, x="bits_up", band="minmax")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["EF21", "DCGD+RandK"]
    assert len(ax.collections) == 1  # one band: only DCGD has several seeds
    assert ax.get_xscale() == "log"
    line = ax.get_lines()[1]
    mean = np.mean([h.loss for h in seeds], axis=0)
    np.testing.assert_allclose(line.get_ydata(), mean[1:])  # round 0 (0 bits) is not on a log axis
    np.testing.assert_allclose(line.get_xdata(), np.mean([h.bits_up for h in seeds], axis=0)[1:])
    band = ax.collections[0].get_paths()[0].vertices[:, 0]
    assert band.min() == pytest.approx(seeds[0].bits_up[1])  # the band starts there too


def test_log_bits_axes_leave_round_zero_out(prob):
    """Round 0 has sent nothing: on a log bits/uploads axis it is left out, not drawn at 1 (or at
    the axis edge) as a long flat line; a linear axis keeps it."""
    h = run(prob, pq.methods.EF21(pq.TopK(k=3)))
    df = h.to_frame()
    assert df["round"].iloc[0] == 0 and df["bits_up"].iloc[0] == 0
    for x in ("bits_up", "bits", "uploads"):
        ax = pq.plot.convergence(h, x=x)
        xs = ax.get_lines()[0].get_xdata()
        assert ax.get_xscale() == "log"
        assert np.all(xs >= 1) and np.all(xs > 0)
        np.testing.assert_array_equal(xs, df[x].to_numpy(float)[1:])
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), h.loss[1:])
        assert ax.get_xlim()[0] > 0.5 * df[x].iloc[1]  # the view starts near the first real point
        plt.close("all")
    ax = pq.plot.convergence(h, x="bits_up", logx=False)
    assert ax.get_lines()[0].get_xdata()[0] == 0
    xs = pq.plot.convergence(h, x="round").get_lines()[0].get_xdata()
    np.testing.assert_array_equal(xs, df["round"])


def test_convergence_suboptimality_and_grad_norm(prob):
    f_star, _ = experiment.reference_optimum(prob)
    h = run(prob, pq.methods.EF21(pq.TopK(k=3)))
    ax = pq.plot.convergence([h], y="suboptimality", f_star=f_star, x="uploads")
    assert np.all(ax.get_lines()[0].get_ydata() > 0)
    pq.plot.convergence(h, y="grad_norm_sq")
    with pytest.raises(ValueError, match="f_star"):
        pq.plot.convergence(h, y="suboptimality")
    with pytest.raises(ValueError, match="no column 'bogus'"):
        pq.plot.convergence(h, x="bogus")
    with pytest.raises(TypeError):
        pq.plot.convergence(42)


def test_convergence_from_a_sweep_frame(tmp_path):
    spec = pq.Spec(pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2), pq.methods.EF21(pq.TopK(k=3)),
                   n_workers=4, rounds=10, lr_factor=1.0, log_every=5)
    df = pq.sweep(spec, grid={"method__compressor__k": [2, 4], "lr_factor": [0.5, 1.0]}, seeds=[0, 1], progress=False)
    ax = pq.plot.convergence(df, x="bits_up", save=tmp_path / "sweep.pdf")
    assert len(ax.get_lines()) == 4 and len(ax.collections) == 4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["lr_factor=0.5, k=2", "lr_factor=0.5, k=4", "lr_factor=1.0, k=2", "lr_factor=1.0, k=4"]
    assert all(np.all(line.get_xdata() > 1) for line in ax.get_lines())
    ax = pq.plot.convergence(df, hue="lr_factor", band=None)
    assert len(ax.get_lines()) == 2 and not ax.collections
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lr_factor=0.5", "lr_factor=1.0"]
    ax = pq.plot.convergence(df, hue="method__compressor__k", band=None)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["k=2", "k=4"]
    assert (tmp_path / "sweep.pdf").read_bytes()[:4] == b"%PDF"


def test_legend_names_stay_unambiguous():
    """Two nested names with the same last component keep as many components as they need."""
    import pandas as pd

    from pyqsgd.plot import short_names

    assert short_names(["method__compressor__k", "lr_factor", "seed"]) == ["k", "lr_factor", "seed"]
    assert short_names(["method__compressor__k", "method__downlink__k"]) == ["compressor__k", "downlink__k"]
    assert short_names(["a__x__k", "b__x__k", "k"]) == ["a__x__k", "b__x__k", "k"]
    rows = [{"round": r, "loss": 1.0 / (r + 1), "bits_up": 100 * r, "method__compressor__k": k,
             "method__downlink__k": j, "seed": 0, "run_id": f"{k}-{j}"}
            for k in (1, 3) for j in (2, 5) for r in range(3)]
    ax = pq.plot.convergence(pd.DataFrame(rows), x="bits_up")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["compressor__k=1, downlink__k=2", "compressor__k=1, downlink__k=5",
                      "compressor__k=3, downlink__k=2", "compressor__k=3, downlink__k=5"]
    assert all(np.all(line.get_xdata() == [100, 200]) for line in ax.get_lines())


def test_compressor_error_from_table_and_measurements(tmp_path):
    x = np.random.default_rng(1).laplace(size=256)
    table = experiment.measure_table({"QSGD": [pq.QSGD(levels=s) for s in (1, 3, 7)],
                                      "TNQ": [pq.TruncatedQuantizer(bits=b) for b in (1, 2, 3)]}, x, trials=20)
    ax = pq.plot.compressor_error(table, save=tmp_path / "err.png")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["QSGD", "TNQ"]
    assert (tmp_path / "err.png").is_file()
    ms = {"RandK": [pq.measure(pq.RandK(k=k), x, trials=20) for k in (16, 64)]}
    ax = pq.plot.compressor_error(ms, theory=False)
    assert ax.get_xlabel() == "bits per message"


def test_partition_plot(tmp_path):
    labels = np.repeat(np.arange(3), 40)
    parts = pq.data.partition(labels, 5, scheme="dirichlet", alpha=0.3, key=0)
    fig = pq.plot.partition(parts, labels, save=tmp_path / "parts.png")
    assert len(fig.axes) == 2 and (tmp_path / "parts.png").is_file()
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [len(p) for p in parts]
    fig = pq.plot.partition(pq.data.summarize_partition(parts))
    assert len(fig.axes) == 1


def test_dagc_assignment_plot(tmp_path):
    vol = np.array([30, 400, 90, 1200, 60])
    fig = pq.plot.dagc_assignment(vol, ratio=0.05, threshold=0.01, d=500, save=tmp_path / "dagc.png")
    assert len(fig.axes) == 2 and (tmp_path / "dagc.png").stat().st_size > 0
    order = np.argsort(vol)
    ratio_line, sent, uniform = fig.axes[0].get_lines()
    np.testing.assert_array_equal(ratio_line.get_xdata(), vol[order])
    np.testing.assert_allclose(ratio_line.get_ydata(), pq.dagc.assign_ratios(vol, 0.05)[order])
    k = pq.dagc.topk_counts(pq.dagc.assign_ratios(vol, 0.05), 500)
    np.testing.assert_allclose(sent.get_ydata(), k[order] / 500)
    np.testing.assert_allclose(uniform.get_ydata(), 0.05)
    lam = fig.axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(lam, pq.dagc.assign_thresholds(vol, 0.01)[order])
    assert np.all(np.diff(lam) < 0)  # more data, lower threshold
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
    fig = pq.plot.dagc_assignment(vol, threshold=0.01)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "threshold λᵢ"
    assert len(pq.plot.dagc_assignment(vol, ratio=0.05).axes[0].get_lines()) == 2  # no d: no sent sizes
    with pytest.raises(ValueError, match="ratio="):
        pq.plot.dagc_assignment(vol)
    with pytest.raises(ValueError, match="> 0"):
        pq.plot.dagc_assignment([10, 0], ratio=0.1)


def test_vote_weights_and_quantizer(prob):
    batches = [32, 4, 4, 4]
    h = pq.simulate(prob, pq.methods.SignSGDFV(T_in=5), n_workers=4, rounds=20, lr=1e-3, batch_size=batches)
    ax = pq.plot.vote_weights(h, color_by=batches)
    assert len(ax.get_lines()) == 4
    with pytest.raises(ValueError, match="vote weights"):
        pq.plot.vote_weights(run(prob, pq.methods.EFSignSGD()))
    g = np.random.default_rng(0).laplace(size=1000)
    levels = pq.tnq.laplace_levels(2, np.mean(np.abs(g)))
    ax = pq.plot.quantizer(g, levels=levels, threshold=levels[-1])
    assert len(ax.get_lines()) == 2 + len(levels)


def test_dataset_columns_never_become_the_legend():
    import pandas as pd

    df = pd.DataFrame({"problem__dataset": ["a", "a", "b", "b"], "dataset": ["a", "a", "b", "b"],
                       "dataset_hash": ["h1", "h1", "h2", "h2"], "round": [0, 1, 0, 1]})
    assert pq.plot.varying_columns(df) == ["problem__dataset"]

"""Plots for studies (matplotlib, imported on first use): convergence, compressor error versus
bits, partitions, DAGC's per-worker compression, vote weights, and gradient histograms with
quantizer levels.

Every function draws on ``ax`` (or a new figure), returns the Axes (Figure for multi-panel
plots) and, with ``save="file.png"`` (or ``.pdf``), writes the figure.

>>> import pyqsgd as pq
>>> prob = pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2).build()
>>> hist = pq.simulate(prob, pq.methods.EF21(pq.TopK(k=3)), n_workers=4, rounds=20, lr=0.1)
>>> ax = pq.plot.convergence({"EF21": hist}, x="bits_up")
>>> ax.get_xlabel()
'uplink bits (all workers)'
"""
from __future__ import annotations

import numpy as np

from .problems import DATASET_COLUMNS

__all__ = ["convergence", "compressor_error", "partition", "dagc_assignment", "vote_weights", "quantizer",
           "savefig"]

_XLABELS = {"round": "round", "bits": "bits (uplink + downlink)", "bits_up": "uplink bits (all workers)",
            "bits_down": "downlink bits", "uploads": "uploads (all workers)"}
_YLABELS = {"loss": "f(x)", "grad_norm_sq": "‖∇f(x)‖²", "suboptimality": "f(x) − f*"}
_METRICS = ("round", "loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped", "bits")
_RUN_COLUMNS = ("seed", "run_id", "status", "error", "seconds")


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _axes(ax, figsize=(6.4, 4.2)):
    if ax is not None:
        return ax
    _, ax = _plt().subplots(figsize=figsize)
    return ax


def savefig(fig_or_ax, path, dpi=120):
    """Saves a figure (or the figure of an Axes) as PNG/PDF/SVG by extension."""
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _frame(data):
    """A DataFrame with a ``_curve`` label and a ``_run`` id per row, from any accepted input."""
    import pandas as pd

    from .history import History

    def from_hist(h, curve, run):
        if not isinstance(h, History):
            raise TypeError(f"plot: expected a History, got {type(h).__name__}")
        df = h.to_frame()
        df["_curve"], df["_run"] = curve, run
        return df

    if isinstance(data, History):
        return from_hist(data, "", 0), False
    if isinstance(data, (list, tuple, dict)) and not data:
        raise ValueError("plot: data is empty; give a History, a list/dict of Histories or a DataFrame")
    if isinstance(data, (list, tuple)):
        return pd.concat([from_hist(h, "", i) for i, h in enumerate(data)], ignore_index=True), False
    if isinstance(data, dict):
        frames = []
        for name, v in data.items():
            hs = v if isinstance(v, (list, tuple)) else [v]
            frames += [from_hist(h, str(name), f"{name}/{i}") for i, h in enumerate(hs)]
        return pd.concat(frames, ignore_index=True), True
    if isinstance(data, pd.DataFrame):
        return data, None
    raise TypeError(f"plot: data must be a History, a list/dict of Histories or a DataFrame, got {type(data).__name__}")


def varying_columns(df):
    """Parameter columns of a sweep frame that take more than one value (the natural legend).

    A column determined by later ones is left out (``method`` when the grid sets
    ``method__compressor__k``): grid columns come last in sweep results.
    """
    # The dataset columns record what a run used; the grid column that chose it is the label.
    skip = set(_METRICS) | set(_RUN_COLUMNS) | set(DATASET_COLUMNS) | {"_curve", "_run"}
    cols = [c for c in df.columns if c not in skip and df[c].astype(str).nunique() > 1]
    text = df[cols].astype(str)
    kept = []
    for c in reversed(cols):
        if kept and (text.groupby(kept)[c].nunique() <= 1).all():
            continue
        kept.append(c)
    return kept[::-1]


def _curves(df, hue):
    """(label, sub-frame) pairs; sub-frames hold one or more runs (seeds)."""
    if "_curve" in df.columns:
        return [(str(k), g) for k, g in df.groupby("_curve", sort=False)]
    if "status" in df.columns:
        df = df[df["status"] != "error"]
    hue = varying_columns(df) if hue is None else ([hue] if isinstance(hue, str) else list(hue))
    hue = [h for h in hue if h != "seed"]
    if not hue:
        return [("", df)]
    names = short_names(hue)
    out = []
    for key, g in df.groupby(hue, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{name}={k}" if len(hue) > 1 or h not in ("method", "problem") else str(k)
                          for h, name, k in zip(hue, names, key))
        out.append((label, g))
    return out


def short_names(columns):
    """Legend names for sweep columns: the last component of a nested grid name
    (``method__compressor__k`` -> ``k``), with more components kept where two would clash.

    >>> short_names(["lr_factor", "method__compressor__k", "method__downlink__k"])
    ['lr_factor', 'compressor__k', 'downlink__k']
    """
    parts = [str(c).split("__") for c in columns]
    depth = [1] * len(parts)
    while True:
        names = ["__".join(p[-n:]) for p, n in zip(parts, depth)]
        clash = [i for i, name in enumerate(names) if names.count(name) > 1 and depth[i] < len(parts[i])]
        if not clash:
            return names
        for i in clash:
            depth[i] += 1


def _aggregate(g, x, y, band):
    run = "_run" if "_run" in g.columns else ("run_id" if "run_id" in g.columns else None)
    if run is None or g[run].nunique() == 1:
        g = g.sort_values("round") if "round" in g.columns else g
        v = g[y].to_numpy(float)
        return g[x].to_numpy(float), v, None, None
    stats = g.groupby("round").agg(x=(x, "mean"), m=(y, "mean"), s=(y, "std"), lo=(y, "min"), hi=(y, "max"),
                                   n=(y, "count"))
    stats = stats[stats["n"] == stats["n"].max()]  # rounds every seed logged
    if band == "std":
        lo, hi = stats.m - stats.s, stats.m + stats.s
    elif band == "sem":
        half = stats.s / np.sqrt(stats.n)
        lo, hi = stats.m - half, stats.m + half
    elif band == "minmax":
        lo, hi = stats.lo, stats.hi
    else:
        lo = hi = None
    arr = (lambda s: None if s is None else s.to_numpy(float))
    return stats.x.to_numpy(float), stats.m.to_numpy(float), arr(lo), arr(hi)


def convergence(data, x="round", y="loss", *, hue=None, f_star=None, band="std", logx=None, logy=True, ax=None,
                save=None, title=None, **line_kw):
    """Loss (or gradient norm, or suboptimality) versus rounds, bits or uploads.

    Parameters
    ----------
    data : History, list of History (seeds), dict {label: History or list}, or DataFrame
        A DataFrame from :func:`pyqsgd.sweep` (or ``History.to_frame()``): one curve per value of
        ``hue``, averaged over seeds (runs) at each round.
    x : {"round", "rounds", "bits", "bits_up", "bits_down", "uploads"}
    y : {"loss", "grad_norm_sq", "suboptimality"} or any column
        ``"suboptimality"`` plots loss − ``f_star`` (required).
    hue : str or list of str, optional
        Columns that distinguish curves in a DataFrame (default: every parameter that varies).
    band : {"std", "sem", "minmax", None}
        Shaded band over seeds around the mean.
    logx, logy : bool
        Log scales (``logx`` defaults to True for bit/upload axes). On a log x axis points with
        x <= 0 are not drawn: round 0 (no bits sent yet) is left out rather than shown at an
        arbitrary small x.

    Notes
    -----
    Legends name each curve by the parameters that vary, with nested grid names shortened to
    their last component (``k=3`` for ``method__compressor__k``; more components where two
    names would clash, see :func:`short_names`).
    """
    x = "round" if x == "rounds" else x
    df, _ = _frame(data)
    if y == "suboptimality":
        if f_star is None:
            raise ValueError("plot.convergence: y='suboptimality' needs f_star (see pyqsgd.experiment.reference_optimum)")
        df = df.assign(suboptimality=np.maximum(df["loss"].to_numpy(float) - f_star, 1e-16))
    for col in (x, y):
        if col not in df.columns:
            raise ValueError(f"plot.convergence: no column {col!r}; available: {', '.join(map(str, df.columns))}")
    ax = _axes(ax)
    logx = (x != "round") if logx is None else logx
    for label, g in _curves(df, hue):
        xs, m, lo, hi = _aggregate(g, x, y, band)
        if logx:  # a log axis cannot show x <= 0: round 0 (no bits, no uploads yet) is left out
            keep = xs > 0
            xs, m = xs[keep], m[keep]
            lo, hi = (None, None) if lo is None else (lo[keep], hi[keep])
        (line,) = ax.plot(xs, m, label=label or None, **line_kw)
        if lo is not None:
            if logy:
                lo = np.maximum(lo, np.nanmin(m[m > 0]) * 1e-3 if np.any(m > 0) else 1e-16)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(_XLABELS.get(x, x))
    ax.set_ylabel(_YLABELS.get(y, y))
    if title:
        ax.set_title(title)
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(fontsize=8)
    if save:
        savefig(ax, save)
    return ax


def compressor_error(data, x="bits_per_coord", y="omega", *, hue="family", theory=True, ax=None, save=None,
                     logx=False, logy=True, title=None):
    """Measured compression error versus bits, one line per family, with confidence intervals.

    Parameters
    ----------
    data : DataFrame or dict
        A table from :func:`pyqsgd.experiment.measure_table` (columns family, bits, bits_per_coord,
        omega, omega_lo, omega_hi, omega_theory, ...), any DataFrame with ``x``, ``y`` and ``hue``
        columns, or ``{family: [Measurement, ...]}`` from :func:`pyqsgd.measure` (x = bits).
    theory : bool
        Also draw the declared constant (``<y>_theory`` column) as a dashed line where defined.
    """
    import pandas as pd

    from .measure import Measurement

    if isinstance(data, dict):
        rows = []
        for fam, ms in data.items():
            for m in (ms if isinstance(ms, (list, tuple)) else [ms]):
                if not isinstance(m, Measurement):
                    raise TypeError(f"plot.compressor_error: expected Measurement objects, got {type(m).__name__}")
                rows.append({"family": fam, "bits": m.bits_mean, "omega": m.omega, "omega_lo": m.omega_ci[0],
                             "omega_hi": m.omega_ci[1], "delta": m.delta})
        data = pd.DataFrame(rows)
        x = "bits" if x == "bits_per_coord" else x
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"plot.compressor_error: data must be a DataFrame or a dict, got {type(data).__name__}")
    for col in (x, y):
        if col not in data.columns:
            raise ValueError(f"plot.compressor_error: no column {col!r}; available: {', '.join(data.columns)}")
    ax = _axes(ax)
    groups = data.groupby(hue, sort=False) if hue in data.columns else [("", data)]
    for fam, g in groups:
        g = g.sort_values(x)
        xs, ys = g[x].to_numpy(float), g[y].to_numpy(float)
        err = None
        if f"{y}_lo" in g.columns:
            err = np.vstack([ys - g[f"{y}_lo"].to_numpy(float), g[f"{y}_hi"].to_numpy(float) - ys])
            err = np.maximum(err, 0)
        line = ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=2, label=str(fam))
        col = f"{y}_theory"
        if theory and col in g.columns:
            t = pd.to_numeric(g[col], errors="coerce").to_numpy(float)
            ok = np.isfinite(t)
            if ok.any():
                ax.plot(xs[ok], t[ok], ls="--", color=line.lines[0].get_color(), alpha=0.7)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    labels = {"bits_per_coord": "bits per coordinate", "bits": "bits per message",
              "omega": "E‖C(x) − x‖² / ‖x‖²", "delta": "1 − E‖C(x) − x‖² / ‖x‖²"}
    ax.set_xlabel(labels.get(x, x))
    ax.set_ylabel(labels.get(y, y) + (" (dashed: theory)" if theory else ""))
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    if save:
        savefig(ax, save)
    return ax


def partition(parts, labels=None, *, save=None, title=None, figsize=(9, 3.4)):
    """Per-worker data volume and label histogram (stacked bars) of a partition.

    ``parts`` is a list of index arrays (with optional ``labels``) or a table from
    :func:`pyqsgd.data.summarize_partition`. Returns the Figure (two Axes, or one without labels).
    """
    import pandas as pd

    from .data import summarize_partition

    summary = parts if isinstance(parts, pd.DataFrame) else summarize_partition(parts, labels)
    classes = [c for c in summary.columns if str(c).startswith("class_")]
    fig, axes = _plt().subplots(1, 2 if classes else 1, figsize=figsize if classes else (figsize[0] / 2, figsize[1]))
    axes = np.atleast_1d(axes)
    workers = np.arange(len(summary))
    axes[0].bar(workers, summary["size"].to_numpy(), color="0.45")
    axes[0].set_xlabel("worker")
    axes[0].set_ylabel("samples")
    axes[0].set_title("data volume")
    if classes:
        counts = summary[classes].to_numpy(float)
        frac = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        bottom = np.zeros(len(summary))
        for j, c in enumerate(classes):
            axes[1].bar(workers, frac[:, j], bottom=bottom, label=str(c)[6:])
            bottom += frac[:, j]
        axes[1].set_xlabel("worker")
        axes[1].set_ylabel("label fraction")
        axes[1].set_title("label mix")
        if len(classes) <= 12:
            axes[1].legend(fontsize=7, title="class", bbox_to_anchor=(1.01, 1), loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if save:
        savefig(fig, save)
    return fig


def dagc_assignment(volumes, *, ratio=None, threshold=None, d=None, save=None, title=None, figsize=(9, 3.4)):
    """DAGC's per-worker compression versus data volume (ALGORITHMS.md §4.5), log-log axes.

    One panel per budget given, worker volumes on x:

    * ``ratio`` (DAGC-R): the TopK ratios cr_i = :func:`pyqsgd.dagc.assign_ratios` (average
      ``ratio``); with ``d`` also the integer sizes k_i / d that :class:`pyqsgd.methods.DAGC`
      sends (:func:`pyqsgd.dagc.topk_counts`).
    * ``threshold`` (DAGC-A): the hard thresholds lambda_i = :func:`pyqsgd.dagc.assign_thresholds`
      (harmonic mean ``threshold``), proportional to n_i^(-2/3).

    The uniform budget is a dashed line. ``volumes``: one data volume per worker (e.g. shard
    sizes), any order. Returns the Figure.

    >>> import pyqsgd as pq
    >>> fig = pq.plot.dagc_assignment([27, 8, 1], ratio=0.17, threshold=0.5)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['TopK ratio', 'threshold λᵢ']
    """
    from .dagc import _volumes, assign_ratios, assign_thresholds, topk_counts

    vol = _volumes(volumes, "plot.dagc_assignment")
    if ratio is None and threshold is None:
        raise ValueError("plot.dagc_assignment: give ratio= (DAGC-R), threshold= (DAGC-A), or both")
    panels = (ratio is not None) + (threshold is not None)
    fig, axes = _plt().subplots(1, panels, figsize=figsize if panels == 2 else (figsize[0] / 2, figsize[1]))
    axes = list(np.atleast_1d(axes))
    order = np.argsort(vol)
    xs = vol[order]
    if ratio is not None:
        ax = axes.pop(0)
        cr = assign_ratios(vol, ratio)
        ax.plot(xs, cr[order], "o-", color="C1", label="DAGC-R ratio crᵢ")
        if d is not None:
            k = topk_counts(cr, int(d))
            ax.plot(xs, k[order] / int(d), "x", color="k", label=f"sent kᵢ / d (d = {int(d)})")
        ax.axhline(float(ratio), color="0.4", ls="--", lw=1, label=f"uniform TopK c̄ = {float(ratio):g}")
        ax.set_ylabel("TopK ratio")
        ax.set_title("DAGC-R: more data, milder compression")
    if threshold is not None:
        ax = axes.pop(0)
        lam = assign_thresholds(vol, threshold)
        ax.plot(xs, lam[order], "o-", color="C2", label=r"DAGC-A threshold λᵢ ∝ $n_i^{-2/3}$")
        ax.axhline(float(threshold), color="0.4", ls="--", lw=1, label=f"uniform λ = {float(threshold):.3g}")
        ax.set_ylabel("threshold λᵢ")
        ax.set_title("DAGC-A: more data, lower threshold")
    from matplotlib import ticker

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
            scale("log")
            axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))  # 1-2-5 labels, no overlap
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("worker data volume nᵢ")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if save:
        savefig(fig, save)
    return fig


def vote_weights(hist, *, color_by=None, ax=None, save=None, title=None):
    """Learned federated-vote weights per worker versus round (``hist.vote_weights``).

    ``color_by``: one number per worker (e.g. batch sizes) mapped to colour, with a colour bar.
    """
    from .history import History

    if not isinstance(hist, History):
        raise TypeError(f"plot.vote_weights: hist must be a History (of a SignSGDFV run), got {type(hist).__name__}")
    w = getattr(hist, "vote_weights", None)
    if w is None:
        raise ValueError("plot.vote_weights: this History has no vote weights (use pyqsgd.methods.SignSGDFV)")
    w = np.asarray(w, dtype=float)
    ax = _axes(ax)
    plt = _plt()
    if color_by is not None:
        c = np.asarray(color_by, dtype=float)
        norm = plt.Normalize(c.min(), c.max() if c.max() > c.min() else c.min() + 1)
        cmap = plt.get_cmap("viridis")
        for i in range(w.shape[1]):
            ax.plot(hist.round, w[:, i], color=cmap(norm(c[i])), lw=1)
        ax.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="batch size")
    else:
        ax.plot(hist.round, w, lw=1)
    ax.set_xlabel("round")
    ax.set_ylabel("vote weight wᵢ")
    if title:
        ax.set_title(title)
    if save:
        savefig(ax, save)
    return ax


def quantizer(g, levels=None, threshold=None, *, bins=120, ax=None, save=None, title=None, logy=True):
    """Histogram of gradient coordinates with a truncation threshold (±) and quantizer levels."""
    g = np.asarray(g)
    if g.dtype == bool or g.dtype.kind not in "fiu":
        raise TypeError(f"plot.quantizer: g must be a numeric array of gradient coordinates, got dtype {g.dtype}")
    g = g.astype(float).ravel()
    if g.size == 0 or not np.isfinite(g).all():
        raise ValueError(f"plot.quantizer: g must be non-empty and finite, got {g.size} values")
    ax = _axes(ax)
    ax.hist(g, bins=bins, color="0.6", density=True)
    if threshold is not None:
        for s in (-1, 1):
            ax.axvline(s * threshold, color="C3", lw=1.5, label="threshold ±α" if s == 1 else None)
    if levels is not None:
        for i, lv in enumerate(np.asarray(levels, dtype=float)):
            ax.axvline(lv, color="C0", lw=0.8, ls="--", label="levels" if i == 0 else None)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("gradient coordinate")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    if threshold is not None or levels is not None:
        ax.legend(fontsize=8)
    if save:
        savefig(ax, save)
    return ax

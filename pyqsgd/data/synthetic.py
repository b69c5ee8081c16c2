"""Synthetic regression / classification data with a controllable degree of worker heterogeneity."""
from __future__ import annotations

import numpy as np

from .._validate import check_float, check_int
from .partitions import _repair as repair_sizes
from ._common import TAG_SYNTHETIC, log_volumes, rng_for

__all__ = ["synthetic_logistic", "synthetic_least_squares"]

# Stream numbers under TAG_SYNTHETIC (each addressed per worker, so worker i's data depends only
# on key, i and its own sample count).
_GLOBAL, _WORKER_PARAMS, _WORKER_ROWS, _LOGISTIC_LABELS, _LS_NOISE = range(5)

_HETEROGENEITY_DOC = """
    The generative model (in the spirit of the "synthetic(α, β)" data of Li et al., FedProx,
    MLSys 2020, with one knob ``h = heterogeneity`` for both kinds of shift):

    * feature scales ``s_j = (j + 1) ** (-spectrum_decay / 2)`` (``spectrum_decay=1.2`` gives
      FedProx's covariance ``diag(j ** -1.2)``; 0 gives isotropic features);
    * a shared model ``w*`` with ``Σ_j s_j² w*_j² = signal²``, i.e. the logit ``x·w*`` has
      standard deviation ``signal`` on unshifted features;
    * worker ``i``'s model ``w_i = w* + model_shift · signal · u_i`` (concept shift) and its
      feature mean ``μ_i = feature_shift · s ⊙ v_i`` (covariate shift, in units of each
      feature's standard deviation), where ``u_i`` is a random direction with
      ``Σ_j s_j² u_ij² = 1`` and ``v_i ~ N(0, I)``;
    * rows ``x = μ_i + s ⊙ z``, ``z ~ N(0, I)``.

    ``h = 0`` makes every worker sample the same distribution (iid shards); ``h = 1`` makes
    each worker's model differ from ``w*`` as much as ``w*`` itself and shifts its features
    by about one standard deviation, which also skews its label balance. ``model_shift`` and
    ``feature_shift`` override ``h`` for one kind of shift each. Both generators draw the same
    ``X`` for the same arguments; only the targets differ.
"""


def synthetic_logistic(n, d, n_workers=None, heterogeneity=0.0, key=0, *, model_shift=None,
                       feature_shift=None, skew=1.0, signal=2.0, spectrum_decay=0.0):
    """Binary classification data from worker-specific logistic models.

    Labels are sampled, ``P(y = +1 | x) = 1 / (1 + exp(-x·w_i))``, so the logistic model is
    well specified on each worker.
    {model}
    Parameters
    ----------
    n, d : int
        Total number of rows and number of features.
    n_workers : int, optional
        Number of workers ``m`` (``1 <= m <= n``). ``None`` draws one population, the same
        rows as ``n_workers=1``, and returns no partition.
    heterogeneity : float >= 0
        ``h`` above: 0 is iid.
    key : int or pyqsgd.Key
        Seed; the output is a pure function of the arguments.
    model_shift, feature_shift : float >= 0, optional
        Override ``h`` for the concept shift / covariate shift.
    skew : float >= 1
        Worker volumes log-spaced from ``skew`` to 1 (worker 0 largest), as in
        ``partition(..., scheme="size_skew")``; 1 gives near-equal shards.
    signal : float >= 0
        Standard deviation of the shared logit (larger ⇒ less label noise).
    spectrum_decay : float >= 0
        Feature variances ``(j + 1) ** -spectrum_decay``; larger ⇒ worse conditioned.

    Returns
    -------
    X : np.ndarray, float32, shape (n, d)
        Rows grouped by worker: worker 0's rows first.
    y : np.ndarray, float32 in {{-1, +1}}, shape (n,)
    parts : list of np.ndarray
        Only when ``n_workers`` is given: the natural partition, ``m`` sorted int64 index
        arrays (consecutive ranges of rows).

    Examples
    --------
    >>> from pyqsgd.data import synthetic_logistic
    >>> X, y, parts = synthetic_logistic(1000, 20, n_workers=10, heterogeneity=0.5, key=0)
    >>> X.shape, X.dtype.name, [len(p) for p in parts][:3]
    ((1000, 20), 'float32', [100, 100, 100])
    """
    owner = "synthetic_logistic"
    spec = _Spec(owner, n, d, n_workers, heterogeneity, model_shift, feature_shift, skew, signal,
                 spectrum_decay)
    X, logits, parts = _design(spec, key)
    _check_finite(owner, spec, logits, "the logits x·w_i")
    y = np.empty(spec.n, dtype=np.float32)
    for i, rows in enumerate(parts):
        u = rng_for(key, TAG_SYNTHETIC, _LOGISTIC_LABELS, i).random(rows.size)
        prob = 1.0 / (1.0 + np.exp(-logits[rows]))
        y[rows] = np.where(u < prob, 1.0, -1.0)
    return (X, y) if n_workers is None else (X, y, parts)


def synthetic_least_squares(n, d, n_workers=None, heterogeneity=0.0, key=0, *, noise=0.1, model_shift=None,
                            feature_shift=None, skew=1.0, signal=2.0, spectrum_decay=0.0):
    """Regression data from worker-specific linear models: ``y = x·w_i + noise · ε``, ``ε ~ N(0, 1)``.
    {model}
    Parameters
    ----------
    n, d, n_workers, heterogeneity, key, model_shift, feature_shift, skew, signal, spectrum_decay
        As in :func:`synthetic_logistic`.
    noise : float >= 0
        Standard deviation of the additive Gaussian noise (0 ⇒ every worker's data is fit
        by its own ``w_i`` up to float32 rounding).

    Returns
    -------
    X : np.ndarray, float32, shape (n, d)
    y : np.ndarray, float32, shape (n,)
    parts : list of np.ndarray
        Only when ``n_workers`` is given, as in :func:`synthetic_logistic`.

    Examples
    --------
    >>> from pyqsgd.data import synthetic_least_squares
    >>> X, y = synthetic_least_squares(200, 5, noise=0.0, key=3)
    >>> X.shape, y.dtype.name
    ((200, 5), 'float32')
    """
    owner = "synthetic_least_squares"
    noise = check_float(owner, "noise", noise, low=0.0)
    spec = _Spec(owner, n, d, n_workers, heterogeneity, model_shift, feature_shift, skew, signal,
                 spectrum_decay)
    X, clean, parts = _design(spec, key)
    y = np.empty(spec.n, dtype=np.float32)
    for i, rows in enumerate(parts):
        y[rows] = clean[rows] + noise * rng_for(key, TAG_SYNTHETIC, _LS_NOISE, i).standard_normal(rows.size)
    _check_finite(owner, spec, y, "the targets y", extra=f", noise={noise!r}")
    return (X, y) if n_workers is None else (X, y, parts)


for _f in (synthetic_logistic, synthetic_least_squares):
    if _f.__doc__:  # None under python -OO
        _f.__doc__ = _f.__doc__.format(model=_HETEROGENEITY_DOC)


class _Spec:
    """Validated arguments shared by both generators."""

    def __init__(self, owner, n, d, n_workers, heterogeneity, model_shift, feature_shift, skew, signal, decay):
        self.owner = owner
        self.n = check_int(owner, "n", n, low=1)
        self.d = check_int(owner, "d", d, low=1)
        self.m = check_int(owner, "n_workers", n_workers, low=1, high=self.n, allow_none=True) or 1
        h = check_float(owner, "heterogeneity", heterogeneity, low=0.0)
        self.model_shift = check_float(owner, "model_shift", model_shift, low=0.0, allow_none=True)
        self.feature_shift = check_float(owner, "feature_shift", feature_shift, low=0.0, allow_none=True)
        self.model_shift = h if self.model_shift is None else self.model_shift
        self.feature_shift = h if self.feature_shift is None else self.feature_shift
        self.skew = check_float(owner, "skew", skew, low=1.0)
        self.signal = check_float(owner, "signal", signal, low=0.0)
        self.decay = check_float(owner, "spectrum_decay", decay, low=0.0)


def _check_finite(owner, spec, values, what, extra=""):
    """Huge scale parameters overflow float32 (or make inf - inf): refuse rather than return NaN/Inf."""
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{owner}: {what} overflow float32 with signal={spec.signal!r}, "
                         f"model_shift={spec.model_shift!r}, feature_shift={spec.feature_shift!r}{extra} "
                         "(heterogeneity sets the shifts); use smaller values")


def _design(spec, key):
    """Rows X (float32), noiseless per-worker scores x·w_i (float64), natural partition."""
    scales = np.arange(1, spec.d + 1, dtype=np.float64) ** (-spec.decay / 2)
    w_star = spec.signal * _unit(rng_for(key, TAG_SYNTHETIC, _GLOBAL).standard_normal(spec.d), scales)
    volumes = log_volumes(spec.n, spec.m, spec.skew)[:, None]
    repair_sizes(volumes, 1)  # like partition(..., "size_skew"): no worker is left empty
    sizes = volumes[:, 0]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts = [np.arange(bounds[i], bounds[i + 1], dtype=np.int64) for i in range(spec.m)]
    X = np.empty((spec.n, spec.d), dtype=np.float32)
    scores = np.empty(spec.n)
    for i, rows in enumerate(parts):
        params = rng_for(key, TAG_SYNTHETIC, _WORKER_PARAMS, i)
        w_i = w_star + spec.model_shift * spec.signal * _unit(params.standard_normal(spec.d), scales)
        mu_i = spec.feature_shift * scales * params.standard_normal(spec.d)
        Xi = mu_i + scales * rng_for(key, TAG_SYNTHETIC, _WORKER_ROWS, i).standard_normal((rows.size, spec.d))
        X[rows] = Xi
        scores[rows] = Xi @ w_i
    _check_finite(spec.owner, spec, X, "the features X")
    return X, scores, parts


def _unit(v, scales):
    """``v`` rescaled so that ``sum(scales² v²) = 1``."""
    norm = np.sqrt(np.sum((scales * v) ** 2))
    return v / norm if norm > 0 else v

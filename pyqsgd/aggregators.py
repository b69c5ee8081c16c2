"""Aggregators: how the server combines the workers' decoded messages, in worker order.

``Mean`` weights workers equally: the method minimises (1/m) sum f_i, which equals the
full-data objective only for equal shards. ``WeightedMean("data")`` weights by shard size
and targets the full-data objective on unequal shards. Under partial participation the
estimator is sum_{i in S} w_i v_i / p_i (unbiased).
"""
from __future__ import annotations

import numpy as np

from ._params import Params

__all__ = ["Aggregator", "Mean", "WeightedMean"]


class Aggregator(Params):
    """Base class. ``worker_weights(sizes)`` gives the normalised per-worker weights."""

    def worker_weights(self, sizes):
        raise NotImplementedError  # pragma: no cover

    def aggregate(self, vectors, participation=None):
        """Combines a list of worker vectors (rows; None for idle workers) deterministically.

        ``participation``: per-worker probabilities p_i for the unbiased 1/p_i weighting.
        """
        rows = list(vectors)
        m = len(rows)
        if m == 0:
            raise ValueError("aggregate: need at least one worker vector")
        w = self.worker_weights(np.ones(m))
        p = np.ones(m) if participation is None else np.asarray(participation, dtype=np.float64)
        if p.shape != (m,) or np.any(p <= 0) or np.any(p > 1):
            raise ValueError("aggregate: participation must have one probability in (0, 1] per worker")
        present = [r for r in rows if r is not None]
        if not present:
            raise ValueError("aggregate: every worker is idle")
        d = np.asarray(present[0]).shape
        out = np.zeros(d, dtype=np.float64)
        for i, r in enumerate(rows):
            if r is None:
                continue
            r = np.asarray(r, dtype=np.float64)
            if r.shape != d:
                raise ValueError(f"aggregate: worker {i} vector has shape {r.shape}, expected {d}")
            out += (w[i] / p[i]) * r
        return out


class Mean(Aggregator):
    """Equal weights 1/m.

    >>> import pyqsgd as pq
    >>> pq.Mean().aggregate([[1.0, 2.0], [3.0, 4.0]]).tolist()
    [2.0, 3.0]
    """

    def __init__(self):
        pass

    def worker_weights(self, sizes):
        m = len(sizes)
        return np.full(m, 1.0 / m)


class WeightedMean(Aggregator):
    """Weights w_i / sum w: an explicit array (one per worker) or ``"data"`` (shard sizes).

    >>> import pyqsgd as pq
    >>> pq.WeightedMean([1.0, 3.0]).aggregate([[4.0], [0.0]]).tolist()
    [1.0]
    """

    def __init__(self, weights="data"):
        self.weights = weights
        self._validate()

    def _validate(self):
        w = self.weights
        if isinstance(w, str):
            if w != "data":
                raise ValueError(f"WeightedMean: weights must be an array of per-worker weights or 'data', got {w!r}")
            return
        a = np.asarray(w, dtype=np.float64)
        if a.ndim != 1 or a.size == 0:
            raise ValueError("WeightedMean: weights must be a non-empty 1-D array")
        if not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
            raise ValueError("WeightedMean: weights must be finite, >= 0 and not all zero")

    def worker_weights(self, sizes):
        sizes = np.asarray(sizes, dtype=np.float64)
        a = sizes if isinstance(self.weights, str) else np.asarray(self.weights, dtype=np.float64)
        if a.shape != sizes.shape:
            raise ValueError(f"WeightedMean: {a.size} weights given for {sizes.size} workers")
        return a / a.sum()

    def __repr__(self):
        w = self.weights
        if isinstance(w, np.ndarray):
            w = w.tolist()
        return f"WeightedMean(weights={w!r})"

    def __eq__(self, other):
        return type(other) is WeightedMean and repr(self) == repr(other)

    def __hash__(self):
        return hash(repr(self))

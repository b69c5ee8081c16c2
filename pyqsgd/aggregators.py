"""Aggregators: how the server combines the workers' decoded messages, in worker order.

``Mean`` weights workers equally: the method minimises (1/m) sum f_i, which equals the
full-data objective only for equal shards. ``WeightedMean("data")`` weights by shard size
and targets the full-data objective on unequal shards. Under partial participation the
estimator is sum_{i in S} w_i v_i / p_i (unbiased).
"""
from __future__ import annotations

import inspect

import numpy as np

from ._params import Params

__all__ = ["Aggregator", "Mean", "WeightedMean"]


class Aggregator(Params):
    """Base class: how the server combines the workers' decoded vectors.

    ``worker_weights(sizes)`` gives the normalised per-worker weights w_i (equal by default);
    ``combine(vectors, weights)`` combines one round's decoded vectors. The built-ins keep the
    weighted sum ``sum_k weights[k] vectors[k]``, which runs natively.

    Write your own by overriding ``combine(self, vectors, weights)`` (optionally with
    ``workers`` and ``messages`` parameters, which are then passed too):

    * ``vectors``: float32 array (k, d), the decoded vectors of the k workers that sent this
      round, in worker order;
    * ``weights``: float64 array (k,), the coefficients the weighted sum would give them
      (w_i/p_i for a method's estimator, w_i for tracked means), so ``weights @ vectors`` is the
      built-in rule;
    * ``workers``: int64 array (k,) of their indices; ``messages``: their :class:`Message` objects
      (for rules that work on the encoded data; None when called through :meth:`aggregate`,
      which has only vectors).

    It returns the d-vector the method uses in place of the weighted sum: in DCGD, EF, EF21,
    DIANA's estimator (its shift h keeps the exact mean), DAGC, EF-SignGD and Python methods'
    ``ctx.aggregate``. The native loop calls it with the GIL held, once per round.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> class Median(pq.Aggregator):
    ...     # coordinate-wise median of the senders: a robust rule (it ignores the weights)
    ...     def combine(self, vectors, weights):
    ...         return np.median(vectors, axis=0)
    >>> Median().aggregate([[1.0, 5.0], [2.0, -1.0], [10.0, 0.0]]).tolist()
    [2.0, 0.0]
    """

    def worker_weights(self, sizes):
        m = len(sizes)
        return np.full(m, 1.0 / m)

    def combine(self, vectors, weights):
        """The weighted sum ``sum_k weights[k] vectors[k]`` in worker order (float64)."""
        vectors = np.asarray(vectors)
        out = np.zeros(vectors.shape[1:], dtype=np.float64)
        for w, v in zip(np.asarray(weights, dtype=np.float64), vectors):
            out += w * v.astype(np.float64)
        return out

    def _is_python(self):
        """True when combine() is user code (the native methods then call back into it)."""
        return type(self).combine is not Aggregator.combine

    def _native_combiner(self):
        from . import _core

        params = inspect.signature(self.combine).parameters
        return _core.PythonCombiner(self, repr(self), "messages" in params)

    def _pyqsgd_combine(self, vectors, weights, workers, messages):
        params = inspect.signature(self.combine).parameters
        extra = {}
        if "workers" in params:
            extra["workers"] = workers
        if "messages" in params:
            extra["messages"] = messages
        out = self.combine(vectors, weights, **extra)
        where = f"{type(self).__name__}.combine"
        d = vectors.shape[1]
        if isinstance(out, np.ndarray):
            out = np.asarray(out)  # a subclass (masked array) as the plain data it holds
        if not isinstance(out, np.ndarray) or out.dtype.kind != "f":
            raise TypeError(f"{where} must return a float NumPy array of length d={d}, got "
                            f"{type(out).__name__}{' of dtype ' + str(out.dtype) if isinstance(out, np.ndarray) else ''}")
        if out.shape != (d,):
            raise ValueError(f"{where} must return shape ({d},), got {out.shape}")
        if not np.isfinite(out).all():
            raise ValueError(f"{where} returned NaN or Inf")
        return np.ascontiguousarray(out, dtype=np.float64)

    def aggregate(self, vectors, participation=None):
        """Combines a list of worker vectors (rows; None for idle workers) deterministically.

        ``participation``: per-worker probabilities p_i for the unbiased 1/p_i weighting.
        """
        if isinstance(vectors, (str, bytes)) or not hasattr(vectors, "__iter__"):
            raise TypeError(f"aggregate: vectors must be a list of worker vectors (rows; None for idle workers), "
                            f"got {type(vectors).__name__}")
        rows = [None if r is None else _row(i, r) for i, r in enumerate(vectors)]
        m = len(rows)
        if m == 0:
            raise ValueError("aggregate: vectors must hold at least one worker vector")
        w = self.worker_weights(np.ones(m))
        p = np.ones(m) if participation is None else _real_array("aggregate", "participation", participation)
        if p.shape != (m,) or not np.all(np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1):
            raise ValueError(f"aggregate: participation must have one probability in (0, 1] per worker ({m}), "
                             f"got {p.tolist()}")
        present = [r for r in rows if r is not None]
        if not present:
            raise ValueError("aggregate: vectors: every worker is idle (all None)")
        d = present[0].shape
        senders, coef = [], []
        for i, r in enumerate(rows):
            if r is None:
                continue
            if r.shape != d:
                raise ValueError(f"aggregate: vectors[{i}] has shape {r.shape}, expected {d}")
            senders.append(i)
            coef.append(w[i] / p[i])
        if not self._is_python():
            return self.combine(np.stack([np.asarray(rows[i], dtype=np.float64) for i in senders]), coef)
        vectors = np.stack([np.asarray(rows[i], dtype=np.float32) for i in senders])
        return self._pyqsgd_combine(vectors, np.asarray(coef), np.asarray(senders, dtype=np.int64), None)


def _real_array(owner, name, value):
    """``value`` as a float64 array; TypeError naming ``name`` unless it holds real numbers."""
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - ragged nesting and other unconvertible input
        raise TypeError(f"{owner}: {name} must be an array of real numbers, got {type(value).__name__}") from e
    if a.dtype == bool or a.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: {name} must hold real numbers (float or int), got dtype {a.dtype}")
    return a.astype(np.float64)


def _row(i, r):
    """Worker i's vector for :meth:`Aggregator.aggregate`: 1-D, non-empty, real and finite."""
    r = _real_array("aggregate", f"vectors[{i}]", r)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"aggregate: vectors[{i}] must be a non-empty 1-D vector, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"aggregate: vectors[{i}] contains NaN or Inf")
    return r


class Mean(Aggregator):
    """Equal weights 1/m.

    >>> import pyqsgd as pq
    >>> pq.Mean().aggregate([[1.0, 2.0], [3.0, 4.0]]).tolist()
    [2.0, 3.0]
    """

    def __init__(self):
        pass


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
        a = _real_array("WeightedMean", "weights", w)
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

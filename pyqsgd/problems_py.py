"""Problems written in NumPy, for the Python path of :func:`pyqsgd.simulate`.

Any object with ``loss(x)``, ``grad(x, indices)``, ``n_samples`` and ``dim`` works there; this
module ships a small neural network so non-convex experiments need no extra dependency.
"""
from __future__ import annotations

import numpy as np

from ._validate import check_float, check_int

__all__ = ["MLPProblem"]

_ACTIVATIONS = ("tanh", "relu")


class MLPProblem:
    """One-hidden-layer perceptron with softmax cross-entropy, on a flat parameter vector.

    f(x) = (1/n) sum_i CE(softmax(W2 act(W1 a_i + b1) + b2), y_i) + (l2/2)||x||^2, with
    x = concat(W1.ravel(), b1, W2.ravel(), b2), W1 of shape (hidden, d_in), W2 of shape
    (classes, hidden). A worker's local objective is the same formula over its shard.
    Computed in float64 with NumPy; ``grad(x, indices)`` is the exact gradient of the mean loss
    over ``indices`` (plus the l2 term). Non-convex: start from :meth:`init`, not from zeros
    (zeros is a saddle point where the hidden units never separate).

    Its products are small, so a multi-threaded BLAS mostly adds synchronisation: set
    ``OPENBLAS_NUM_THREADS=1`` (or use ``threadpoolctl.threadpool_limits(1)``) before running it;
    on 2 shared cores that made the digits runs about 7x faster.

    Parameters
    ----------
    X : array_like, shape (n, d_in)
    y : array_like of int, shape (n,)
        Class labels 0 .. classes-1.
    hidden : int, default 32
    activation : {"tanh", "relu"}, default "tanh"
    l2 : float >= 0, default 0

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> X, y = pq.data.load_bundled("digits")
    >>> prob = pq.problems_py.MLPProblem(X, y, hidden=16)
    >>> x0 = prob.init(key=0)
    >>> x0.shape == (prob.dim,), round(prob.accuracy(x0), 1) < 0.5
    (True, True)
    >>> parts = pq.data.partition(len(y), 4, key=0)
    >>> hist = pq.simulate(prob, pq.methods.EF(pq.TopK(ratio=0.1)), n_workers=4, rounds=5,
    ...                    lr=0.5, partition=parts, x0=x0, key=0)
    >>> bool(hist.loss[-1] < hist.loss[0])
    True
    """

    def __init__(self, X, y, *, hidden=32, activation="tanh", l2=0.0):
        X = np.asarray(X)
        if X.dtype == bool or X.dtype.kind not in "fiu":
            raise TypeError(f"MLPProblem: X must be a real numeric array, got dtype {X.dtype}")
        X = X.astype(np.float64)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"MLPProblem: X must be a non-empty 2-D array, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("MLPProblem: X contains NaN or Inf")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"MLPProblem: y must be 1-D with one label per row of X ({X.shape[0]}), "
                             f"got shape {y.shape}")
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
            raise TypeError(f"MLPProblem: y must hold integer class labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
        if y.min() < 0:
            raise ValueError("MLPProblem: labels must be >= 0")
        if not isinstance(activation, str) or activation not in _ACTIVATIONS:
            raise ValueError(f"MLPProblem: activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.hidden = check_int("MLPProblem", "hidden", hidden, low=1)
        self.l2 = check_float("MLPProblem", "l2", l2, low=0.0)
        self.activation = activation
        self.X, self.y = X, y
        self.classes = int(y.max()) + 1
        self.d_in = X.shape[1]
        h, c, k = self.hidden, self.classes, self.d_in
        self._shapes = [(h, k), (h,), (c, h), (c,)]
        self._sizes = [int(np.prod(s)) for s in self._shapes]

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def data_hash(self):
        """Content hash of X (float64, as used) and y, computed once; recorded by
        :func:`pyqsgd.simulate` as ``dataset_hash`` (see :func:`pyqsgd.data.content_hash`)."""
        if getattr(self, "_data_hash", None) is None:
            from .data.fingerprint import hash_arrays

            self._data_hash = hash_arrays("dense", self.X.shape, (self.X,), self.y)
        return self._data_hash

    @property
    def dim(self):
        return sum(self._sizes)

    def __repr__(self):
        return (f"MLPProblem(n={self.n_samples}, d_in={self.d_in}, hidden={self.hidden}, "
                f"classes={self.classes}, activation={self.activation!r}, l2={self.l2!r})")

    def init(self, key=0):
        """Glorot-uniform weights, zero biases, drawn from ``np.random.default_rng(key)``."""
        rng = np.random.default_rng(check_int("MLPProblem.init", "key", key, low=0))
        parts = []
        for shape in self._shapes:
            if len(shape) == 2:
                lim = np.sqrt(6.0 / (shape[0] + shape[1]))
                parts.append(rng.uniform(-lim, lim, size=shape).ravel())
            else:
                parts.append(np.zeros(shape))
        return np.concatenate(parts)

    def _unpack(self, x):
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.shape[0] != self.dim:
            raise ValueError(f"MLPProblem: x has length {x.shape[0]}, expected dim={self.dim}")
        out, o = [], 0
        for shape, size in zip(self._shapes, self._sizes):
            out.append(x[o:o + size].reshape(shape))
            o += size
        return out

    def _forward(self, x, idx):
        W1, b1, W2, b2 = self._unpack(x)
        A = self.X[idx]
        Z = A @ W1.T + b1
        H = np.tanh(Z) if self.activation == "tanh" else np.maximum(Z, 0.0)
        logits = H @ W2.T + b2
        logits -= logits.max(axis=1, keepdims=True)
        P = np.exp(logits)
        P /= P.sum(axis=1, keepdims=True)
        return (W1, W2), A, Z, H, P

    @staticmethod
    def _idx(indices, n):
        if indices is None:
            return np.arange(n)
        idx = np.asarray(indices)
        if idx.size == 0:
            raise ValueError("MLPProblem: indices must be non-empty")
        if idx.dtype == bool or idx.dtype.kind not in "iu":
            raise TypeError(f"MLPProblem: indices must be an integer index array, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).ravel()
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"MLPProblem: indices must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
        return idx

    def logits(self, x, indices=None):
        """Class probabilities (softmax outputs), shape (len(indices), classes)."""
        return self._forward(x, self._idx(indices, self.n_samples))[-1]

    def loss(self, x, indices=None):
        """Mean cross-entropy over ``indices`` (default: all samples) + (l2/2)||x||^2."""
        idx = self._idx(indices, self.n_samples)
        P = self._forward(x, idx)[-1]
        ce = -np.mean(np.log(np.maximum(P[np.arange(idx.size), self.y[idx]], 1e-300)))
        return float(ce + 0.5 * self.l2 * float(np.dot(x, x)))

    def grad(self, x, indices):
        """Gradient of :meth:`loss` over ``indices`` (backpropagation), float64, shape (dim,)."""
        idx = self._idx(indices, self.n_samples)
        (W1, W2), A, Z, H, P = self._forward(x, idx)
        G = P.copy()
        G[np.arange(idx.size), self.y[idx]] -= 1.0
        G /= idx.size
        gW2 = G.T @ H
        gb2 = G.sum(axis=0)
        dH = G @ W2
        dZ = dH * (1.0 - H * H) if self.activation == "tanh" else dH * (Z > 0)
        gW1 = dZ.T @ A
        gb1 = dZ.sum(axis=0)
        g = np.concatenate([gW1.ravel(), gb1, gW2.ravel(), gb2])
        if self.l2:
            g += self.l2 * np.asarray(x, dtype=np.float64)
        return g

    def accuracy(self, x, indices=None):
        """Fraction of samples whose most probable class is the label."""
        idx = self._idx(indices, self.n_samples)
        return float(np.mean(np.argmax(self._forward(x, idx)[-1], axis=1) == self.y[idx]))

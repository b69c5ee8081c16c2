"""Built-in problems (C++): least squares, logistic and softmax regression, each with l2.

Conventions (DESIGN.md): f(x) = (1/n) sum_i phi_i(x) + (l2/2)||x||^2 with
- LeastSquares: phi_i = (1/2)(a_i^T x - b_i)^2
- LogisticRegression: phi_i = log(1 + exp(-y_i a_i^T x)), y_i = +-1
- SoftmaxRegression: phi_i = logsumexp(W a_i) - (W a_i)_{y_i}, x = W.ravel() (classes x d)
A worker's local f_i is the same formula over its shard. Data (dense or scipy.sparse) are
copied once into native float32 storage and shared by all workers by index.

Any object with ``loss(x)``, ``grad(x, indices)`` and ``n_samples`` also works in
:func:`pyqsgd.simulate` (slower path), e.g. a NumPy or PyTorch model.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from . import _core
from ._validate import check_float
from .data.fingerprint import hash_arrays

__all__ = ["Problem", "LeastSquares", "LogisticRegression", "SoftmaxRegression", "is_python_problem",
           "dataset_columns", "DATASET_COLUMNS"]

# What results record about the data a run used (History.to_frame().attrs, sweep columns).
DATASET_COLUMNS = ("dataset", "dataset_n", "dataset_d", "dataset_hash")


def _dataset(X, owner):
    """``(native dataset, shape, (layout, arrays))``; the arrays are what the native side copies,
    so hashing them identifies exactly the data the problem uses."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
        X.sum_duplicates()
        X.sort_indices()
        n, d = X.shape
        if X.nnz and not np.isfinite(X.data).all():
            raise ValueError(f"{owner}: X contains NaN or Inf")
        arrays = (np.ascontiguousarray(X.indptr, dtype=np.int64), np.ascontiguousarray(X.indices, dtype=np.int32),
                  np.ascontiguousarray(X.data, dtype=np.float32))
        return _core.Dataset.csr(*arrays, n, d), (n, d), ("csr", arrays)
    try:
        A = np.asarray(X)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{owner}: X must be a 2-D array or scipy.sparse matrix, got {type(X).__name__}") from e
    if A.dtype == bool or A.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: X must be numeric, got dtype {A.dtype}")
    if A.ndim != 2:
        raise ValueError(f"{owner}: X must be 2-D (samples x features), got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{owner}: X must have at least one row and one column, got shape {A.shape}")
    A = np.ascontiguousarray(A, dtype=np.float32)
    if not np.isfinite(A).all():
        raise ValueError(f"{owner}: X contains NaN or Inf")
    return _core.Dataset.dense(A), A.shape, ("dense", (A,))


def _vector(v, n, name, owner, dtype=np.float32):
    a = np.asarray(v)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{owner}: {name} must be 1-D with one entry per row of X ({n}), got shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: {name} must be numeric, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _dataset_name(value, owner):
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{owner}: dataset must be a name (str) or None, got {value!r}")
    return value


class Problem:
    """Base class of the native problems: loss, gradients and smoothness on any sample subset.

    Every native problem records what data it holds: ``dataset`` (the name given at
    construction, ``None`` when none was given; :class:`pyqsgd.ProblemSpec` passes the dataset
    it actually loaded) and ``data_hash`` (:func:`pyqsgd.data.content_hash` of X and the
    labels/targets as stored, computed once at construction). :func:`pyqsgd.simulate` copies
    both, with n and d, into ``History.meta`` (see :meth:`dataset_info`).
    """

    _native = None
    dataset = None
    data_hash = None

    def _record_data(self, parts, labels, dataset):
        """Stores the dataset name and the content hash of the data the native side received."""
        layout, arrays = parts
        self.dataset = dataset
        self.data_hash = hash_arrays(layout, self.shape, arrays, labels)

    def dataset_info(self):
        """``{"dataset": name or None, "dataset_n": n, "dataset_d": d, "dataset_hash": hex}``: the
        data as results record it (d counts the columns of X, including a bias column).

        >>> import numpy as np, pyqsgd as pq
        >>> info = pq.problems.LeastSquares(np.eye(3), np.ones(3), dataset="eye3").dataset_info()
        >>> info["dataset"], info["dataset_n"], info["dataset_d"], len(info["dataset_hash"])
        ('eye3', 3, 3, 16)
        """
        return {"dataset": self.dataset, "dataset_n": int(self.shape[0]), "dataset_d": int(self.shape[1]),
                "dataset_hash": self.data_hash}

    @property
    def dim(self):
        """Model dimension."""
        return self._native.dim

    @property
    def n_samples(self):
        return self._native.n

    def _x(self, x):
        owner = type(self).__name__
        a = np.asarray(x)
        if a.dtype == bool or a.dtype.kind not in "fiu":
            raise TypeError(f"{owner}: x must be a real numeric array, got dtype {a.dtype}")
        x = np.ascontiguousarray(a, dtype=np.float64)
        if x.ndim != 1 or x.shape[0] != self.dim:
            raise ValueError(f"{owner}: x must be 1-D of length {self.dim}, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{owner}: x contains NaN or Inf")
        return x

    def _idx(self, indices):
        if indices is None:
            return None
        a = np.asarray(indices)
        if a.dtype == bool or (a.size and a.dtype.kind not in "iu"):
            hint = "; convert a boolean mask with np.flatnonzero(mask)" if a.dtype == bool else ""
            raise TypeError(f"{type(self).__name__}: indices must be an integer index array, got dtype {a.dtype}"
                            + hint)
        return np.ascontiguousarray(a, dtype=np.int64)

    def loss(self, x, indices=None):
        """Mean loss over ``indices`` (all samples when None) plus (l2/2)||x||^2."""
        return self._native.loss(self._x(x), self._idx(indices))

    def grad(self, x, indices=None):
        """Gradient of :meth:`loss` (float64)."""
        return self._native.grad(self._x(x), self._idx(indices))

    def smoothness(self, indices=None):
        """Smoothness constant L of the loss over ``indices``: sup phi'' ``lambda_max(A^T A/|S|)`` + l2."""
        return self._native.smoothness(self._idx(indices))

    def worker_smoothness(self, partition):
        """Per-worker smoothness constants L_i of the local objectives f_i (one per shard), e.g.
        for EF21's L~ = sqrt(mean L_i^2) in its theory step size."""
        return np.array([self.smoothness(p) for p in partition], dtype=np.float64)

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n_samples}, d={self.shape[1]}, l2={self.l2!r})"

    def __reduce__(self):
        return (type(self)._rebuild, (self._init_args,))

    @classmethod
    def _rebuild(cls, args):
        return cls(*args[0], **args[1])


class LeastSquares(Problem):
    """f(x) = (1/2n)||Ax - b||^2 + (l2/2)||x||^2; A dense or scipy.sparse.

    >>> import numpy as np, pyqsgd as pq
    >>> prob = pq.problems.LeastSquares(np.eye(3), np.ones(3))
    >>> float(prob.loss(np.ones(3)))
    0.0
    """

    def __init__(self, A, b, l2=0.0, *, dataset=None):
        self.l2 = check_float("LeastSquares", "l2", l2, low=0.0)
        name = _dataset_name(dataset, "LeastSquares")
        data, self.shape, parts = _dataset(A, "LeastSquares")
        self.b = _vector(b, self.shape[0], "b", "LeastSquares")
        if not np.isfinite(self.b).all():
            raise ValueError("LeastSquares: b contains NaN or Inf")
        self._init_args = ((A, b), {"l2": l2, "dataset": dataset})
        self._native = _core.LeastSquares(data, self.b, self.l2)
        self._record_data(parts, self.b, name)


class LogisticRegression(Problem):
    """f(x) = (1/n) sum log(1 + exp(-y_i a_i^T x)) + (l2/2)||x||^2 with labels y_i = +-1.

    >>> import numpy as np, pyqsgd as pq
    >>> prob = pq.problems.LogisticRegression(np.eye(2), np.array([1.0, -1.0]))
    >>> round(float(prob.loss(np.zeros(2))), 4)     # log 2
    0.6931
    """

    def __init__(self, X, y, l2=0.0, *, dataset=None):
        self.l2 = check_float("LogisticRegression", "l2", l2, low=0.0)
        name = _dataset_name(dataset, "LogisticRegression")
        data, self.shape, parts = _dataset(X, "LogisticRegression")
        self.y = _vector(y, self.shape[0], "y", "LogisticRegression")
        bad = ~np.isin(self.y, (-1.0, 1.0))
        if bad.any():
            raise ValueError(f"LogisticRegression: labels y must be +1 or -1, found {np.unique(self.y[bad])[:5]}; "
                             "map {0, 1} labels with 2*y - 1")
        self._init_args = ((X, y), {"l2": l2, "dataset": dataset})
        self._native = _core.LogisticRegression(data, self.y, self.l2)
        self._record_data(parts, self.y, name)


class SoftmaxRegression(Problem):
    """Multinomial logistic regression; x = W.ravel() with W of shape (n_classes, d).

    >>> import numpy as np, pyqsgd as pq
    >>> prob = pq.problems.SoftmaxRegression(np.eye(3), np.array([0, 1, 2]))
    >>> prob.dim
    9
    """

    def __init__(self, X, y, n_classes=None, l2=0.0, *, dataset=None):
        self.l2 = check_float("SoftmaxRegression", "l2", l2, low=0.0)
        name = _dataset_name(dataset, "SoftmaxRegression")
        data, self.shape, parts = _dataset(X, "SoftmaxRegression")
        y = np.asarray(y)
        if y.dtype.kind == "f":
            if not np.all(np.mod(y, 1) == 0):
                raise ValueError("SoftmaxRegression: labels y must be integers 0..n_classes-1")
        self.y = _vector(y, self.shape[0], "y", "SoftmaxRegression", dtype=np.int64)
        implied = n_classes is None
        if implied:
            n_classes = int(self.y.max()) + 1
        if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, numbers.Integral):
            raise TypeError(f"SoftmaxRegression: n_classes must be an int >= 2, got {n_classes!r}")
        if not 2 <= n_classes < 2**32:  # the native class count is uint32
            raise ValueError(f"SoftmaxRegression: n_classes must be an int in [2, 2**32), got {n_classes!r}"
                             + (" (the largest label + 1)" if implied else ""))
        if self.y.min() < 0 or self.y.max() >= n_classes:
            raise ValueError(f"SoftmaxRegression: labels must lie in [0, {n_classes}), got range "
                             f"[{self.y.min()}, {self.y.max()}]")
        self.n_classes = int(n_classes)
        self._init_args = ((X, y), {"n_classes": n_classes, "l2": l2, "dataset": dataset})
        self._native = _core.SoftmaxRegression(data, self.y, self.n_classes, self.l2)
        self._record_data(parts, self.y, name)

    def __repr__(self):
        return (f"SoftmaxRegression(n={self.n_samples}, d={self.shape[1]}, n_classes={self.n_classes}, "
                f"l2={self.l2!r})")


def dataset_columns(problem, n_samples=None):
    """The :data:`DATASET_COLUMNS` of a run on ``problem``: :meth:`Problem.dataset_info` for a
    native problem; for a Python problem its ``dataset`` / ``data_hash`` attributes when it has
    them (``None`` otherwise), ``n_samples`` and the width of its ``X`` when it has one."""
    if isinstance(problem, Problem):
        return problem.dataset_info()
    name, digest = getattr(problem, "dataset", None), getattr(problem, "data_hash", None)
    X = getattr(problem, "X", None)
    d = X.shape[1] if getattr(X, "ndim", 0) == 2 else None
    return {"dataset": name if isinstance(name, str) else None,
            "dataset_n": None if n_samples is None else int(n_samples),
            "dataset_d": None if d is None else int(d),
            "dataset_hash": digest if isinstance(digest, str) else None}


def is_python_problem(obj):
    """True for user objects usable through the slower Python path of simulate()."""
    return not isinstance(obj, Problem) and callable(getattr(obj, "loss", None)) and callable(
        getattr(obj, "grad", None))

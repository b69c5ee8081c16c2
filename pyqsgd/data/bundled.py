"""Small datasets that ship with scikit-learn, so examples and tests run with no download."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["load_bundled", "append_bias", "BUNDLED"]

BUNDLED = ("breast_cancer", "digits")


def load_bundled(name, add_bias=False):
    """Loads a dataset bundled with scikit-learn, ready for the built-in problems.

    Parameters
    ----------
    name : {"breast_cancer", "digits"}
        * ``"breast_cancer"``: 569 x 30, binary. Labels ±1 float32 (+1 = benign, scikit-learn's
          class 1); each feature standardised to mean 0 and (population) standard deviation 1.
        * ``"digits"``: 1797 x 64 (8x8 images), 10 classes. Labels int64 0..9; pixels
          divided by 16, so features lie in [0, 1].
    add_bias : bool
        Append a constant column of ones (an intercept), giving ``d + 1`` columns.

    Returns
    -------
    X : np.ndarray, float32, C-contiguous, shape (n, d) or (n, d + 1)
    y : np.ndarray, float32 (binary, ±1) or int64 (multiclass)

    Examples
    --------
    >>> from pyqsgd.data import load_bundled
    >>> X, y = load_bundled("breast_cancer", add_bias=True)
    >>> X.shape, X.dtype.name, sorted(set(y.tolist()))
    ((569, 31), 'float32', [-1.0, 1.0])
    """
    if not isinstance(name, str):
        raise TypeError(f"load_bundled: name must be a string, one of {BUNDLED}, got {name!r}")
    if name not in _LOADERS:
        raise ValueError(f"load_bundled: unknown dataset {name!r}; choose one of {BUNDLED}")
    if not isinstance(add_bias, (bool, np.bool_)):
        raise TypeError(f"load_bundled: add_bias must be a bool, got {add_bias!r}")
    X, y = _LOADERS[name]()
    X = np.ascontiguousarray(X, dtype=np.float32)
    return (append_bias(X) if add_bias else X), y


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = data.data.astype(np.float64)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, np.where(data.target == 1, 1.0, -1.0).astype(np.float32)


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data / 16.0, data.target.astype(np.int64)


_LOADERS = {"breast_cancer": _breast_cancer, "digits": _digits}


def append_bias(X):
    """Returns ``X`` with a column of ones appended (dense stays dense, sparse becomes CSR).

    Examples
    --------
    >>> import numpy as np
    >>> from pyqsgd.data import append_bias
    >>> append_bias(np.zeros((2, 1), dtype=np.float32)).tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"append_bias: X must be 2-D, got shape {X.shape}")
        ones = sp.csr_matrix(np.ones((X.shape[0], 1), dtype=X.dtype))
        return sp.hstack([X, ones], format="csr", dtype=X.dtype)
    X = np.asarray(X)
    if X.dtype == bool or X.dtype.kind not in "fiu":
        raise TypeError(f"append_bias: X must be a numeric array or scipy.sparse matrix, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"append_bias: X must be 2-D, got shape {X.shape}")
    return np.ascontiguousarray(np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)]))

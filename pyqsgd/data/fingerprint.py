"""A short, stable content hash of a dataset, so results record which data they were computed on."""
from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

__all__ = ["content_hash"]

# Bump when the hashed byte layout changes: old and new hashes must never collide by accident.
_LAYOUT = b"pyqsgd-data-v1"


def content_hash(X, y=None):
    """16 hex digits (BLAKE2b, 64 bits) identifying the data ``X`` (and labels ``y``).

    The hash covers the values exactly as the built-in problems store them: ``X`` as float32,
    dense (C order) or canonical CSR (indices sorted, duplicates summed; ``indptr``, ``indices``
    and ``data`` are hashed), its shape, and ``y`` with its dtype. It depends on nothing else
    (no process, platform byte order or Python hash seed), so the same data gives the same hash
    in every process and on every machine; it is what ``problem.data_hash`` and the
    ``dataset_hash`` result column hold. The same matrix stored dense and sparse hashes
    differently (the layout is part of what is hashed).

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (n, d)
    y : array_like, shape (n,), optional
        Labels or targets; hashed with their dtype (float32 ±1 labels and int64 classes differ).

    Examples
    --------
    >>> import numpy as np
    >>> from pyqsgd.data import content_hash
    >>> h = content_hash(np.eye(2), np.array([1.0, -1.0], dtype=np.float32))
    >>> len(h), h == content_hash(np.eye(2, dtype=np.float32), np.array([1.0, -1.0], dtype=np.float32))
    (16, True)
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32, copy=True)
        X.sum_duplicates()
        X.sort_indices()
        return hash_arrays("csr", X.shape, (X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data), y)
    A = np.ascontiguousarray(X, dtype=np.float32)
    if A.ndim != 2:
        raise ValueError(f"content_hash: X must be 2-D (samples x features), got shape {A.shape}")
    return hash_arrays("dense", A.shape, (A,), y)


def hash_arrays(layout, shape, arrays, y=None):
    """The hash of already-canonical arrays (what :func:`content_hash` computes after converting)."""
    h = hashlib.blake2b(digest_size=8, person=_LAYOUT[:16])
    h.update(layout.encode())
    h.update(np.asarray(shape, dtype="<i8").tobytes())
    for a in arrays:
        _update(h, a)
    if y is not None:
        _update(h, np.asarray(y))
    return h.hexdigest()


def _update(h, a):
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)  # little-endian everywhere
    h.update(a.dtype.str.encode() + np.asarray(a.shape, dtype="<i8").tobytes())
    h.update(memoryview(a).cast("B"))

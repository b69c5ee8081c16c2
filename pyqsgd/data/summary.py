"""Describing a partition: per-worker table, label-skew score, and a validity check."""
from __future__ import annotations

import numpy as np

from .._validate import check_int
from ._common import as_labels

__all__ = ["summarize_partition", "label_skew", "check_partition"]


def check_partition(parts, n=None):
    """Validates ``parts`` and returns them as a list of int64 arrays.

    Raises ``TypeError`` for non-integer index arrays and ``ValueError`` when an index is
    negative, out of range, repeated, or (with ``n``) when the shards do not cover ``range(n)``.

    Examples
    --------
    >>> from pyqsgd.data import check_partition, partition
    >>> len(check_partition(partition(10, 3), n=10))
    3
    """
    owner = "check_partition"
    if isinstance(parts, np.ndarray) or not hasattr(parts, "__len__") or len(parts) == 0:
        raise TypeError(f"{owner}: parts must be a non-empty list of 1-D index arrays")
    out = []
    for i, p in enumerate(parts):
        a = np.asarray(p)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise TypeError(f"{owner}: parts[{i}] must be a 1-D integer array, got dtype {a.dtype}, shape {a.shape}")
        out.append(a.astype(np.int64, copy=False))
    flat = np.concatenate(out)
    if flat.size and flat.min() < 0:
        raise ValueError(f"{owner}: negative index {int(flat.min())}")
    if n is not None:
        n = check_int(owner, "n", n, low=1)
        if flat.size and flat.max() >= n:
            raise ValueError(f"{owner}: index {int(flat.max())} out of range for n={n}")
    counts = np.bincount(flat, minlength=n or 0)
    if np.any(counts > 1):
        dup = int(np.argmax(counts > 1))
        raise ValueError(f"{owner}: shards overlap; index {dup} appears {int(counts[dup])} times")
    if n is not None and flat.size != n:
        raise ValueError(f"{owner}: shards cover {flat.size} of n={n} samples; "
                         f"first missing index {int(np.argmin(counts))}")
    return out


def summarize_partition(parts, labels=None):
    """One row per worker: ``size``, ``fraction`` of all samples, and per-class counts.

    Parameters
    ----------
    parts : list of array_like of int
        Index arrays, e.g. from :func:`partition`.
    labels : array_like, shape (n,), optional
        Adds one column per class, named ``class_<label>`` (integral floats such as -1.0 show
        as ``class_-1``), in sorted label order.

    Returns
    -------
    pandas.DataFrame
        Index ``worker`` (0..m-1); columns ``size`` (int64), ``fraction`` (float64), then the
        class counts (int64). ``df.filter(like="class_")`` selects the counts for a stacked bar.

    Examples
    --------
    >>> import numpy as np
    >>> from pyqsgd.data import partition, summarize_partition
    >>> labels = np.array([0, 0, 1, 1, 1, 1])
    >>> summarize_partition([[0, 2], [1, 3, 4, 5]], labels).to_dict("list")
    {'size': [2, 4], 'fraction': [0.3333333333333333, 0.6666666666666666], 'class_0': [1, 1], 'class_1': [1, 3]}
    """
    import pandas as pd

    parts = check_partition(parts)
    sizes = np.array([p.size for p in parts], dtype=np.int64)
    total = sizes.sum()
    columns = {"size": sizes, "fraction": sizes / total if total else np.zeros(sizes.size)}
    if labels is not None:
        classes, counts = _class_counts(parts, labels, "summarize_partition")
        for c, label in enumerate(classes):
            columns[f"class_{_label_name(label)}"] = counts[:, c]
    return pd.DataFrame(columns, index=pd.RangeIndex(len(parts), name="worker"))


def label_skew(parts, labels):
    """Mean total-variation distance between each worker's label distribution and the global one.

    ``TV_i = ½ Σ_c |q_ic − π_c|`` with ``q_i`` worker i's class frequencies and ``π`` those of
    all samples in ``parts``; the result is the unweighted mean over non-empty workers, in
    [0, 1). 0 means every worker has exactly the global mix; values near 1 mean workers hold
    (almost) disjoint classes.

    Examples
    --------
    >>> import numpy as np
    >>> from pyqsgd.data import label_skew
    >>> labels = np.array([0, 0, 1, 1])
    >>> label_skew([[0, 2], [1, 3]], labels), label_skew([[0, 1], [2, 3]], labels)
    (0.0, 0.5)
    """
    _, counts = _class_counts(check_partition(parts), labels, "label_skew")
    sizes = counts.sum(axis=1)
    keep = sizes > 0
    if not np.any(keep):
        raise ValueError("label_skew: every shard is empty")
    q = counts[keep] / sizes[keep, None]
    pi = counts.sum(axis=0) / sizes.sum()
    return float(np.mean(0.5 * np.abs(q - pi).sum(axis=1)))


def _class_counts(parts, labels, owner):
    classes, codes = as_labels(labels, owner)
    for i, p in enumerate(parts):
        if p.size and p.max() >= codes.size:
            raise ValueError(f"{owner}: parts[{i}] has index {int(p.max())} but labels has only {codes.size} entries")
    counts = np.stack([np.bincount(codes[p], minlength=classes.size) for p in parts]).astype(np.int64)
    return classes, counts


def _label_name(label):
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)

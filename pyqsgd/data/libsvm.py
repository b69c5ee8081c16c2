"""Reading LIBSVM / svmlight text files into CSR float32 matrices with ±1 or class labels."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np

from .._validate import check_int

__all__ = ["load_libsvm", "find_libsvm", "shared_dataset_path", "libsvm_search_paths", "available_libsvm", "DATA_ENV"]

DATA_ENV = "PYQSGD_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]  # the folder above the package (a source checkout)
_BINARY_SETS = ((-1.0, 1.0), (0.0, 1.0), (1.0, 2.0))  # checked in this order; (low, high) -> (-1, +1)


def load_libsvm(path, n_features=None, multiclass=None, *, zero_based=False):
    """Loads a LIBSVM file (``label idx:value ...``) as a CSR float32 matrix and labels.

    Parameters
    ----------
    path : str or os.PathLike
        The file (plain text; ``.gz`` / ``.bz2`` are decompressed by scikit-learn).
    n_features : int, optional
        Number of columns; ``None`` uses the largest index in the file. Pass the full
        dimension when a split lacks the last feature (``a9a.t`` has 122 of a9a's 123).
    multiclass : None, bool or sequence, optional
        ``None`` (auto): binary if the distinct labels are a subset of {-1, 1}, {0, 1} or
        {1, 2} (checked in that order), else multiclass if they are integers.
        ``False``: binary required. ``True``: multiclass, classes = the sorted distinct labels.
        A sequence: multiclass with exactly these classes, in this order (use it so a test
        split that lacks a class keeps the training split's numbering).
    zero_based : bool, keyword-only
        LIBSVM indices start at 1 (default). ``True`` for files whose indices start at 0.

    Returns
    -------
    X : scipy.sparse.csr_matrix, float32, shape (n, n_features)
        Canonical CSR: sorted indices, no duplicate entries, no stored zeros.
    y : np.ndarray, shape (n,)
        Binary: float32 in {-1, +1} (the larger raw label is +1). Multiclass: int64 in
        0..C-1, the position of the raw label among the classes.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (the message names it).
    ValueError
        ``n_features`` is smaller than the file's largest feature index, labels do not fit
        ``multiclass``, the file holds no samples, or it is malformed (including a row whose
        indices are not strictly increasing, index 0 when ``zero_based=False``, or a feature
        index beyond 2^31 - 1: the message names the line).

    Examples
    --------
    >>> import tempfile, os
    >>> from pyqsgd.data import load_libsvm
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     f = os.path.join(tmp, "toy.svm")
    ...     _ = open(f, "w").write("1 1:0.5 3:2\\n0 2:1\\n")
    ...     X, y = load_libsvm(f, n_features=4)
    >>> X.shape, X.dtype.name, y.tolist()
    ((2, 4), 'float32', [1.0, -1.0])
    """
    from sklearn.datasets import load_svmlight_file  # heavy import, only when reading files

    owner = "load_libsvm"
    if not isinstance(path, (str, os.PathLike)):
        hint = " (find_libsvm returns None when the file is not on this machine)" if path is None else ""
        raise TypeError(f"{owner}: path must be a str or os.PathLike, got {type(path).__name__}{hint}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: no such file: '{path}'" +
                                (" (it is a directory)" if path.is_dir() else ""))
    n_features = check_int(owner, "n_features", n_features, low=1, allow_none=True)
    if not isinstance(zero_based, (bool, np.bool_)):
        raise TypeError(f"{owner}: zero_based must be a bool, got {zero_based!r}")
    try:
        X, raw = load_svmlight_file(str(path), dtype=np.float32, zero_based=bool(zero_based))
    except ValueError as e:  # scikit-learn's parser: bad token, index 0 when 1-based, unsorted row...
        raise ValueError(f"{owner}: cannot parse '{path}': {e}") from e
    except OverflowError as e:  # a feature index beyond the parser's integer range
        line, token = _huge_index(path)
        where = f" line {line}, '{token}'" if line else ""
        raise ValueError(f"{owner}: '{path}'{where}: feature index too large for a LIBSVM matrix "
                         f"(at most {np.iinfo(np.int32).max}); the file is malformed") from e
    if X.shape[0] == 0:
        raise ValueError(f"{owner}: '{path}' holds no samples (empty file, or only blank/comment lines)")
    if n_features is not None:
        if X.shape[1] > n_features:
            raise ValueError(f"{owner}: n_features={n_features} is smaller than the largest feature "
                             f"index in '{path}' ({X.shape[1]}{'' if zero_based else ', 1-based'})")
        X.resize((X.shape[0], n_features))
    X = X.tocsr()
    if not np.all(np.isfinite(X.data)):
        row = int(np.searchsorted(X.indptr, int(np.flatnonzero(~np.isfinite(X.data))[0]), side="right"))
        raise ValueError(f"{owner}: '{path}' has a NaN or infinite feature value (in sample {row}, "
                         "counting from 1); the problems need finite data")
    X.sum_duplicates()  # also sorts the indices
    X.eliminate_zeros()
    return X.astype(np.float32, copy=False), _labels(raw, multiclass, owner, path)


def _huge_index(path, limit=np.iinfo(np.int32).max):
    """(line number, token) of the first feature index above ``limit``; (None, None) if none.
    Runs only after the parser failed, so the normal path pays nothing for it."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            for token in line.split(b"#", 1)[0].split()[1:]:
                idx = token.split(b":", 1)[0]
                if idx.isdigit() and int(idx) > limit:
                    return number, token.decode(errors="replace")
    return None, None


def _labels(raw, multiclass, owner, path):
    distinct = np.unique(raw)
    if isinstance(multiclass, (bool, np.bool_)):
        multiclass = bool(multiclass)
    if multiclass is None:
        if _binary_pair(distinct) is not None:
            multiclass = False
        elif np.all(distinct == np.round(distinct)):
            multiclass = True
        else:
            raise ValueError(f"{owner}: labels in '{path}' are not class labels "
                             f"(found non-integers, e.g. {_show(distinct[distinct != np.round(distinct)])})")
    if multiclass is False:
        pair = _binary_pair(distinct)
        if pair is None:
            raise ValueError(f"{owner}: binary labels must be {{-1, 1}}, {{0, 1}} or {{1, 2}}; '{path}' has "
                             f"{_show(distinct)} (pass multiclass=True for class indices)")
        return np.where(raw == pair[1], 1.0, -1.0).astype(np.float32)
    classes = distinct if multiclass is True else _as_classes(multiclass, owner)
    order = np.argsort(classes, kind="stable")
    ranked = classes[order]
    pos = np.clip(np.searchsorted(ranked, raw), 0, ranked.size - 1)
    unknown = ranked[pos] != raw
    if np.any(unknown):
        raise ValueError(f"{owner}: '{path}' has labels not in multiclass: {_show(np.unique(raw[unknown]))}")
    return order[pos].astype(np.int64)


def _binary_pair(distinct):
    for pair in _BINARY_SETS:
        if np.all(np.isin(distinct, pair)):
            return pair
    return None


def _as_classes(multiclass, owner):
    if isinstance(multiclass, (str, bytes)) or not hasattr(multiclass, "__len__"):
        raise TypeError(f"{owner}: multiclass must be None, True, False or a sequence of class labels, "
                        f"got {multiclass!r}")
    classes = np.asarray(multiclass, dtype=np.float64)
    if classes.ndim != 1 or classes.size < 2 or np.unique(classes).size != classes.size:
        raise ValueError(f"{owner}: multiclass must list at least 2 distinct class labels, got {multiclass!r}")
    return classes


def _show(values, limit=10):
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return "{" + shown + (", ..." if values.size > limit else "") + "}"


def find_libsvm(name):
    """Path of a shared LIBSVM file, or ``None`` when it is not on this machine.

    Looks, in this order (:func:`libsvm_search_paths` lists the paths), for

    1. ``$PYQSGD_DATA/<name>``, then ``$PYQSGD_DATA/libsvm/<name>`` (when ``PYQSGD_DATA`` is set);
    2. ``../shared/data/libsvm/<name>`` relative to the current directory;
    3. the same relative to the repository root (the folder above the ``pyqsgd`` package, for
       source checkouts).

    Examples
    --------
    >>> from pyqsgd.data import find_libsvm, load_libsvm
    >>> path = find_libsvm("a9a.t")
    >>> if path is not None:
    ...     X, y = load_libsvm(path, n_features=123)
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"find_libsvm: name must be a file name string, got {name!r}")
    for _, candidate in _candidates(str(name)):
        if candidate.is_file():
            return candidate
    return None


shared_dataset_path = find_libsvm  # alias: same search, same result


def libsvm_search_paths(name):
    """The paths :func:`find_libsvm` tries for ``name``, in order (duplicates dropped).

    >>> from pyqsgd.data.libsvm import libsvm_search_paths
    >>> all(p.name == "a9a.t" for p in libsvm_search_paths("a9a.t"))
    True
    """
    return [path for _, path in _candidates(str(name))]


def _candidates(name):
    """``(how the path was formed, path)`` in search order, without repeats."""
    seen = set()
    env = os.environ.get(DATA_ENV)
    places = []
    if env:
        places += [(f"${DATA_ENV}/{name}", Path(env) / name),
                   (f"${DATA_ENV}/libsvm/{name}", Path(env) / "libsvm" / name)]
    shared = Path("shared") / "data" / "libsvm" / name
    places.append(("../shared/data/libsvm, from the current directory", Path.cwd().parent / shared))
    places.append(("../shared/data/libsvm, from the folder holding the pyqsgd package",
                   _REPO_ROOT.parent / shared))
    for how, path in places:
        key = os.path.normpath(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            yield how, path


def _search_dirs():
    """The folders find_libsvm looks in (the parents of its candidate paths)."""
    return list(dict.fromkeys(path.parent for _, path in _candidates("_")))


def available_libsvm(limit=50):
    """Sorted names of the files in the folders :func:`find_libsvm` searches (at most ``limit``).

    Hidden files and README files are left out; on a machine without the shared data this is [].
    """
    names = set()
    for folder in _search_dirs():
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        names.update(p.name for p in entries if p.is_file() and not p.name.startswith((".", "README")))
    return sorted(names)[:limit]


def missing_dataset_message(name, owner, known=(), hint=""):
    """The text of the error raised when ``name`` is neither a known dataset nor a file found by
    :func:`find_libsvm` (nor a path): what was searched, in order, and how to fix it."""
    lines = [f"{owner}: dataset {name!r} not found. Searched, in order:"]
    if not os.environ.get(DATA_ENV):
        lines.append(f"  ${DATA_ENV}: not set")
    lines += [f"  {path}  ({how})" for how, path in _candidates(str(name))]
    lines.append(f"  {os.path.abspath(name)}  ({name!r} as a path)")
    files = available_libsvm()
    lines.append(f"Known names: {', '.join(known) or 'none'}; LIBSVM files in the folders searched: "
                 f"{', '.join(files) or 'none'}")
    close = difflib.get_close_matches(str(name), list(known) + files, n=1, cutoff=0.6)
    if close:
        lines.append(f"Did you mean {close[0]!r}?")
    lines.append(f"Fix: set {DATA_ENV} to the folder holding the file (or to its parent, with the file in "
                 "libsvm/), give the file's path, or use a known name." + (f" {hint}" if hint else ""))
    return "\n".join(lines)

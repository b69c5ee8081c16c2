"""Datasets and their split across workers.

* Files: :func:`load_libsvm` (LIBSVM text → CSR float32, labels ±1 or class indices),
  :func:`find_libsvm` (locate the shared LIBSVM files, ``None`` when absent; the search order
  is :func:`libsvm_search_paths`, starting with ``$PYQSGD_DATA``), :func:`available_libsvm`.
* Provenance: :func:`content_hash` (a short stable hash of X and y; what results record as
  ``dataset_hash``).
* No download needed: :func:`load_bundled` (scikit-learn's breast_cancer and digits),
  :func:`synthetic_logistic`, :func:`synthetic_least_squares` (tunable heterogeneity).
* Partitions (ALGORITHMS §5): :func:`partition` (iid, dirichlet, size_skew), described by
  :func:`summarize_partition` and :func:`label_skew`, validated by :func:`check_partition`.
* Batches: :func:`heterogeneous_batches` (a fraction of workers at a large batch, same mean).

All randomness comes from a ``key`` (int seed or ``pyqsgd.Key``); no global RNG is touched.
"""
from .batches import heterogeneous_batches
from .bundled import BUNDLED, append_bias, load_bundled
from .fingerprint import content_hash
from .libsvm import DATA_ENV, available_libsvm, find_libsvm, libsvm_search_paths, load_libsvm, shared_dataset_path
from .partitions import SCHEMES, partition
from .summary import check_partition, label_skew, summarize_partition
from .synthetic import synthetic_least_squares, synthetic_logistic

__all__ = [
    "load_libsvm", "find_libsvm", "shared_dataset_path", "libsvm_search_paths", "available_libsvm", "DATA_ENV",
    "load_bundled", "append_bias", "BUNDLED",
    "content_hash", "synthetic_logistic", "synthetic_least_squares", "partition", "SCHEMES",
    "summarize_partition", "label_skew", "check_partition", "heterogeneous_batches",
]

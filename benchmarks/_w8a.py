"""The w8a workload shared by the simulator benchmarks (not a benchmark itself: the leading
underscore keeps it out of ``pyqsgd bench``)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import pyqsgd as pq


def load(workers):
    """w8a (49,749 x 300) or, if absent, a synthetic CSR problem of the same shape and density."""
    path = pq.data.find_libsvm("w8a")
    if path is not None:
        X, y = pq.data.load_libsvm(path, n_features=300)
        source = f"w8a ({path})"
    else:
        rng = np.random.default_rng(0)
        n, d, density = 49749, 300, 0.0388
        X = sp.random(n, d, density=density, format="csr", dtype=np.float32, random_state=rng,
                      data_rvs=lambda k: np.ones(k, np.float32))
        y = np.where(rng.random(n) < 0.03, 1.0, -1.0).astype(np.float32)
        source = "SYNTHETIC stand-in for w8a (file not found): same shape and density"
    parts = pq.data.partition(X.shape[0], workers, scheme="iid", key=0)
    return X, y, parts, source

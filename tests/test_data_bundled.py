"""Bundled scikit-learn datasets and the bias column helper."""
import numpy as np
import pytest
import scipy.sparse as sp

from pyqsgd.data import append_bias, load_bundled


def test_breast_cancer_binary_standardized():
    X, y = load_bundled("breast_cancer")
    assert X.shape == (569, 30) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.dtype == np.float32 and set(np.unique(y).tolist()) == {-1.0, 1.0}
    assert int((y == 1).sum()) == 357  # benign
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(X.std(axis=0), 1.0, atol=1e-5)


def test_digits_multiclass_unit_range():
    X, y = load_bundled("digits")
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.dtype == np.int64 and np.unique(y).tolist() == list(range(10))


def test_add_bias():
    X, _ = load_bundled("digits", add_bias=True)
    assert X.shape == (1797, 65) and X.dtype == np.float32 and np.all(X[:, -1] == 1.0)
    S = append_bias(sp.csr_matrix(np.eye(2, dtype=np.float32)))
    assert sp.isspmatrix_csr(S) and S.dtype == np.float32
    np.testing.assert_array_equal(S.toarray(), [[1, 0, 1], [0, 1, 1]])
    with pytest.raises(ValueError, match="2-D"):
        append_bias(np.zeros(3))


def test_bad_names():
    with pytest.raises(ValueError, match="unknown dataset 'iris'"):
        load_bundled("iris")
    with pytest.raises(TypeError, match="name"):
        load_bundled(1)
    with pytest.raises(TypeError, match="add_bias"):
        load_bundled("digits", add_bias="yes")

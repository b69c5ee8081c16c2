"""LIBSVM loading: the shared real files (skipped when absent) and tiny files written here."""
import numpy as np
import pytest
import scipy.sparse as sp

from pyqsgd.data import find_libsvm, load_libsvm, shared_dataset_path

# Row counts are the data rows (w8a's file ends with a blank line, so `wc -l` says 49,750).
REAL = [("a8a", None, (22696, 123)), ("a9a.t", 123, (16281, 123)), ("w8a", None, (49749, 300))]


def _canonical_csr_f32(X):
    assert sp.isspmatrix_csr(X)
    assert X.dtype == np.float32
    assert X.has_sorted_indices and X.has_canonical_format


@pytest.mark.data
@pytest.mark.parametrize("name, n_features, shape", REAL)
def test_real_file_shape_labels_dtype(name, n_features, shape):
    path = find_libsvm(name)
    if path is None:
        pytest.skip(f"shared LIBSVM file {name!r} not on this machine (../shared/data/libsvm or $PYQSGD_DATA)")
    X, y = load_libsvm(path, n_features=n_features)
    assert X.shape == shape
    _canonical_csr_f32(X)
    assert y.dtype == np.float32 and y.shape == (shape[0],)
    assert set(np.unique(y).tolist()) == {-1.0, 1.0}


@pytest.mark.data
def test_a9a_test_split_needs_n_features():
    path = find_libsvm("a9a.t")
    if path is None:
        pytest.skip("shared LIBSVM file 'a9a.t' not on this machine")
    assert load_libsvm(path)[0].shape[1] == 122  # the split lacks feature 123
    with pytest.raises(ValueError, match="n_features=100 is smaller"):
        load_libsvm(path, n_features=100)


def test_find_libsvm_absent_and_env(tmp_path, monkeypatch):
    assert find_libsvm("no-such-dataset-xyz") is None
    (tmp_path / "libsvm").mkdir()
    (tmp_path / "libsvm" / "toy").write_text("1 1:1\n")
    monkeypatch.setenv("PYQSGD_DATA", str(tmp_path))
    assert find_libsvm("toy") == tmp_path / "libsvm" / "toy"
    assert shared_dataset_path("toy") == find_libsvm("toy")
    with pytest.raises(TypeError, match="name"):
        find_libsvm(3)


def _write(tmp_path, text, name="toy.svm"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("neg, pos", [(-1, 1), (0, 1), (1, 2), ("-1.0", "+1")])
def test_binary_label_conventions_map_to_pm1(tmp_path, neg, pos):
    path = _write(tmp_path, f"{pos} 1:0.5 3:2\n{neg} 2:1\n{pos} 3:-1.5\n")
    X, y = load_libsvm(path)
    assert y.tolist() == [1.0, -1.0, 1.0] and y.dtype == np.float32
    _canonical_csr_f32(X)
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, 2], [0, 1, 0], [0, 0, -1.5]])


def test_n_features_pads_columns_and_zero_entries_dropped(tmp_path):
    path = _write(tmp_path, "1 1:0 2:3\n-1\n")  # an explicit zero and a row with no features
    X, y = load_libsvm(path, n_features=5)
    assert X.shape == (2, 5) and X.nnz == 1
    np.testing.assert_array_equal(X.toarray(), [[0, 3, 0, 0, 0], [0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="n_features=1 is smaller"):
        load_libsvm(path, n_features=1)


def test_zero_based_option(tmp_path):
    path = _write(tmp_path, "1 0:1 2:2\n-1 1:1\n")
    with pytest.raises(ValueError, match="cannot parse"):
        load_libsvm(path)  # LIBSVM is 1-based: index 0 is an error by default
    X, _ = load_libsvm(path, zero_based=True)
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 2], [0, 1, 0]])


def test_multiclass_auto_true_and_explicit_classes(tmp_path):
    path = _write(tmp_path, "3 1:1\n1 2:1\n2 1:1\n3 2:2\n")
    _, y = load_libsvm(path)
    assert y.dtype == np.int64 and y.tolist() == [2, 0, 1, 2]
    _, y = load_libsvm(path, multiclass=True)
    assert y.tolist() == [2, 0, 1, 2]
    # A split that lacks a class keeps the numbering of the full class list.
    _, y = load_libsvm(path, multiclass=[0, 1, 2, 3])
    assert y.tolist() == [3, 1, 2, 3]
    _, y = load_libsvm(path, multiclass=[3, 2, 1])
    assert y.tolist() == [0, 2, 1, 0]
    with pytest.raises(ValueError, match="not in multiclass"):
        load_libsvm(path, multiclass=[1, 2])
    with pytest.raises(ValueError, match="binary labels"):
        load_libsvm(path, multiclass=False)
    with pytest.raises(TypeError, match="multiclass"):
        load_libsvm(path, multiclass="yes")


def test_binary_file_read_as_multiclass(tmp_path):
    path = _write(tmp_path, "-1 1:1\n1 1:2\n")
    _, y = load_libsvm(path, multiclass=True)
    assert y.dtype == np.int64 and y.tolist() == [0, 1]


def test_bad_inputs(tmp_path):
    missing = tmp_path / "nope.svm"
    with pytest.raises(FileNotFoundError, match="nope.svm"):
        load_libsvm(missing)
    with pytest.raises(FileNotFoundError, match="directory"):
        load_libsvm(tmp_path)
    with pytest.raises(TypeError, match="find_libsvm returns None"):
        load_libsvm(None)
    path = _write(tmp_path, "0.5 1:1\n1.5 1:2\n")
    with pytest.raises(ValueError, match="not class labels"):
        load_libsvm(path)
    path = _write(tmp_path, "1 3:1 1:2\n", name="unsorted.svm")
    with pytest.raises(ValueError, match="cannot parse .*unsorted.svm"):
        load_libsvm(path)
    path = _write(tmp_path, "1 1:1\n", name="ok.svm")
    with pytest.raises(ValueError, match="n_features"):
        load_libsvm(path, n_features=0)
    with pytest.raises(TypeError, match="n_features"):
        load_libsvm(path, n_features=2.0)


def test_huge_feature_index_and_empty_file_name_the_problem(tmp_path):
    huge = tmp_path / "huge.svm"
    huge.write_text("1 1:0.5\n-1 2:1 99999999999:1\n")
    with pytest.raises(ValueError, match=r"huge.svm' line 2, '99999999999:1': feature index too large"):
        load_libsvm(huge)
    empty = tmp_path / "empty.svm"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.svm' holds no samples"):
        load_libsvm(empty)
    comments = tmp_path / "comments.svm"
    comments.write_text("# only a comment\n\n")
    with pytest.raises(ValueError, match="holds no samples"):
        load_libsvm(comments)

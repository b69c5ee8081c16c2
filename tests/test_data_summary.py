"""Partition tables, the label-skew score and partition validation."""
import numpy as np
import pandas as pd
import pytest

from pyqsgd.data import check_partition, label_skew, partition, summarize_partition


def test_summary_table():
    labels = np.array([-1.0, 1.0, 1.0, -1.0, 1.0, 1.0], dtype=np.float32)
    df = summarize_partition([np.array([0, 1]), np.array([2, 3, 4, 5])], labels)
    assert isinstance(df, pd.DataFrame) and df.index.name == "worker"
    assert list(df.columns) == ["size", "fraction", "class_-1", "class_1"]
    assert df["size"].tolist() == [2, 4] and df["fraction"].sum() == pytest.approx(1.0)
    assert df["class_-1"].tolist() == [1, 1] and df["class_1"].tolist() == [1, 3]
    assert list(summarize_partition(partition(10, 3)).columns) == ["size", "fraction"]


def test_summary_counts_match_partition():
    labels = np.random.default_rng(0).integers(0, 5, 400)
    parts = partition(labels, 6, "dirichlet", alpha=0.3, key=4)
    df = summarize_partition(parts, labels)
    counts = df.filter(like="class_").to_numpy()
    assert counts.sum() == 400 and np.array_equal(counts.sum(axis=1), df["size"].to_numpy())
    np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(labels))


def test_label_skew_values():
    labels = np.array([0, 0, 1, 1])
    assert label_skew([[0, 2], [1, 3]], labels) == 0.0
    assert label_skew([[0, 1], [2, 3]], labels) == 0.5
    assert label_skew([[0, 1, 2, 3]], labels) == 0.0
    assert label_skew([[0, 1], [], [2, 3]], labels) == 0.5  # empty shards are left out
    ten = np.arange(10)
    assert label_skew([[i] for i in range(10)], ten) == pytest.approx(0.9)


def test_check_partition_errors():
    assert [p.dtype for p in check_partition([[0, 1], [2]], n=3)] == [np.int64, np.int64]
    with pytest.raises(ValueError, match="overlap; index 1 appears 2"):
        check_partition([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="cover 2 of n=3"):
        check_partition([[0], [2]], n=3)
    with pytest.raises(ValueError, match="out of range"):
        check_partition([[0, 3]], n=3)
    with pytest.raises(ValueError, match="negative"):
        check_partition([[-1, 0]])
    with pytest.raises(TypeError, match="integer"):
        check_partition([[0.0, 1.0]])
    with pytest.raises(TypeError, match="non-empty list"):
        check_partition([])
    with pytest.raises(ValueError, match="labels has only 2"):
        label_skew([[0, 5]], [0, 1])

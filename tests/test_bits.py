"""pq.bits: pyqsgd's exact bits vs the papers' unit (32 bits per transmitted float)."""
import numpy as np
import pytest

import pyqsgd as pq


@pytest.fixture(scope="module")
def prob():
    X = np.random.default_rng(0).standard_normal((200, 100)).astype(np.float32)
    return pq.problems.LogisticRegression(X, np.sign(X[:, 0]).astype(np.float32))


def test_topk_floats_and_paper_bits(prob):
    c = pq.TopK(ratio=0.29, rounding="floor")  # k = 28 on d = 100
    hist = pq.simulate(prob, pq.methods.EF21(c), n_workers=4, rounds=5, lr=0.1, key=0)
    per_msg = 32 * 28 + min(28 * 7, 100)  # values + bitmap
    assert hist.bits_up.tolist() == [4 * t * per_msg for t in range(6)]
    floats = pq.bits.float_count(hist, c)
    assert floats.tolist() == [4 * t * 28 for t in range(6)]
    assert pq.bits.paper_bits(hist, c).tolist() == [32 * 4 * t * 28 for t in range(6)]
    # a frame and a method work too
    assert pq.bits.float_count(hist.to_frame(), c).tolist() == floats.tolist()
    assert pq.bits.float_count(hist, pq.methods.EF21(c)).tolist() == floats.tolist()


def test_randk_identity_and_mismatch(prob):
    h = pq.simulate(prob, pq.methods.DCGD(pq.RandK(k=10)), n_workers=3, rounds=2, lr=0.1, key=0)
    assert pq.bits.float_count(h, pq.RandK(k=10)).tolist() == [0, 30, 60]
    assert pq.bits.floats_per_message(pq.Identity(), 100) == 100
    with pytest.raises(ValueError, match="do not match"):
        pq.bits.float_count(h, pq.RandK(k=11))
    with pytest.raises(TypeError, match="papers' unit"):
        pq.bits.float_count(h, pq.QSGD(levels=4))
    with pytest.raises(TypeError, match="History"):
        pq.bits.float_count([1, 2], pq.RandK(k=10))


def test_per_worker_compressors_dagc(prob):
    parts = pq.data.partition(200, 4, scheme="size_skew", skew=10, key=0)
    sizes = [len(p) for p in parts]
    method = pq.methods.DAGC(mean=0.2)
    hist = pq.simulate(prob, method, n_workers=4, rounds=3, lr=0.1, partition=parts, key=0)
    ks = [c.k for c in method.compressors_for(sizes, 100)]
    assert sum(ks) == 4 * 20  # the uniform budget
    want = [t * sum(ks) for t in range(4)]
    assert pq.bits.float_count(hist, method, sizes=sizes).tolist() == want
    assert pq.bits.float_count(hist, method.compressors_for(sizes, 100)).tolist() == want
    with pytest.raises(ValueError, match="per-worker compressors need a History"):
        pq.bits.float_count(hist.to_frame(), method.compressors_for(sizes, 100))
    with pytest.raises(ValueError, match="whole number"):
        pq.bits.float_count(hist, [pq.TopK(k=k + 1) for k in ks])

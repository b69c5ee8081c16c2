"""blockwise(compressor, blocks): layer-wise compression (issue: deep-learning workloads).

The reference is the definition: block b of the output is the block's compressor applied to
x_b with key.block(b), and the bits are the sum of the blocks' bits. Every registry
configuration is held to it, so a blockwise kernel that mixed up offsets, keys or sections
fails here.
"""
import os
import pickle
import sys

import numpy as np
import pytest

import pyqsgd as pq
from registry import CONFIGS, index_bits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from python_stages_lib import NumpyRandK, NumpyTopK  # noqa: E402

BLOCKS = [7, 1, 12, 20]  # a bias-sized block of 1 among weight-sized ones; sum 40


def vec(d, seed=0):
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def by_definition(c, blocks, x, key):
    """Concatenation of the blocks compressed one by one (``c`` one compressor, or one per
    block), and the sum of their bits."""
    cs = c if isinstance(c, list) else [c] * len(blocks)
    out, bits, o = [], 0, 0
    for b, (cb, n) in enumerate(zip(cs, blocks)):
        m = cb.compress(x[o:o + n], key=key.block(b))
        out.append(cb.decompress(m))
        bits += m.bits
        o += n
    return np.concatenate(out), bits


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_matches_the_definition_for_every_registry_compressor(cfg):
    blocks = [max(n, cfg.min_d) for n in BLOCKS]
    x = vec(sum(blocks), seed=3)
    key = pq.Key(seed=11, round=4, worker=2)
    c = pq.blockwise(cfg.make(), blocks)
    msg = c.compress(x, key=key)
    want, want_bits = by_definition(cfg.make(), blocks, x, key)
    np.testing.assert_array_equal(c.decompress(msg), want)
    assert msg.bits == want_bits == sum(cfg.bits(n) for n in blocks)
    again = pq.Message.from_bytes(msg.to_bytes())
    np.testing.assert_array_equal(c.decompress(again, d=sum(blocks)), want)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_constants_are_max_omega_and_min_delta_over_blocks(cfg):
    blocks = [max(n, cfg.min_d) for n in BLOCKS]
    p = pq.blockwise(cfg.make(), blocks).properties(sum(blocks))
    assert p.unbiased == cfg.unbiased
    if cfg.unbiased and cfg.omega is not None:
        assert p.omega == pytest.approx(max(cfg.omega(n) for n in blocks), rel=1e-12)
    if not cfg.unbiased and cfg.delta is not None:
        assert p.delta == pytest.approx(min(cfg.delta(n) for n in blocks), rel=1e-12)
    if cfg.unbiased:
        assert p.delta is None
    else:
        assert p.omega is None


@pytest.mark.parametrize("make", [
    lambda: pq.blockwise(pq.TopK(ratio=0.25), [8, 3, 21]),
    lambda: pq.blockwise(pq.QSGD(levels=2), [8, 3, 21]),
    lambda: pq.blockwise(pq.RandK(ratio=0.5), [8, 4, 20]),
    lambda: pq.induced(pq.blockwise(pq.TopK(k=1), [8, 3, 21]), pq.blockwise(pq.Natural(), [8, 3, 21])),
    lambda: pq.chain(pq.blockwise(pq.RandK(k=2), [8, 4, 20]), pq.QSGD(levels=4)),
    lambda: pq.blockwise([pq.TopK(k=2), pq.ScaledSign(), pq.TopK(ratio=0.1)], [8, 3, 21]),
], ids=["TopK", "QSGD", "RandK", "induced", "chain-RandK-QSGD", "mixed"])
def test_check_compressor_accepts_the_derived_constants(make):
    pq.testing.check_compressor(make(), d=32, trials=1000, key=5)


def test_a_wrong_declared_constant_is_caught():
    # Blockwise TopK's delta is the worst block's k/n; declaring the global k/d instead is wrong
    # on a vector whose mass sits in the big block.
    class Optimistic(pq.Blockwise):
        def properties(self, d):
            return pq.Properties(False, None, 3 / 32)  # the global k/d for k = 3 kept in all

    c = Optimistic(pq.TopK(k=1), [2, 10, 20])  # min delta = 1/20 < 3/32
    x = np.zeros(32, np.float32)
    x[12:32] = 1.0
    with pytest.raises(AssertionError, match="delta"):
        pq.testing.check_compressor(c, vectors=[x], trials=1000, key=1)


def test_chain_of_blockwise_selection_quantizes_all_kept_values_together():
    blocks = [6, 10, 16]
    x = vec(32, seed=5)
    key = pq.Key(seed=2)
    sel = pq.blockwise(pq.TopK(ratio=0.25), blocks)
    c = pq.chain(sel, pq.QSGD(levels=8))
    kept = np.flatnonzero(sel(x, key=key))
    assert len(kept) == 2 + 3 + 4  # round(0.25 n) per block, halves up
    y = c(x, key=key)
    assert set(np.flatnonzero(y)) <= set(kept)
    q = pq.QSGD(levels=8).decompress(pq.QSGD(levels=8).compress(x[kept], key=key.child(1)))
    np.testing.assert_array_equal(y[kept], q)
    msg = c.compress(x, key=key)
    assert msg.bits == sel.compress(x, key=key).bits - 32 * len(kept) + pq.QSGD(levels=8).compress(x[kept]).bits


def test_topk_keeps_k_per_layer_not_globally():
    x = np.array([10, 9, 8, 0.1, 0.2, 0.3], np.float32)
    assert pq.blockwise(pq.TopK(k=1), [3, 3])(x).tolist() == pytest.approx([10, 0, 0, 0, 0, 0.3])
    assert pq.TopK(k=2)(x).tolist() == pytest.approx([10, 9, 0, 0, 0, 0])


def test_qsgd_sends_one_norm_per_block():
    blocks = [5, 9, 2]
    msg = pq.blockwise(pq.QSGD(levels=4), blocks).compress(vec(16))
    assert msg.bits == 3 * 32 + 16 * (1 + 3)


def test_python_stages_work_per_block_and_match_native():
    blocks = [9, 15, 16]
    x = vec(40, seed=8)
    key = pq.Key(seed=4, round=1)
    py = pq.blockwise(NumpyTopK(k=3), blocks)
    native = pq.blockwise(pq.TopK(k=3), blocks)
    np.testing.assert_array_equal(py(x, key=key), native(x, key=key))
    mixed = pq.blockwise([NumpyRandK(k=2), pq.QSGD(levels=2), NumpyTopK(k=4)], blocks)
    want, bits = by_definition(mixed.compressor, blocks, x, key)
    msg = mixed.compress(x, key=key)
    np.testing.assert_array_equal(mixed.decompress(msg), want)
    assert msg.bits == bits


def test_blocks_have_independent_randomness():
    # Equal blocks of equal data under one key must not repeat each other's draws.
    x = np.tile(vec(50, seed=1), 4)
    y = pq.blockwise(pq.RandK(k=5), [50] * 4)(x, key=3)
    supports = {tuple(np.flatnonzero(y[i * 50:(i + 1) * 50])) for i in range(4)}
    assert len(supports) == 4


def test_deterministic_at_any_thread_count():
    c = pq.induced(pq.blockwise(pq.TopK(ratio=0.01), [40_000, 25_000, 35_000]), pq.blockwise(pq.QSGD(levels=2),
                                                                                        [40_000, 25_000, 35_000]))
    x = vec(100_000, seed=9)
    out = []
    for n in (1, 2, 4):
        with pq.threads(n):
            out.append(c.compress(x, key=7).to_bytes())
    assert out[0] == out[1] == out[2]


def test_params_repr_pickle_and_grid_names():
    c = pq.blockwise(pq.TopK(k=2), blocks=(4, 6))
    assert repr(c) == "blockwise(TopK(k=2), blocks=[4, 6])"
    assert eval(repr(c), vars(pq)) == c
    assert pickle.loads(pickle.dumps(c)) == c
    assert c.get_params()["compressor__k"] == 2
    c.set_params(compressor__k=3)
    assert c.compress(vec(10)).bits == 32 * 3 + index_bits(3, 4) + 32 * 3 + index_bits(3, 6)
    mixed = pq.blockwise([pq.TopK(k=1), pq.Sign()], [3, 5])
    assert eval(repr(mixed), vars(pq)) == mixed


def test_blocks_accept_numpy_and_torch_shapes():
    assert pq.blockwise(pq.Sign(), np.array([3, 4], np.int64)).sizes == [3, 4]


def test_message_of_another_block_layout_is_refused():
    x = vec(10)
    msg = pq.blockwise(pq.TopK(k=1), [4, 6]).compress(x)
    with pytest.raises(ValueError, match="not produced by this compressor"):
        pq.blockwise(pq.TopK(k=1), [6, 4]).decompress(msg)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(compressor=pq.TopK(k=5), blocks=[3, 5]), ValueError, r"block 0 \(size 3\).*k must be"),
    (dict(compressor=pq.TopK(k=1), blocks=[2, 0]), ValueError, r"blocks\[1\] must be >= 1"),
    (dict(compressor=pq.TopK(k=1), blocks=[]), ValueError, "at least one block"),
    (dict(compressor=pq.TopK(k=1), blocks=[2.0, 3]), TypeError, r"blocks\[0\] must be an int"),
    (dict(compressor=pq.TopK(k=1), blocks=[True, 3]), TypeError, r"blocks\[0\] must be an int"),
    (dict(compressor=pq.TopK(k=1), blocks=5), TypeError, "sequence of positive ints"),
    (dict(compressor="TopK", blocks=[2]), TypeError, "pyqsgd compressor"),
    (dict(compressor=[pq.TopK(k=1)] * 3, blocks=[2, 2]), ValueError, "3 compressors for 2 blocks"),
])
def test_bad_parameters(kw, exc, match):
    with pytest.raises(exc, match=match):
        pq.blockwise(**kw)


def test_blocks_that_do_not_sum_to_d():
    with pytest.raises(ValueError, match="blocks sum to 8 but x has d=9"):
        pq.blockwise(pq.Sign(), [3, 5]).compress(np.ones(9))


def test_runs_in_methods():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 12)).astype(np.float32)
    y = np.where(A[:, 0] > 0, 1.0, -1.0).astype(np.float32)
    prob = pq.problems.LogisticRegression(A, y, l2=1e-3)
    blocks = [5, 1, 6]
    for m in (pq.methods.EF21(pq.blockwise(pq.TopK(k=1), blocks)),
              pq.methods.DIANA(pq.blockwise(pq.QSGD(levels=2), blocks)),
              pq.methods.DCGD(pq.induced(pq.blockwise(pq.TopK(k=1), blocks), pq.blockwise(pq.RandK(k=1), blocks)))):
        h = pq.simulate(prob, m, n_workers=4, rounds=60, lr=0.5, key=1)
        df = h.to_frame()
        assert df.loss.iloc[-1] < df.loss.iloc[0]
        assert df.bits_up.iloc[1] > 0

"""Parity with the NumPy reference twins (pyqsgd.reference): same draws, same sections bit for
bit (indices, codes, scales, packing), same decoded vector."""
import numpy as np
import pytest
from registry import CONFIGS, IDS

import pyqsgd as pq
from pyqsgd import reference

# Inputs that stress the kernels' corners: mixed scales and signs, exact ties, zeros and
# -0.0, subnormals, several blocks of 16384 with a ragged tail (norm summation order).


def inputs():
    rng = np.random.default_rng(2024)
    out = {
        "normal-1000": rng.standard_normal(1000),
        "lognormal-257": rng.standard_normal(257) * np.exp(2 * rng.standard_normal(257)),
        "ties-64": rng.integers(-3, 4, 64),
        "signed-zeros-40": np.where(rng.random(40) < 0.5, -0.0, 0.0) + np.where(rng.random(40) < 0.3, 1.0, 0.0),
        "subnormal-33": rng.standard_normal(33) * 1e-39,
        "blocks-40000": rng.standard_normal(40_000),
        "one-hot-50": np.eye(1, 50, 7)[0],
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


INPUTS = inputs()


@pytest.fixture(params=CONFIGS, ids=IDS)
def cfg(request):
    return request.param


@pytest.mark.parametrize("name", list(INPUTS))
def test_sections_and_output_match_twin(cfg, name):
    x = INPUTS[name]
    if x.size < cfg.min_d:
        pytest.skip("d below the configuration's k")
    c = cfg.make()
    for key in (0, pq.Key(seed=99, round=3, worker=5, stream=2)):
        msg = c.compress(x, key=key)
        twin = reference.compress(c, x, key=key)
        got = reference.sections_of(msg)
        assert [b for b, _ in got] == [b for b, _ in twin.sections]
        for (_, w_kernel), (_, w_twin) in zip(got, twin.sections):
            np.testing.assert_array_equal(w_kernel, w_twin)  # codes, indices, scales: exact
        # Decoding repeats the twin's float32 arithmetic (one product or sum per value), so the
        # decoded vectors agree exactly as well; allclose would hide a wrong rounding order.
        np.testing.assert_array_equal(c.decompress(msg), twin.y)


def test_uniform_draws_match_definition():
    # (u32 >> 8) 2^-24 as float32, draw j = lane j % 4 of Philox block j / 4.
    key = pq.Key(seed=5, round=1, worker=2, stream=3)
    u = pq._core.philox_u32(key, 0, 12)
    np.testing.assert_array_equal(reference._draws.uniform(key, 12), (u >> 8).astype(np.float32) / 2**24)
    np.testing.assert_array_equal(pq._core.philox_u32(key, 5, 7), u[5:])  # draws are addressed


@pytest.mark.parametrize("key, first, expected", [
    # Random123 known-answer vectors for Philox4x32-10 (kat_vectors): counter (c0..c3) =
    # (block, stream, worker, round), key = (low, high) 32 bits of the seed.
    (pq.Key(seed=0), 0, [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    (pq.Key(seed=2**64 - 1, round=2**32 - 1, worker=2**32 - 1, stream=2**32 - 1), 4 * (2**32 - 1),
     [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (pq.Key(seed=0x299F31D0A4093822, round=0x03707344, worker=0x13198A2E, stream=0x85A308D3), 4 * 0x243F6A88,
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
])
def test_philox_known_answers(key, first, expected):
    assert pq._core.philox_u32(key, first, 4).tolist() == expected


def test_vectorised_draws_equal_scalar_draws_across_blocks():
    # The kernels draw 16 at a time (SIMD); philox_u32 is the scalar definition. A TernGrad
    # message of a constant vector keeps coordinate j iff uniform_j < 1, i.e. always -- so use
    # |x_j| = 1/2: kept iff u_j < 1/2 iff the draw's top bit is 0.
    d = 16 * 1000 + 3
    x = np.full(d, 0.5, np.float32)
    x[0] = 1.0  # the scale s = max |x| = 1
    y = pq.TernGrad()(x, key=77)
    top = pq._core.philox_u32(pq.Key(seed=77), 0, d) >> 31
    np.testing.assert_array_equal(y[1:] != 0, top[1:] == 0)


def test_chain_and_induced_use_child_keys():
    x = INPUTS["normal-1000"]
    key = pq.Key(seed=4)
    y = pq.induced(pq.TopK(k=10), pq.RandK(k=10))(x, key=key)
    first = pq.TopK(k=10)(x, key=key.child(0))
    second = pq.RandK(k=10)(x - first, key=key.child(1))
    np.testing.assert_array_equal(y, first + second)
    assert key.child(0).stream == 1 and key.child(1).stream == 2 and key.child(1).child(0).stream == 5

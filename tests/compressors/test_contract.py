"""Contract every compressor in the registry must meet (STYLE.md "Tests")."""
import pickle

import numpy as np
import pytest
from registry import CONFIGS, IDS, RANDOM, index_bits, qsgd_width

import pyqsgd as pq

D = 40  # small enough for speed, > every min_d, not a power of two


def vec(d, seed=0):
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


@pytest.fixture(params=CONFIGS, ids=IDS)
def cfg(request):
    return request.param


@pytest.mark.parametrize("d", [D, 64, 1000])
def test_shape_dtype_and_exact_bits(cfg, d):
    c = cfg.make()
    msg = c.compress(vec(d), key=1)
    y = c.decompress(msg)
    assert y.dtype == np.float32 and y.shape == (d,)
    assert np.all(np.isfinite(y))
    assert msg.bits == cfg.bits(d) == sum(msg.section_bits)
    assert msg.d == d


def test_decoded_vectors_are_float32_whatever_the_input_dtype(cfg):
    """The documented rule (pq.Compressor.compress): the input is converted once to float32, the
    wire is float32, and decompress / __call__ return float32 for float64, integer, float16 and
    list input alike, exactly as for the same values given as float32."""
    c = cfg.make()
    rng = np.random.default_rng(13)
    x64 = rng.standard_normal(D) * 3  # float64, not exactly representable in float32
    ints = rng.integers(-50, 50, D)
    half = x64.astype(np.float16)
    for x, as32 in [(x64, x64.astype(np.float32)), (ints, ints.astype(np.float32)),
                    (ints.astype(np.int32), ints.astype(np.float32)), (ints.tolist(), ints.astype(np.float32)),
                    (x64.tolist(), x64.astype(np.float32)), (half, half.astype(np.float32))]:
        msg = c.compress(x, key=14)
        assert msg == c.compress(as32, key=14)
        y = c.decompress(msg)
        assert y.dtype == np.float32 and y.shape == (D,)
        called = c(x, key=14)
        assert called.dtype == np.float32
        np.testing.assert_array_equal(called, c(as32, key=14))


def test_python_compressor_output_is_float32_too():
    class Half(pq.Compressor):
        def __init__(self):
            pass

        def encode(self, x, rng):
            assert x.dtype == np.float32  # what encode is given, whatever the caller passed
            return x.astype(np.float16).tobytes()

        def decode(self, data, d):
            return np.frombuffer(data, np.float16, count=d).astype(np.float32)

        def properties(self, d):
            return pq.Properties(unbiased=False, omega=None, delta=1 - 2.0**-22)

    for x in (np.array([1.0, -2.5, 3.0]), np.array([1, -2, 3]), [1, -2.5, 3]):
        y = Half()(x, key=0)
        assert y.dtype == np.float32 and y.tolist() == list(np.asarray(x, np.float32))


def test_minimal_dimension(cfg):
    d = cfg.min_d
    c = cfg.make()
    y = c(vec(d, 3), key=2)
    assert y.shape == (d,) and c.compress(vec(d, 3), key=2).bits == cfg.bits(d)


def test_zero_in_zero_out(cfg):
    c = cfg.make()
    y = c(np.zeros(D, np.float32), key=3)
    if cfg.id in ("Sign", "chain-Identity-Sign"):  # sign(0) = +1 by definition
        np.testing.assert_array_equal(y, np.ones(D, np.float32))
    else:
        np.testing.assert_array_equal(y, np.zeros(D, np.float32))


def test_repr_round_trips_and_pickles(cfg):
    c = cfg.make()
    again = eval(repr(c), vars(pq))  # noqa: S307 - the contract is exactly this
    assert again == c and repr(again) == repr(c)
    x = vec(D)
    assert again.compress(x, key=4) == c.compress(x, key=4)
    restored = pickle.loads(pickle.dumps(c))
    assert restored == c
    np.testing.assert_array_equal(restored(x, key=4), c(x, key=4))


def test_wire_round_trip(cfg):
    c = cfg.make()
    msg = c.compress(vec(D), key=5)
    back = pq.Message.from_bytes(msg.to_bytes())
    assert back == msg and back.bits == msg.bits and back.section_bits == msg.section_bits
    np.testing.assert_array_equal(c.decompress(back), c.decompress(msg))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(msg)).to_bytes(), msg.to_bytes())


def test_decompress_into_out(cfg):
    c = cfg.make()
    msg = c.compress(vec(D), key=6)
    out = np.full(D, np.nan, np.float32)
    assert c.decompress(msg, out=out) is out
    np.testing.assert_array_equal(out, c.decompress(msg))


def test_same_key_same_bytes_at_any_thread_count(cfg):
    # d spans 7 blocks of 16384, so threads really split the work; the last block is ragged.
    x = vec(100_003, 7)
    c = cfg.make()
    with pq.threads(1):
        one = c.compress(x, key=8)
        y1 = c.decompress(one)
    with pq.threads(2):
        two = c.compress(x, key=8)
        y2 = c.decompress(two)
    assert one.to_bytes() == two.to_bytes()
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("cfg", RANDOM, ids=[c.id for c in RANDOM])
def test_different_keys_differ(cfg):
    c = cfg.make()
    x = vec(1000, 9)
    a, b = c(x, key=10), c(x, key=11)
    assert not np.array_equal(a, b)
    # every field of the key addresses a different stream
    base = pq.Key(seed=10)
    for other in (pq.Key(seed=10, round=1), pq.Key(seed=10, worker=1), pq.Key(seed=10, stream=1)):
        assert not np.array_equal(c(x, key=base), c(x, key=other))


DETERMINISTIC = [c for c in CONFIGS if not c.random]


@pytest.mark.parametrize("cfg", DETERMINISTIC, ids=[c.id for c in DETERMINISTIC])
def test_deterministic_compressors_ignore_key(cfg):
    c = cfg.make()
    x = vec(D, 12)
    np.testing.assert_array_equal(c(x, key=1), c(x, key=2))


def test_properties_match_declared_theory(cfg):
    for d in (cfg.min_d, D, 1000):
        p = cfg.make().properties(d)
        assert p.unbiased is cfg.unbiased
        if cfg.omega is None:
            assert p.omega is None
        else:
            assert p.omega == pytest.approx(cfg.omega(d), rel=1e-12, abs=1e-15)
        if cfg.delta is not None:
            assert p.delta == pytest.approx(cfg.delta(d), rel=1e-12)


def test_get_set_params_nested():
    c = pq.chain(pq.TopK(k=3), pq.QSGD(levels=4))
    params = c.get_params()
    assert params["a__k"] == 3 and params["b__levels"] == 4
    c.set_params(b__levels=8, a__k=4)
    assert repr(c) == "chain(TopK(k=4), QSGD(levels=8))"
    assert c.compress(vec(D), key=0).bits == index_bits(4, D) + 32 + 4 * qsgd_width(8)
    with pytest.raises(ValueError, match="levels"):
        c.set_params(b__levels=0)

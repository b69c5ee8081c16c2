"""What makes a compressor written in Python run where a native one does.

A subclass of :class:`pyqsgd.Compressor` that implements ``encode(x, rng) -> bytes``,
``decode(data, d) -> float32 array`` and ``properties(d) -> Properties`` is wrapped in a native
adapter (``_core.PythonCompressor``): chain, induced, every method, the simulator and the DDP
hook call it like a built-in, with the GIL taken for each callback. This module holds the
callbacks the adapter makes (``_pyqsgd_*`` on the base class delegate here): they build the
key-derived generator and check everything user code returns, so a mistake is a TypeError or
ValueError that names the class, the method and the fix, never a crash or a wrong answer.
"""
from __future__ import annotations

import math
import numbers
import re
import threading

import numpy as np

__all__ = ["generator_for"]

# Philox key word 1: a constant ("pyqsgd-p") that sets these streams apart from any Philox a
# user seeds with a plain int (NumPy's SeedSequence fills both key words from the seed).
_KEY_TAG = 0x7079717367642D70
_local = threading.local()


def _state(seed, rnd, worker, stream):
    # Counter word 0 counts the draws; the address (round, worker, stream) fills words 1-2, so
    # streams never overlap (2^64 draws each); the seed is Philox key word 0.
    return {"bit_generator": "Philox",
            "state": {"counter": np.array([0, (rnd & 0xFFFFFFFF) | ((worker & 0xFFFFFFFF) << 32), stream, 0],
                                          dtype=np.uint64),
                      "key": np.array([seed, _KEY_TAG], dtype=np.uint64)},
            "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}


def generator_for(key):
    """The ``numpy.random.Generator`` a Python compressor's ``encode`` receives for ``key``.

    A pure function of the key (seed, round, worker, stream): Philox4x64-10 with key
    ``[seed, 0x7079717367642D70]`` and counter ``[0, round + 2^32 worker, stream, 0]``. The same
    key gives the same draws at any thread count, in any process, on any machine.

    >>> import pyqsgd as pq
    >>> a = pq.generator_for(pq.Key(seed=1, round=2)).random(3)
    >>> b = pq.generator_for(pq.Key(seed=1, round=2)).random(3)
    >>> bool((a == b).all())
    True
    """
    from ._validate import as_key

    k = as_key(key)
    gen = _KeyedGenerator(np.random.Philox(0))
    object.__getattribute__(gen, "__dict__")["_pending"] = (k.seed, k.round, k.worker, k.stream)
    return gen


_getattr = np.random.Generator.__getattribute__


class _KeyedGenerator(np.random.Generator):
    """The Generator a callback receives: its stream is set to the message key on first use, so
    a compressor that draws nothing (TopK, a deterministic quantizer) pays nothing for it.
    ``spawn`` derives its children from the key too (not from the bit generator's seed)."""

    def __getattribute__(self, name):
        d = object.__getattribute__(self, "__dict__")
        key = d.get("_pending")
        if key is not None:
            d["_pending"] = None
            d["_key"] = key
            _getattr(self, "bit_generator").state = _state(*key)
        return _getattr(self, name)

    def spawn(self, n_children):
        """n independent generators derived from this message's key (child i: SeedSequence of
        the key with spawn key (i,)), the same in every process."""
        self.bit_generator  # noqa: B018 - resolves a pending key
        key = object.__getattribute__(self, "__dict__")["_key"]
        root = np.random.SeedSequence([*key, _KEY_TAG])
        return [np.random.Generator(np.random.Philox(s)) for s in root.spawn(int(n_children))]


def lease(seed, rnd, worker, stream):
    """A per-thread generator for one callback, from a pool: a user encode that calls another
    Python compressor gets a second one, so the outer stream is not disturbed. Give it back
    with :func:`release`."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = []
    if pool:
        gen, d = pool.pop()
    else:
        gen = _KeyedGenerator(np.random.Philox(0))  # fixed seed: its state is always overwritten
        d = object.__getattribute__(gen, "__dict__")
    d["_pending"] = (seed, rnd, worker, stream)
    return gen, d, pool


def release(leased):
    gen, d, pool = leased
    pool.append((gen, d))


def _where(c, method):
    return f"{type(c).__name__}.{method}"


def as_payload(c, data, method="encode"):
    """The bytes a user encode/select returned (bytes-like is accepted and copied)."""
    if type(data) is bytes:
        return data
    if isinstance(data, np.bytes_):  # NumPy drops trailing zero bytes from these: data would be lost
        raise TypeError(f"{_where(c, method)} returned numpy.bytes_, which drops trailing zero bytes; "
                        "return array.tobytes() (plain bytes)")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{_where(c, method)} must return bytes (the payload on the wire), got {type(data).__name__}; "
                    "return e.g. array.tobytes()")


def as_decoded(c, y, d, method="decode"):
    """A user decode's output as a contiguous float32 vector of length d, or a clear error."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{_where(c, method)} must return a float32 NumPy array of length d={d}, "
                        f"got {type(y).__name__}")
    y = np.asarray(y)  # a subclass (masked array, matrix) as the plain data it holds
    if y.dtype != np.float32:
        raise TypeError(f"{_where(c, method)} must return float32 values (decoded vectors are float32, as on the "
                        f"wire), got dtype {y.dtype}; return y.astype(np.float32)")
    if y.shape != (d,):
        raise ValueError(f"{_where(c, method)} must return shape ({d},) for d={d}, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{_where(c, method)} returned NaN or Inf for d={d}; a decoded vector must be finite "
                         "(a malformed payload should raise ValueError instead)")
    return np.ascontiguousarray(y)


def as_indices(c, idx, d, method):
    """Kept coordinates of a selecting stage: None (all kept) or strictly increasing ints in [0, d)."""
    if idx is None:
        return None
    a = np.asarray(idx)
    if a.ndim != 1 or a.dtype == bool or a.dtype.kind not in "iu":
        raise TypeError(f"{_where(c, method)} must give the kept coordinates as a 1-D integer array (or None for "
                        f"all), got {type(idx).__name__} of dtype {getattr(a, 'dtype', '?')}")
    a = a.astype(np.int64, copy=False)
    if a.size and (a[0] < 0 or a[-1] >= d or np.any(np.diff(a) <= 0)):
        raise ValueError(f"{_where(c, method)}: kept coordinates must be strictly increasing and in [0, {d})")
    return a


def check_properties(c, p, d):
    """(unbiased, omega, delta) of a declared Properties, or a ValueError naming the constant."""
    from .compressors import Properties

    where = f"{_where(c, 'properties')}({d})"
    if not isinstance(p, Properties):
        raise TypeError(f"{where} must return pyqsgd.Properties(unbiased=..., omega=..., delta=...), "
                        f"got {type(p).__name__}")
    if not isinstance(p.unbiased, (bool, np.bool_)):
        raise TypeError(f"{where}: unbiased must be a bool, got {p.unbiased!r}")
    omega, delta = p.omega, p.delta
    for name, v in (("omega", omega), ("delta", delta)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)):
            raise ValueError(f"{where}: {name} must be a finite number or None, got {v!r}")
    if omega is not None and omega < 0:
        raise ValueError(f"{where}: omega must be >= 0 (E||C(x) - x||^2 <= omega ||x||^2), got omega={omega}")
    if omega is not None and not p.unbiased:
        raise ValueError(f"{where}: omega is the variance constant of an unbiased compressor, U(omega); a biased "
                         f"one declares delta (B(delta)) or neither, got omega={omega} with unbiased=False")
    if delta is not None and not 0.0 < delta <= 1.0:
        raise ValueError(f"{where}: delta must be in (0, 1] (E||C(x) - x||^2 <= (1 - delta) ||x||^2), "
                         f"got delta={delta}")
    return bool(p.unbiased), None if omega is None else float(omega), None if delta is None else float(delta)


def is_python_defined_class(t):
    """True for a Compressor subclass that implements the Python protocol (encode or select)."""
    from .compressors import Compressor

    return t.encode is not Compressor.encode or getattr(t, "select", None) is not None


def is_python_defined(c):
    return is_python_defined_class(type(c))


def is_selector(c):
    t = type(c)
    return callable(getattr(t, "select", None)) and callable(getattr(t, "selection", None))


def declared_unbiased(c):
    """Whether a Python compressor declares itself unbiased. Unbiasedness must not depend on d;
    pyqsgd asks ``properties(64)`` where it needs the answer without a dimension (induced's
    second stage, DIANA), or ``properties(4096)`` when d = 64 is out of the parameters' range."""
    try:
        p = c.properties(64)
    except (ValueError, TypeError):
        p = c.properties(4096)
    return check_properties(c, p, 64)[0]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def native_adapter(c):
    """A fresh native adapter holding ``c``. Its arguments (the repr, which is the message
    fingerprint, and the declared unbiasedness) are computed once and cached on ``c`` until
    ``set_params``; the adapter itself is not cached (see ``Compressor._native``)."""
    from . import _core
    from .compressors import Compressor

    args = c.__dict__.get("_adapter_args")
    if args is None:
        if not is_python_defined(c):
            raise TypeError(f"{type(c).__name__} has no native kernel: a Python compressor implements "
                            "encode(self, x, rng) -> bytes, decode(self, data, d) -> float32 array and "
                            "properties(self, d) -> pyqsgd.Properties")
        name = repr(c)
        if _ADDRESS.search(name):
            raise TypeError(f"{type(c).__name__}: its repr {name!r} contains a memory address; the repr is the "
                            "message fingerprint, so it must be the same in every process: give the parameter "
                            "a stable repr (numbers, strings, lists, or a pyqsgd object)")
        # The adapter calls decode directly (its output is checked natively; as_decoded explains
        # a rejected one); a selecting stage without its own decode uses the base class's.
        selection_decode = type(c).decode is Compressor.decode and is_selector(c)
        args = (name, declared_unbiased(c), is_selector(c), "_pyqsgd_decode" if selection_decode else "decode")
        c.__dict__["_adapter_args"] = args
    return _core.PythonCompressor(c, *args)

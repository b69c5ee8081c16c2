"""Conversions and checks at the Python boundary (done once, visibly)."""
from __future__ import annotations

import inspect
import numbers

import numpy as np

from . import _core

__all__ = ["as_vector", "as_key", "check_int", "check_float"]


def as_vector(x, name="x"):
    """Returns ``x`` as a contiguous 1-D float32 array (float64 and integers are converted)."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1 and x.flags.c_contiguous and x.size:
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor: view it through NumPy
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name} must be a 1-D numeric array, got {type(x).__name__}") from e
    if arr.dtype == bool or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array (float32, float64 or integer), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}; flatten it first (x.ravel())")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        big = float(np.max(np.abs(arr)))  # NaN/Inf pass through: the kernel names them
        if np.isfinite(big) and big > float(np.finfo(np.float32).max):
            raise ValueError(f"{name} has values up to {big:.3g}, beyond float32 (3.4e38); rescale {name}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_key(key, name="key"):
    """An int seed (>= 0) or a ``Key`` becomes a native ``Key``."""
    if isinstance(key, _core.Key):
        return key
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative int seed or a pyqsgd.Key, got {key!r}")
    key = int(key)
    if key < 0 or key >= 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {key}")
    return _core.Key(seed=key)


def check_int(owner, name, value, low=None, high=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{owner}: {name} must be >= {low}, got {name}={value}")
    if high is not None and value > high:
        raise ValueError(f"{owner}: {name} must be <= {high}, got {name}={value}")
    return value


def check_float(owner, name, value, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{owner}: {name} must be {'>' if low_open else '>='} {low}, got {name}={value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{owner}: {name} must be {'<' if high_open else '<='} {high}, got {name}={value}")
    return value


# ---- the native Key and Message, guarded at the Python boundary --------------------------------
# pybind11 reports a wrong argument as "incompatible function arguments" followed by the whole
# signature, without saying which argument is wrong (and a negative seed is a TypeError there).
# The native methods are wrapped once, here, so that every caller gets a TypeError/ValueError
# naming the parameter. pq.Key stays the native class (isinstance, pickling and the objects the
# core returns are unchanged); only the checks run in Python first.

_FIELD_BITS = {"seed": 64, "round": 32, "worker": 32, "stream": 32}


def _key_field(owner, name, value, bits):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int in [0, 2**{bits}), got {value!r}")
    value = int(value)
    if not 0 <= value < 2**bits:
        raise ValueError(f"{owner}: {name} must be in [0, 2**{bits}), got {name}={value}")
    return value


def _guard_core():
    key_cls, msg_cls = _core.Key, _core.Message
    if getattr(key_cls, "_pyqsgd_guarded", False):  # a module reload must not wrap twice
        return
    native_init, native_child, native_block = key_cls.__init__, key_cls.child, key_cls.block
    native_from_bytes = msg_cls.from_bytes

    def __init__(self, *args, seed=0, round=0, worker=0, stream=0):
        if args:
            raise TypeError(f"Key: takes keyword arguments only (Key(seed=..., round=..., worker=..., "
                            f"stream=...)), got {len(args)} positional")
        values = {name: _key_field("Key", name, v, _FIELD_BITS[name])
                  for name, v in (("seed", seed), ("round", round), ("worker", worker), ("stream", stream))}
        native_init(self, **values)

    def child(self, i):
        return native_child(self, _key_field("Key.child", "i", i, 32))

    def block(self, b):
        return native_block(self, _key_field("Key.block", "b", b, 64))

    def from_bytes(data):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)  # any bytes-like buffer is read as bytes
        if not isinstance(data, bytes):
            raise TypeError(f"Message.from_bytes: data must be bytes (what to_bytes() returned), got "
                            f"{type(data).__name__}")
        try:
            return native_from_bytes(data)
        except ValueError as e:  # the native reason, with the parameter named
            text, head = str(e), "Message.from_bytes: "
            raise ValueError(head + "data is not a valid message: " + text.removeprefix(head)) from None

    kw = inspect.Parameter.KEYWORD_ONLY
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        + [inspect.Parameter(name, kw, default=0) for name in _FIELD_BITS])
    __init__.__doc__ = "Key(*, seed=0, round=0, worker=0, stream=0): seed in [0, 2**64), the others in [0, 2**32)."
    child.__doc__ = native_child.__doc__
    block.__doc__ = native_block.__doc__
    from_bytes.__doc__ = "Message.from_bytes(data): the Message that ``to_bytes()`` wrote (ValueError if malformed)."
    key_cls.__init__, key_cls.child, key_cls.block = __init__, child, block
    msg_cls.from_bytes = staticmethod(from_bytes)
    key_cls._pyqsgd_guarded = True


_guard_core()

"""Conversions and checks at the Python boundary (done once, visibly)."""
from __future__ import annotations

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

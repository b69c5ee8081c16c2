"""Baseline compressors (ALGORITHMS.md §1).

Every compressor is a parameter record wrapping a stateless native kernel:
``compress(x, key) -> Message``, ``decompress(msg) -> float32 array``,
``properties(d) -> Properties(unbiased, omega, delta)``. Randomness comes only from ``key``:
draw j of the counter-based stream addressed by (seed, round, worker, stream) decides
coordinate j, so the output is identical at any thread count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _core
from ._params import Params
from ._validate import as_key, as_vector, check_float, check_int

__all__ = ["Properties", "Compressor", "Identity", "TopK", "RandK", "Sign", "ScaledSign", "QSGD",
           "TernGrad", "Natural"]


@dataclass(frozen=True)
class Properties:
    """Theory constants (ALGORITHMS.md): unbiased U(omega) or contractive B(delta)."""

    unbiased: bool
    omega: Optional[float]
    delta: Optional[float]


class Compressor(Params):
    """Base class: a parameter record with a native kernel built on first use."""

    _derived = ("_native_obj",)

    def _build(self):  # pragma: no cover - every subclass overrides
        raise TypeError(f"{type(self).__name__} has no native kernel")

    @property
    def _native(self):
        obj = self.__dict__.get("_native_obj")
        if obj is None:
            obj = self._build()
            self.__dict__["_native_obj"] = obj
        return obj

    def compress(self, x, key=0):
        """Encodes ``x`` (1-D, converted once to float32) with randomness from ``key``."""
        return self._native.compress(as_vector(x), as_key(key))

    def decompress(self, msg, out=None):
        """Decodes a ``Message`` of this compressor into a float32 vector of length ``msg.d``.

        ``out``: optional contiguous float32 array of length ``msg.d`` to decode into (reusing
        one buffer across rounds avoids an allocation per call); it is returned.
        Raises ``ValueError`` when the message is malformed or came from another compressor.
        """
        if not isinstance(msg, _core.Message):
            raise TypeError(f"msg must be a pyqsgd.Message, got {type(msg).__name__}")
        if out is None:
            return self._native.decompress(msg)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a float32 numpy array, got {type(out).__name__}")
        self._native.decompress_into(msg, out)
        return out

    def __call__(self, x, key=0):
        """``decompress(compress(x, key))``: the compressed vector as the receiver sees it."""
        return self.decompress(self.compress(x, key))

    def properties(self, d):
        """Theory constants for dimension ``d``; omega/delta are None where no bound holds."""
        d = check_int(type(self).__name__, "d", d, low=1)
        unbiased, omega, delta = self._native.properties(d)
        return Properties(bool(unbiased), omega, delta)


class Identity(Compressor):
    """x itself. U(0); 32d bits; no randomness.

    >>> import numpy as np, pyqsgd as pq
    >>> pq.Identity().compress(np.ones(4), key=0).bits
    128
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.Identity()


class _Sparse(Compressor):
    def __init__(self, *, k=None, ratio=None):
        self.k = k
        self.ratio = ratio
        self._validate()

    def _validate(self):
        name = type(self).__name__
        if (self.k is None) == (self.ratio is None):
            raise ValueError(f"{name}: give exactly one of k and ratio (got k={self.k!r}, ratio={self.ratio!r})")
        check_int(name, "k", self.k, low=1, allow_none=True)
        check_float(name, "ratio", self.ratio, low=0.0, high=1.0, low_open=True, allow_none=True)

    def _k_ratio(self):
        return (int(self.k) if self.k is not None else 0, float(self.ratio) if self.ratio is not None else 0.0)

    def kept(self, d):
        """Number of coordinates kept for dimension d: k, or max(1, round(ratio d))."""
        return int(self.k) if self.k is not None else max(1, int(np.floor(self.ratio * d + 0.5)))


class TopK(_Sparse):
    """Keeps the k entries of largest magnitude (ties toward the smaller index).

    Definition: C(x)_j = x_j for the k largest |x_j|, else 0; ``k`` or ``ratio`` (k =
    max(1, round(ratio d))). Class B(k/d) (Stich et al. 2018), equality when all |x_j| are
    equal. Bits: 32k + min(k ceil(log2 d), d) (indices or a bitmap, whichever is smaller).
    No randomness.

    >>> import numpy as np, pyqsgd as pq
    >>> pq.TopK(k=2)(np.array([3.0, -5.0, 1.0, 4.0]), key=0).tolist()
    [0.0, -5.0, 0.0, 4.0]
    """

    def _build(self):
        k, ratio = self._k_ratio()
        return _core.TopK(k=k, ratio=ratio)


class RandK(_Sparse):
    """Uniform random k-subset S, scaled: C(x)_j = (d/k) x_j on S, else 0.

    Unbiased, U(d/k - 1) with equality for every x. The subset is drawn with Floyd's algorithm
    from the key's stream (draw i decides step i). ``shared_seed=True`` (default): the receiver
    regenerates S from the shared key, so only values are sent, 32k bits. ``shared_seed=False``:
    indices are sent too, 32k + min(k ceil(log2 d), d) bits.

    >>> import numpy as np, pyqsgd as pq
    >>> pq.RandK(k=2).compress(np.ones(10), key=0).bits
    64
    """

    def __init__(self, *, k=None, ratio=None, shared_seed=True):
        self.shared_seed = shared_seed
        super().__init__(k=k, ratio=ratio)

    def _validate(self):
        super()._validate()
        if not isinstance(self.shared_seed, (bool, np.bool_)):
            raise TypeError(f"RandK: shared_seed must be a bool, got {self.shared_seed!r}")

    def _build(self):
        k, ratio = self._k_ratio()
        return _core.RandK(k=k, ratio=ratio, shared_seed=bool(self.shared_seed))


class Sign(Compressor):
    """sign(x) with sign(0) = +1. d bits; no randomness.

    Neither unbiased nor contractive (the magnitude is lost: C(x) = sign(x) even for tiny x),
    so ``properties`` reports omega = delta = None. Used by signSGD with majority vote.
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.Sign()


class ScaledSign(Compressor):
    """(||x||_1 / d) sign(x), sign(0) = +1. d + 32 bits; no randomness.

    Contractive: ||C(x) - x||^2 = ||x||^2 - ||x||_1^2/d exactly, so C is in
    B(||x||_1^2 / (d ||x||^2)) >= B(1/d) (Karimireddy et al. 2019); ``properties`` gives 1/d.
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.ScaledSign()


class QSGD(Compressor):
    """QSGD with s = ``levels`` (Alistarh et al. 2017).

    r_j = s |x_j| / ||x||_2, l = floor(r_j); level l + 1 with probability r_j - l, else l;
    C(x)_j = ||x||_2 sign(x_j) level / s. Unbiased, U(min(d/s^2, sqrt(d)/s)).
    Bits: 32 + d (1 + ceil(log2(s + 1))). Draw j of the key's stream rounds coordinate j.
    """

    def __init__(self, *, levels):
        self.levels = levels
        self._validate()

    def _validate(self):
        check_int("QSGD", "levels", self.levels, low=1, high=2**31 - 1)

    def _build(self):
        return _core.QSGD(levels=int(self.levels))


class TernGrad(Compressor):
    """TernGrad (Wen et al. 2017): s = ||x||_inf, C(x)_j = s sign(x_j) b_j, b_j ~ Bernoulli(|x_j|/s).

    Unbiased, U((sqrt(d) - 1)/2), worst case x = (1, t, ..., t), t = 1/(sqrt(d) + 1).
    Bits: 32 + 2d. Draw j of the key's stream decides b_j.
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.TernGrad()


class Natural(Compressor):
    """Natural compression (Horváth et al. 2019): unbiased stochastic rounding to a power of two.

    For 2^a <= |x_j| < 2^(a+1): sign(x_j) 2^(a+1) with probability (|x_j| - 2^a)/2^a, else
    sign(x_j) 2^a; 0 -> 0. Unbiased, U(1/8) (worst at |x_j| = (4/3) 2^a). Bits: 9 per
    coordinate (sign + 8-bit exponent). Draw j of the key's stream rounds coordinate j.
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.Natural()

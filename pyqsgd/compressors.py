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
from . import python_stages as _stages
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
    """Base class of every compressor: a parameter record with a native kernel built on first use.

    Write your own in Python by subclassing it and implementing three methods:

    * ``encode(self, x, rng) -> bytes``: ``x`` is the contiguous float32 vector to send; ``rng``
      is a ``numpy.random.Generator`` derived only from the message key (seed, round, worker,
      stream; see :func:`pyqsgd.generator_for`), valid during the call. The bytes are the
      payload: ``msg.bits`` is 8 times their length, framed and counted as native messages are.
    * ``decode(self, data, d) -> numpy.ndarray``: the float32 vector of length d that ``data``
      encodes. Raise ``ValueError`` on malformed data.
    * ``properties(self, d) -> Properties``: the theory constants, checked by
      :func:`pyqsgd.testing.check_compressor`. Unbiasedness must not depend on d.

    To start a chain (``chain(mine, QSGD(levels=4))``) a compressor also implements
    ``select(self, x, rng) -> (bytes, indices)`` (or ``(bytes, indices, values)``; indices None
    = all kept) and ``selection(self, data, d) -> indices``. Such a class gets encode/decode for
    free: the selection then the kept values as float32.

    Parameters are declared as for the built-ins: keyword-only ``__init__`` arguments stored
    unchanged under their own names, checked in ``_validate``; repr, pickling, ``get_params``
    and ``set_params`` (and ``a__b`` names in sweeps) then work unchanged. Such an object runs
    everywhere a built-in does: compress/decompress, Message round trips, ``pq.measure``, chain
    and induced on either side, every method, ``simulate``, ``sweep`` and the DDP hook. The
    native loop calls it with the GIL held, one worker at a time; an exception raised in it
    reaches the caller as that exception.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> class Half(pq.Compressor):
    ...     # float16 values: biased, ||C(x) - x||^2 <= (2^-11)^2 ||x||^2
    ...     def __init__(self):
    ...         pass
    ...     def encode(self, x, rng):
    ...         return x.astype(np.float16).tobytes()
    ...     def decode(self, data, d):
    ...         return np.frombuffer(data, np.float16, count=d).astype(np.float32)
    ...     def properties(self, d):
    ...         return pq.Properties(unbiased=False, omega=None, delta=1 - 2.0**-22)
    >>> msg = Half().compress(np.array([1.0, -2.5, 3.0]), key=0)
    >>> msg.bits, Half().decompress(msg).tolist()
    (48, [1.0, -2.5, 3.0])
    """

    _derived = ("_native_obj", "_adapter_args")

    def _build(self):
        return _stages.native_adapter(self)

    # ---- the Python protocol (subclasses override; see the class docstring) ----------------

    def encode(self, x, rng):
        """Python compressors: the payload bytes for the float32 vector ``x``."""
        raise TypeError(f"{type(self).__name__} implements no encode(self, x, rng) -> bytes")

    def decode(self, data, d):
        """Python compressors: the float32 vector of length ``d`` that ``data`` encodes."""
        raise TypeError(f"{type(self).__name__} implements no decode(self, data, d)")

    # ---- callbacks of the native adapter (python_stages.py checks what user code returns) ---

    def _pyqsgd_encode(self, x, seed, rnd, worker, stream):
        leased = _stages.lease(seed, rnd, worker, stream)
        try:
            if type(self).encode is Compressor.encode and _stages.is_selector(self):
                data = self._encode_selection(x, leased[0])
            else:
                data = self.encode(x, leased[0])
        finally:
            _stages.release(leased)
        return data if type(data) is bytes else _stages.as_payload(self, data)

    def _pyqsgd_decode(self, data, d):
        # Used only by selecting stages without a decode of their own (see native_adapter).
        return self._decode_selection(data, d)

    def _pyqsgd_check_decoded(self, y, d):
        return _stages.as_decoded(self, y, d)

    def _pyqsgd_properties(self, d):
        return _stages.check_properties(self, self.properties(d), d)

    def _pyqsgd_select(self, x, seed, rnd, worker, stream):
        leased = _stages.lease(seed, rnd, worker, stream)
        try:
            return self._checked_select(x, leased[0])
        finally:
            _stages.release(leased)

    def _pyqsgd_selection(self, data, d):
        return _stages.as_indices(self, self.selection(data, d), d, "selection")

    def _checked_select(self, x, rng):
        as_decoded, as_indices, as_payload = _stages.as_decoded, _stages.as_indices, _stages.as_payload
        out = self.select(x, rng)
        if not isinstance(out, tuple) or len(out) not in (2, 3):
            raise TypeError(f"{type(self).__name__}.select must return (bytes, indices) or (bytes, indices, values), "
                            f"got {type(out).__name__}")
        data = as_payload(self, out[0], "select")
        idx = as_indices(self, out[1], x.size, "select")
        n = x.size if idx is None else idx.size
        values = (x if idx is None else x[idx]) if len(out) == 2 else as_decoded(self, out[2], n, "select")
        return data, idx, np.ascontiguousarray(values, dtype=np.float32)

    # A selecting stage used on its own: the selection, then the kept values as float32.
    def _encode_selection(self, x, rng):
        data, idx, values = self._checked_select(x, rng)
        return len(data).to_bytes(8, "little") + data + values.tobytes()

    def _decode_selection(self, data, d):
        as_indices = _stages.as_indices
        if len(data) < 8 or int.from_bytes(data[:8], "little") > len(data) - 8:
            raise ValueError(f"{type(self).__name__}.decompress: malformed selection payload")
        n_sel = int.from_bytes(data[:8], "little")
        idx = as_indices(self, self.selection(data[8:8 + n_sel], d), d, "selection")
        values = data[8 + n_sel:]
        n = d if idx is None else idx.size
        if len(values) != 4 * n:
            raise ValueError(f"{type(self).__name__}.decompress: {len(values)} value bytes for {n} kept coordinates "
                             "(malformed payload)")
        out = np.zeros(d, np.float32)
        v = np.frombuffer(values, np.float32)
        if idx is None:
            out[:] = v
        else:
            out[idx] = v
        if not np.isfinite(out).all():
            raise ValueError(f"{type(self).__name__}.decompress: payload decodes to NaN or Inf (malformed message)")
        return out

    @property
    def _native(self):
        # A pipeline with a Python stage is rebuilt on every use (about a microsecond: the
        # stage's repr and constants are cached until set_params): caching it here would tie
        # the object and its adapter in a cycle, and a parent would not see a stage's
        # set_params. Native pipelines are immutable and cached.
        if self._python_backed():
            return self._build()
        obj = self.__dict__.get("_native_obj")
        if obj is None:
            obj = self._build()
            self.__dict__["_native_obj"] = obj
        return obj

    def _python_backed(self):
        """True when encode/decode call back into Python (this object or a stage of it)."""
        return type(self)._is_python_defined

    _is_python_defined = False  # set per class by __init_subclass__

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        protocol = any(name in cls.__dict__ for name in ("encode", "decode", "select", "selection"))
        own_kernel = next((k for k in cls.__mro__[1:] if "_build" in k.__dict__ and k is not Compressor), None)
        if protocol and own_kernel is not None:
            raise TypeError(f"{cls.__name__}: a subclass of the built-in {own_kernel.__name__} runs its native "
                            "kernel, so its encode/decode/select would be ignored; subclass pyqsgd.Compressor "
                            "directly to write a compressor in Python")
        cls._is_python_defined = _stages.is_python_defined_class(cls)

    def compress(self, x, key=0):
        """Encodes ``x`` (1-D, converted once to float32) with randomness from ``key``.

        Dtypes: the wire is float32, so every compressor works on ``x`` as float32. float64,
        float16 and integer arrays, lists of numbers and torch tensors are accepted and
        converted once (``np.ascontiguousarray(x, dtype=np.float32)``); float32 contiguous
        input is used without a copy. Values beyond the float32 range raise ``ValueError``;
        bool, complex and non-numeric input raise ``TypeError``. What comes back from
        :meth:`decompress` (and ``__call__``) is float32 whatever the input dtype: cast it
        yourself (``y.astype(x.dtype)``) if you need float64.
        """
        return self._native.compress(as_vector(x), as_key(key))

    def decompress(self, msg, out=None, *, d=None):
        """Decodes a ``Message`` of this compressor into a float32 vector of length ``msg.d``
        (always float32, the wire's dtype, whatever dtype was given to :meth:`compress`).

        ``out``: optional contiguous float32 array of length ``msg.d`` to decode into (reusing
        one buffer across rounds avoids an allocation per call); it is returned.
        ``d``: the dimension the receiver expects; a message for another d is refused (pass it
        whenever it is known: a message's d is not otherwise redundant).
        Raises ``ValueError`` when the message is malformed or came from another compressor.
        """
        if not isinstance(msg, _core.Message):
            raise TypeError(f"msg must be a pyqsgd.Message, got {type(msg).__name__}")
        if d is not None:
            d = check_int(type(self).__name__ + ".decompress", "d", d, low=1)
        if out is None:
            return self._native.decompress(msg, d)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a float32 numpy array, got {type(out).__name__}")
        self._native.decompress_into(msg, out, d)
        return out

    def __call__(self, x, key=0):
        """``decompress(compress(x, key))``: the compressed vector as the receiver sees it, as a
        float32 array whatever the dtype of ``x`` (float64, integer and list input included).

        >>> import numpy as np, pyqsgd as pq
        >>> y = pq.TopK(k=2)(np.array([3.0, -5.0, 1.0, 4.0]))     # float64 in
        >>> y.dtype, y.tolist()
        (dtype('float32'), [0.0, -5.0, 0.0, 4.0])
        >>> pq.TopK(k=2)([3, -5, 1, 4]).dtype                     # a list of ints in
        dtype('float32')
        """
        return self.decompress(self.compress(x, key))

    def properties(self, d):
        """Theory constants for dimension ``d``; omega/delta are None where no bound holds.

        Python compressors override this and return :class:`Properties`."""
        d = check_int(type(self).__name__, "d", d, low=1, high=2**64 - 1)
        unbiased, omega, delta = self._native.properties(d)
        return Properties(bool(unbiased), omega, delta)


class Identity(Compressor):
    """Identity: C(x) = x, sent as float32.

    Constants: unbiased, U(0) (and B(1)). Bits: 32 d. Randomness: none (``key`` is ignored).
    As the first stage of ``chain`` it passes the whole vector on: ``chain(Identity(), b)`` is b.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.Identity().compress(np.ones(4), key=0).bits
    128
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.Identity()


_ROUNDINGS = ("round", "floor")


class _Sparse(Compressor):
    rounding = "round"  # class default: objects pickled before ``rounding`` existed load unchanged

    def __init__(self, *, k=None, ratio=None, rounding="round"):
        self.k = k
        self.ratio = ratio
        self.rounding = rounding
        self._validate()

    def _validate(self):
        name = type(self).__name__
        if (self.k is None) == (self.ratio is None):
            raise ValueError(f"{name}: give exactly one of k and ratio (got k={self.k!r}, ratio={self.ratio!r})")
        check_int(name, "k", self.k, low=1, high=2**64 - 1, allow_none=True)  # high: the native k is uint64
        check_float(name, "ratio", self.ratio, low=0.0, high=1.0, low_open=True, allow_none=True)
        if not isinstance(self.rounding, str) or self.rounding not in _ROUNDINGS:
            raise ValueError(f"{name}: rounding must be 'round' (k = max(1, round(ratio d))) or 'floor' "
                             f"(k = max(1, floor(ratio d)), as GRACE and EF21's code), got {self.rounding!r}")
        if self.rounding != "round" and self.k is not None:
            raise ValueError(f"{name}: rounding applies to ratio only; with k={self.k!r} leave rounding at 'round'")

    def _k_ratio(self):
        return (int(self.k) if self.k is not None else 0, float(self.ratio) if self.ratio is not None else 0.0)

    def kept(self, d):
        """Number of coordinates kept for dimension d: k, or from the ratio max(1, round(ratio d))
        (halves up; ``rounding="round"``) or max(1, floor(ratio d)) (``rounding="floor"``), with
        ratio d computed in float64 (so ratio=0.29, d=100 floors to 28, as in the peers' code)."""
        if self.k is not None:
            return int(self.k)
        prod = self.ratio * d
        return max(1, int(np.floor(prod if self.rounding == "floor" else prod + 0.5)))


class TopK(_Sparse):
    """Top-K sparsification: keeps the k entries of largest magnitude.

    Definition: C(x)_j = x_j for the k largest ``|x_j|`` (ties toward the smaller index), else 0.

    Parameters
    ----------
    k : int, optional
        Entries kept, 1 <= k <= d (checked against d at compress time).
    ratio : float, optional
        Fraction in (0, 1]; k from ``rounding``. Give exactly one of k and ratio.
    rounding : {"round", "floor"}, default "round"
        How a ``ratio`` becomes k: "round" k = max(1, round(ratio d)) with halves rounded up;
        "floor" k = max(1, floor(ratio d)). ratio d is computed in float64 either way, so
        ratio=0.29 with d=100 floors to 28 (0.29 * 100 = 28.999999999999996), as it does in
        the peers' code. Only with ``ratio`` (it is not a parameter of an explicit k). Part of
        the repr (when not the default) and of the fingerprint, so a receiver built with the
        other rounding refuses the message instead of misreading it.

    Notes
    -----
    Constants: biased, contractive B(k/d) (Stich, Cordonnier & Jaggi, NeurIPS 2018):
    ||C(x) - x||^2 <= (1 - k/d) ||x||^2, with equality when all ``|x_j|`` are equal.
    Bits: 32 k + min(k ceil(log2 d), d) (sorted indices, or a d-bit bitmap when smaller).
    Randomness: none (``key`` is ignored). A chain stage: ``chain(TopK(k=..), QSGD(levels=..))``
    quantizes the kept values, indices stay exact.

    Ties: among equal ``|x_j|`` the smaller index is kept (a total order, so the output is a
    function of x alone, identical at any thread count).

    Conventions of the peers (checked against their public code, see the README's fidelity
    table): GRACE (sands-lab/grace), Horváth & Richtárik's induced-compressor code and EF21's
    code all take k = floor(ratio d) -- ``rounding="floor"`` reproduces their k. On ties they
    keep whatever their framework's top-k (``torch.topk``) returns, which is
    framework-dependent and not in general the smaller index; pyqsgd does not imitate that.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.TopK(k=2)(np.array([3.0, -5.0, 1.0, 4.0]), key=0).tolist()
    [0.0, -5.0, 0.0, 4.0]
    >>> pq.TopK(k=2)(np.array([1.0, -1.0, 1.0]), key=0).tolist()    # ties: smaller index
    [1.0, -1.0, 0.0]
    >>> pq.TopK(ratio=0.29).kept(100), pq.TopK(ratio=0.29, rounding="floor").kept(100)
    (29, 28)
    >>> pq.TopK(ratio=0.29, rounding="floor")
    TopK(ratio=0.29, rounding='floor')
    >>> pq.TopK(ratio=0.5).compress(np.ones(4), key=0).bits     # 2 values + 4-bit bitmap
    68
    """

    def _build(self):
        k, ratio = self._k_ratio()
        return _core.TopK(k=k, ratio=ratio, rounding=self.rounding)


class RandK(_Sparse):
    """Random-K sparsification, unbiased: C(x)_j = (d/k) x_j on a uniform k-subset S, else 0.

    Parameters
    ----------
    k, ratio : as in :class:`TopK` (exactly one).
    rounding : {"round", "floor"}, default "round"
        ratio -> k as in :class:`TopK` (the same conversion, so a RandK and a TopK built from
        one ratio keep the same number of coordinates).
    shared_seed : bool, default True
        True: the receiver regenerates S from the message's key, so only the values are sent
        (32 k bits). False: S is sent too, 32 k + min(k ceil(log2 d), d) bits.

    Notes
    -----
    Constants: unbiased, U(d/k - 1) with equality for every x (Stich et al. 2018; Beznosikov
    et al. 2020, "On biased compression for distributed learning").
    Randomness: S is drawn by Floyd's algorithm; step i uses 64-bit draw i of the key's stream.
    Values (d/k) x_j must stay finite in float32, or compress raises ``ValueError``.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.RandK(k=2).compress(np.ones(10), key=0).bits
    64
    >>> pq.RandK(k=2, shared_seed=False).compress(np.ones(10), key=0).bits   # + 2 x 4-bit indices
    72
    >>> sorted(set(pq.RandK(k=2)(np.ones(10), key=7).tolist()))
    [0.0, 5.0]
    """

    def __init__(self, *, k=None, ratio=None, shared_seed=True, rounding="round"):
        self.shared_seed = shared_seed
        super().__init__(k=k, ratio=ratio, rounding=rounding)

    def _validate(self):
        super()._validate()
        if not isinstance(self.shared_seed, (bool, np.bool_)):
            raise TypeError(f"RandK: shared_seed must be a bool, got {self.shared_seed!r}")

    def _build(self):
        k, ratio = self._k_ratio()
        return _core.RandK(k=k, ratio=ratio, shared_seed=bool(self.shared_seed), rounding=self.rounding)


class Sign(Compressor):
    """Sign compression: C(x)_j = sign(x_j), with sign(0) = +1 (signSGD).

    Constants: neither unbiased nor contractive (the magnitude is lost: C(x) = sign(x) even
    for tiny x), so ``properties`` reports omega = delta = None; use :class:`ScaledSign` for a
    contractive variant. Used by signSGD with majority vote (Bernstein et al., ICML 2018).
    Bits: d (one per coordinate). Randomness: none (``key`` is ignored).

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.Sign()(np.array([0.5, -2.0, 0.0]), key=0).tolist()
    [1.0, -1.0, 1.0]
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.Sign()


class ScaledSign(Compressor):
    """Scaled sign: C(x) = (||x||_1 / d) sign(x), with sign(0) = +1.

    Constants: contractive; exactly ||C(x) - x||^2 = ||x||^2 - ||x||_1^2 / d, so C is in
    B(||x||_1^2 / (d ||x||^2)) >= B(1/d) (Karimireddy et al., ICML 2019, "Error feedback fixes
    signSGD"); ``properties`` reports the worst case 1/d.
    Bits: d + 32 (signs and one float32 scale). Randomness: none (``key`` is ignored).

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.ScaledSign()(np.array([1.0, -3.0, 2.0]), key=0).tolist()
    [2.0, -2.0, 2.0]
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.ScaledSign()


class QSGD(Compressor):
    """QSGD stochastic quantization with s = ``levels`` (Alistarh et al., NeurIPS 2017).

    Definition: r_j = s ``|x_j|`` / ||x||_2, l = floor(r_j); level l + 1 with probability r_j - l,
    else l; C(x)_j = ||x||_2 sign(x_j) level / s.

    Parameters
    ----------
    levels : int
        Number of quantization levels s >= 1.

    Notes
    -----
    Constants: unbiased, U(min(d/s^2, sqrt(d)/s)) (Alistarh et al. 2017, Lemma 3.1).
    Bits: 32 + d (1 + ceil(log2(s + 1))) (norm as float32; per coordinate a sign bit and the
    level in fixed width; fixed width keeps coordinates independently decodable in parallel).
    Randomness: coordinate j is rounded with uniform j = (u32_j >> 8) 2^-24 of the key's
    stream (24-bit uniforms: probabilities are exact to 2^-24).

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> x = np.array([3.0, -4.0])                   # ||x|| = 5
    >>> pq.QSGD(levels=5).compress(x, key=0).bits   # 32 + 2 (1 + 3)
    40
    >>> pq.QSGD(levels=5)(x, key=0).tolist()        # r = (3, 4): exact levels
    [3.0, -4.0]
    """

    def __init__(self, *, levels):
        self.levels = levels
        self._validate()

    def _validate(self):
        check_int("QSGD", "levels", self.levels, low=1, high=2**31 - 1)

    def _build(self):
        return _core.QSGD(levels=int(self.levels))


class TernGrad(Compressor):
    """TernGrad (Wen et al., NeurIPS 2017): C(x)_j = s sign(x_j) b_j with s = ||x||_inf and
    b_j ~ Bernoulli(``|x_j|`` / s).

    Constants: unbiased, U((sqrt(d) - 1)/2); the worst case x = (1, t, ..., t) with
    t = 1/(sqrt(d) + 1) attains it. Bits: 32 + 2 d (scale, then a 2-bit code per coordinate:
    0 zero, 1 plus, 3 minus). Randomness: b_j uses uniform j of the key's stream.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.TernGrad().compress(np.ones(8), key=0).bits
    48
    >>> set(pq.TernGrad()(np.array([1.0, 0.5, -0.5, 0.0]), key=3).tolist()) <= {-1.0, 0.0, 1.0}
    True
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.TernGrad()


class Natural(Compressor):
    """Natural compression (Horváth et al., 2019, arXiv:1905.10988): unbiased stochastic
    rounding to a neighbouring power of two.

    Definition: for 2^a <= ``|x_j|`` < 2^(a+1), C(x)_j = sign(x_j) 2^(a+1) with probability
    (``|x_j|`` - 2^a) / 2^a, else sign(x_j) 2^a; 0 maps to 0 (subnormals round to 0 or 2^-126).

    Notes
    -----
    Constants: unbiased, U(1/8); the worst case ``|x_j|`` = (4/3) 2^a attains it.
    Bits: 9 per coordinate (sign and the 8-bit float32 exponent). Randomness: coordinate j
    compares the top 24 bits of draw j with its 23-bit mantissa (exact probabilities).
    ``|x_j|`` >= 2^127 raises ``ValueError`` (rounding up would overflow float32).

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> pq.Natural()(np.array([1.0, -0.25, 0.0, 4.0]), key=0).tolist()   # powers stay exact
    [1.0, -0.25, 0.0, 4.0]
    >>> pq.Natural().compress(np.ones(3), key=0).bits
    27
    """

    def __init__(self):
        pass

    def _build(self):
        return _core.Natural()

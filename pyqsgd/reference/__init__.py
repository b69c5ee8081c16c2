"""Pure-NumPy reference twins of the native compressors.

Each twin encodes with the *same* random draws as the C++ kernel (read from the library's
Philox stream through ``_core.philox_u32`` / ``philox_u64``) and the same arithmetic order, and
returns the message sections it would send and the vector the receiver decodes. They are slow
and simple on purpose: the parity tests hold the kernels to them bit for bit.

>>> import numpy as np, pyqsgd as pq
>>> from pyqsgd import reference
>>> x = np.linspace(-1, 1, 50, dtype=np.float32)
>>> c = pq.chain(pq.TopK(k=5), pq.QSGD(levels=4))
>>> bool(np.array_equal(reference.compress(c, x, key=3).y, c(x, key=3)))
True
"""
from __future__ import annotations

import functools

from .. import combine as _combine
from .. import compressors as _c
from . import basic, combine, quant, sparse
from ._draws import as_key
from ._types import Encoded, Selected
from ._wire import reseal, sections_of

__all__ = ["compress", "twin", "selector", "sections_of", "reseal", "Encoded", "Selected", "basic", "sparse", "quant",
           "combine"]


def selector(c, d):
    """The chain-first-stage twin of compressor ``c`` for dimension ``d``: ``f(x, key) -> Selected``."""
    if isinstance(c, _c.Identity):
        return basic.identity_select
    if isinstance(c, _c.TopK):
        return functools.partial(sparse.topk_select, k=sparse.kept(d, c.k, c.ratio, c.rounding))
    if isinstance(c, _c.RandK):
        return functools.partial(sparse.randk_select, k=sparse.kept(d, c.k, c.ratio, c.rounding),
                                 shared_seed=bool(c.shared_seed))
    raise TypeError(f"no reference selector for {c!r}")


def twin(c, d):
    """The reference twin of compressor ``c`` for dimension ``d``: ``f(x, key) -> Encoded``."""
    if isinstance(c, _c.Identity):
        return basic.identity
    if isinstance(c, _c.Sign):
        return basic.sign
    if isinstance(c, _c.ScaledSign):
        return basic.scaled_sign
    if isinstance(c, _c.TopK):
        return functools.partial(sparse.topk, k=sparse.kept(d, c.k, c.ratio, c.rounding))
    if isinstance(c, _c.RandK):
        return functools.partial(sparse.randk, k=sparse.kept(d, c.k, c.ratio, c.rounding),
                                 shared_seed=bool(c.shared_seed))
    if isinstance(c, _c.QSGD):
        return functools.partial(quant.qsgd, levels=c.levels)
    if isinstance(c, _c.TernGrad):
        return quant.terngrad
    if isinstance(c, _c.Natural):
        return quant.natural
    if isinstance(c, _combine.Chain):
        sel = selector(c.a, d)
        kept = d if isinstance(c.a, _c.Identity) else sparse.kept(d, c.a.k, c.a.ratio, c.a.rounding)
        return functools.partial(combine.chain, select=sel, inner=twin(c.b, kept))
    if isinstance(c, _combine.Induced):
        return functools.partial(combine.induced, first=twin(c.c1, d), second=twin(c.c2, d))
    raise TypeError(f"no reference twin for {c!r}")


def compress(c, x, key=0):
    """Runs the twin of ``c`` on float32 ``x`` with the draws of ``key`` (int or ``Key``)."""
    import numpy as np

    x = np.ascontiguousarray(x, dtype=np.float32)
    return twin(c, x.size)(x, as_key(key))

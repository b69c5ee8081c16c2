"""Twins of chain(a, b) and induced(C1, C2) (ALGORITHMS.md §2). Keys as in the kernel:
the first stage uses ``key.child(0)``, the second ``key.child(1)``."""
from __future__ import annotations

import numpy as np

from ._types import Encoded

__all__ = ["chain", "induced"]


def chain(x, key, *, select, inner):
    """``select(x, key) -> Selected`` (a chain first stage), ``inner(v, key) -> Encoded``."""
    sel = select(x, key.child(0))
    enc = inner(sel.values, key.child(1))
    if sel.indices is None:
        y = enc.y
    else:
        y = np.zeros(x.size, np.float32)
        y[sel.indices] = enc.y
    return Encoded(sel.sections + enc.sections, y)


def induced(x, key, *, first, second):
    """C1(x) + C2(x - C1(x)), the residual formed in float32 from what C1's receiver decodes."""
    e1 = first(x, key.child(0))
    e2 = second((x - e1.y).astype(np.float32), key.child(1))
    return Encoded(e1.sections + e2.sections, (e1.y + e2.y).astype(np.float32))

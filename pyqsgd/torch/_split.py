"""``HookState(..., per_tensor=True)``: the method runs on a bucket with its compressor replaced by
``pq.blockwise(compressor, sizes)``, one block per parameter tensor of the bucket.

That is exactly the method the simulator runs for ``pq.blockwise(c, blocks)`` with the same
blocks (same messages, same bits, same DIANA alpha from the blockwise omega), so a DDP run with
per-tensor compression and ``pq.simulate`` with layer-wise compression count bits alike.
"""
import copy

from ..methods.dagc import DAGC
from ..methods.sign import LESignSGD, _Vote

__all__ = ["check_splittable", "split"]

# Methods whose compressor cannot be wrapped per tensor, and why (the error says it).
_UNSPLITTABLE = (
    (_Vote, "its server votes on the packed signs of the whole bucket with a built-in sign compressor, "
            "which is already per coordinate"),
    (LESignSGD, "its lazy rule decides per bucket and its sign compressor is built in"),
    (DAGC, "it plans each worker's TopK size or threshold for the whole vector from the data volumes"),
)


def check_splittable(method):
    """Raises ValueError naming ``per_tensor`` when ``method`` cannot compress tensor by tensor."""
    for cls, why in _UNSPLITTABLE:
        if isinstance(method, cls):
            raise ValueError(f"HookState: per_tensor=True cannot split {method!r}: {why}; use per_tensor=False, "
                             "or a method built from a compressor (DCGD, EF, EF21, DIANA, EFSignSGD, a "
                             "PythonMethod)")


def split(method, sizes):
    """A copy of ``method`` whose compressor (each one, for per-worker lists) is
    ``pq.blockwise(c, sizes)``; ``method`` itself is unchanged."""
    import pyqsgd as pq  # the public name, whichever module defines it

    sizes = [int(s) for s in sizes]
    clone = copy.copy(method)
    cs = method.compressor
    wrapped = [pq.blockwise(c, sizes) for c in cs] if isinstance(cs, (list, tuple)) else pq.blockwise(cs, sizes)
    # Set directly: EFSignSGD fixes its compressor (not a constructor parameter), and the clone is
    # private to the hook. _validate re-checks it (DIANA: blockwise of an unbiased one is unbiased).
    clone.__dict__["compressor"] = wrapped
    clone._validate()
    return clone

"""Layer-wise compression: ``blockwise(compressor, blocks)`` compresses each block (layer) of a
vector separately, the way the seed papers' reference codes compress a network's gradient
tensor by tensor."""
from __future__ import annotations

import numbers

import numpy as np

from . import _core
from .compressors import Compressor

__all__ = ["Blockwise", "blockwise"]


def _block_sizes(blocks):
    """``blocks`` as a list of positive Python ints (TypeError/ValueError naming ``blocks``)."""
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
        raise TypeError(f"blockwise: blocks must be a sequence of positive ints (the block sizes, e.g. "
                        f"TorchProblem.blocks), got {type(blocks).__name__}")
    sizes = []
    for i, n in enumerate(blocks):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise TypeError(f"blockwise: blocks[{i}] must be an int, got {type(n).__name__} ({n!r})")
        if n < 1:
            raise ValueError(f"blockwise: blocks[{i}] must be >= 1, got {int(n)}; drop empty blocks")
        sizes.append(int(n))
    if not sizes:
        raise ValueError("blockwise: blocks must list at least one block size")
    if sum(sizes) >= 2**63:  # the blocks sum to the vector's length d
        raise ValueError(f"blockwise: blocks must sum to a vector length below 2**63, got {sum(sizes)}")
    return sizes


class Blockwise(Compressor):
    """Compresses each block of the vector with its own call of the compressor.

    Block b is ``x[o_b : o_b + blocks[b]]`` with ``o_b = blocks[0] + ... + blocks[b-1]``;
    the blocks must sum to the vector's length d. ``TopK(ratio=0.01)`` then keeps 1% of every
    layer, ``QSGD`` sends one norm per layer (Alistarh et al., 2017, bucketing), ``Sign`` one
    scale per layer for ``ScaledSign``.

    Parameters
    ----------
    compressor : Compressor or sequence of Compressor
        One compressor for every block, or one per block (same length as ``blocks``).
    blocks : sequence of int
        Positive block sizes in vector order, e.g. ``TorchProblem.blocks`` (one per parameter
        tensor, in ``model.parameters()`` order).

    Notes
    -----
    Constants, from the blocks' constants at their sizes: all blocks unbiased ->
    U(max_b omega_b), since E||C(x) - x||^2 = sum_b E||C_b(x_b) - x_b||^2 <= max_b omega_b ||x||^2;
    all blocks contractive -> B(min_b delta_b) by the same sum. Otherwise none.
    Wire: one message whose sections are the blocks' sections, in block order; bits = the sum of
    the blocks' bits (block boundaries are shared context, like d, and cost nothing).
    Randomness: block b uses ``key.block(b)`` (a key subtree of its own), so blocks never share
    random draws and the same key gives the same message at any thread count.
    A chain stage when every block's compressor is one: ``chain(blockwise(TopK(ratio=r), blocks),
    QSGD(levels=s))`` keeps r per layer, then quantizes all kept values together.
    A block's compressor must accept the block's size: ``TopK(k=100)`` fails on a 10-entry bias
    (the error names the block); ``ratio=`` fits every size.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> c = pq.blockwise(pq.TopK(k=1), blocks=[3, 5])
    >>> c(np.array([1.0, -4.0, 2.0, 0.5, 0.0, 3.0, -1.0, 2.0])).tolist()
    [0.0, -4.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]
    >>> c.compress(np.arange(8.0)).bits               # per block: 32-bit value + index bits (2, 3)
    69
    >>> c.properties(8).delta                          # min(1/3, 1/5)
    0.2
    """

    def __init__(self, compressor, blocks):
        self.compressor = compressor
        self.blocks = blocks
        self._validate()

    def _validate(self):
        stages = self._stages_list()
        self._sizes = _block_sizes(self.blocks)
        if isinstance(self.compressor, Compressor):
            stages = stages * len(self._sizes)
        elif len(stages) != len(self._sizes):
            raise ValueError(f"blockwise: compressor lists {len(stages)} compressors for {len(self._sizes)} blocks; "
                             "pass one compressor, or one per block")
        self._native  # noqa: B018 - builds now so a bad block fails at construction

    def _stages_list(self):
        c = self.compressor
        if isinstance(c, Compressor):
            return [c]
        if isinstance(c, (list, tuple)) and c and all(isinstance(s, Compressor) for s in c):
            return list(c)
        raise TypeError("blockwise: compressor must be a pyqsgd compressor or a non-empty list of them, got "
                        f"{type(c).__name__}")

    def _build(self):
        stages = self._stages_list()
        natives = [s._native for s in stages]
        if len(natives) == 1:
            natives = natives * len(self._sizes)
        return _core.Blockwise(natives, self._sizes)

    def _python_backed(self):
        return any(s._python_backed() for s in self._stages_list())

    @property
    def sizes(self):
        """The block sizes as a list of ints."""
        return list(self._sizes)

    def __repr__(self):
        c = self.compressor
        inner = repr(c) if isinstance(c, Compressor) else "[" + ", ".join(repr(s) for s in c) + "]"
        return f"blockwise({inner}, blocks={self._sizes!r})"


def blockwise(compressor, blocks):
    """``Blockwise(compressor, blocks)``: compress each block (layer) separately. See :class:`Blockwise`."""
    return Blockwise(compressor, blocks)

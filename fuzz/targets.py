"""The fuzz targets: what each one feeds to pyqsgd, and what counts as a finding.

A target's input is one flag byte followed by wire bytes (``Message.to_bytes()`` format):

- flag bit 0: re-seal the CRC-32C (``pyqsgd.reference.reseal``) before decoding, so mutations
  reach the structure checks and the decoders behind the checksum (a forger can compute one);
  unsealed inputs exercise the checksum itself.
- flag bit 1 (decompress targets): decode into a caller buffer (``out=``) instead of a fresh
  array, the other native entry point.

Accepted behaviour on any input: a ``ValueError``, or a result that satisfies the contract
(``from_bytes`` re-encodes to the same bytes; ``decompress`` returns finite float32 of length
``msg.d``). Any other exception, a crash, a sanitizer report, a hang or a huge allocation is a
finding.
"""
from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")

# The receiver of a real message knows d (DDP, simulator); the fuzzer lets d float freely up to
# D_FREE so decoders see every small d, and beyond it decodes as a receiver expecting the
# target's first seed dimension (a bigger claimed d is then rejected, as in every caller that
# passes d=; unchecked, a 160-bit RandK message may legitimately claim d = 2^27).
D_FREE = 1 << 16
D_SEEDS = (40, 1, 7, 64, 200)

FLAG_RESEAL, FLAG_OUT = 1, 2


def _builtins():
    """(name, factory, smallest d or the only dimensions) for every public compressor
    configuration the suites use."""
    sys.path.insert(0, os.path.join(TESTS, "compressors"))
    from registry import CONFIGS  # the shared registry: every basic compressor, chain, induced

    import pyqsgd as pq

    out = [(c.id, c.make, c.min_d) for c in CONFIGS]
    extra = [
        ("Threshold", lambda: pq.Threshold(tau=0.5), 1),
        # DAGC's stages: TopK / Threshold, optionally chained with its quantizer.
        ("DAGC-T-QSGD", lambda: pq.chain(pq.Threshold(tau=0.5), pq.QSGD(levels=4)), 1),
        ("DAGC-R-TQ", lambda: pq.chain(pq.TopK(k=5), pq.TruncatedQuantizer(bits=3)), 5),
        ("Truncate", lambda: pq.Truncate(threshold=1.0), 1),
        ("Truncate-laplace", lambda: pq.Truncate(threshold="laplace", bits=3), 1),
        ("NUQ", lambda: pq.NonUniformQuantizer(bits=3), 1),
        ("NUQ-levels", lambda: pq.NonUniformQuantizer(bits=2, levels=[-1.0, 0.0, 1.0]), 1),
        ("NUQ-uniform", lambda: pq.NonUniformQuantizer(bits=2, density="uniform"), 1),
        ("TruncatedQuantizer", lambda: pq.TruncatedQuantizer(bits=3), 1),
        ("TruncatedUniformQuantizer", lambda: pq.TruncatedUniformQuantizer(bits=3), 1),
        ("induced-Threshold-Natural", lambda: pq.induced(pq.Threshold(tau=0.5), pq.Natural()), 1),
    ]
    if hasattr(pq, "blockwise"):  # per-block compression: d is fixed by the block sizes
        out.append(("blockwise-TopK-QSGD", lambda: pq.blockwise(pq.chain(pq.TopK(k=1), pq.QSGD(levels=2)),
                                                               blocks=[3, 5]), (8,)))
    return out + extra


def _python_defined():
    """Compressors written in Python (pq.Compressor subclasses), alone and as chain stages."""
    sys.path.insert(0, TESTS)
    import python_stages_lib as lib  # the tests' Python compressors (validating decoders)

    import pyqsgd as pq

    return [
        ("py-NumpyTopK", lambda: lib.NumpyTopK(k=5), 1),
        ("py-Dither", lambda: lib.Dither(levels=4), 1),
        ("py-Largest", lambda: lib.Largest(k=5), 5),
        ("py-chain-Largest-QSGD", lambda: pq.chain(lib.Largest(k=5), pq.QSGD(levels=4)), 5),
        ("py-chain-TopK-Dither", lambda: pq.chain(pq.TopK(k=5), lib.Dither(levels=2)), 5),
    ]


def compressors():
    """{target name: (factory, seed dimensions)} for every decompress target; an int in the
    lists below is the compressor's smallest d, a tuple its only dimensions."""
    def dims(d):
        return d if isinstance(d, tuple) else tuple(n for n in D_SEEDS if n >= d)

    return {name: (make, dims(d)) for name, make, d in _builtins() + _python_defined()}


def names():
    """Every target: ``from_bytes``, then one decompress target per compressor name."""
    return ["from_bytes"] + list(compressors())


def _unseal(data):
    import pyqsgd.reference as ref

    flags, raw = (data[0], data[1:]) if data else (0, b"")
    if flags & FLAG_RESEAL and len(raw) >= 4:
        raw = ref.reseal(raw)
    return flags, raw


def message_target():
    import pyqsgd as pq

    def one_input(data):
        _, raw = _unseal(data)
        try:
            msg = pq.Message.from_bytes(raw)
        except ValueError:
            return
        # Accepted bytes are canonical: nothing in them is ignored.
        again = msg.to_bytes()
        if again != raw:
            raise AssertionError(f"from_bytes accepted non-canonical bytes: {raw.hex()} re-encodes as {again.hex()}")
        if msg.bits != sum(msg.section_bits):
            raise AssertionError(f"bits {msg.bits} != sum of section bits {list(msg.section_bits)}")

    return one_input


def decompress_target(name):
    import pyqsgd as pq

    make, dims = compressors()[name]
    c = make()

    def one_input(data):
        flags, raw = _unseal(data)
        try:
            msg = pq.Message.from_bytes(raw)
            d = None if msg.d <= D_FREE else dims[0]
            if flags & FLAG_OUT and msg.d <= D_FREE:
                y = c.decompress(msg, out=np.full(msg.d, np.nan, np.float32))
            else:
                y = c.decompress(msg, d=d)
        except ValueError:
            return
        if not (isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (msg.d,)):
            raise AssertionError(f"{name}: decompress returned {type(y).__name__} {getattr(y, 'dtype', '')} "
                                 f"{getattr(y, 'shape', '')} for d={msg.d}")
        if not np.isfinite(y).all():
            raise AssertionError(f"{name}: decompress returned NaN/Inf for input {data.hex()}")

    return one_input


def target(name):
    """The one-input function of target ``name`` (see :func:`names`)."""
    if name == "from_bytes":
        return message_target()
    if name in compressors():
        return decompress_target(name)
    raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(names())}")


if __name__ == "__main__":  # the target names, one a line (run.py lists them in a subprocess)
    print("\n".join(names()))

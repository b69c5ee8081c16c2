"""Bit-level layout of a message, in NumPy: the same packing as ``cpp/include/pyqsgd/bitio.hpp``.

A section is ``(bits, words)``: ``bits`` payload bits stored LSB-first in little-endian uint64
words, padding bits zero. Twins build their sections with :func:`pack` and tests compare them
with the sections parsed out of ``Message.to_bytes()`` by :func:`sections_of`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["pack", "pack_floats", "sections_of", "bit_width", "index_bits", "pack_indices", "reseal"]

_HEADER = 4 + 1 + 2 + 4 + 8 + (8 + 4 + 4 + 4) + 4  # magic, version, tag, fingerprint, d, key, count


def bit_width(n):
    """ceil(log2 n): bits that hold any value in [0, n) (0 for n <= 1)."""
    return int(n - 1).bit_length() if n > 1 else 0


def pack(codes, width):
    """Section holding ``codes[j]`` (< 2**width) at bit offset ``j * width``."""
    codes = np.asarray(codes, dtype=np.uint64)
    nbits = codes.size * width
    if nbits == 0:
        return 0, np.zeros(0, np.uint64)
    shifts = np.arange(width, dtype=np.uint64)
    bits = ((codes[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8).ravel()
    nwords = (nbits + 63) // 64
    padded = np.zeros(nwords * 64, np.uint8)
    padded[:nbits] = bits
    return nbits, np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)


def pack_floats(values):
    """Section of float32 values stored as their 32-bit patterns."""
    v = np.ascontiguousarray(values, dtype=np.float32)
    return pack(v.view(np.uint32), 32)


def index_bits(k, d):
    """Bits of a k-subset of [0, d): k ceil(log2 d) as a list, or a d-bit bitmap if smaller."""
    return min(k * bit_width(d), d)


def pack_indices(idx, d):
    """The index section of TopK / RandK(shared_seed=False): sorted list or bitmap."""
    idx = np.asarray(idx, dtype=np.uint64)
    if idx.size * bit_width(d) > d:  # bitmap is strictly smaller
        mask = np.zeros(d, np.uint64)
        mask[idx.astype(np.int64)] = 1
        return pack(mask, 1)
    return pack(idx, bit_width(d))


def reseal(raw):
    """``raw`` (wire bytes whose last 4 are a CRC-32C) with the checksum recomputed.

    For tests that forge a message on purpose (an edited d, section table or payload) to check
    that the decoders' own validation catches it: without a fresh checksum
    ``Message.from_bytes`` would reject the forgery before any decoder saw it.

    >>> import numpy as np, pyqsgd as pq
    >>> raw = bytearray(pq.QSGD(levels=2).compress(np.ones(4), key=0).to_bytes())
    >>> raw[-5] ^= 1                                   # corrupt the payload
    >>> pq.Message.from_bytes(bytes(raw))              # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: Message.from_bytes: checksum mismatch ...
    >>> pq.Message.from_bytes(reseal(bytes(raw))).d    # a forgery with a valid checksum
    4
    """
    from .._core import crc32c

    body = bytes(raw[:-4])
    return body + crc32c(body).to_bytes(4, "little")


def sections_of(msg):
    """``[(bits, words), ...]`` of a ``pyqsgd.Message``, read from its wire bytes."""
    raw = msg.to_bytes()
    n = int(np.frombuffer(raw, "<u4", count=1, offset=_HEADER - 4)[0])
    lens = np.frombuffer(raw, "<u8", count=n, offset=_HEADER).astype(np.int64)
    out, pos = [], _HEADER + 8 * n
    for bits in lens:
        nw = (int(bits) + 63) // 64
        out.append((int(bits), np.frombuffer(raw, "<u8", count=nw, offset=pos).astype(np.uint64)))
        pos += 8 * nw
    return out

"""Message.from_bytes and decompress validate adversarial input before trusting it.

Accidental corruption is caught by the CRC-32C (test_integrity.py); the forgeries here carry a
recomputed checksum (``reseal``), so they reach the structural checks and the decoders.
"""
import struct

import numpy as np
import pytest

import pyqsgd as pq
from pyqsgd.reference import reseal

HEADER = 43  # magic 4, version 1, tag 2, fingerprint 4, d 8, key 20, section count 4
D_AT = 11


def sample(c=None, d=50):
    c = c or pq.QSGD(levels=4)
    return c, c.compress(np.random.default_rng(0).standard_normal(d), key=1).to_bytes()


def with_d(raw, d):
    return reseal(raw[:D_AT] + struct.pack("<Q", d) + raw[D_AT + 8:])


@pytest.mark.parametrize("edit, what", [
    (lambda b: b"XQSG" + b[4:], "magic"),
    (lambda b: b[:4] + b"\x09" + b[5:], "version"),
    (lambda b: b[:4] + b"\x01" + b[5:], "version 1 .* no checksum"),
    (lambda b: reseal(b[:HEADER - 4]), "truncated"),
    (lambda b: reseal(b[:-5] + b[-4:]), "payload size"),
    (lambda b: reseal(b[:-4] + b"\0" * 8 + b[-4:]), "payload size"),
    (lambda b: reseal(b[:HEADER - 4] + struct.pack("<I", 2**20) + b[HEADER:]), "section count"),
    (lambda b: reseal(b[:HEADER - 4] + struct.pack("<I", 3) + b[HEADER:]), "section"),
    (lambda b: reseal(b[:HEADER] + struct.pack("<Q", 2**60) + b[HEADER + 8:]), "section length"),
    (lambda b: reseal(b[:HEADER] + struct.pack("<Q", 2**40) + b[HEADER + 8:]), "payload size"),
    (lambda b: b[:-1], "checksum"),
    (lambda b: b"", "magic"),
])
def test_from_bytes_rejects(edit, what):
    _, raw = sample()
    with pytest.raises(ValueError, match=what):
        pq.Message.from_bytes(edit(raw))


def test_nonzero_padding_bits_are_corruption():
    c, raw = sample(pq.Sign(), d=10)  # one section of 10 bits in one word, then the checksum
    word = struct.unpack("<Q", raw[-12:-4])[0] | (1 << 40)
    with pytest.raises(ValueError, match="padding"):
        pq.Message.from_bytes(reseal(raw[:-12] + struct.pack("<Q", word) + raw[-4:]))


ALL = [pq.Identity(), pq.Sign(), pq.QSGD(levels=3), pq.TopK(k=4), pq.Natural(), pq.chain(pq.TopK(k=4), pq.TernGrad()),
       pq.induced(pq.TopK(k=4), pq.QSGD(levels=2))]


@pytest.mark.parametrize("c", ALL, ids=repr)
@pytest.mark.parametrize("d", [0, 2**31, 2**32 - 1, 2**32, 2**63])
def test_edited_dimension_is_rejected_before_allocating(c, d):
    # Payload bits pin d for every compressor here (TopK: k ceil(log2 d) index bits < 32k).
    _, raw = sample(c)
    with pytest.raises(ValueError, match="dimension|payload bits"):
        c.decompress(pq.Message.from_bytes(with_d(raw, d)))


@pytest.mark.parametrize("c", [c for c in ALL if "TopK" not in repr(c)], ids=repr)
@pytest.mark.parametrize("d", [49, 51])
def test_dense_messages_pin_d_exactly(c, d):
    _, raw = sample(c)
    with pytest.raises(ValueError, match="payload bits"):
        c.decompress(pq.Message.from_bytes(with_d(raw, d)))


def test_regenerated_index_messages_cannot_force_huge_allocations():
    # RandK(k, shared_seed=True) sends 32k bits whatever d is: a forged d = 2^31 is consistent
    # with the payload, so the allocating path refuses it and asks for a caller buffer.
    c, raw = sample(pq.RandK(k=3))
    with pytest.raises(ValueError, match="out="):
        c.decompress(pq.Message.from_bytes(with_d(raw, 2**31)))
    small = pq.Message.from_bytes(with_d(raw, 70))  # a plausible d decodes (different subset)
    y = c.decompress(small)
    assert y.shape == (70,) and np.count_nonzero(y) <= 3


@pytest.mark.parametrize("c, section, width, value, what", [
    # (compressor, section, low bits of its first word to overwrite, new value, expected error)
    (pq.QSGD(levels=2), 0, 32, 0x7FC00000, "scale"),  # NaN norm
    (pq.QSGD(levels=2), 0, 32, 0xBF800000, "scale"),  # negative norm
    (pq.QSGD(levels=2), 1, 3, 0b111, "codebook"),  # level 3 > s = 2
    (pq.QSGD(levels=2), 1, 3, 0b001, "codebook"),  # "minus zero"
    (pq.TernGrad(), 1, 2, 0b10, "codebook"),  # code 2
    (pq.Natural(), 0, 9, 0b1, "codebook"),  # exponent 0 with sign
    (pq.Natural(), 0, 9, 0xFF << 1, "codebook"),  # exponent 255 (Inf)
    (pq.Identity(), 0, 32, 0x7F800000, "NaN or Inf"),
    (pq.TopK(k=3), 1, 32, 0x7F800000, "NaN or Inf"),
    (pq.TopK(k=3), 0, 64, 0, "indices"),  # index 0 three times: not increasing
    (pq.ScaledSign(), 1, 32, 0x7F800000, "scale"),
])
def test_payload_corruption_is_detected(c, section, width, value, what):
    msg = c.compress(np.random.default_rng(1).standard_normal(50), key=2)
    raw = bytearray(msg.to_bytes())
    n = len(msg.section_bits)
    pos = HEADER + 8 * n + sum(8 * ((b + 63) // 64) for b in msg.section_bits[:section])
    old = struct.unpack("<Q", raw[pos:pos + 8])[0]
    mask = (1 << width) - 1
    raw[pos:pos + 8] = struct.pack("<Q", (old & ~mask & (2**64 - 1)) | value)
    c.decompress(msg)  # the original decodes
    with pytest.raises(ValueError, match=what):
        c.decompress(pq.Message.from_bytes(reseal(bytes(raw))))


def test_induced_sum_overflow_is_detected():
    # Two finite parts that add up to Inf can only come from a forged message.
    c = pq.induced(pq.TopK(k=1), pq.RandK(k=1, shared_seed=False))
    x = np.zeros(4, np.float32)
    x[0] = 1.0
    msg = c.compress(x, key=0)
    secs = msg.section_bits  # [topk indices, topk values, randk index, randk values]
    raw = bytearray(msg.to_bytes())
    off = HEADER + 8 * len(secs)
    starts = np.cumsum([0] + [8 * ((b + 63) // 64) for b in secs])
    raw[off + starts[0]:off + starts[0] + 8] = struct.pack("<Q", 0)  # TopK keeps index 0
    raw[off + starts[1]:off + starts[1] + 8] = struct.pack("<Q", 0x7F7FFFFF)  # float32 max
    raw[off + starts[2]:off + starts[2] + 8] = struct.pack("<Q", 0)  # RandK index 0
    raw[off + starts[3]:off + starts[3] + 8] = struct.pack("<Q", 0x7F7FFFFF)
    with pytest.raises(ValueError, match="NaN or Inf"):
        c.decompress(pq.Message.from_bytes(reseal(bytes(raw))))

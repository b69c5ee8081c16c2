"""Wire integrity: a corrupted message never decodes silently.

The wire format (version 2) ends with a CRC-32C of every byte before it. CRC-32C detects all
errors of up to 5 bits in messages of this size, every burst of up to 32 bits, and any other
corruption except with probability 2^-32; the receiver also checks d (and, in the DDP runner,
the key) against what it expects.
"""
import os
import struct

import numpy as np
import pytest
from registry import CONFIGS, IDS

import pyqsgd as pq
from pyqsgd import _core
from pyqsgd.reference import reseal

HEADER = 43  # magic 4, version 1, tag 2, fingerprint 4, d 8, key 20, section count 4


def message(cfg, d=40, seed=0):
    x = np.random.default_rng(seed).standard_normal(max(d, cfg.min_d)).astype(np.float32)
    return cfg.make().compress(x, key=pq.Key(seed=7, round=3, worker=1))


def test_crc32c_known_answers_and_both_paths():
    assert _core.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert _core.crc32c(b"") == 0
    assert _core.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert _core.crc32c(bytes(range(32))) == 0x46DD794E  # RFC 3720 B.4: 0x00..0x1F
    rng = np.random.default_rng(0)
    for n in [1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099]:
        b = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert _core.crc32c(b) == _core.crc32c_portable(b)
        # Chaining: crc(a + b) = crc(b, start=crc(a)).
        assert _core.crc32c(b[n // 2:], _core.crc32c(b[:n // 2])) == _core.crc32c(b)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_every_single_bit_flip_of_the_framing_is_rejected(cfg):
    msg = message(cfg)
    raw = msg.to_bytes()
    framing = list(range(HEADER + 8 * len(msg.section_bits))) + list(range(len(raw) - 4, len(raw)))
    for i in framing:
        for bit in range(8):
            b = bytearray(raw)
            b[i] ^= 1 << bit
            with pytest.raises(ValueError):
                cfg.make().decompress(pq.Message.from_bytes(bytes(b)))


@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=IDS[:6])
def test_every_single_bit_flip_of_the_payload_is_rejected(cfg):
    raw = message(cfg, d=24).to_bytes()
    for i in range(len(raw)):
        for bit in range(8):
            b = bytearray(raw)
            b[i] ^= 1 << bit
            with pytest.raises(ValueError, match="checksum|magic|version"):
                pq.Message.from_bytes(bytes(b))


def test_random_corruption_is_rejected_at_the_checksum_rate():
    # 100,000 random corruptions (1-16 random bytes overwritten, or a random run of bits
    # flipped) of messages of several compressors: a CRC-32 misses a random error with
    # probability 2^-32, so the expected number of misses is 100,000 x 2^-32 = 2.3e-5.
    rng = np.random.default_rng(2026)
    msgs = [message(cfg, d=64, seed=s).to_bytes() for s, cfg in enumerate(CONFIGS)]
    missed = unchanged = 0
    trials = 100_000
    for t in range(trials):
        raw = msgs[t % len(msgs)]
        b = bytearray(raw)
        if t % 2:
            for _ in range(int(rng.integers(1, 17))):
                i = int(rng.integers(len(b)))
                b[i] = (b[i] + int(rng.integers(1, 256))) % 256  # always a change
        else:
            start, n = int(rng.integers(len(b) * 8)), int(rng.integers(1, 200))
            for k in range(start, min(start + n, len(b) * 8)):
                if rng.random() < 0.5 or k == start:
                    b[k // 8] ^= 1 << (k % 8)
        if bytes(b) == raw:  # two overwrites of one byte can restore it: not a corruption
            unchanged += 1
            continue
        try:
            pq.Message.from_bytes(bytes(b))
        except ValueError:
            continue
        missed += 1
    assert missed == 0, f"{missed} of {trials - unchanged} corruptions passed the checksum"
    assert unchanged < trials // 100


def test_the_issue_cases_d_and_randk_seed():
    # An edited d (TopK, RandK, chain, induced, Threshold decoded to the wrong length before)
    # and one flipped bit of a RandK key's seed (values moved silently) are now rejected.
    x = np.random.default_rng(1).standard_normal(50).astype(np.float32)
    for c in (pq.TopK(k=5), pq.RandK(k=5), pq.chain(pq.TopK(k=5), pq.QSGD(levels=2)),
              pq.induced(pq.TopK(k=5), pq.RandK(k=5)), pq.Threshold(tau=0.5)):
        raw = c.compress(x, key=3).to_bytes()
        edited = raw[:11] + struct.pack("<Q", 60) + raw[19:]
        with pytest.raises(ValueError, match="checksum"):
            pq.Message.from_bytes(edited)
        with pytest.raises(ValueError, match="the receiver expects d=50"):
            c.decompress(pq.Message.from_bytes(reseal(edited)), d=50)  # even a forged checksum
    raw = bytearray(pq.RandK(k=5).compress(x, key=3).to_bytes())
    raw[19] ^= 1  # the lowest bit of the key's seed
    with pytest.raises(ValueError, match="checksum"):
        pq.Message.from_bytes(bytes(raw))


def test_wire_bits_count_the_framing_bits_stay_the_payload():
    for cfg in CONFIGS:
        msg = message(cfg)
        assert msg.wire_bits == 8 * len(msg.to_bytes())
        assert msg.bits == sum(msg.section_bits) == cfg.bits(max(40, cfg.min_d))
        n = len(msg.section_bits)
        assert msg.wire_bits == 8 * (HEADER + 8 * n + 4) + 64 * sum((b + 63) // 64 for b in msg.section_bits)


def test_version_1_is_refused_clearly():
    raw = bytearray(pq.QSGD(levels=2).compress(np.ones(4), key=0).to_bytes())
    raw[4] = 1
    with pytest.raises(ValueError, match="version 1 .* no checksum .* re-encode"):
        pq.Message.from_bytes(bytes(raw))


def test_decompress_checks_the_expected_dimension():
    c = pq.QSGD(levels=2)
    msg = c.compress(np.ones(8), key=0)
    assert c.decompress(msg, d=8).shape == (8,)
    assert c.decompress(msg, np.empty(8, np.float32), d=8).shape == (8,)
    with pytest.raises(ValueError, match="message has d=8, the receiver expects d=9"):
        c.decompress(msg, d=9)
    with pytest.raises(ValueError, match="d must be >= 1"):
        c.decompress(msg, d=0)


def test_the_ddp_runner_refuses_stale_misrouted_or_resized_messages():
    d = 10
    runner = _core.MethodRunner(pq.methods.EF21(pq.RandK(k=3)).build(d, 2), 2, d, [1.0, 1.0], [1.0, 1.0],
                                [1.0, 1.0], 5)
    v = np.random.default_rng(0).standard_normal(d)
    s0, m0 = runner.worker(0, 4, 0.1, v)
    s1, m1 = runner.worker(1, 4, 0.1, v)
    with pytest.raises(ValueError, match="stale or misrouted"):
        runner.server(4, 0.1, [s0, s1], [m1, m0])  # swapped
    with pytest.raises(ValueError, match="stale or misrouted"):
        runner.server(5, 0.1, [s0, s1], [m0, m1])  # last round's messages
    other = pq.RandK(k=3).compress(np.ones(12), key=m0.key)
    with pytest.raises(ValueError, match="d=12, this run has d=10"):
        runner.server(4, 0.1, [s0, s1], [other, m1])
    assert runner.server(4, 0.1, [s0, s1], [m0, m1]).shape == (d,)


def test_a_saved_message_survives_a_file_round_trip(tmp_path):
    msg = pq.induced(pq.TopK(k=3), pq.QSGD(levels=4)).compress(np.linspace(-1, 1, 30), key=9)
    path = os.path.join(tmp_path, "m.bin")
    with open(path, "wb") as f:
        f.write(msg.to_bytes())
    with open(path, "rb") as f:
        assert pq.Message.from_bytes(f.read()) == msg

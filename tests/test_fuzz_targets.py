"""The fuzz harness (fuzz/targets.py) stays in step with the library, without atheris.

Every target accepts every seed of its corpus (valid messages, re-sealed) and rejects the same
seeds with a payload byte flipped, unsealed (checksum) or re-sealed (the decoders' own checks,
or a valid decode): so a renamed compressor, a changed wire format or a harness bug shows up in
the normal test run, not only when someone runs the fuzzer.
"""
import os
import sys

import pytest

FUZZ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz")
sys.path.insert(0, FUZZ)
import make_corpus  # noqa: E402
import targets  # noqa: E402

NAMES = targets.names()


def test_every_public_compressor_class_has_a_target():
    import pyqsgd as pq

    made = {type(make()).__name__ for make, _ in targets.compressors().values()}
    public = {n for n in pq.__all__ if isinstance(getattr(pq, n), type) and issubclass(getattr(pq, n), pq.Compressor)
              and n != "Compressor"}
    assert public <= made, f"no fuzz target for {sorted(public - made)}"
    assert any(n.startswith("py-") for n in NAMES)  # Python-defined compressors too


@pytest.mark.parametrize("name", NAMES)
def test_target_accepts_seeds_and_mutations(name):
    one_input = targets.target(name)
    seeds = make_corpus.seeds(name)
    assert len(seeds) >= 4
    for raw in seeds[:8]:
        one_input(bytes([targets.FLAG_RESEAL]) + raw)
        one_input(bytes([targets.FLAG_RESEAL | targets.FLAG_OUT]) + raw)
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x10
        one_input(bytes([0]) + bytes(flipped))  # checksum mismatch: a ValueError, swallowed
        one_input(bytes([targets.FLAG_RESEAL]) + bytes(flipped))
    one_input(b"")


def test_target_reports_a_broken_contract(monkeypatch):
    # A decoder that returned NaN would be a finding: the harness must raise, not swallow it.
    import numpy as np

    import pyqsgd as pq

    one_input = targets.target("QSGD-4")
    monkeypatch.setattr(pq.QSGD, "decompress", lambda self, msg, out=None, d=None: np.full(msg.d, np.nan, np.float32))
    with pytest.raises(AssertionError, match="NaN"):
        one_input(bytes([targets.FLAG_RESEAL]) + make_corpus.seeds("QSGD-4")[0])

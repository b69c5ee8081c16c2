"""Decoding hostile bytes never crashes: it raises ValueError or yields a finite float32 vector.

The loop runs in a subprocess, so a segfault or abort fails this test instead of killing
pytest. Mutations are seeded (np.random.default_rng), hence reproducible.
"""
import os
import subprocess
import sys
import textwrap

import pytest

FUZZ = textwrap.dedent(r"""
    import struct, sys
    import numpy as np
    import pyqsgd as pq
    sys.path.insert(0, sys.argv[1])
    from registry import CONFIGS

    rng = np.random.default_rng(int(sys.argv[2]))
    rounds = int(sys.argv[3])
    from pyqsgd.reference import reseal
    HEADER, D_AT = 43, 11
    # d edits stay small or absurd: a plausible d of 2^27 would legitimately allocate 512 MB.
    D_EDITS = [0, 1, 2, 39, 41, 63, 64, 65, 80, 1000, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1]

    def mutate(raw):
        b = bytearray(raw)
        op = rng.integers(9)
        if op == 0 and len(b):                       # flip bits anywhere
            for _ in range(rng.integers(1, 4)):
                i = rng.integers(len(b)); b[i] ^= 1 << int(rng.integers(8))
        elif op == 1 and len(b) > HEADER:            # flip payload bits only
            for _ in range(rng.integers(1, 6)):
                i = rng.integers(HEADER, len(b)); b[i] ^= 1 << int(rng.integers(8))
        elif op == 2:                                # truncate
            b = b[:rng.integers(len(b) + 1)]
        elif op == 3:                                # extend
            b += bytes(rng.integers(0, 256, rng.integers(1, 24), dtype=np.uint8))
        elif op == 4 and len(b) >= D_AT + 8:         # edit d
            b[D_AT:D_AT + 8] = struct.pack("<Q", D_EDITS[rng.integers(len(D_EDITS))])
        elif op == 5 and len(b) >= D_AT:             # edit tag / fingerprint
            i = rng.integers(5, D_AT); b[i] = int(rng.integers(256))
        elif op == 6 and len(b) >= HEADER:           # edit section count
            b[HEADER - 4:HEADER] = struct.pack("<I", int(rng.integers(0, 8)))
        elif op == 7 and len(b) >= HEADER + 8:       # edit a section length
            n = struct.unpack("<I", b[HEADER - 4:HEADER])[0]
            i = HEADER + 8 * int(rng.integers(max(1, min(n, 8))))
            if i + 8 <= len(b):
                b[i:i + 8] = struct.pack("<Q", int(rng.integers(0, 2**12)))
        else:                                        # random garbage with a valid prefix
            b = bytearray(b[:HEADER]) + bytes(rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8))
        return bytes(b)

    decoded = rejected = unsealed = 0
    comps = [c.make() for c in CONFIGS]
    for r in range(rounds):
        c = comps[r % len(comps)]
        d = int(rng.choice([40, 64, 200]))
        x = rng.standard_normal(d).astype(np.float32)
        raw = c.compress(x, key=int(rng.integers(2**32))).to_bytes()
        good = {raw}  # byte strings known to be valid messages (a mutation can be a no-op)
        for _ in range(4):
            raw = mutate(raw) if rng.random() < 0.9 else bytes(rng.integers(0, 256, rng.integers(0, 120), dtype=np.uint8))
            # Most inputs get a valid checksum, so they reach the structure checks and decoders
            # (a forger can compute one); the rest must all fail the checksum.
            sealed = rng.random() < 0.75
            if sealed and len(raw) >= 4:
                raw = reseal(raw)
            try:
                y = c.decompress(pq.Message.from_bytes(raw))
            except ValueError:
                rejected += 1
                continue
            assert sealed or raw in good, ("an unsealed mutation decoded", repr(c), raw)
            good.add(raw)
            assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y)), (repr(c), raw)
            decoded += 1
    print(decoded, rejected)
""")


def run_fuzz(seed, rounds):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    # cwd outside the repository, so the subprocess imports the installed pyqsgd.
    return subprocess.run([sys.executable, "-c", FUZZ, here, str(seed), str(rounds)], capture_output=True,
                          text=True, timeout=1800, cwd=os.path.dirname(root))


@pytest.mark.slow
def test_hostile_bytes_never_crash_long():
    proc = run_fuzz(1000, 40_000)
    assert proc.returncode == 0, f"fuzz subprocess died with code {proc.returncode}:\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_bytes_never_crash(seed):
    proc = run_fuzz(seed, 1500)
    assert proc.returncode == 0, f"fuzz subprocess died with code {proc.returncode}:\n{proc.stderr[-3000:]}"
    decoded, rejected = map(int, proc.stdout.split())
    assert rejected > 1000 and decoded > 100  # both paths were exercised

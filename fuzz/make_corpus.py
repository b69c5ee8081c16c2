"""Writes seed corpora from valid messages: fuzz/corpus/<target>/<n> (python fuzz/make_corpus.py).

Every seed is a real message of the target's compressor (several d, keys and inputs: random,
zeros, one spike, constant), prefixed with the flag byte (targets.py) set to re-seal, so the
fuzzer starts from inputs that pass every check. Generated at run time, never committed.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import targets


def vectors(d, rng):
    spike = np.zeros(d, np.float32)
    spike[d // 2] = 3.0
    return [rng.standard_normal(d).astype(np.float32), np.zeros(d, np.float32), spike, np.full(d, -0.5, np.float32)]


def seeds(name):
    """Wire bytes of valid messages for target ``name``."""
    import pyqsgd as pq

    comps = targets.compressors()
    rng = np.random.default_rng(0)
    chosen = [comps[name]] if name in comps else list(comps.values())[::4]  # from_bytes: a spread
    out = []
    for make, dims in chosen:
        c = make()
        for d in dims:
            for i, x in enumerate(vectors(d, rng)):
                out.append(c.compress(x, key=pq.Key(seed=i, round=3, worker=1)).to_bytes())
    return out


def write(root, names=None):
    """Writes the corpus of every target in ``names`` (default: all) under ``root``."""
    for name in names or targets.names():
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i, raw in enumerate(seeds(name)):
            with open(os.path.join(folder, f"seed-{i:03d}"), "wb") as f:
                f.write(bytes([targets.FLAG_RESEAL]) + raw)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(targets.HERE, "corpus"))
    ap.add_argument("targets", nargs="*", help="target names (default: all)")
    args = ap.parse_args()
    write(args.out, args.targets)

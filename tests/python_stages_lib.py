"""Compressors and aggregators written in Python, shared by the tests, the DDP worker ranks and
sweep worker processes (which import this module by name, so it lives beside the tests)."""
import numpy as np

import pyqsgd as pq


class NumpyTopK(pq.Compressor):
    """Top-K in NumPy: indices (uint32) then values (float32); ties to the smaller index."""

    def __init__(self, *, k):
        self.k = k
        self._validate()

    def _validate(self):
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"NumpyTopK: k must be an int >= 1, got {self.k!r}")

    def _keep(self, x):
        return np.sort(np.argsort(-np.abs(x), kind="stable")[: min(self.k, x.size)]).astype(np.uint32)

    def encode(self, x, rng):
        idx = self._keep(x)
        return idx.tobytes() + x[idx].tobytes()

    def decode(self, data, d):
        k = min(self.k, d)
        if len(data) != 8 * k:
            raise ValueError(f"NumpyTopK: payload of {len(data)} bytes, expected {8 * k}")
        idx = np.frombuffer(data, np.uint32, count=k)
        if idx.size and idx.max() >= d:
            raise ValueError("NumpyTopK: index out of range")
        out = np.zeros(d, np.float32)
        out[idx] = np.frombuffer(data, np.float32, offset=4 * k)
        return out

    def properties(self, d):
        return pq.Properties(unbiased=False, omega=None, delta=min(self.k, d) / d)


class NumpyRandK(pq.Compressor):
    """Rand-K in NumPy with the key's generator: (d/k) x_j on a uniform k-subset; U(d/k - 1)."""

    def __init__(self, *, k):
        self.k = k

    def encode(self, x, rng):
        idx = np.sort(rng.choice(x.size, self.k, replace=False)).astype(np.uint32)
        return idx.tobytes() + (x[idx] * np.float32(x.size / self.k)).astype(np.float32).tobytes()

    def decode(self, data, d):
        idx = np.frombuffer(data, np.uint32, count=self.k)
        out = np.zeros(d, np.float32)
        out[idx] = np.frombuffer(data, np.float32, offset=4 * self.k)
        return out

    def properties(self, d):
        return pq.Properties(unbiased=True, omega=d / self.k - 1, delta=None)


class Dither(pq.Compressor):
    """Unbiased stochastic rounding to s levels of ||x||_inf: level floor(r) + Bernoulli(r - floor r),
    r = s |x_j| / ||x||_inf, sent as int8. Variance per coordinate <= (||x||_inf / s)^2 / 4, so
    E||C(x) - x||^2 <= d ||x||_inf^2 / (4 s^2) <= (d / (4 s^2)) ||x||^2: U(d / (4 s^2))."""

    def __init__(self, *, levels=4):
        self.levels = levels

    def encode(self, x, rng):
        scale = np.float32(np.abs(x).max())
        if scale == 0:
            return scale.tobytes() + bytes(x.size)
        r = np.abs(x.astype(np.float64)) / float(scale) * self.levels
        low = np.floor(r)
        level = low + (rng.random(x.size) < r - low)
        return scale.tobytes() + (np.sign(x) * level).astype(np.int8).tobytes()

    def decode(self, data, d):
        if len(data) != 4 + d:
            raise ValueError(f"Dither: payload of {len(data)} bytes, expected {4 + d}")
        scale = float(np.frombuffer(data, np.float32, count=1)[0])
        if not np.isfinite(scale) or scale < 0:
            raise ValueError(f"Dither: scale {scale} in the payload is not a finite number >= 0 (malformed)")
        codes = np.frombuffer(data, np.int8, offset=4).astype(np.float64)
        return (codes * (scale / self.levels)).astype(np.float32)

    def properties(self, d):
        return pq.Properties(unbiased=True, omega=d / (4 * self.levels**2), delta=None)


class Largest(pq.Compressor):
    """Top-K as a chain stage written in Python: select/selection only (encode/decode come from
    the base class: the selection, then the kept values as float32)."""

    def __init__(self, *, k):
        self.k = k

    def select(self, x, rng):
        idx = np.sort(np.argsort(-np.abs(x), kind="stable")[: self.k]).astype(np.uint32)
        return idx.tobytes(), idx

    def selection(self, data, d):
        idx = np.frombuffer(data, np.uint32)
        if idx.size != self.k or (idx.size and idx.max() >= d):
            raise ValueError("Largest: malformed selection")
        return idx

    def properties(self, d):
        return pq.Properties(unbiased=False, omega=None, delta=self.k / d)


class Median(pq.Aggregator):
    """Coordinate-wise median of the senders (robust aggregation; ignores the weights)."""

    def combine(self, vectors, weights):
        return np.median(vectors.astype(np.float64), axis=0)


class PythonWeightedSum(pq.Aggregator):
    """The built-in weighted sum, written in Python: worker order, float64, so it must agree
    with the native rule bit for bit."""

    def combine(self, vectors, weights, workers, messages):
        self.seen = (workers.tolist(), [m.bits for m in messages])
        out = np.zeros(vectors.shape[1])
        for w, v in zip(weights, vectors):
            out += w * v.astype(np.float64)
        return out

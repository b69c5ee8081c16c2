"""Bad input at every public entry point (docs/guides/bad-input.md, one test per cell).

Each row of the table is an entry point (or a family sharing one validation), each column a
kind of bad input: NaN/Inf, empty, wrong dtype, wrong shape, wrong type, out of range. A
rejected cell must raise ValueError or TypeError (FileNotFoundError for a missing file) whose
message names the parameter; ``match`` below holds that name. Cells the table records as
"accepted" are checked to work. Torch rows skip without torch.
"""
import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import pyqsgd as pq

NAN, INF = math.nan, math.inf
X8 = np.linspace(-1.0, 1.0, 8)
A = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
Y = np.where(A[:, 0] > 0, 1.0, -1.0).astype(np.float32)
C = np.where(A[:, 0] > 0, 1, 0)
LS = pq.problems.LeastSquares(A, A[:, 0])
M = pq.methods.DCGD(pq.Identity())
SIGN = [pq.Sign().compress(np.array([1.0, -1.0, 2.0])) for _ in range(3)]
TOPK_MSG = pq.TopK(k=2).compress(X8)
FILES = {}  # LIBSVM test files, written by the module fixture below


@pytest.fixture(scope="module", autouse=True)
def _files(tmp_path_factory):
    d = tmp_path_factory.mktemp("libsvm")
    for name, text in {"ok": "1 1:0.5 3:2\n-1 2:1\n", "empty": "", "nan": "1 1:nan\n-1 2:1\n",
                       "token": "1 1:abc\n"}.items():
        (d / f"{name}.svm").write_text(text)
        FILES[name] = str(d / f"{name}.svm")
    FILES["dir"] = str(d)
    yield


def sim(**kw):
    args = dict(problem=LS, method=M, n_workers=2, rounds=1, lr=0.1)
    args.update(kw)
    return pq.simulate(args.pop("problem"), args.pop("method"), **args)


def sweep(**kw):
    return pq.sweep(_run, **{"grid": {"a": [1]}, "progress": False, **kw})


def _run(a, key):
    return {"v": a}


class PyC(pq.Compressor):
    """A Python compressor whose outputs are set per test."""

    def __init__(self, *, out="ok"):
        self.out = out

    def encode(self, x, rng):
        return "text" if self.out == "str" else x.tobytes()

    def decode(self, data, d):
        y = np.frombuffer(data, np.float32).copy()
        return {"ok": y, "nan": y * np.nan, "short": y[:-1], "f64": y.astype(np.float64)}.get(self.out, y)

    def properties(self, d):
        bad = {"omega_nan": dict(omega=NAN), "delta": dict(unbiased=False, omega=None, delta=1.5)}
        return pq.Properties(**{"unbiased": True, "omega": 0.0, "delta": None, **bad.get(self.out, {})})


class Comb(pq.Aggregator):
    def __init__(self, *, out="nan"):
        self.out = out

    def combine(self, vectors, weights):
        v = weights @ vectors
        return {"nan": v * np.nan, "short": v[:-1], "list": list(v), "int": v.astype(int)}[self.out]


class PM(pq.methods.PythonMethod):
    def worker(self, i, v, state, ctx):
        ctx.compress(v)

    def server(self, state, ctx):
        step = ctx.lr * ctx.aggregate(ctx.weights)
        return {"short": step[:-1], "list": list(step)}.get(getattr(self, "out", None), step)


class PMShort(PM):
    out = "short"


class PMList(PM):
    out = "list"


class PMSkip(PM):
    skip_bits = -1


class PyProblem:
    def __init__(self, n=40):
        self.n_samples = n

    def loss(self, x):
        return float(x @ x)

    def grad(self, x, idx):
        return 2 * x


CELLS = []  # (row, column, label, call, exception, match)
OK = []  # (row, column, label, call): accepted inputs


def bad(row, col, label, fn, exc, match):
    CELLS.append(pytest.param(fn, exc, match, id=f"{row}|{col}|{label}"))


def ok(row, col, label, fn):
    OK.append(pytest.param(fn, id=f"{row}|{col}|{label}"))


NA, E, DT, SH, TY, R = "naninf", "empty", "dtype", "shape", "type", "range"  # the table's columns
VE, TE = ValueError, TypeError

# ---- compressors ----------------------------------------------------------------------------
for make in (pq.TopK, pq.RandK):
    n = make.__name__
    bad(n, NA, "ratio=nan", lambda m=make: m(ratio=NAN), VE, "ratio must be finite")
    bad(n, NA, "k=inf", lambda m=make: m(k=INF), TE, "k must be an int")
    bad(n, E, "neither k nor ratio", lambda m=make: m(), VE, "exactly one of k and ratio")
    bad(n, DT, "k=2.0", lambda m=make: m(k=2.0), TE, "k must be an int")
    bad(n, DT, "k=True", lambda m=make: m(k=True), TE, "k must be an int")
    bad(n, DT, "ratio=0.5+0j", lambda m=make: m(ratio=0.5 + 0j), TE, "ratio must be a real number")
    bad(n, SH, "k=[3]", lambda m=make: m(k=[3]), TE, "k must be an int")
    bad(n, TY, "k='3'", lambda m=make: m(k="3"), TE, "k must be an int")
    bad(n, TY, "rounding=1", lambda m=make: m(ratio=0.5, rounding=1), VE, "rounding must be")
    bad(n, R, "k=0", lambda m=make: m(k=0), VE, "k must be >= 1")
    bad(n, R, "ratio=1.5", lambda m=make: m(ratio=1.5), VE, "ratio must be <= 1")
    bad(n, R, "k=2**70", lambda m=make: m(k=2**70), VE, "k must be <=")
    bad(n, R, "k > d", lambda m=make: m(k=9).compress(X8), VE, r"k must be in \[1, d\], got k=9 for d=8")
    ok(n, DT, "k=np.int64(3)", lambda m=make: m(k=np.int64(3)))
bad("RandK", TY, "shared_seed='yes'", lambda: pq.RandK(k=2, shared_seed="yes"), TE, "shared_seed must be a bool")

bad("QSGD", NA, "levels=nan", lambda: pq.QSGD(levels=NAN), TE, "levels must be an int")
bad("QSGD", E, "no levels", lambda: pq.QSGD(), TE, "levels")
bad("QSGD", DT, "levels=4.0", lambda: pq.QSGD(levels=4.0), TE, "levels must be an int")
bad("QSGD", SH, "levels=[4]", lambda: pq.QSGD(levels=[4]), TE, "levels must be an int")
bad("QSGD", TY, "levels='4'", lambda: pq.QSGD(levels="4"), TE, "levels must be an int")
bad("QSGD", R, "levels=0", lambda: pq.QSGD(levels=0), VE, "levels must be >= 1")
bad("QSGD", R, "levels=2**40", lambda: pq.QSGD(levels=2**40), VE, "levels must be <=")

for make in (pq.TruncatedQuantizer, pq.TruncatedUniformQuantizer):
    n = make.__name__
    bad(n, NA, "bits=nan", lambda m=make: m(bits=NAN), TE, "bits must be an int")
    bad(n, E, "no bits", lambda m=make: m(), TE, "bits")
    bad(n, DT, "bits=2.0", lambda m=make: m(bits=2.0), TE, "bits must be an int")
    bad(n, SH, "bits=[2]", lambda m=make: m(bits=[2]), TE, "bits must be an int")
    bad(n, TY, "bits='2'", lambda m=make: m(bits="2"), TE, "bits must be an int")
    bad(n, TY, "gamma=1.0", lambda m=make: m(bits=2, gamma=1.0), VE, "gamma must be 'mean' or 'median'")
    bad(n, R, "bits=0", lambda m=make: m(bits=0), VE, "bits must be >= 1")
    bad(n, R, "bits=17", lambda m=make: m(bits=17), VE, "bits must be <= 16")

NUQ = pq.NonUniformQuantizer
bad("NonUniformQuantizer", NA, "levels with nan", lambda: NUQ(bits=2, levels=[-1, NAN, 0.5, 1]),
    VE, "levels must be finite")
bad("NonUniformQuantizer", NA, "levels with inf", lambda: NUQ(bits=2, levels=[-INF, INF]),
    VE, "levels must start at -1")
bad("NonUniformQuantizer", E, "levels=[]", lambda: NUQ(bits=2, levels=[]),
    VE, "levels must have between 2 and 2\\*\\*bits")
bad("NonUniformQuantizer", E, "no bits", lambda: NUQ(), TE, "bits")
bad("NonUniformQuantizer", DT, "levels complex", lambda: NUQ(bits=2, levels=np.array([-1, 1], complex)), TE,
    "levels must be real numbers")
bad("NonUniformQuantizer", DT, "bits=2.0", lambda: NUQ(bits=2.0), TE, "bits must be an int")
bad("NonUniformQuantizer", SH, "5 levels for bits=2", lambda: NUQ(bits=2, levels=[-1, -.5, 0, .5, 1]), VE,
    "levels must have between 2 and 2\\*\\*bits entries, got 5")
bad("NonUniformQuantizer", SH, "levels 2-D", lambda: NUQ(bits=2, levels=np.array([[-1.0, 1.0]])),
    TE, "levels must be real")
bad("NonUniformQuantizer", TY, "levels='abc'", lambda: NUQ(bits=2, levels="abc"), TE, "levels must be a sequence")
bad("NonUniformQuantizer", TY, "density=1", lambda: NUQ(bits=2, density=1), VE, "density must be")
bad("NonUniformQuantizer", R, "levels unsorted", lambda: NUQ(bits=2, levels=[1.0, -1.0]), VE, "levels must start at -1")
bad("NonUniformQuantizer", R, "levels asymmetric", lambda: NUQ(bits=2, levels=[-1, .2, 1]),
    VE, "levels must be symmetric")
bad("NonUniformQuantizer", R, "bits=0", lambda: NUQ(bits=0), VE, "bits must be >= 1")
bad("NonUniformQuantizer", R, "levels and density", lambda: NUQ(bits=2, levels=[-1, 1], density="uniform"), VE,
    "levels or density")

bad("Truncate", NA, "threshold=nan", lambda: pq.Truncate(threshold=NAN), VE, "threshold must be finite")
bad("Truncate", NA, "threshold=inf", lambda: pq.Truncate(threshold=INF), VE, "threshold must be finite")
bad("Truncate", E, "no threshold", lambda: pq.Truncate(), TE, "threshold")
bad("Truncate", DT, "threshold=1j", lambda: pq.Truncate(threshold=1j), TE, "threshold must be a real number")
bad("Truncate", SH, "threshold=[1.0]", lambda: pq.Truncate(threshold=[1.0]), TE, "threshold must be a real number")
bad("Truncate", TY, "threshold=None", lambda: pq.Truncate(threshold=None), TE, "threshold must be a real number")
bad("Truncate", TY, "bits='2'", lambda: pq.Truncate(threshold="laplace", bits="2"), TE, "bits must be an int")
bad("Truncate", R, "threshold=0", lambda: pq.Truncate(threshold=0.0), VE, "threshold must be > 0")
bad("Truncate", R, "threshold='foo'", lambda: pq.Truncate(threshold="foo"),
    VE, "threshold must be a float > 0 or one of")
bad("Truncate", R, "rule without bits", lambda: pq.Truncate(threshold="laplace"), VE, "needs bits")
bad("Truncate", R, "gamma='max'", lambda: pq.Truncate(threshold=1.0, gamma="max"), VE, "gamma must be")

bad("Threshold", NA, "tau=nan", lambda: pq.Threshold(tau=NAN), VE, "tau must be finite")
bad("Threshold", NA, "tau=inf", lambda: pq.Threshold(tau=INF), VE, "tau must be finite")
bad("Threshold", E, "no tau", lambda: pq.Threshold(), TE, "tau")
bad("Threshold", DT, "tau=1j", lambda: pq.Threshold(tau=1j), TE, "tau must be a real number")
bad("Threshold", SH, "tau=[1.0]", lambda: pq.Threshold(tau=[1.0]), TE, "tau must be a real number")
bad("Threshold", TY, "tau='1'", lambda: pq.Threshold(tau="1"), TE, "tau must be a real number")
bad("Threshold", R, "tau=-1", lambda: pq.Threshold(tau=-1.0), VE, "tau must be >= 0")

for make in (pq.Identity, pq.Sign, pq.ScaledSign, pq.TernGrad, pq.Natural):
    bad("no-parameter compressors", TY, f"{make.__name__}(k=3)", lambda m=make: m(k=3), TE, "'k'")
    bad("no-parameter compressors", TY, f"{make.__name__}(3)", lambda m=make: m(3), TE, "positional")

# ---- compress / decompress / properties (every family shares as_vector / as_key) ------------
for c in (pq.TopK(k=2), pq.QSGD(levels=2), pq.chain(pq.TopK(k=3), pq.QSGD(levels=2)), PyC()):
    n = f"compress[{type(c).__name__}]"
    bad(n, NA, "x with nan", lambda c=c: c.compress([1.0, NAN, 2.0]), VE, "x contains NaN or Inf")
    bad(n, NA, "x with inf", lambda c=c: c.compress([1.0, INF, 2.0]), VE, "x contains NaN or Inf")
    bad(n, NA, "x=1e39 (float64)", lambda c=c: c.compress(np.array([1e39, 1.0, 2.0])), VE, "beyond float32.*rescale x")
    bad(n, E, "x=[]", lambda c=c: c.compress([]), VE, "x must be non-empty")
    bad(n, DT, "complex", lambda c=c: c.compress(np.ones(4, complex)), TE, "x must be a real numeric array")
    bad(n, DT, "bool", lambda c=c: c.compress(np.ones(4, bool)), TE, "x must be a real numeric array")
    bad(n, DT, "object", lambda c=c: c.compress(np.array([1, None, 2])), TE, "x must be a real numeric array")
    bad(n, SH, "2-D", lambda c=c: c.compress(np.ones((2, 4))), VE, "x must be 1-D")
    bad(n, SH, "0-D", lambda c=c: c.compress(1.0), VE, "x must be 1-D")
    bad(n, TY, "x=None", lambda c=c: c.compress(None), TE, "x must be a real numeric array")
    bad(n, TY, "x='abc'", lambda c=c: c.compress("abc"), TE, "x must be a real numeric array")
    bad(n, TY, "ragged list", lambda c=c: c.compress([[1, 2], [3]]), TE, "x must be a 1-D numeric array")
    bad(n, TY, "key=1.5", lambda c=c: c.compress(X8, key=1.5), TE, "key must be a non-negative int")
    bad(n, TY, "key=None", lambda c=c: c.compress(X8, key=None), TE, "key must be a non-negative int")
    bad(n, R, "key=-1", lambda c=c: c.compress(X8, key=-1), VE, r"key must be in \[0, 2\*\*64\)")
    bad(n, R, "key=2**64", lambda c=c: c.compress(X8, key=2**64), VE, r"key must be in \[0, 2\*\*64\)")
    ok(n, DT, "int and float16", lambda c=c: (c.compress(np.arange(4)), c.compress(np.ones(4, np.float16))))
    ok(n, TY, "list", lambda c=c: c.compress([1.0, 2.0, 3.0, 4.0]))
bad("compress[RandK]", R, "(d/k) x overflows", lambda: pq.RandK(k=1).compress(np.full(8, 3e38, np.float32)), VE,
    "rescale x")

QM = pq.QSGD(levels=2)
QMSG = QM.compress(X8)
bad("decompress", NA, "payload decodes to NaN", lambda: PyC(out="nan")(X8), VE, "NaN or Inf")
bad("decompress", E, "out of length 0", lambda: QM.decompress(QMSG, out=np.empty(0, np.float32)),
    VE, "out has length 0")
bad("decompress", DT, "out float64", lambda: QM.decompress(QMSG, out=np.zeros(8)),
    TE, "out must be a writeable.*float32")
bad("decompress", DT, "d=8.0", lambda: QM.decompress(QMSG, d=8.0), TE, "d must be an int")
bad("decompress", SH, "out of length 7", lambda: QM.decompress(QMSG, out=np.zeros(7, np.float32)),
    VE, "out has length 7")
bad("decompress", SH, "out 2-D", lambda: QM.decompress(QMSG, out=np.zeros((2, 4), np.float32)), TE, "out must be.*1-D")
bad("decompress", TY, "msg=bytes", lambda: QM.decompress(QMSG.to_bytes()), TE, "msg must be a pyqsgd.Message")
bad("decompress", TY, "msg=None", lambda: QM.decompress(None), TE, "msg must be a pyqsgd.Message")
bad("decompress", TY, "out=list", lambda: QM.decompress(QMSG, out=[0.0] * 8), TE, "out must be a float32 numpy array")
bad("decompress", TY, "d='8'", lambda: QM.decompress(QMSG, d="8"), TE, "d must be an int")
bad("decompress", R, "foreign message", lambda: QM.decompress(TOPK_MSG),
    VE, "message was not produced by this compressor")
bad("decompress", R, "d=7 for a d=8 message", lambda: QM.decompress(QMSG, d=7),
    VE, "message has d=8, the receiver expects d=7")
bad("decompress", R, "d=0", lambda: QM.decompress(QMSG, d=0), VE, "d must be >= 1")


def _readonly():
    out = np.zeros(8, np.float32)
    out.setflags(write=False)
    return QM.decompress(QMSG, out=out)


bad("decompress", R, "read-only out", _readonly, TE, "out must be a writeable")

bad("properties", NA, "d=nan", lambda: QM.properties(NAN), TE, "d must be an int")
bad("properties", DT, "d=8.0", lambda: QM.properties(8.0), TE, "d must be an int")
bad("properties", SH, "d=[8]", lambda: QM.properties([8]), TE, "d must be an int")
bad("properties", TY, "d='8'", lambda: QM.properties("8"), TE, "d must be an int")
bad("properties", TY, "d=None", lambda: QM.properties(None), TE, "d must be an int")
bad("properties", R, "d=0", lambda: QM.properties(0), VE, "d must be >= 1")
bad("properties", R, "d=2**70", lambda: QM.properties(2**70), VE, "d must be <=")
bad("properties", R, "TopK(k=5) at d=4", lambda: pq.TopK(k=5).properties(4), VE, "k must be in")

# Python-defined stages: what user code returns is checked (more in test_python_bad_input.py).
bad("Compressor subclass", NA, "decode returns NaN", lambda: PyC(out="nan")(X8), VE, "PyC.decode returned NaN or Inf")
bad("Compressor subclass", NA, "properties omega=nan", lambda: PyC(out="omega_nan")(X8), VE, "omega must be a finite")
bad("Compressor subclass", DT, "decode returns float64", lambda: PyC(out="f64")(X8),
    TE, "PyC.decode must return float32")
bad("Compressor subclass", SH, "decode returns d-1 values", lambda: PyC(out="short")(X8),
    VE, r"PyC.decode must return shape \(8,\)")
bad("Compressor subclass", TY, "encode returns str", lambda: PyC(out="str")(X8), TE, "PyC.encode must return bytes")
bad("Compressor subclass", R, "properties delta=1.5", lambda: PyC(out="delta")(X8), VE, r"delta must be in \(0, 1\]")
bad("Properties", R, "omega=nan, checked when used", lambda: PyC(out="omega_nan")._native, VE, "omega")

# ---- combinators ----------------------------------------------------------------------------
bad("chain / induced", E, "chain()", lambda: pq.chain(), TE, "'a' and 'b'")
bad("chain / induced", E, "induced()", lambda: pq.induced(), TE, "'biased' and 'unbiased'")
bad("chain / induced", TY, "chain(b='QSGD')", lambda: pq.chain(pq.TopK(k=2), "QSGD"),
    TE, "b must be a pyqsgd compressor")
bad("chain / induced", TY, "chain(a=None)", lambda: pq.chain(None, pq.QSGD(levels=2)),
    TE, "a must be a pyqsgd compressor")
bad("chain / induced", TY, "induced(c1=None)", lambda: pq.induced(None, pq.RandK(k=2)),
    TE, "c1 must be a pyqsgd compressor")
NATIVE_TOPK = pq._core.TopK(k=2, ratio=0.0, rounding="round")
bad("chain / induced", TY, "native _core object", lambda: pq.chain(NATIVE_TOPK, pq.QSGD(levels=2)),
    TE, "a must be a pyqsgd compressor")
bad("chain / induced", R, "QSGD as first stage", lambda: pq.chain(pq.QSGD(levels=2), pq.TopK(k=2)), VE, "first stage")
bad("chain / induced", R, "biased second stage", lambda: pq.induced(pq.TopK(k=2), pq.TopK(k=2)), VE,
    "second compressor must be unbiased")

BW = pq.blockwise
bad("blockwise", NA, "blocks=[nan]", lambda: BW(pq.TopK(k=1), [NAN]), TE, r"blocks\[0\] must be an int")
bad("blockwise", E, "blocks=[]", lambda: BW(pq.TopK(k=1), []), VE, "blocks must list at least one")
bad("blockwise", E, "compressor=[]", lambda: BW([], [2]),
    TE, "compressor must be a pyqsgd compressor or a non-empty list")
bad("blockwise", DT, "blocks=[2.0]", lambda: BW(pq.TopK(k=1), [2.0]), TE, r"blocks\[0\] must be an int")
bad("blockwise", SH, "blocks sum != d", lambda: BW(pq.TopK(k=1), [2, 3]).compress(X8),
    VE, "blocks sum to 5 but x has d=8")
bad("blockwise", SH, "3 compressors, 2 blocks", lambda: BW([pq.TopK(k=1)] * 3, [2, 6]),
    VE, "compressor lists 3 compressors")
bad("blockwise", SH, "blocks 2-D", lambda: BW(pq.TopK(k=1), np.array([[2, 6]])), TE, r"blocks\[0\] must be an int")
bad("blockwise", TY, "blocks=5", lambda: BW(pq.TopK(k=1), 5), TE, "blocks must be a sequence")
bad("blockwise", TY, "compressor=None", lambda: BW(None, [2]), TE, "compressor must be a pyqsgd compressor")
bad("blockwise", R, "blocks=[0, 2]", lambda: BW(pq.TopK(k=1), [0, 2]), VE, r"blocks\[0\] must be >= 1")
bad("blockwise", R, "blocks=[2**70]", lambda: BW(pq.TopK(k=1), [2**70]), VE, "blocks must sum to a vector length below")
bad("blockwise", R, "k > block size", lambda: BW(pq.TopK(k=3), [2, 6]).compress(X8),
    VE, r"block 0 \(size 2\): TopK: k must")
ok("blockwise", DT, "blocks as int array", lambda: BW(pq.TopK(k=1), np.array([2, 6])).compress(X8))

# ---- Key, Message ---------------------------------------------------------------------------
bad("Key", NA, "seed=nan", lambda: pq.Key(seed=NAN), TE, "Key: seed must be an int")
bad("Key", DT, "seed=1.0", lambda: pq.Key(seed=1.0), TE, "Key: seed must be an int")
bad("Key", DT, "seed=True", lambda: pq.Key(seed=True), TE, "Key: seed must be an int")
bad("Key", SH, "seed=[1]", lambda: pq.Key(seed=[1]), TE, "Key: seed must be an int")
bad("Key", TY, "seed='1'", lambda: pq.Key(seed="1"), TE, "Key: seed must be an int")
bad("Key", TY, "Key(1)", lambda: pq.Key(1), TE, "Key: takes keyword arguments only")
bad("Key", TY, "child('a')", lambda: pq.Key().child("a"), TE, "Key.child: i must be an int")
bad("Key", R, "seed=-1", lambda: pq.Key(seed=-1), VE, r"Key: seed must be in \[0, 2\*\*64\)")
bad("Key", R, "seed=2**64", lambda: pq.Key(seed=2**64), VE, r"Key: seed must be in \[0, 2\*\*64\)")
bad("Key", R, "round=2**32", lambda: pq.Key(round=2**32), VE, r"Key: round must be in \[0, 2\*\*32\)")
bad("Key", R, "worker=-1", lambda: pq.Key(worker=-1), VE, "Key: worker must be in")
bad("Key", R, "stream=2**32", lambda: pq.Key(stream=2**32), VE, "Key: stream must be in")
bad("Key", R, "child(-1)", lambda: pq.Key().child(-1), VE, "Key.child: i must be in")
bad("Key", R, "block(-1)", lambda: pq.Key().block(-1), VE, "Key.block: b must be in")
ok("Key", DT, "np.int64 seed", lambda: pq.Key(seed=np.int64(3), round=np.uint32(1)))

RAW = TOPK_MSG.to_bytes()
bad("Message.from_bytes", E, "b''", lambda: pq.Message.from_bytes(b""), VE, "data is not a valid message")
bad("Message.from_bytes", DT, "uint8 array", lambda: pq.Message.from_bytes(np.frombuffer(RAW, np.uint8)), TE,
    "data must be bytes")
bad("Message.from_bytes", SH, "truncated", lambda: pq.Message.from_bytes(RAW[:-3]),
    VE, "data is not a valid message.*checksum")
bad("Message.from_bytes", TY, "str", lambda: pq.Message.from_bytes("abc"), TE, "data must be bytes")
bad("Message.from_bytes", TY, "None", lambda: pq.Message.from_bytes(None), TE, "data must be bytes")
bad("Message.from_bytes", R, "not a message", lambda: pq.Message.from_bytes(b"x" * 100),
    VE, "data is not a valid message")
bad("Message.from_bytes", R, "one bit flipped",
    lambda: pq.Message.from_bytes(RAW[:50] + bytes([RAW[50] ^ 1]) + RAW[51:]),
    VE, "checksum")
bad("Message.from_bytes", TY, "Message()", lambda: pq.Message(), TE, "Message")
ok("Message.from_bytes", DT, "bytearray / memoryview", lambda: (pq.Message.from_bytes(bytearray(RAW)),
                                                              pq.Message.from_bytes(memoryview(RAW))))

# ---- aggregators ----------------------------------------------------------------------------
VV = [[1.0, 2.0], [3.0, 4.0]]
for agg in (pq.Mean(), pq.WeightedMean([1.0, 3.0])):
    n = f"{type(agg).__name__}.aggregate"
    bad(n, NA, "vector with nan", lambda a=agg: a.aggregate([[1.0, NAN], [3.0, 4.0]]), VE, r"vectors\[0\] contains NaN")
    bad(n, NA, "participation nan", lambda a=agg: a.aggregate(VV, participation=[NAN, 1.0]), VE, "participation must")
    bad(n, E, "[]", lambda a=agg: a.aggregate([]), VE, "vectors must hold at least one")
    bad(n, E, "empty rows", lambda a=agg: a.aggregate([[], []]), VE, r"vectors\[0\] must be a non-empty 1-D")
    bad(n, E, "all idle", lambda a=agg: a.aggregate([None, None]), VE, "vectors: every worker is idle")
    bad(n, DT, "complex rows", lambda a=agg: a.aggregate(np.ones((2, 2), complex)), TE, r"vectors\[0\] must hold real")
    bad(n, DT, "str rows", lambda a=agg: a.aggregate([["a", "b"], ["c", "d"]]), TE, r"vectors\[0\] must hold real")
    bad(n, DT, "participation str", lambda a=agg: a.aggregate(VV, participation=["a", "b"]),
        TE, "participation must hold")
    bad(n, SH, "ragged", lambda a=agg: a.aggregate([[1.0, 2.0], [3.0]]), VE, r"vectors\[1\] has shape \(1,\)")
    bad(n, SH, "scalars", lambda a=agg: a.aggregate([1.0, 2.0]), VE, r"vectors\[0\] must be a non-empty 1-D")
    bad(n, SH, "participation length 3", lambda a=agg: a.aggregate(VV, participation=[1.0] * 3),
        VE, "participation must")
    bad(n, TY, "None", lambda a=agg: a.aggregate(None), TE, "vectors must be a list")
    bad(n, TY, "5", lambda a=agg: a.aggregate(5), TE, "vectors must be a list")
    bad(n, R, "participation 0", lambda a=agg: a.aggregate(VV, participation=[0.0, 1.0]), VE, "participation must")
bad("Mean", TY, "Mean(1)", lambda: pq.Mean(1), TE, "positional")

WM = pq.WeightedMean
bad("WeightedMean", NA, "nan", lambda: WM([1.0, NAN]), VE, "weights must be finite")
bad("WeightedMean", NA, "inf", lambda: WM([1.0, INF]), VE, "weights must be finite")
bad("WeightedMean", E, "[]", lambda: WM([]), VE, "weights must be a non-empty 1-D")
bad("WeightedMean", DT, "complex", lambda: WM(np.array([1, 2], complex)), TE, "weights must hold real numbers")
bad("WeightedMean", DT, "bool", lambda: WM([True, False]), TE, "weights must hold real numbers")
bad("WeightedMean", DT, "object", lambda: WM([1, None]), TE, "weights must hold real numbers")
bad("WeightedMean", SH, "2-D", lambda: WM([[1.0, 2.0]]), VE, "weights must be a non-empty 1-D")
bad("WeightedMean", SH, "2 weights, 3 workers", lambda: WM([1.0, 2.0]).aggregate([[1.0], [2.0], [3.0]]), VE,
    "2 weights given for 3 workers")
bad("WeightedMean", SH, "scalar", lambda: WM(5.0), VE, "weights must be a non-empty 1-D")
bad("WeightedMean", TY, "None", lambda: WM(None), TE, "weights must hold real numbers")
bad("WeightedMean", TY, "'abc'", lambda: WM("abc"), VE, "weights must be an array of per-worker weights or 'data'")
bad("WeightedMean", TY, "dict", lambda: WM({"a": 1}), TE, "weights must hold real numbers")
bad("WeightedMean", R, "negative", lambda: WM([1.0, -1.0]), VE, "weights must be finite, >= 0")
bad("WeightedMean", R, "all zero", lambda: WM([0.0, 0.0]), VE, "not all zero")
ok("WeightedMean", DT, "int weights", lambda: WM([1, 2]))

bad("Aggregator subclass", NA, "combine returns NaN", lambda: Comb(out="nan").aggregate(VV),
    VE, "Comb.combine returned NaN")
bad("Aggregator subclass", DT, "combine returns int", lambda: Comb(out="int").aggregate(VV),
    TE, "Comb.combine must return a float")
bad("Aggregator subclass", SH, "combine returns d-1", lambda: Comb(out="short").aggregate(VV),
    VE, r"Comb.combine must return shape")
bad("Aggregator subclass", TY, "combine returns list", lambda: Comb(out="list").aggregate(VV),
    TE, "Comb.combine must return a float")

for vote in (pq.MajorityVote, pq.FederatedVote):
    n = f"{vote.__name__}.aggregate"
    bad(n, E, "[]", lambda v=vote: v().aggregate([]), VE, "messages must hold at least one")
    bad(n, DT, "TopK messages", lambda v=vote: v().aggregate([TOPK_MSG, TOPK_MSG]), VE, "needs sign messages")
    bad(n, SH, "mixed d", lambda v=vote: v().aggregate([SIGN[0], pq.Sign().compress(np.ones(5))]), VE,
        "messages disagree on the dimension d")
    bad(n, TY, "arrays", lambda v=vote: v().aggregate([np.ones(3)]), TE, "messages must be pyqsgd.Message")
    bad(n, TY, "None", lambda v=vote: v().aggregate(None), TE, "messages must be a list")
    bad(n, TY, "one Message", lambda v=vote: v().aggregate(SIGN[0]), TE, "messages must be a list")


def _fv_twice(first, second, **kw):
    fv = pq.FederatedVote(**kw)
    fv.aggregate(first)
    return fv.aggregate(second)


bad("FederatedVote.aggregate", SH, "fewer workers than learned", lambda: _fv_twice(SIGN, SIGN[:2]), VE,
    "got 2 messages, but the state was learned for 3 workers")
bad("FederatedVote.aggregate", SH, "other d than learned", lambda: _fv_twice(SIGN, [pq.Sign().compress(np.ones(5))] * 3,
                                                                            per_coordinate=True), VE,
    "messages have d=5, but the per-coordinate state was learned for d=3")

FV = pq.FederatedVote
bad("FederatedVote", NA, "W=nan", lambda: FV(W=NAN), VE, "W must be finite")
bad("FederatedVote", NA, "lam=inf", lambda: FV(lam=INF), VE, "lam must be finite")
bad("FederatedVote", DT, "T_in=1.5", lambda: FV(T_in=1.5), TE, "T_in must be an int")
bad("FederatedVote", DT, "W=1j", lambda: FV(W=1j), TE, "W must be a real number")
bad("FederatedVote", SH, "W=[1.0]", lambda: FV(W=[1.0]), TE, "W must be a real number")
bad("FederatedVote", TY, "W='1'", lambda: FV(W="1"), TE, "W must be a real number")
bad("FederatedVote", TY, "per_coordinate=1", lambda: FV(per_coordinate=1), TE, "per_coordinate must be a bool")
bad("FederatedVote", R, "W=0", lambda: FV(W=0.0), VE, "W must be > 0")
bad("FederatedVote", R, "lam=1.5", lambda: FV(lam=1.5), VE, "lam must be <= 1")
bad("FederatedVote", R, "T_in=-1", lambda: FV(T_in=-1), VE, "T_in must be >= 0")
bad("FederatedVote", R, "eps=0", lambda: FV(eps=0.0), VE, "eps must be > 0")

# ---- methods --------------------------------------------------------------------------------
RK = pq.RandK(k=2)
for make in (pq.methods.DCGD, pq.methods.EF, pq.methods.EF21, pq.methods.DIANA):
    n = make.__name__
    bad(n, NA, "server_momentum=nan", lambda m=make: m(RK, server_momentum=NAN), VE, "server_momentum must be finite")
    bad(n, E, "compressor=[]", lambda m=make: m([]), TE, "compressor must be a pyqsgd compressor or a non-empty list")
    bad(n, DT, "server_momentum=1j", lambda m=make: m(RK, server_momentum=1j), TE, "server_momentum must be a real")
    bad(n, SH, "server_momentum=[0.5]", lambda m=make: m(RK, server_momentum=[0.5]),
        TE, "server_momentum must be a real")
    bad(n, SH, "3 compressors, 2 workers", lambda m=make: sim(method=m([RK] * 3)),
        VE, "got 3 compressors for 2 workers")
    bad(n, TY, "compressor='TopK'", lambda m=make: m("TopK"), TE, "compressor must be a pyqsgd compressor")
    bad(n, TY, "compressor=None", lambda m=make: m(None), TE, "compressor must be a pyqsgd compressor")
    bad(n, TY, "aggregator='mean'", lambda m=make: m(RK, aggregator="mean"),
        TE, "aggregator must be a pyqsgd aggregator")
    bad(n, TY, "downlink=1", lambda m=make: m(RK, downlink=1), TE, "downlink must be a pyqsgd compressor or None")
    bad(n, R, "server_momentum=1", lambda m=make: m(RK, server_momentum=1.0), VE, "server_momentum must be < 1")
    bad(n, R, "server_momentum=-0.1", lambda m=make: m(RK, server_momentum=-0.1), VE, "server_momentum must be >= 0")
bad("EF21", TY, "exact_init=1", lambda: pq.methods.EF21(RK, exact_init=1), TE, "exact_init must be a bool")
bad("DIANA", NA, "alpha=nan", lambda: pq.methods.DIANA(RK, alpha=NAN), VE, "alpha must be finite")
bad("DIANA", TY, "alpha='x'", lambda: pq.methods.DIANA(RK, alpha="x"), TE, "alpha must be a real number")
bad("DIANA", R, "alpha=0", lambda: pq.methods.DIANA(RK, alpha=0.0), VE, "alpha must be > 0")
bad("DIANA", R, "alpha=1.5", lambda: pq.methods.DIANA(RK, alpha=1.5), VE, "alpha must be <= 1")
bad("DIANA", R, "biased compressor", lambda: pq.methods.DIANA(pq.TopK(k=2)), VE, "the compressor must be unbiased")

LE = pq.methods.LESignSGD
for make in (pq.methods.EFSignSGD, LE):
    n = make.__name__
    bad(n, NA, "server_momentum=nan", lambda m=make: m(server_momentum=NAN), VE, "server_momentum must be finite")
    bad(n, TY, "a compressor", lambda m=make: m(compressor=pq.TopK(k=2)), TE, "'compressor'")
    bad(n, R, "server_momentum=-1", lambda m=make: m(server_momentum=-1.0), VE, "server_momentum must be >= 0")
bad("LESignSGD", NA, "xi=nan", lambda: LE(xi=NAN), VE, "xi must be finite")
bad("LESignSGD", DT, "D=2.0", lambda: LE(D=2.0), TE, "D must be an int")
bad("LESignSGD", SH, "D=[2]", lambda: LE(D=[2]), TE, "D must be an int")
bad("LESignSGD", TY, "xi='a'", lambda: LE(xi="a"), TE, "xi must be a real number")
bad("LESignSGD", R, "D=0", lambda: LE(D=0), VE, "D must be >= 1")
bad("LESignSGD", R, "D=2**40", lambda: LE(D=2**40), VE, "D must be <= 4294967295")
bad("LESignSGD", R, "xi=-1", lambda: LE(xi=-1.0), VE, "xi must be >= 0")
bad("LESignSGD", R, "t_bar=-1", lambda: LE(t_bar=-1), VE, "t_bar must be >= 0")
bad("LESignSGD", R, "t_bar=2**70", lambda: LE(t_bar=2**70), VE, "t_bar must be <=")
bad("LESignSGD", TY, "a Python aggregator", lambda: LE(aggregator=Comb()), TE, "aggregator with its own combine")

for make in (pq.methods.SignSGDMV, pq.methods.SignSGDFV):
    n = make.__name__
    bad(n, NA, "worker_momentum=nan", lambda m=make: m(worker_momentum=NAN), VE, "worker_momentum must be finite")
    bad(n, TY, "worker_momentum='a'", lambda m=make: m(worker_momentum="a"), TE, "worker_momentum must be a real")
    bad(n, R, "worker_momentum=1", lambda m=make: m(worker_momentum=1.0), VE, "worker_momentum must be < 1")
FVM = pq.methods.SignSGDFV
bad("SignSGDFV", NA, "W=inf", lambda: FVM(W=INF), VE, "W must be finite")
bad("SignSGDFV", DT, "T_in=1.5", lambda: FVM(T_in=1.5), TE, "T_in must be an int")
bad("SignSGDFV", SH, "lam=[1]", lambda: FVM(lam=[1.0]), TE, "lam must be a real number")
bad("SignSGDFV", TY, "oracle='y'", lambda: FVM(oracle="y"), TE, "oracle must be a bool")
bad("SignSGDFV", R, "lam=0", lambda: FVM(lam=0.0), VE, "lam must be > 0")
bad("SignSGDFV", R, "T_in=2**40", lambda: FVM(T_in=2**40), VE, "T_in must be <= 4294967295")
bad("SignSGDFV", R, "authors_compat with oracle", lambda: FVM(authors_compat=True, oracle=True),
    VE, "authors_compat=True")

DG = pq.methods.DAGC
bad("DAGC", NA, "mean=nan", lambda: DG(mean=NAN), VE, "mean must be finite")
bad("DAGC", NA, "volumes with nan", lambda: DG(mean=0.1, volumes=[1.0, NAN]), VE, "volumes must be finite")
bad("DAGC", E, "no mean", lambda: DG(), TE, "'mean'")
bad("DAGC", E, "volumes=[]", lambda: DG(mean=0.1, volumes=[]), VE, "volumes must be non-empty")
bad("DAGC", DT, "volumes complex", lambda: DG(mean=0.1, volumes=np.ones(2, complex)),
    TE, "volumes must be real numbers")
bad("DAGC", DT, "mean=1j", lambda: DG(mean=1j), TE, "mean must be a real number")
bad("DAGC", SH, "volumes 2-D", lambda: DG(mean=0.1, volumes=[[1.0, 2.0]]), VE, "volumes must be 1-D")
bad("DAGC", SH, "3 volumes, 2 workers", lambda: sim(method=DG(mean=0.5, volumes=[1.0, 2.0, 3.0])), VE,
    "volumes has 3 entries for 2 workers")
bad("DAGC", TY, "volumes=5", lambda: DG(mean=0.1, volumes=5), TE, "volumes must be a 1-D array")
bad("DAGC", TY, "quantizer='q'", lambda: DG(mean=0.1, quantizer="q"), TE, "quantizer must be a pyqsgd compressor")
bad("DAGC", TY, "error_feedback=1", lambda: DG(mean=0.1, error_feedback=1), TE, "error_feedback must be a bool")
bad("DAGC", TY, "variant=1", lambda: DG(variant=1, mean=0.1), VE, "variant must be 'R'")
bad("DAGC", R, "mean=1.5 (R)", lambda: DG(mean=1.5), VE, "mean must be <= 1")
bad("DAGC", R, "mean=0 (A)", lambda: DG(variant="A", mean=0.0), VE, "mean must be > 0")
bad("DAGC", R, "rule='x'", lambda: DG(mean=0.1, rule="x"), VE, "rule must be 'clipped'")
bad("DAGC", R, "volumes with 0", lambda: DG(mean=0.1, volumes=[1.0, 0.0]), VE, r"volumes\[1\]=0")

bad("PythonMethod", SH, "server returns d-1", lambda: sim(method=PMShort(pq.Identity())),
    VE, "PMShort.server must return a step of shape")
bad("PythonMethod", TY, "server returns list", lambda: sim(method=PMList(pq.Identity())),
    TE, "PMList.server must return the step")
bad("PythonMethod", TY, "compressor=None", lambda: PM(None), TE, "compressor must be a pyqsgd compressor")
bad("PythonMethod", R, "skip_bits=-1", lambda: sim(method=PMSkip(pq.Identity())),
    TE, "PMSkip.skip_bits must be an int >= 0")

# ---- simulate -------------------------------------------------------------------------------
bad("simulate", NA, "lr=nan", lambda: sim(lr=NAN), VE, "lr must be finite")
bad("simulate", NA, "lr=inf", lambda: sim(lr=INF), VE, "lr must be finite")
bad("simulate", NA, "x0 with nan", lambda: sim(x0=[NAN, 0, 0, 0]), VE, "x0 contains NaN or Inf")
bad("simulate", NA, "participation=nan", lambda: sim(participation=NAN), VE, "participation must be finite")
bad("simulate", NA, "local_lr=inf", lambda: sim(local_steps=2, local_lr=INF), VE, "local_lr must be finite")
bad("simulate", E, "x0=[]", lambda: sim(x0=[]), VE, "x0 has length 0")
bad("simulate", E, "partition=[]", lambda: sim(partition=[]), VE, "partition has 0 shards")
bad("simulate", E, "an empty shard", lambda: sim(partition=[np.arange(40), np.array([], int)]),
    VE, "worker 1 has an empty shard")
bad("simulate", E, "batch_size=[]", lambda: sim(batch_size=[]), VE, "batch_size must have one entry per worker")
bad("simulate", E, "participation=[]", lambda: sim(participation=[]),
    VE, "participation must have one entry per worker")
bad("simulate", DT, "x0 complex", lambda: sim(x0=np.ones(4, complex)), TE, "x0 must be a real numeric array")
bad("simulate", DT, "x0 str", lambda: sim(x0=["a"] * 4), TE, "x0 must be a real numeric array")
bad("simulate", DT, "x0 object", lambda: sim(x0=np.array([None] * 4)), TE, "x0 must be a real numeric array")
bad("simulate", DT, "x0 bool", lambda: sim(x0=np.ones(4, bool)), TE, "x0 must be a real numeric array")
bad("simulate", DT, "n_workers=2.0", lambda: sim(n_workers=2.0), TE, "n_workers must be an int")
bad("simulate", DT, "rounds=2.5", lambda: sim(rounds=2.5), TE, "rounds must be an int")
bad("simulate", DT, "float shards", lambda: sim(partition=[np.arange(20.0), np.arange(20.0, 40.0)]), TE,
    "partition shard 0 must be an integer index array")
bad("simulate", DT, "bool-mask shards", lambda: sim(partition=[np.ones(40, bool)] * 2), TE, "np.flatnonzero")
bad("simulate", DT, "lr=1j", lambda: sim(lr=1j), TE, "lr must be a real number")
bad("simulate", DT, "dtype='int32'", lambda: sim(dtype="int32"), VE, "dtype must be 'float64' or 'float32'")
bad("simulate", DT, "state_dtype='float16'", lambda: sim(state_dtype="float16"), VE,
    "state_dtype must be 'float64' or 'float32'")
bad("simulate", TY, "streaming='yes'", lambda: sim(streaming="yes"), TE, "streaming must be a bool")
bad("simulate", R, "state_dtype='float32' with a PythonMethod", lambda: sim(method=PMSkip(pq.Identity()),
    state_dtype="float32"), VE, "PythonMethod keeps its own state")
bad("simulate", SH, "x0 of length 3", lambda: sim(x0=np.zeros(3)), VE, "x0 has length 3, the problem has dimension 4")
bad("simulate", SH, "batch_size for 3 workers", lambda: sim(batch_size=[1, 2, 3]), VE, "batch_size must have one entry")
bad("simulate", SH, "participation for 3 workers", lambda: sim(participation=[1.0] * 3),
    VE, "participation must have one entry")
bad("simulate", SH, "3 shards for 2 workers",
    lambda: sim(partition=[np.arange(10), np.arange(10, 20), np.arange(20, 40)]),
    VE, "partition has 3 shards for n_workers=2")
bad("simulate", SH, "2-D shard", lambda: sim(partition=[np.arange(20).reshape(4, 5), np.arange(20, 40)]), VE,
    "partition shard 0 must be a 1-D")
bad("simulate", TY, "problem=None", lambda: sim(problem=None), TE, "problem must be a pyqsgd problem")
bad("simulate", TY, "method=TopK", lambda: sim(method=pq.TopK(k=2)), TE, "method must be a pyqsgd method")
bad("simulate", TY, "lr='0.1'", lambda: sim(lr="0.1"), TE, "lr must be a real number")
bad("simulate", TY, "rounds=None", lambda: sim(rounds=None), TE, "rounds must be an int")
bad("simulate", TY, "batch_size='4'", lambda: sim(batch_size="4"), TE, "batch_size must be an int")
bad("simulate", TY, "partition=5", lambda: sim(partition=5), TE, "partition must be None, a scheme name or a list")
bad("simulate", TY, "partition='nope'", lambda: sim(partition="nope"), VE, "unknown partition scheme 'nope'")
bad("simulate", TY, "participation='a'", lambda: sim(participation="a"), TE, "participation must be a real number")
bad("simulate", TY, "x0='abc'", lambda: sim(x0="abc"), TE, "x0 must be a real numeric array")
bad("simulate", TY, "key=None", lambda: sim(key=None), TE, "key must be a non-negative int")
bad("simulate", TY, "progress='yes'", lambda: sim(progress="yes"), TE, "progress must be a bool")
bad("simulate", TY, "local_steps=1.0", lambda: sim(local_steps=1.0, local_lr=0.1), TE, "local_steps must be an int")
bad("simulate", TY, "chunk='a'", lambda: sim(chunk="a"), TE, "chunk must be an int")
bad("simulate", TY, "Python problem without a sample count", lambda: sim(problem=PyProblem(None), x0=np.zeros(3)), TE,
    "n_samples")
bad("simulate", R, "lr=0", lambda: sim(lr=0.0), VE, "lr must be > 0")
bad("simulate", R, "n_workers=0", lambda: sim(n_workers=0), VE, "n_workers must be >= 1")
bad("simulate", R, "n_workers > samples", lambda: sim(n_workers=100),
    VE, "n_workers=100 exceeds the number of samples 40")
bad("simulate", R, "rounds=-1", lambda: sim(rounds=-1), VE, "rounds must be >= 0")
bad("simulate", R, "rounds=2**70", lambda: sim(rounds=2**70), VE, "rounds must be <=")
bad("simulate", R, "log_every=0", lambda: sim(log_every=0), VE, "log_every must be >= 1")
bad("simulate", R, "log_every=2**70", lambda: sim(log_every=2**70), VE, "log_every must be <=")
bad("simulate", R, "batch_size=0", lambda: sim(batch_size=0), VE, "batch_size must be >= 1")
bad("simulate", R, "batch_size > shard", lambda: sim(batch_size=100),
    VE, "batch_size 100 of worker 0 exceeds its shard size")
bad("simulate", R, "participation=1.5", lambda: sim(participation=1.5),
    VE, r"participation probabilities must be in \(0, 1\]")
bad("simulate", R, "index 40 of 40", lambda: sim(partition=[np.arange(20), np.arange(21, 41)]), VE,
    r"partition shard 1 has indices outside \[0, 40\)")
bad("simulate", R, "overlapping shards", lambda: sim(partition=[np.arange(20), np.arange(19, 40)]), VE,
    "partition shards overlap")
bad("simulate", R, "key=-1", lambda: sim(key=-1), VE, "key must be in")
bad("simulate", R, "tau=3 of 2 workers", lambda: sim(tau=3), VE, "tau must be <= 2")
bad("simulate", R, "local_steps=2**40", lambda: sim(local_steps=2**40, local_lr=0.1), VE, "local_steps must be <=")
bad("simulate", R, "local_lr=0", lambda: sim(local_steps=1, local_lr=0.0), VE, "local_lr must be > 0")
bad("simulate", R, "local_lr without local_steps", lambda: sim(local_lr=0.1),
    VE, "local_lr is only used with local_steps")
bad("simulate", R, "tau and participation", lambda: sim(tau=1, participation=0.5),
    VE, "participation probabilities or tau")
bad("simulate", R, "chunk=0", lambda: sim(chunk=0), VE, "chunk must be >= 1")
bad("simulate", R, "partition='dirichlet' (needs alpha)", lambda: sim(partition="dirichlet"), VE, "needs a parameter")
ok("simulate", SH, "x0 as a (1, d) matrix", lambda: sim(x0=np.zeros((1, 4))))
ok("simulate", TY, "x0 as a list of ints", lambda: sim(x0=[0, 0, 0, 0]))


def test_simulate_divergence_is_reported_not_silent():
    # A run whose model becomes non-finite stops with a warning and status "diverged" (by design:
    # the history so far is kept), never silently.
    with pytest.warns(RuntimeWarning, match="non-finite loss, gradient or model"):
        hist = sim(problem=pq.problems.LeastSquares(A * 1e18, A[:, 0]), lr=1e30, rounds=5)
    assert hist.status == "diverged"


# ---- measure, check_compressor --------------------------------------------------------------
MS = pq.measure
bad("measure", NA, "x with nan", lambda: MS(RK, [1.0, NAN, 2.0], trials=10), VE, "x contains NaN")
bad("measure", NA, "confidence=nan", lambda: MS(RK, X8, trials=10, confidence=NAN), VE, "confidence must be finite")
bad("measure", E, "x=[]", lambda: MS(RK, [], trials=10), VE, "x must be non-empty")
bad("measure", E, "x all zero", lambda: MS(RK, np.zeros(4), trials=10), VE, "x must be nonzero")
bad("measure", DT, "x complex", lambda: MS(RK, np.ones(4, complex), trials=10), TE, "x must be a real numeric array")
bad("measure", DT, "trials=10.0", lambda: MS(RK, X8, trials=10.0), TE, "trials must be an int")
bad("measure", DT, "confidence=1j", lambda: MS(RK, X8, trials=10, confidence=1j),
    TE, "confidence must be a real number")
bad("measure", SH, "x 2-D", lambda: MS(RK, np.ones((2, 4)), trials=10), VE, "x must be 1-D")
bad("measure", TY, "c=None", lambda: MS(None, X8, trials=10), TE, "c must be a pyqsgd compressor")
bad("measure", TY, "confidence='a'", lambda: MS(RK, X8, trials=10, confidence="a"),
    TE, "confidence must be a real number")
bad("measure", TY, "key=Key", lambda: MS(RK, X8, trials=10, key=pq.Key()), TE, "key must be an int")
bad("measure", R, "trials=1", lambda: MS(RK, X8, trials=1), VE, "trials must be >= 2")
bad("measure", R, "key=2**64", lambda: MS(RK, X8, trials=10, key=2**64), VE, "key must be <=")
bad("measure", R, "confidence=1", lambda: MS(RK, X8, trials=10, confidence=1.0), VE, r"confidence must be in \(0, 1\)")

CC = pq.testing.check_compressor
bad("check_compressor", NA, "vector with nan", lambda: CC(RK, vectors=[[1.0, NAN, 2.0]]),
    VE, "must be finite and nonzero")
bad("check_compressor", NA, "alpha=nan", lambda: CC(RK, alpha=NAN), VE, "alpha must be finite")
bad("check_compressor", E, "vectors=[]", lambda: CC(RK, vectors=[]), VE, "vectors is empty")
bad("check_compressor", E, "vectors=[[]]", lambda: CC(RK, vectors=[[]]), VE, "must be a non-empty 1-D real array")
bad("check_compressor", DT, "complex vector", lambda: CC(RK, vectors=[np.ones(4, complex)]),
    VE, "must be a non-empty 1-D real")
bad("check_compressor", DT, "d=8.0", lambda: CC(RK, d=8.0), TE, "d must be an int")
bad("check_compressor", SH, "2-D vector", lambda: CC(RK, vectors=[np.ones((2, 4))]), VE, "must be a non-empty 1-D real")
bad("check_compressor", TY, "c=None", lambda: CC(None), TE, "c must be a pyqsgd compressor")
bad("check_compressor", TY, "vectors=5", lambda: CC(RK, vectors=5), TE, "vectors must be None, a list or a dict")
bad("check_compressor", TY, "trials='a'", lambda: CC(RK, trials="a"), TE, "trials must be an int")
bad("check_compressor", R, "trials=10", lambda: CC(RK, trials=10), VE, "trials must be >= 1000")
bad("check_compressor", R, "alpha=1", lambda: CC(RK, alpha=1.0), VE, "alpha must be < 1")
bad("check_compressor", R, "key=-1", lambda: CC(RK, key=-1), VE, "key must be >= 0")
bad("worst_case_vectors", DT, "d=8.0", lambda: pq.testing.worst_case_vectors(8.0), TE, "d must be an int")
bad("worst_case_vectors", TY, "d='a'", lambda: pq.testing.worst_case_vectors("a"), TE, "d must be an int")
bad("worst_case_vectors", R, "d=0", lambda: pq.testing.worst_case_vectors(0), VE, "d must be >= 1")
bad("worst_case_vectors", R, "seed=-1", lambda: pq.testing.worst_case_vectors(8, seed=-1), VE, "seed must be >= 0")

# ---- threads, bits, dagc, generator_for -----------------------------------------------------


def _threads(n):
    with pq.threads(n):
        pass


bad("set_num_threads / threads", NA, "nan", lambda: pq.set_num_threads(NAN), TE, "n must be an int")
bad("set_num_threads / threads", DT, "2.0", lambda: pq.set_num_threads(2.0), TE, "n must be an int")
bad("set_num_threads / threads", SH, "[2]", lambda: pq.set_num_threads([2]), TE, "n must be an int")
bad("set_num_threads / threads", TY, "'2'", lambda: pq.set_num_threads("2"), TE, "n must be an int")
bad("set_num_threads / threads", TY, "threads(None)", lambda: _threads(None), TE, "n must be an int")
bad("set_num_threads / threads", R, "-1", lambda: pq.set_num_threads(-1), VE, "n must be >= 0")
bad("set_num_threads / threads", R, "10**6", lambda: pq.set_num_threads(10**6), VE, "n must be <= 4096")
bad("set_num_threads / threads", R, "threads(-1)", lambda: _threads(-1), VE, "n must be >= 0")

HIST = sim(method=pq.methods.EF21(pq.TopK(k=2)), rounds=2)
FPM, FC = pq.bits.floats_per_message, pq.bits.float_count
bad("bits", NA, "d=nan", lambda: FPM(pq.TopK(k=2), NAN), TE, "d must be an int")
bad("bits", E, "compressors=[]", lambda: FC(HIST, []), VE, "0 compressors for 2 workers")
bad("bits", DT, "d=4.0", lambda: FC(HIST, pq.TopK(k=2), d=4.0), TE, "d must be an int")
bad("bits", SH, "3 compressors, 2 workers", lambda: FC(HIST, [pq.TopK(k=2)] * 3), VE, "3 compressors for 2 workers")
bad("bits", TY, "compressor=QSGD", lambda: FPM(pq.QSGD(levels=2), 8), TE, "defined for Identity, TopK and RandK")
bad("bits", TY, "source=None", lambda: FC(None, pq.TopK(k=2)), TE, "source must be a History")
bad("bits", TY, "compressors='a'", lambda: FC(HIST, "a"), TE, "compressors must be a compressor")
bad("bits", TY, "paper_bits(source=5)", lambda: pq.bits.paper_bits(5, pq.TopK(k=2)), TE, "source must be a History")
bad("bits", R, "d=0", lambda: FPM(pq.TopK(k=2), 0), VE, "d must be >= 1")
bad("bits", R, "another compressor than the run's", lambda: FC(HIST, pq.TopK(k=3)),
    VE, "was it run with this compressor")

DA = pq.dagc
bad("dagc", NA, "mean_ratio=nan", lambda: DA.assign_ratios([1, 2], NAN), VE, "mean_ratio must be finite")
bad("dagc", NA, "volumes with inf", lambda: DA.assign_thresholds([1, INF], 1.0), VE, "volumes must be finite")
bad("dagc", NA, "ratios with nan", lambda: DA.topk_counts([0.5, NAN], 10), VE, "ratios must be finite")
bad("dagc", E, "volumes=[]", lambda: DA.assign_ratios([], 0.1), VE, "volumes must be non-empty")
bad("dagc", DT, "volumes complex", lambda: DA.assign_ratios(np.ones(2, complex), 0.1), TE, "volumes must be real")
bad("dagc", DT, "d=10.0", lambda: DA.topk_counts([0.5, 0.5], 10.0), TE, "d must be an int")
bad("dagc", SH, "volumes 2-D", lambda: DA.assign_ratios([[1, 2]], 0.1), VE, "volumes must be 1-D")
bad("dagc", TY, "volumes=None", lambda: DA.assign_ratios(None, 0.1), TE, "volumes must be a 1-D array")
bad("dagc", TY, "ratio_search('a')", lambda: DA.ratio_search("a"), TE, "volumes must be a 1-D array")
bad("dagc", R, "mean_ratio=2", lambda: DA.assign_ratios([1, 2], 2.0), VE, "mean_ratio must be <= 1")
bad("dagc", R, "mean_threshold=-1", lambda: DA.assign_thresholds([1, 2], -1.0), VE, "mean_threshold must be > 0")
bad("dagc", R, "a ratio of 2", lambda: DA.topk_counts([2.0, 0.5], 10), VE, r"ratios must be TopK ratios in \(0, 1\]")
bad("dagc", R, "rule='x'", lambda: DA.assign_ratios([1, 2], 0.1, rule="x"), VE, "rule must be")

bad("generator_for", TY, "key='a'", lambda: pq.generator_for("a"), TE, "key must be a non-negative int")
bad("generator_for", R, "key=-1", lambda: pq.generator_for(-1), VE, "key must be in")

# ---- sweeps and experiments -----------------------------------------------------------------
bad("sweep", NA, "seeds=[nan]", lambda: sweep(seeds=[NAN]), VE, "seeds must be non-negative ints")
bad("sweep", E, "grid value []", lambda: sweep(grid={"a": []}), VE, r"grid\['a'\] is empty")
bad("sweep", E, "seeds=[]", lambda: sweep(seeds=[]), VE, "seeds is empty")
bad("sweep", DT, "seeds=[1.0]", lambda: sweep(seeds=[1.0]), VE, "seeds must be non-negative ints")
bad("sweep", DT, "seeds=2.0", lambda: sweep(seeds=2.0), TE, "seeds must be an int n")
bad("sweep", DT, "n_jobs=2.0", lambda: sweep(n_jobs=2.0), VE, "n_jobs must be a positive int")
bad("sweep", SH, "grid as a list", lambda: sweep(grid=[1, 2]), TE, "grid must be a dict")
bad("sweep", SH, "grid value scalar", lambda: sweep(grid={"a": 1}), TE, r"grid\['a'\] must be a list of values")
bad("sweep", SH, "grid value dict", lambda: sweep(grid={"a": {"x": 1}}), TE, r"grid\['a'\] must be a list of values")
bad("sweep", TY, "run=None", lambda: pq.sweep(None, progress=False), TE, "run must be a callable or a pyqsgd.Spec")
bad("sweep", TY, "seeds=None", lambda: sweep(seeds=None), TE, "seeds must be an int n")
bad("sweep", TY, "out=5", lambda: sweep(out=5), TE, "out must be a path")
bad("sweep", TY, "executor=5", lambda: sweep(executor=5), TE, "executor must be a concurrent.futures.Executor")
bad("sweep", TY, "progress='yes'", lambda: sweep(progress="yes"), TE, "progress must be a bool")
bad("sweep", TY, "retry_failed='no'", lambda: sweep(retry_failed="no"), TE, "retry_failed must be a bool")
bad("sweep", TY, "grid key 1", lambda: sweep(grid={1: [1]}), TE, "grid keys must be parameter names")
bad("sweep", R, "seeds=[-1]", lambda: sweep(seeds=[-1]), VE, "seeds must be non-negative ints")
bad("sweep", R, "seeds=-3", lambda: sweep(seeds=-3), VE, "seeds must be a count >= 1")
bad("sweep", R, "seeds=[2**64]", lambda: sweep(seeds=[2**64]), VE, "seeds must be non-negative ints below 2\\*\\*64")
bad("sweep", R, "n_jobs=0", lambda: sweep(n_jobs=0), VE, "n_jobs must be a positive int")
bad("sweep", R, "out='r.xlsx'", lambda: sweep(out=os.path.join(FILES["dir"], "r.xlsx")),
    VE, "out must end in .parquet or .csv")
bad("sweep", R, "backend='x'", lambda: sweep(backend="x"), VE, "backend must be one of")
bad("sweep", R, "grid key 'seed'", lambda: sweep(grid={"seed": [1]}), VE, "grid key 'seed' is reserved")
bad("load_sweep", TY, "None", lambda: pq.load_sweep(None), TE, "out must be a path")
bad("load_sweep", R, "'r.xlsx'", lambda: pq.load_sweep("r.xlsx"), VE, "out must end in .parquet or .csv")

PS = pq.ProblemSpec
bad("ProblemSpec / Spec", NA, "l2=nan", lambda: PS(l2=NAN), VE, "l2 must be finite")
bad("ProblemSpec / Spec", NA, "lr_factor=nan (at run)", lambda: pq.Spec(PS(), M, lr_factor=NAN, rounds=1).run(), VE,
    "lr_factor must be finite")
bad("ProblemSpec / Spec", E, "dataset='' (at build)", lambda: PS("logistic", "").build(), FileNotFoundError,
    "dataset '' not found")
bad("ProblemSpec / Spec", DT, "n_features=2.0", lambda: PS(n_features=2.0), TE, "n_features must be an int")
bad("ProblemSpec / Spec", TY, "name=1", lambda: PS(1), VE, "name must be one of")
bad("ProblemSpec / Spec", TY, "dataset=None", lambda: PS("logistic", None),
    TE, "dataset must be a dataset name or path")
bad("ProblemSpec / Spec", TY, "bias=1", lambda: PS(bias=1), TE, "bias must be a bool")
bad("ProblemSpec / Spec", TY, "Spec(method=None)", lambda: pq.Spec(PS(), None),
    TE, "Spec: method must be a pyqsgd method")
bad("ProblemSpec / Spec", TY, "Spec(problem=None) (at run)", lambda: pq.Spec(None, M, rounds=1).run(), TE,
    "problem must be a pyqsgd problem")
bad("ProblemSpec / Spec", TY, "lr_factor='a' (at run)", lambda: pq.Spec(PS(), M, lr_factor="a", rounds=1).run(), TE,
    "lr_factor must be a real number")
bad("ProblemSpec / Spec", R, "name='x'", lambda: PS("x"), VE, "name must be one of")
bad("ProblemSpec / Spec", R, "l2=-1", lambda: PS(l2=-1.0), VE, "l2 must be >= 0")
bad("ProblemSpec / Spec", R, "n_samples=1", lambda: PS(n_samples=1), VE, "n_samples must be >= 2")
bad("ProblemSpec / Spec", R, "data_key=-1", lambda: PS(data_key=-1), VE, "data_key must be >= 0")
bad("ProblemSpec / Spec", R, "unknown simulate argument", lambda: pq.Spec(PS(), M, foo=1),
    VE, "unknown simulate argument 'foo'")
bad("ProblemSpec / Spec", R, "lr and lr_factor", lambda: pq.Spec(PS(), M, lr=1.0, lr_factor=1.0), VE, "lr or lr_factor")
bad("ProblemSpec / Spec", R, "configure(method__compressor__k=0)",
    lambda: pq.Spec(PS(), pq.methods.EF21(pq.TopK(k=2))).configure(method__compressor__k=0), VE, "k must be >= 1")
bad("ProblemSpec / Spec", R, "configure(foo=1)", lambda: pq.Spec(PS(), M).configure(foo=1),
    VE, "unknown parameter 'foo'")

# ---- data -----------------------------------------------------------------------------------
P = pq.data.partition
LAB = np.repeat([0, 1], 20)
bad("data.partition", NA, "n=nan", lambda: P(NAN, 2), TE, "n_or_labels must be an int")
bad("data.partition", NA, "labels with nan", lambda: P(np.array([0.0, NAN, 1.0, 1.0]), 2),
    VE, "n_or_labels contains NaN")
bad("data.partition", NA, "alpha=inf", lambda: P(LAB, 2, scheme="dirichlet", alpha=INF), VE, "alpha must be finite")
bad("data.partition", E, "labels=[]", lambda: P([], 2), VE, "n_or_labels must be non-empty")
bad("data.partition", E, "n=0", lambda: P(0, 2), VE, "n_or_labels must be >= 1")
bad("data.partition", DT, "n=10.0", lambda: P(10.0, 2), TE, "n_or_labels must be an int")
bad("data.partition", DT, "labels complex", lambda: P(np.ones(4, complex), 2),
    TE, "n_or_labels must hold numbers or strings")
bad("data.partition", DT, "n_workers=2.0", lambda: P(10, 2.0), TE, "n_workers must be an int")
bad("data.partition", SH, "labels 2-D", lambda: P(np.zeros((4, 2)), 2), VE, "n_or_labels must be 1-D")
bad("data.partition", TY, "n='10'", lambda: P("10", 2), TE, "n_or_labels must be an int")
bad("data.partition", TY, "n_workers=None", lambda: P(10, None), TE, "n_workers must be an int")
bad("data.partition", TY, "scheme=1", lambda: P(10, 2, scheme=1), TE, "scheme must be a string")
bad("data.partition", TY, "key=1.5", lambda: P(10, 2, key=1.5), TE, "key must be a non-negative int")
bad("data.partition", R, "n_workers > n", lambda: P(10, 11), VE, "n_workers must be <= the number of samples")
bad("data.partition", R, "scheme='x'", lambda: P(10, 2, scheme="x"), VE, "unknown scheme 'x'")
bad("data.partition", R, "alpha=0", lambda: P(LAB, 2, scheme="dirichlet", alpha=0.0), VE, "alpha must be > 0")
bad("data.partition", R, "skew=0.5", lambda: P(40, 2, scheme="size_skew", skew=0.5), VE, "skew must be >= 1")
bad("data.partition", R, "min_size too large", lambda: P(10, 2, min_size=6), VE, "min_size=6 is impossible")
bad("data.partition", R, "dirichlet without labels", lambda: P(40, 2, scheme="dirichlet", alpha=0.5),
    VE, "alpha .*needs labels")

LS_ = pq.data.load_libsvm
bad("data.load_libsvm", NA, "a nan value", lambda: LS_(FILES["nan"]), VE, "NaN or infinite feature value")
bad("data.load_libsvm", E, "empty file", lambda: LS_(FILES["empty"]), VE, "holds no samples")
bad("data.load_libsvm", DT, "non-numeric token", lambda: LS_(FILES["token"]), VE, "cannot parse")
bad("data.load_libsvm", DT, "n_features=4.0", lambda: LS_(FILES["ok"], n_features=4.0), TE, "n_features must be an int")
bad("data.load_libsvm", TY, "path=None", lambda: LS_(None), TE, "path must be a str or os.PathLike")
bad("data.load_libsvm", TY, "missing file", lambda: LS_(FILES["ok"] + ".missing"), FileNotFoundError, "no such file")
bad("data.load_libsvm", TY, "multiclass='ab'", lambda: LS_(FILES["ok"], multiclass="ab"), TE, "multiclass must be")
bad("data.load_libsvm", TY, "zero_based='yes'", lambda: LS_(FILES["ok"], zero_based="yes"),
    TE, "zero_based must be a bool")
bad("data.load_libsvm", R, "n_features=0", lambda: LS_(FILES["ok"], n_features=0), VE, "n_features must be >= 1")
bad("data.load_libsvm", R, "n_features=2 < largest index", lambda: LS_(FILES["ok"], n_features=2),
    VE, "n_features=2 is smaller")
bad("data.load_libsvm", R, "multiclass=[1]", lambda: LS_(FILES["ok"], multiclass=[1]),
    VE, "multiclass must list at least 2")

LB = pq.data.load_bundled
bad("data.load_bundled / append_bias", E, "name=''", lambda: LB(""), VE, "unknown dataset ''")
bad("data.load_bundled / append_bias", DT, "append_bias(str array)", lambda: pq.data.append_bias(np.array([["a"]])), TE,
    "X must be a numeric array")
bad("data.load_bundled / append_bias", SH, "append_bias(1-D)", lambda: pq.data.append_bias(np.ones(3)),
    VE, "X must be 2-D")
bad("data.load_bundled / append_bias", TY, "name=None", lambda: LB(None), TE, "name must be a string")
bad("data.load_bundled / append_bias", TY, "add_bias=1", lambda: LB("digits", add_bias=1),
    TE, "add_bias must be a bool")
bad("data.load_bundled / append_bias", R, "name='x'", lambda: LB("x"), VE, "unknown dataset 'x'")

for gen in (pq.data.synthetic_logistic, pq.data.synthetic_least_squares):
    n = f"data.{gen.__name__}"
    bad(n, NA, "heterogeneity=nan", lambda g=gen: g(20, 3, heterogeneity=NAN), VE, "heterogeneity must be finite")
    bad(n, NA, "feature_shift=1e300 overflows", lambda g=gen: g(20, 3, feature_shift=1e300),
        VE, "overflow float32.*feature_shift")
    bad(n, E, "n=0", lambda g=gen: g(0, 3), VE, "n must be >= 1")
    bad(n, E, "d=0", lambda g=gen: g(20, 0), VE, "d must be >= 1")
    bad(n, DT, "n=20.0", lambda g=gen: g(20.0, 3), TE, "n must be an int")
    bad(n, DT, "skew=1j", lambda g=gen: g(20, 3, skew=1j), TE, "skew must be a real number")
    bad(n, SH, "n=[20]", lambda g=gen: g([20], 3), TE, "n must be an int")
    bad(n, TY, "d='3'", lambda g=gen: g(20, "3"), TE, "d must be an int")
    bad(n, TY, "key=None", lambda g=gen: g(20, 3, key=None), TE, "key must be a non-negative int")
    bad(n, R, "n_workers=21 > n", lambda g=gen: g(20, 3, n_workers=21), VE, "n_workers must be <= 20")
    bad(n, R, "skew=0.5", lambda g=gen: g(20, 3, skew=0.5), VE, "skew must be >= 1")
    bad(n, R, "signal=-1", lambda g=gen: g(20, 3, signal=-1.0), VE, "signal must be >= 0")
bad("data.synthetic_least_squares", R, "noise=-1", lambda: pq.data.synthetic_least_squares(20, 3, noise=-1.0), VE,
    "noise must be >= 0")
bad("data.synthetic_least_squares", NA, "noise=1e300 overflows",
    lambda: pq.data.synthetic_least_squares(20, 3, noise=1e300),
    VE, "overflow float32.*noise=1e\\+300")

HB, CP = pq.data.heterogeneous_batches, pq.data.check_partition
bad("data.heterogeneous_batches / check_partition", NA, "mean_batch=nan", lambda: HB(4, NAN),
    VE, "mean_batch must be finite")
bad("data.heterogeneous_batches / check_partition", E, "parts=[]", lambda: CP([]), TE, "parts must be a non-empty list")
bad("data.heterogeneous_batches / check_partition", DT, "float shard", lambda: CP([np.arange(3.0)]), TE,
    r"parts\[0\] must be a 1-D integer array")
bad("data.heterogeneous_batches / check_partition", SH, "2-D shard", lambda: CP([np.zeros((2, 2), int)]), TE,
    r"parts\[0\] must be a 1-D integer array")
bad("data.heterogeneous_batches / check_partition", TY, "n_workers='4'", lambda: HB("4", 8),
    TE, "n_workers must be an int")
bad("data.heterogeneous_batches / check_partition", R, "small > mean_batch", lambda: HB(4, 2, small=4), VE,
    "small=4 exceeds mean_batch")
bad("data.heterogeneous_batches / check_partition", R, "negative index", lambda: CP([np.array([-1, 0])]),
    VE, "negative index")
bad("data.heterogeneous_batches / check_partition", R, "index >= n", lambda: CP([np.array([0, 5])], n=3), VE,
    "index 5 out of range for n=3")

# ---- problems -------------------------------------------------------------------------------
PROBLEMS = {"LeastSquares": lambda X, y, **k: pq.problems.LeastSquares(X, y, **k),
            "LogisticRegression": lambda X, y, **k: pq.problems.LogisticRegression(X, y, **k),
            "SoftmaxRegression": lambda X, y, **k: pq.problems.SoftmaxRegression(X, y, **k)}
LABELS = {"LeastSquares": A[:, 0], "LogisticRegression": Y, "SoftmaxRegression": C}
for n, mk in PROBLEMS.items():
    y0 = LABELS[n]
    label = "b" if n == "LeastSquares" else "y"
    bad(n, NA, "X with nan", lambda mk=mk, y0=y0: mk(np.where(A > 1, np.nan, A), y0), VE, "X contains NaN or Inf")
    bad(n, NA, "sparse X with inf", lambda mk=mk, y0=y0: mk(sp.csr_matrix(np.where(A > 1, np.inf, A)), y0), VE,
        "X contains NaN or Inf")
    bad(n, NA, "X=1e39 (float64)", lambda mk=mk, y0=y0: mk(np.where(A > 1, 1e39, A).astype(np.float64), y0), VE,
        "X contains NaN or Inf")
    bad(n, NA, "l2=nan", lambda mk=mk, y0=y0: mk(A, y0, l2=NAN), VE, "l2 must be finite")
    bad(n, E, "X of shape (0, 4)", lambda mk=mk: mk(np.zeros((0, 4)), np.zeros(0)), VE, "X must have at least one row")
    bad(n, E, "X of shape (40, 0)", lambda mk=mk, y0=y0: mk(np.zeros((40, 0)), y0), VE, "X must have at least one row")
    bad(n, DT, "X complex", lambda mk=mk, y0=y0: mk(A.astype(complex), y0), TE, "X must be numeric")
    bad(n, DT, "X bool", lambda mk=mk, y0=y0: mk(A > 0, y0), TE, "X must be numeric")
    bad(n, DT, "X str", lambda mk=mk, y0=y0: mk(A.astype(str), y0), TE, "X must be numeric")
    bad(n, DT, f"{label} complex", lambda mk=mk, y0=y0: mk(A, y0.astype(complex)), TE, f"{label} must be numeric")
    bad(n, DT, f"{label} str", lambda mk=mk, y0=y0: mk(A, y0.astype(str)), TE, f"{label} must be numeric")
    bad(n, DT, f"{label} object", lambda mk=mk, y0=y0: mk(A, y0.astype(object)), TE, f"{label} must be numeric")
    bad(n, SH, "X 1-D", lambda mk=mk, y0=y0: mk(A[:, 0], y0), VE, "X must be 2-D")
    bad(n, SH, f"{label} of length 39", lambda mk=mk, y0=y0: mk(A, y0[:39]),
        VE, f"{label} must be 1-D with one entry per row")
    bad(n, SH, f"{label} 2-D", lambda mk=mk, y0=y0: mk(A, y0[:, None]),
        VE, f"{label} must be 1-D with one entry per row")
    bad(n, TY, "X=None", lambda mk=mk, y0=y0: mk(None, y0), TE, "X must be numeric")
    bad(n, TY, f"{label}=None", lambda mk=mk: mk(A, None), VE, f"{label} must be 1-D with one entry per row")
    bad(n, TY, "l2='0'", lambda mk=mk, y0=y0: mk(A, y0, l2="0"), TE, "l2 must be a real number")
    bad(n, TY, "dataset=1", lambda mk=mk, y0=y0: mk(A, y0, dataset=1), TE, "dataset must be a name")
    bad(n, R, "l2=-1", lambda mk=mk, y0=y0: mk(A, y0, l2=-1.0), VE, "l2 must be >= 0")
    ok(n, TY, "X as nested lists", lambda mk=mk, y0=y0: mk(A.tolist(), y0))
bad("LeastSquares", NA, "b with nan", lambda: pq.problems.LeastSquares(A, np.full(40, np.nan)), VE, "b contains NaN")
bad("LogisticRegression", R, "labels {0, 1}", lambda: pq.problems.LogisticRegression(A, (Y > 0).astype(float)), VE,
    "labels y must be \\+1 or -1")
bad("LogisticRegression", NA, "labels nan", lambda: pq.problems.LogisticRegression(A, np.full(40, np.nan)),
    VE, "labels y")
SR = pq.problems.SoftmaxRegression
bad("SoftmaxRegression", NA, "labels nan", lambda: SR(A, np.full(40, np.nan)), VE, "labels y must be integers")
bad("SoftmaxRegression", DT, "n_classes=2.0", lambda: SR(A, C, n_classes=2.0), TE, "n_classes must be an int")
bad("SoftmaxRegression", TY, "n_classes='2'", lambda: SR(A, C, n_classes="2"), TE, "n_classes must be an int")
bad("SoftmaxRegression", R, "labels 0.5", lambda: SR(A, np.full(40, 0.5)), VE, "labels y must be integers")
bad("SoftmaxRegression", R, "n_classes=1", lambda: SR(A, C, n_classes=1), VE, "n_classes must be an int in")
bad("SoftmaxRegression", R, "labels beyond n_classes", lambda: SR(A, np.arange(40) % 3, n_classes=2),
    VE, r"labels must lie in \[0, 2\)")
bad("SoftmaxRegression", R, "n_classes=2**40", lambda: SR(A, C, n_classes=2**40), VE, "n_classes must be an int in")
bad("SoftmaxRegression", R, "label 2**40", lambda: SR(A, np.full(40, 2**40)),
    VE, "n_classes must be an int in .*largest label")
bad("SoftmaxRegression", R, "negative labels", lambda: SR(A, np.full(40, -1)), VE, "n_classes")

for name in ("loss", "grad"):
    n = f"Problem.{name} / smoothness"
    f = getattr(LS, name)
    bad(n, NA, "x with nan", lambda f=f: f(np.full(4, np.nan)), VE, "x contains NaN or Inf")
    bad(n, NA, "x with inf", lambda f=f: f(np.full(4, np.inf)), VE, "x contains NaN or Inf")
    bad(n, E, "x=[]", lambda f=f: f([]), VE, "x must be 1-D of length 4")
    bad(n, E, "indices=[]", lambda f=f: f(np.ones(4), []), VE, "indices must be a non-empty")
    bad(n, DT, "x complex", lambda f=f: f(np.ones(4, complex)), TE, "x must be a real numeric array")
    bad(n, DT, "indices float", lambda f=f: f(np.ones(4), [0.5]), TE, "indices must be an integer index array")
    bad(n, DT, "indices bool mask", lambda f=f: f(np.ones(4), np.ones(40, bool)), TE, "np.flatnonzero")
    bad(n, SH, "x of length 3", lambda f=f: f(np.ones(3)), VE, "x must be 1-D of length 4")
    bad(n, SH, "indices 2-D", lambda f=f: f(np.ones(4), [[0, 1]]), VE, "indices must be a non-empty 1-D")
    bad(n, TY, "x=None", lambda f=f: f(None), TE, "x must be a real numeric array")
    bad(n, TY, "indices='a'", lambda f=f: f(np.ones(4), "a"), TE, "indices must be an integer index array")
    bad(n, R, "index 40 of 40", lambda f=f: f(np.ones(4), [40]), VE, "indices out of range")
    bad(n, R, "index -1", lambda f=f: f(np.ones(4), [-1]), VE, "indices out of range")
bad("Problem.loss / smoothness", R, "smoothness(index 40)", lambda: LS.smoothness([40]), VE, "indices out of range")
bad("Problem.loss / smoothness", E, "smoothness([])", lambda: LS.smoothness([]), VE, "indices must be a non-empty")

MLP = pq.problems_py.MLPProblem
bad("MLPProblem", NA, "X with nan", lambda: MLP(np.where(A > 1, np.nan, A), C), VE, "X contains NaN or Inf")
bad("MLPProblem", NA, "l2=inf", lambda: MLP(A, C, l2=INF), VE, "l2 must be finite")
bad("MLPProblem", NA, "labels nan", lambda: MLP(A, np.full(40, np.nan)), TE, "y must hold integer class labels")
bad("MLPProblem", E, "X of shape (0, 4)", lambda: MLP(np.zeros((0, 4)), np.zeros(0, int)),
    VE, "X must be a non-empty 2-D")
bad("MLPProblem", E, "X of shape (40, 0)", lambda: MLP(np.zeros((40, 0)), C), VE, "X must be a non-empty 2-D")
bad("MLPProblem", DT, "X complex", lambda: MLP(A.astype(complex), C), TE, "X must be a real numeric array")
bad("MLPProblem", DT, "X str", lambda: MLP(A.astype(str), C), TE, "X must be a real numeric array")
bad("MLPProblem", DT, "labels 0.5", lambda: MLP(A, np.full(40, 0.5)), TE, "y must hold integer class labels")
bad("MLPProblem", DT, "hidden=2.0", lambda: MLP(A, C, hidden=2.0), TE, "hidden must be an int")
bad("MLPProblem", SH, "X 1-D", lambda: MLP(A[:, 0], C), VE, "X must be a non-empty 2-D")
bad("MLPProblem", SH, "y of length 3", lambda: MLP(A, C[:3]), VE, "y must be 1-D with one label per row")
bad("MLPProblem", TY, "X=None", lambda: MLP(None, C), TE, "X must be a real numeric array")
bad("MLPProblem", TY, "activation=1", lambda: MLP(A, C, activation=1), VE, "activation must be one of")
bad("MLPProblem", R, "hidden=0", lambda: MLP(A, C, hidden=0), VE, "hidden must be >= 1")
bad("MLPProblem", R, "labels -1", lambda: MLP(A, C - 1), VE, "labels must be >= 0")
bad("MLPProblem", R, "activation='x'", lambda: MLP(A, C, activation="x"), VE, "activation must be one of")
bad("MLPProblem", R, "l2=-1", lambda: MLP(A, C, l2=-1.0), VE, "l2 must be >= 0")
MP = MLP(A, C, hidden=3)
bad("MLPProblem.loss / grad / init", E, "indices=[]", lambda: MP.grad(MP.init(), []), VE, "indices must be non-empty")
bad("MLPProblem.loss / grad / init", DT, "indices float", lambda: MP.grad(MP.init(), [0.5]),
    TE, "indices must be an integer")
bad("MLPProblem.loss / grad / init", SH, "x of wrong length", lambda: MP.loss(np.ones(3)),
    VE, "x has length 3, expected dim=")
bad("MLPProblem.loss / grad / init", TY, "init(key='a')", lambda: MP.init(key="a"), TE, "key must be an int")
bad("MLPProblem.loss / grad / init", R, "index 40 of 40", lambda: MP.grad(MP.init(), [40]),
    VE, r"indices must lie in \[0, 40\)")
bad("MLPProblem.loss / grad / init", R, "init(key=-1)", lambda: MP.init(key=-1), VE, "key must be >= 0")


def test_mlp_loss_of_a_non_finite_model_is_nan_by_design():
    # simulate's Python path reads a non-finite loss as divergence (status "diverged"), so a
    # Python problem's loss propagates NaN instead of raising.
    assert math.isnan(MP.loss(np.full(MP.dim, np.nan)))


# ---- plot -----------------------------------------------------------------------------------
def _plot(name, *args, **kw):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        return getattr(pq.plot, name)(*args, **kw)
    finally:
        plt.close("all")


bad("plot", NA, "quantizer(g with nan)", lambda: _plot("quantizer", [1.0, NAN]), VE, "g must be non-empty and finite")
bad("plot", E, "convergence([])", lambda: _plot("convergence", []), VE, "data is empty")
bad("plot", E, "quantizer([])", lambda: _plot("quantizer", []), VE, "g must be non-empty")
bad("plot", DT, "quantizer(str)", lambda: _plot("quantizer", ["a"]), TE, "g must be a numeric array")
bad("plot", TY, "convergence(None)", lambda: _plot("convergence", None), TE, "data must be a History")
bad("plot", TY, "vote_weights(None)", lambda: _plot("vote_weights", None), TE, "hist must be a History")
bad("plot", TY, "partition(None)", lambda: _plot("partition", None), TE, "parts must be a non-empty list")
bad("plot", R, "convergence(y='nope')", lambda: _plot("convergence", HIST, y="nope"), VE, "no column 'nope'")
bad("plot", R, "vote_weights of a non-vote run", lambda: _plot("vote_weights", HIST), VE, "has no vote weights")


# ---- tnq closed forms -----------------------------------------------------------------------
TNQ = pq.tnq
for name, f in {"optimal_threshold": TNQ.optimal_threshold, "uniform_threshold": TNQ.uniform_threshold,
                "laplace_levels": TNQ.laplace_levels, "theory": TNQ.theory}.items():
    n = "tnq closed forms"
    bad(n, NA, f"{name}(gamma=nan)", lambda f=f: f(2, NAN), VE, f"{name}: gamma must be finite")
    bad(n, DT, f"{name}(bits=2.0)", lambda f=f: f(2.0), TE, "bits must be an int")
    bad(n, DT, f"{name}(gamma=1j)", lambda f=f: f(2, 1j), TE, f"{name}: gamma must be a real number")
    bad(n, SH, f"{name}(gamma=[1.0])", lambda f=f: f(2, [1.0]), TE, f"{name}: gamma must be a real number")
    bad(n, TY, f"{name}(gamma='1')", lambda f=f: f(2, "1"), TE, f"{name}: gamma must be a real number")
    bad(n, R, f"{name}(bits=0)", lambda f=f: f(0), VE, "bits must be >= 1")
    bad(n, R, f"{name}(bits=17)", lambda f=f: f(17), VE, "bits must be <= 16")
    bad(n, R, f"{name}(gamma=-1)", lambda f=f: f(2, -1.0), VE, f"{name}: gamma must be >= 0")
n = "tnq closed forms"
bad(n, NA, "optimal_threshold(gamma=inf)", lambda: TNQ.optimal_threshold(2, INF), VE, "gamma must be finite")
bad(n, NA, "laplace_levels(alpha=nan)", lambda: TNQ.laplace_levels(2, 1.0, alpha=NAN), VE, "alpha must be finite")
bad(n, NA, "uniform_levels(alpha=inf)", lambda: TNQ.uniform_levels(2, INF), VE, "alpha must be finite")
bad(n, NA, "theory(alpha=nan)", lambda: TNQ.theory(2, 1.0, alpha=NAN), VE, "theory: alpha must be finite")
bad(n, NA, "intervals(bits=nan)", lambda: TNQ.intervals(NAN), TE, "intervals: bits must be an int")
bad(n, E, "uniform_levels() without alpha", lambda: TNQ.uniform_levels(2), TE, "alpha")
bad(n, E, "intervals() without bits", lambda: TNQ.intervals(), TE, "bits")
bad(n, DT, "intervals(bits=True)", lambda: TNQ.intervals(True), TE, "intervals: bits must be an int")
bad(n, SH, "intervals(bits=[2])", lambda: TNQ.intervals([2]), TE, "intervals: bits must be an int")
bad(n, TY, "uniform_levels(alpha=None)", lambda: TNQ.uniform_levels(2, None), TE, "alpha must be a real number")
bad(n, TY, "theory(uniform='no')", lambda: TNQ.theory(2, uniform="no"), TE, "theory: uniform must be a bool")
bad(n, R, "uniform_levels(alpha=-1)", lambda: TNQ.uniform_levels(2, -1.0), VE, "alpha must be >= 0")
bad(n, R, "laplace_levels(alpha=-1)", lambda: TNQ.laplace_levels(2, 1.0, alpha=-1.0), VE, "alpha must be >= 0")
ok(n, R, "gamma=0 (a zero vector's scale)", lambda: TNQ.theory(2, 0.0))

n = "tnq.lambert_w / expected_mse"
LW, MSE = TNQ.lambert_w, TNQ.expected_mse
bad(n, NA, "lambert_w(nan)", lambda: LW(NAN), VE, "lambert_w: x contains NaN or Inf")
bad(n, NA, "expected_mse(x with nan)", lambda: MSE([NAN], [-1, 1]), VE, "expected_mse: x contains NaN or Inf")
bad(n, NA, "expected_mse(x with inf)", lambda: MSE([INF], [-1, 1]), VE, "expected_mse: x contains NaN or Inf")
bad(n, NA, "expected_mse(levels ±inf)", lambda: MSE([0.5], [-INF, INF]), VE, "levels contains NaN or Inf")
bad(n, E, "expected_mse(x=[])", lambda: MSE([], [-1, 1]), VE, "expected_mse: x must be non-empty")
bad(n, E, "expected_mse(levels=[])", lambda: MSE([0.5], []), VE, "levels must be a 1-D non-decreasing table")
ok(n, E, "lambert_w([]) is empty (elementwise)", lambda: LW([]).shape == (0,) or pytest.fail("not empty"))
bad(n, DT, "lambert_w(1j)", lambda: LW(1j), TE, "lambert_w: x must be a real numeric array")
bad(n, DT, "lambert_w(True)", lambda: LW(True), TE, "lambert_w: x must be a real numeric array")
bad(n, DT, "expected_mse(x complex)", lambda: MSE([1j], [-1, 1]), TE, "expected_mse: x must be a real numeric")
bad(n, DT, "expected_mse(x str)", lambda: MSE(["a"], [-1, 1]), TE, "expected_mse: x must be a real numeric")
bad(n, DT, "expected_mse(x bool)", lambda: MSE([True], [-1, 1]), TE, "expected_mse: x must be a real numeric")
ok(n, DT, "expected_mse(int x, float32 levels)", lambda: MSE([0, 1], np.float32([-1, 1])))
bad(n, SH, "expected_mse(levels 2-D)", lambda: MSE([0.5], [[-1, 1]]), VE, "levels must be a 1-D")
ok(n, SH, "lambert_w 2-D (elementwise)", lambda: LW(np.ones((2, 2))))
ok(n, SH, "expected_mse(x 2-D: flattened)", lambda: MSE(np.zeros((2, 2)), [-1, 1]))
bad(n, TY, "lambert_w(None)", lambda: LW(None), TE, "lambert_w: x must be a real numeric array")
bad(n, TY, "lambert_w('a')", lambda: LW("a"), TE, "lambert_w: x must be a real numeric array")
bad(n, TY, "expected_mse(x=None)", lambda: MSE(None, [-1, 1]), TE, "expected_mse: x must be a real numeric")
bad(n, TY, "expected_mse(levels=None)", lambda: MSE([0.5], None), TE, "expected_mse: levels must be a real")
bad(n, R, "lambert_w(-1)", lambda: LW(-1.0), VE, "lambert_w: x must be >= 0")
bad(n, R, "expected_mse(levels unsorted)", lambda: MSE([0.5], [1, -1]), VE, "levels must be a 1-D non-decreasing")


# ---- config ---------------------------------------------------------------------------------
import pyqsgd.config as pqc  # noqa: E402 - not imported by `import pyqsgd`

CFG = ('[method]\nname = "EF21"\ncompressor = { name = "TopK", k = 2 }\n'
       '[simulate]\nn_workers = 2\nrounds = 1\nlr = 0.1\n')


def _cfg(text, name="c.toml"):
    """load_config on a file holding ``text`` (written next to the LIBSVM test files)."""
    path = os.path.join(FILES["dir"], name)
    with open(path, "w") as f:
        f.write(text)
    return pqc.load_config(path)


n = "config.load_config"
CE = pqc.ConfigError
bad(n, NA, "lr = nan", lambda: _cfg(CFG.replace("lr = 0.1", "lr = nan")), CE, "simulate.lr: .*lr must be finite")
bad(n, NA, "ratio = inf", lambda: _cfg(CFG.replace("k = 2", "ratio = inf")), CE,
    "method.compressor: TopK: ratio must be finite")
bad(n, NA, "[problem] l2 = nan", lambda: _cfg('[problem]\nname = "logistic"\ndataset = "breast_cancer"\n'
                                              'l2 = nan\n' + CFG), CE, "problem: ProblemSpec: l2 must be finite")
bad(n, E, "empty file", lambda: _cfg(""), CE, r"method: missing required table \[method\]")
bad(n, E, "grid value []", lambda: _cfg(CFG + "[grid]\nlr = []\n"), CE, "grid.lr: empty list")
bad(n, E, "load_config() without path", lambda: pqc.load_config(), TE, "path")
bad(n, DT, "k = 2.0", lambda: _cfg(CFG.replace("k = 2", "k = 2.0")), CE, "method.compressor: TopK: k must be an int")
bad(n, DT, "n_workers = '2'", lambda: _cfg(CFG.replace("n_workers = 2", 'n_workers = "2"')), CE,
    "simulate.n_workers: .*n_workers must be an int")
bad(n, SH, "grid value a scalar", lambda: _cfg(CFG + "[grid]\nlr = 0.1\n"), CE, "grid.lr: expected a list")
bad(n, SH, "seeds = [[1]]", lambda: _cfg("seeds = [[1]]\n" + CFG), CE, "seeds: .*seeds must be")
bad(n, TY, "path=None", lambda: pqc.load_config(None), TE, "load_config: path must be a str")
bad(n, TY, "check='yes'", lambda: pqc.load_config("c.toml", check="yes"), TE, "load_config: check must be")
bad(n, TY, "method = 'EF21'", lambda: _cfg('method = "EF21"\n'), CE, "method: expected a table")
bad(n, TY, "seeds = 'a'", lambda: _cfg('seeds = "a"\n' + CFG), CE, "seeds: .*seeds must be")
bad(n, TY, "not TOML", lambda: _cfg("[[["), CE, "not valid TOML")
bad(n, TY, "a folder", lambda: pqc.load_config(FILES["dir"]), CE, "is a folder, not a config file")
bad(n, TY, "no such file", lambda: pqc.load_config(os.path.join(FILES["dir"], "nope.toml")), CE,
    "no such config file")
bad(n, R, "k = 0", lambda: _cfg(CFG.replace("k = 2", "k = 0")), CE, "method.compressor: TopK: k must be >= 1")
bad(n, R, "seeds = [-1]", lambda: _cfg("seeds = [-1]\n" + CFG), CE, "seeds: .*non-negative")
bad(n, R, "n_jobs = 0", lambda: _cfg("n_jobs = 0\n" + CFG), CE, "n_jobs: .*n_jobs must be a positive int")
bad(n, R, "out = 'r.xlsx'", lambda: _cfg('out = "r.xlsx"\n' + CFG), CE, "out: must end in .parquet or .csv")
bad(n, R, "rounds = -1", lambda: _cfg(CFG.replace("rounds = 1", "rounds = -1")), CE, "simulate.rounds")
bad(n, R, "unknown key", lambda: _cfg("foo = 1\n" + CFG), CE, "foo: unknown key 'foo' at top level")
bad(n, R, "unknown class", lambda: _cfg(CFG.replace('"TopK"', '"Top"')), CE, "method.compressor.name: unknown class")
ok(n, TY, "a pathlib.Path", lambda: _cfg(CFG) and pqc.load_config(__import__("pathlib").Path(FILES["dir"], "c.toml")))


@pytest.mark.parametrize("call, exc, match", CELLS)
def test_rejected(call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(exc, match=match):
            call()


@pytest.mark.parametrize("call", OK)
def test_accepted(call):
    call()


# ---- torch ----------------------------------------------------------------------------------
def _pqt():
    pytest.importorskip("torch", reason="pyqsgd.torch needs PyTorch (pip install 'pyqsgd[torch]')")
    import pyqsgd.torch as pqt

    return pqt


EF21 = pq.methods.EF21(pq.TopK(k=2))
TORCH = [
    ("naninf", "lr=nan", lambda t: t.HookState(EF21, lr=NAN), VE, "lr must be finite"),
    ("naninf", "shard_sizes with nan", lambda t: t.HookState(EF21, world_size=2, shard_sizes=[NAN, 1]), TE,
     "shard_sizes must hold ints"),
    ("empty", "shard_sizes=[]", lambda t: t.HookState(EF21, shard_sizes=[]), VE,
     "shard_sizes needs one positive entry"),
    ("dtype", "shard_sizes=[1.5, 1]", lambda t: t.HookState(EF21, world_size=2, shard_sizes=[1.5, 1]), TE,
     "shard_sizes must hold ints"),
    ("dtype", "lr=1j", lambda t: t.HookState(EF21, lr=1j), TE, "lr must be a real number"),
    ("dtype", "world_size=2.0", lambda t: t.HookState(EF21, world_size=2.0), VE, "world_size must be a positive int"),
    ("shape", "shard_sizes for 3 ranks", lambda t: t.HookState(EF21, world_size=2, shard_sizes=[1, 2, 3]), VE,
     r"shard_sizes needs one positive entry per rank \(2\)"),
    ("shape", "batch_sizes 2-D", lambda t: t.HookState(EF21, world_size=2, batch_sizes=[[1, 2]]), TE,
     "batch_sizes must hold ints"),
    ("type", "method=None", lambda t: t.HookState(None), TE, "method must be a pyqsgd method"),
    ("type", "a compressor as method", lambda t: t.HookState(pq.TopK(k=3)), TE, "wrap a compressor in a method"),
    ("type", "key='a'", lambda t: t.HookState(EF21, key="a"), TE, "key must be a non-negative int"),
    ("type", "shard_sizes=5", lambda t: t.HookState(EF21, shard_sizes=5), TE, "shard_sizes must be a sequence"),
    ("type", "observer=5", lambda t: t.HookState(EF21, observer=5), TE, "observer must be callable"),
    ("type", "per_tensor=1", lambda t: t.HookState(EF21, per_tensor=1), TE, "per_tensor must be a bool"),
    ("type", "comm_hook(state=None)", lambda t: t.comm_hook(None, None), TE, "state must be a pyqsgd.torch.HookState"),
    ("type", "register(state=None)", lambda t: t.register(None, None), TE, "state must be a HookState"),
    ("type", "register(ddp_model=None)", lambda t: t.register(None, t.HookState(EF21)), TE, "ddp_model must be a"),
    ("type", "load_state_dict(None)", lambda t: t.HookState(EF21).load_state_dict(None), VE, "state dict"),
    ("range", "lr=0", lambda t: t.HookState(EF21, lr=0.0), VE, "lr must be > 0"),
    ("range", "state.lr = -1", lambda t: setattr(t.HookState(EF21), "lr", -1.0), VE, "lr must be > 0"),
    ("range", "key=-1", lambda t: t.HookState(EF21, key=-1), VE, "key must be in"),
    ("range", "world_size=0", lambda t: t.HookState(EF21, world_size=0), VE, "world_size must be a positive int"),
    ("range", "shard_sizes with 0", lambda t: t.HookState(EF21, world_size=2, shard_sizes=[0, 1]), VE,
     "shard_sizes needs one"),
    ("range", "per_tensor with a vote", lambda t: t.HookState(pq.methods.SignSGDMV(), per_tensor=True), VE,
     "per_tensor=True cannot split"),
    ("range", "downlink", lambda t: t.HookState(pq.methods.DCGD(pq.Identity(), downlink=pq.TopK(k=2))), VE, "downlink"),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(c, e, m, id=f"HookState|{col}|{label}")
                                              for col, label, c, e, m in TORCH])
def test_torch_rejected(call, exc, match):
    pqt = _pqt()
    with pytest.raises(exc, match=match):
        call(pqt)


def test_cells_are_well_formed():
    # Every cell id is "row|column|example" with one of the table's six columns, and the table's
    # rows (entry points or families of them) are all here.
    columns = {NA, E, DT, SH, TY, R}
    rows = {}
    for p in CELLS + OK:
        row, col, label = p.id.split("|")
        assert col in columns and label, p.id
        rows.setdefault(row, set()).add(col)
    assert len(rows) >= 60


# ---- TorchProblem (pyqsgd.problems_torch; skips without torch) ------------------------------
def _tp():
    pytest.importorskip("torch", reason="pyqsgd.problems_torch needs PyTorch (pip install 'pyqsgd[torch]')")
    import torch

    from pyqsgd.problems_torch import TorchProblem

    torch.manual_seed(0)
    return torch, TorchProblem, torch.nn.Linear(4, 2)


def _tp_call(make):
    torch, TP, model = _tp()
    return make(torch, TP, model)


def _tp_method(call):
    """``call(problem, x0)`` on a small fitted problem (a Linear(4, 2) classifier of A, C)."""
    torch, TP, model = _tp()
    p = TP(model, A, C)
    return call(p, np.zeros(p.dim))


TPN = "TorchProblem"
TP_CELLS = [
    (TPN, NA, "X with nan", lambda t, TP, m: TP(m, np.where(A > 1, np.nan, A), C), VE, "X contains NaN or Inf"),
    (TPN, NA, "y with nan (mse)", lambda t, TP, m: TP(m, A, np.full((40, 2), np.nan), loss="mse"), VE,
     "y contains NaN or Inf"),
    (TPN, E, "X of shape (0, 4)", lambda t, TP, m: TP(m, A[:0], C[:0]), VE, "X must hold at least one sample"),
    (TPN, E, "no y", lambda t, TP, m: TP(m, A), TE, "'y'"),
    (TPN, DT, "X complex", lambda t, TP, m: TP(m, A.astype(complex), C), TE, "X must be real numeric"),
    (TPN, DT, "X str", lambda t, TP, m: TP(m, A.astype(str), C), TE, "X must be a numeric tensor or array"),
    (TPN, DT, "float labels for cross_entropy", lambda t, TP, m: TP(m, A, C.astype(float)), TE,
     "needs integer class labels y"),
    (TPN, DT, "eval_chunk=2.0", lambda t, TP, m: TP(m, A, C, eval_chunk=2.0), TE, "eval_chunk must be an int"),
    (TPN, SH, "y of length 3", lambda t, TP, m: TP(m, A, C[:3]), VE, r"y must have one entry per sample of X \(40\)"),
    (TPN, SH, "X with 3 features for Linear(4, 2)", lambda t, TP, m: TP(m, A[:, :3], C), VE,
     r"model cannot run on X of shape \(40, 3\)"),
    (TPN, SH, "class labels 2-D", lambda t, TP, m: TP(m, A, C[:, None]), VE, "class labels y must be 1-D"),
    (TPN, TY, "model=None", lambda t, TP, m: TP(None, A, C), TE, "model must be a torch.nn.Module"),
    (TPN, TY, "X=None", lambda t, TP, m: TP(m, None, C), TE, "X must be a numeric tensor or array"),
    (TPN, TY, "loss=1", lambda t, TP, m: TP(m, A, C, loss=1), TE, "loss must be a name or a callable"),
    (TPN, TY, "batched=1", lambda t, TP, m: TP(m, A, C, batched=1), TE, "batched must be True or False"),
    (TPN, TY, "max_samples='a'", lambda t, TP, m: TP(m, A, C, max_samples="a"), TE, "max_samples must be an int"),
    (TPN, R, "loss='x'", lambda t, TP, m: TP(m, A, C, loss="x"), VE, "unknown loss 'x'"),
    (TPN, R, "eval_chunk=0", lambda t, TP, m: TP(m, A, C, eval_chunk=0), VE, "eval_chunk must be >= 1"),
    (TPN, R, "max_samples=0", lambda t, TP, m: TP(m, A, C, max_samples=0), VE, "max_samples must be >= 1"),
    (TPN, R, "labels -1", lambda t, TP, m: TP(m, A, C - 1), VE, "class labels y must be >= 0"),
    (TPN, R, "label 2 for 2 outputs", lambda t, TP, m: TP(m, A, C + 1), VE, r"labels must lie in \[0, 2\)"),
]
TPM = "TorchProblem.loss / grad / grad_batch / to_module / accuracy"
TPM_CELLS = [
    (TPM, E, "loss(x=[])", lambda p, x: p.loss([]), VE, r"loss: x must have shape \(dim,\)"),
    (TPM, E, "grad(indices=[])", lambda p, x: p.grad(x, []), VE, "grad: indices must be non-empty"),
    (TPM, E, "grad_batch(batches=[])", lambda p, x: p.grad_batch(x, []), VE, "batches must list at least one"),
    (TPM, E, "accuracy(indices=[])", lambda p, x: p.accuracy(x, []), VE, "accuracy: indices must be non-empty"),
    (TPM, DT, "loss(x complex)", lambda p, x: p.loss(x.astype(complex)), TE, "loss: x must be a real numeric array"),
    (TPM, DT, "loss(x bool)", lambda p, x: p.loss(x.astype(bool)), TE, "loss: x must be a real numeric array"),
    (TPM, DT, "grad(indices float)", lambda p, x: p.grad(x, [0.5]), TE, "grad: indices must be integers"),
    (TPM, SH, "loss(x of length 3)", lambda p, x: p.loss(np.zeros(3)), VE, r"x must have shape \(dim,\) with dim=10"),
    (TPM, SH, "grad_batch(3 points, 2 batches)", lambda p, x: p.grad_batch(np.zeros((3, x.size)), [[0], [1]]), VE,
     "x has 3 rows for 2 batches"),
    (TPM, SH, "to_module(x of length 2)", lambda p, x: p.to_module(np.zeros(2)), VE, "to_module: x must have shape"),
    (TPM, SH, "accuracy(x of length 2)", lambda p, x: p.accuracy(np.zeros(2)), VE, "x must have shape"),
    (TPM, TY, "loss(x=None)", lambda p, x: p.loss(None), TE, "loss: x must be a real numeric array"),
    (TPM, TY, "to_module(x='a')", lambda p, x: p.to_module("a"), TE, "to_module: x must be a real numeric array"),
    (TPM, TY, "grad(indices='a')", lambda p, x: p.grad(x, "a"), TE, "grad: indices must be integers"),
    (TPM, TY, "grad_batch(batches=None)", lambda p, x: p.grad_batch(x, None), TE, "batches must be a list"),
    (TPM, TY, "grad_batch(batches=5)", lambda p, x: p.grad_batch(x, 5), TE, "batches must be a list"),
    (TPM, R, "grad(index 40 of 40)", lambda p, x: p.grad(x, [40]), VE, r"indices must lie in \[0, 40\)"),
    (TPM, R, "grad(index -1)", lambda p, x: p.grad(x, [-1]), VE, r"indices must lie in \[0, 40\)"),
    (TPM, R, "accuracy(index 40)", lambda p, x: p.accuracy(x, [40]), VE, r"accuracy: indices must lie in"),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(c, e, m, id=f"{r}|{col}|{label}")
                                              for r, col, label, c, e, m in TP_CELLS])
def test_torch_problem_rejected(call, exc, match):
    with pytest.raises(exc, match=match):
        _tp_call(call)


@pytest.mark.parametrize("call, exc, match", [pytest.param(c, e, m, id=f"{r}|{col}|{label}")
                                              for r, col, label, c, e, m in TPM_CELLS])
def test_torch_problem_methods_rejected(call, exc, match):
    with pytest.raises(exc, match=match):
        _tp_method(call)


def test_torch_problem_accuracy_of_a_regression_is_refused():
    torch, TP, _ = _tp()
    p = TP(torch.nn.Linear(4, 1), A, A[:, :1], loss="mse")
    with pytest.raises(VE, match="accuracy: needs integer class labels"):
        p.accuracy(np.zeros(p.dim))


def test_torch_problem_non_finite_model_is_nan_by_design():
    # Like MLPProblem: simulate's Python path reads a non-finite loss or gradient as divergence.
    p = _tp_method(lambda p, x: p)
    assert math.isnan(p.loss(np.full(p.dim, np.nan)))
    assert np.isnan(p.grad(np.full(p.dim, np.nan), [0])).all()


# ---- the command line (pyqsgd ...): exit status 2 and a message naming the argument ----------
def _cli_cfg(text=CFG, name="cli.toml"):
    path = os.path.join(FILES["dir"], name)
    with open(path, "w") as f:
        f.write(text)
    return path


CLI = [  # (column, label, argv (callable: files exist at run time), stderr must match)
    (NA, "demo --key nan", lambda: ["demo", "--key", "nan"], "argument --key: invalid int value: 'nan'"),
    (NA, "sweep: lr = nan in the config", lambda: ["sweep", _cli_cfg(CFG.replace("lr = 0.1", "lr = nan")),
                                                   "--dry-run"], "simulate.lr: .*lr must be finite"),
    (E, "no sub-command", lambda: [], "the following arguments are required"),
    (E, "sweep without a config", lambda: ["sweep"], "required: config"),
    (E, "sweep: an empty config", lambda: ["sweep", _cli_cfg(""), "--dry-run"], r"missing required table \[method\]"),
    (DT, "demo --rounds 2.5", lambda: ["demo", "--rounds", "2.5"], "argument --rounds: invalid int value"),
    (DT, "sweep --n-jobs 2.5", lambda: ["sweep", _cli_cfg(), "--n-jobs", "2.5"], "argument --n-jobs: invalid int"),
    (TY, "unknown sub-command", lambda: ["nope"], "invalid choice: 'nope'"),
    (TY, "sweep: a folder as config", lambda: ["sweep", FILES["dir"]], "is a folder, not a config file"),
    (TY, "sweep: not TOML", lambda: ["sweep", _cli_cfg("[[[")], "not valid TOML"),
    (TY, "sweep: missing config", lambda: ["sweep", "nope.toml"], "no such config file"),
    (TY, "plot: results not a sweep", lambda: ["plot", FILES["ok"]], "results: .*out must end in .parquet or .csv"),
    (R, "demo --rounds -1", lambda: ["demo", "--rounds", "-1"], r"argument --rounds: must be an int in \[0,"),
    (R, "demo --workers 0", lambda: ["demo", "--workers", "0"], r"argument --workers: must be an int in \[1,"),
    (R, "demo --key -1", lambda: ["demo", "--key", "-1"], r"argument --key: must be an int in \[0,"),
    (R, "sweep --n-jobs 0", lambda: ["sweep", _cli_cfg(), "--n-jobs", "0", "--dry-run"],
     "argument --n-jobs: must be an int >= 1 or -1"),
    (R, "sweep --out r.xlsx", lambda: ["sweep", _cli_cfg(), "--out", "r.xlsx", "--dry-run"],
     "--out must end in .parquet or .csv"),
    (R, "sweep: k = 0 in the config", lambda: ["sweep", _cli_cfg(CFG.replace("k = 2", "k = 0")), "--dry-run"],
     "method.compressor: TopK: k must be >= 1"),
    (R, "bench: unknown benchmark", lambda: ["bench", "nope", "--dir", _bench_dir()], "unknown benchmark 'nope'"),
]


def _bench_dir():
    d = os.path.join(FILES["dir"], "bench")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "one.py"), "w") as f:
        f.write("")
    return d


@pytest.mark.parametrize("argv, match", [pytest.param(a, m, id=f"cli|{col}|{label}") for col, label, a, m in CLI])
def test_cli_rejected(argv, match, capsys):
    from pyqsgd.cli import main

    try:
        status = main(argv())
    except SystemExit as e:  # argparse: usage error
        status = e.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert re.search(match, err), err
    assert "Traceback" not in err


def test_cli_bad_argument_in_a_process_has_no_traceback(tmp_path):
    # The in-process tests above call main(); this checks the real entry point once. cwd: not the
    # repository root, where `python -m` would import the source folder instead of the package.
    r = subprocess.run([sys.executable, "-m", "pyqsgd", "demo", "--workers", "0"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "argument --workers" in r.stderr and "Traceback" not in r.stderr

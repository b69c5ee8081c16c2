"""pyqsgd: communication-efficient distributed SGD research toolkit.

Compressors, aggregators, methods and a fast OpenMP simulator with exact wire-level bit
accounting; the same compressor objects run in PyTorch DDP via ``pyqsgd.torch``.
"""
import os as _os

# Idle OpenMP threads sleep instead of spinning: on a shared or oversubscribed machine spinning
# threads made 2-thread runs many times slower than 1-thread runs. Set before the native module
# loads libgomp; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _core, bits, dagc, data, methods, problems, problems_py  # noqa: E402
from ._core import Key, Message
from .combine import Chain, Induced, chain, induced
from .blockwise import Blockwise, blockwise
from .experiment import ProblemSpec, Spec
from .compressors import (QSGD, Compressor, Identity, Natural, Properties, RandK, ScaledSign, Sign, TernGrad,
                          TopK)
from .aggregators import Aggregator, Mean, WeightedMean
from .history import History
from .measure import Measurement, measure
from .python_stages import generator_for
from .simulate import simulate
from .sweeps import load_sweep, sweep
from .votes import FederatedVote, MajorityVote
from .threads import get_num_threads, set_num_threads, threads
from .threshold import Threshold
from .tnq import NonUniformQuantizer, Truncate, TruncatedQuantizer, TruncatedUniformQuantizer

__version__ = getattr(_core, "__version__", "0.0.0")

__all__ = [
    "Key", "Message", "Compressor", "Properties", "Identity", "TopK", "RandK", "Sign", "ScaledSign", "QSGD",
    "TernGrad", "Natural", "Chain", "Induced", "chain", "induced", "Blockwise", "blockwise", "measure", "Measurement",
    "set_num_threads", "get_num_threads", "threads", "Aggregator", "Mean", "WeightedMean", "History", "simulate",
    "methods", "problems", "data", "MajorityVote", "FederatedVote", "Truncate", "NonUniformQuantizer", "TruncatedQuantizer",
    "TruncatedUniformQuantizer", "sweep", "load_sweep", "Spec", "ProblemSpec", "plot", "experiment",
    "Threshold", "dagc", "problems_py", "generator_for", "testing", "bits",
]


def __getattr__(name):
    # pyqsgd.plot imports matplotlib, pyqsgd.testing scipy.stats: load them on first use only.
    if name in ("plot", "testing"):
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'pyqsgd' has no attribute {name!r}")

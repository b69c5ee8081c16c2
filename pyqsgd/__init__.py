"""pyqsgd: communication-efficient distributed SGD research toolkit.

Compressors, aggregators, methods and a fast OpenMP simulator with exact wire-level bit
accounting; the same compressor objects run in PyTorch DDP via ``pyqsgd.torch``.
"""
from . import _core, dagc, data, methods, problems, problems_py
from ._core import Key, Message
from .combine import Chain, Induced, chain, induced
from .compressors import (QSGD, Compressor, Identity, Natural, Properties, RandK, ScaledSign, Sign, TernGrad,
                          TopK)
from .aggregators import Aggregator, Mean, WeightedMean
from .history import History
from .measure import Measurement, measure
from .simulate import simulate
from .votes import FederatedVote, MajorityVote
from .threads import get_num_threads, set_num_threads, threads
from .threshold import Threshold
from .tnq import NonUniformQuantizer, Truncate, TruncatedQuantizer, TruncatedUniformQuantizer

__version__ = getattr(_core, "__version__", "0.0.0")

__all__ = [
    "Key", "Message", "Compressor", "Properties", "Identity", "TopK", "RandK", "Sign", "ScaledSign", "QSGD",
    "TernGrad", "Natural", "Chain", "Induced", "chain", "induced", "measure", "Measurement",
    "set_num_threads", "get_num_threads", "threads", "Aggregator", "Mean", "WeightedMean", "History", "simulate",
    "methods", "problems", "data", "MajorityVote", "FederatedVote", "Truncate", "NonUniformQuantizer", "TruncatedQuantizer",
    "TruncatedUniformQuantizer", "Threshold", "dagc", "problems_py",
]

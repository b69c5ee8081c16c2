"""Distributed methods: the algorithm around compressors (ALGORITHMS.md §3-4)."""
from .base import Method
from .dagc import DAGC
from .gradient import DCGD, DIANA, EF, EF21
from .python import PythonMethod, State
from .sign import EFSignSGD, LESignSGD, SignSGDFV, SignSGDMV

__all__ = ["Method", "DCGD", "EF", "EF21", "DIANA", "EFSignSGD", "LESignSGD", "SignSGDMV", "SignSGDFV", "DAGC", "PythonMethod",
           "State"]

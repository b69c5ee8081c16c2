"""A public test kit: check a compressor (built-in or your own) against its theory constants.

:func:`check_compressor` runs the project's contract and statistical suite on one compressor;
:func:`worst_case_vectors` are the vectors it tests on by default. The project's own test
suite runs it on every built-in.
"""
from ._check import check_compressor
from ._vectors import BOUNDS_ONLY, worst_case_vectors

__all__ = ["check_compressor", "worst_case_vectors", "BOUNDS_ONLY"]

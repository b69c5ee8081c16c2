"""Distributed methods: the algorithm around compressors (ALGORITHMS.md §3-4)."""
from .base import Method
from .gradient import DCGD, DIANA, EF, EF21

__all__ = ["Method", "DCGD", "EF", "EF21", "DIANA"]

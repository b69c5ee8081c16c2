"""Thread control for the native core. Results never depend on the thread count."""
from __future__ import annotations

import contextlib

from . import _core
from ._validate import check_int

__all__ = ["set_num_threads", "get_num_threads", "threads"]


def set_num_threads(n):
    """Sets the number of OpenMP threads used by native kernels (0 = library default)."""
    n = check_int("set_num_threads", "n", n, low=0)
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads native kernels will use."""
    return _core.get_num_threads()


@contextlib.contextmanager
def threads(n):
    """``with pyqsgd.threads(2): ...`` runs the block with n threads, then restores the setting."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        _core.set_num_threads(previous)

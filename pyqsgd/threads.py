"""Thread control for the native core. Results never depend on the thread count."""
from __future__ import annotations

import contextlib

from . import _core
from ._validate import check_int

__all__ = ["set_num_threads", "get_num_threads", "threads"]


# Far above any core count; a larger request would make OpenMP try to start that many threads
# in the next parallel region (and abort the process when the system refuses).
MAX_THREADS = 4096


def set_num_threads(n):
    """Sets the number of OpenMP threads used by native kernels (0 = library default, at most
    ``MAX_THREADS``)."""
    n = check_int("set_num_threads", "n", n, low=0, high=MAX_THREADS)
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads native kernels called from this thread will use."""
    return _core.get_num_threads()


@contextlib.contextmanager
def threads(n):
    """``with pyqsgd.threads(2): ...`` runs the block's native calls with n threads.

    The setting is the calling thread's own (an override of :func:`set_num_threads`, which is
    process-wide), so blocks in different Python threads do not see each other's count; it is
    restored on exit, and blocks nest. Other threads started inside the block use the
    process-wide setting.
    """
    n = check_int("threads", "n", n, low=0, high=MAX_THREADS)
    previous = _core.thread_override()
    _core.set_thread_override(n)
    try:
        yield
    finally:
        _core.set_thread_override(previous)

"""Run functions for the sweep executor and fault tests: importable by name in worker processes
(Dask, Ray and process-pool workers unpickle functions by module and name)."""
import os
import time

import numpy as np


def logged(a, key, log, sleep=0.0):
    """Appends "start"/"end" lines to ``log``, so a test can count how often each run executed."""
    with open(log, "a") as f:
        f.write(f"start {a} {key} {os.getpid()}\n")
    time.sleep(sleep)
    with open(log, "a") as f:
        f.write(f"end {a} {key}\n")
    return {"value": 10 * a + key}


def killer(a, key, log, die=-1, fail=-1, sleep=0.0):
    """Like :func:`logged`, but the run a == ``die`` kills its own worker process (as a segfault
    would) and the run a == ``fail`` raises."""
    with open(log, "a") as f:
        f.write(f"start {a} {key} {os.getpid()}\n")
    if a == die:
        os._exit(3)
    if a == fail:
        raise RuntimeError(f"boom at a={a}")
    time.sleep(sleep)
    return {"value": 10 * a + key}


class DataRun:
    """A run closing over a large array; every unpickling appends this process's id to ``log``."""

    def __init__(self, n, log):
        self.data = np.arange(n, dtype=np.float64)
        self.log = log

    def __call__(self, a, key):
        return {"value": float(self.data[a]) + key}

    def __getstate__(self):
        return {"data": self.data, "log": self.log}

    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")

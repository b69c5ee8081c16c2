"""Declarative experiments: a problem recipe, a method and simulate() arguments, addressable by
nested parameter names (what sweep grids and config files set), plus the small helpers that
studies and notebooks share (optimum of a problem, a table of measured compressor constants).

>>> import pyqsgd as pq
>>> spec = pq.Spec(pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2),
...                pq.methods.EF21(pq.TopK(k=3)), n_workers=4, rounds=20, lr_factor=1.0)
>>> spec.configure(**{"method__compressor__k": 5, "rounds": 10}).method
EF21(TopK(k=5))
>>> hist = spec.run(key=0)
>>> bool(hist.loss[-1] < hist.loss[0])
True
"""
from __future__ import annotations

import copy
import functools
import inspect
import json
import numbers
import os
import warnings

import numpy as np

from ._params import Params
from ._validate import check_float, check_int

__all__ = ["ProblemSpec", "Spec", "PROBLEMS", "SIMULATE_ARGS", "reference_optimum", "measure_table"]

PROBLEMS = ("logistic", "least_squares", "softmax")
_SYNTHETIC = "synthetic"


def _simulate_args():
    from .simulate import simulate

    names = [p for p in inspect.signature(simulate).parameters if p not in ("problem", "method", "key")]
    return tuple(names) + ("lr_factor",)


SIMULATE_ARGS = _simulate_args()


class ProblemSpec(Params):
    """A built-in problem on a named dataset, built lazily (and cached per process).

    Parameters
    ----------
    name : {"logistic", "least_squares", "softmax"}
        The built-in problem.
    dataset : str
        A bundled dataset (``"breast_cancer"``, ``"digits"``), ``"synthetic"`` (iid
        :func:`pyqsgd.data.synthetic_logistic` / ``synthetic_least_squares`` data), a LIBSVM file
        name found by :func:`pyqsgd.data.find_libsvm` (e.g. ``"a9a.t"``) or a path.
    l2 : float
        l2 regularisation.
    fallback : str or None
        ``None`` (default): a dataset that is neither bundled, ``"synthetic"``, nor a file found
        by :func:`pyqsgd.data.find_libsvm` or as a path raises FileNotFoundError, naming the
        paths searched, ``PYQSGD_DATA`` and the known names. A name (e.g. ``"breast_cancer"``):
        that dataset is used instead, with a RuntimeWarning; results then record the fallback's
        name and content hash (``dataset``, ``dataset_hash``), never the requested name.
    bias : bool
        Append a constant feature (intercept).
    n_samples, n_features : int, optional
        Size of synthetic data; ``n_features`` also pads a LIBSVM split to the full dimension.
    data_key : int
        Seed of synthetic data.
    """

    def __init__(self, name="logistic", dataset="breast_cancer", *, l2=0.0, fallback=None, bias=True,
                 n_samples=None, n_features=None, data_key=0):
        self.name = name
        self.dataset = dataset
        self.l2 = l2
        self.fallback = fallback
        self.bias = bias
        self.n_samples = n_samples
        self.n_features = n_features
        self.data_key = data_key
        self._validate()

    def _validate(self):
        if self.name not in PROBLEMS:
            raise ValueError(f"ProblemSpec: name must be one of {PROBLEMS}, got {self.name!r}")
        for name in ("dataset", "fallback"):
            value = getattr(self, name)
            if not (isinstance(value, (str, os.PathLike)) or (name == "fallback" and value is None)):
                raise TypeError(f"ProblemSpec: {name} must be a dataset name or path, got {value!r}")
        check_float("ProblemSpec", "l2", self.l2, low=0.0)
        if not isinstance(self.bias, bool):
            raise TypeError(f"ProblemSpec: bias must be a bool, got {self.bias!r}")
        check_int("ProblemSpec", "n_samples", self.n_samples, low=2, allow_none=True)
        check_int("ProblemSpec", "n_features", self.n_features, low=1, allow_none=True)
        check_int("ProblemSpec", "data_key", self.data_key, low=0)

    def build(self):
        """The native problem (cached per process, so a sweep loads each dataset once per worker).

        Its ``dataset`` is the dataset actually loaded (the fallback's name after a fallback)."""
        return _build_problem(repr(self), self)

    def load_data(self):
        """``(X, y, name)``: the features, labels and the dataset actually used (after fallback).

        Raises FileNotFoundError when the dataset is not found and ``fallback`` is None."""
        from . import data

        name = str(self.dataset)
        if name in data.BUNDLED:
            X, y = data.load_bundled(name)
        elif name == _SYNTHETIC:
            n, d = self.n_samples or 2000, self.n_features or 20
            if self.name == "softmax":
                raise ValueError("ProblemSpec: synthetic data is binary or real-valued; use 'logistic' or "
                                 "'least_squares', or a multiclass dataset ('digits') for 'softmax'")
            gen = data.synthetic_least_squares if self.name == "least_squares" else data.synthetic_logistic
            X, y = gen(n, d, key=self.data_key)
        else:
            path = data.find_libsvm(name) or (name if os.path.isfile(name) else None)
            if path is None:
                if self.fallback is None:
                    raise FileNotFoundError(data.libsvm.missing_dataset_message(
                        name, "ProblemSpec", known=(*data.BUNDLED, _SYNTHETIC),
                        hint="To run on a bundled dataset instead, pass fallback='breast_cancer' (with a "
                             "warning; results then record dataset='breast_cancer')."))
                warnings.warn(f"ProblemSpec: dataset {name!r} not found on this machine (set {data.DATA_ENV}); "
                              f"using the fallback {str(self.fallback)!r} instead, and results record "
                              f"dataset={str(self.fallback)!r}", RuntimeWarning, stacklevel=3)
                return ProblemSpec(**{**self.get_params(deep=False), "dataset": self.fallback,
                                      "fallback": None}).load_data()
            X, y = data.load_libsvm(path, n_features=self.n_features,
                                    multiclass=True if self.name == "softmax" else None)
        if self.bias:
            X = data.append_bias(X)
        return X, y, name

    def __repr__(self):
        # name and dataset always shown: they identify the problem in sweep result columns.
        rest = [a for a in self._repr_args() if not a.startswith(("name=", "dataset="))]
        return f"ProblemSpec({', '.join([repr(self.name), repr(str(self.dataset))] + rest)})"


@functools.lru_cache(maxsize=8)
def _build_problem(_key, spec):
    from . import problems

    X, y, name = spec.load_data()
    if spec.name == "logistic":
        if np.asarray(y).dtype.kind != "f":
            raise ValueError(f"ProblemSpec: dataset {name!r} is multiclass; use name='softmax'")
        return problems.LogisticRegression(X, y, l2=spec.l2, dataset=name)
    if spec.name == "least_squares":
        return problems.LeastSquares(X, np.asarray(y, dtype=np.float32), l2=spec.l2, dataset=name)
    return problems.SoftmaxRegression(X, y, l2=spec.l2, dataset=name)


def _labels(problem):
    y = getattr(problem, "y", None)
    return None if y is None else np.asarray(y)


class Spec:
    """One experiment: ``problem`` + ``method`` + keyword arguments of :func:`pyqsgd.simulate`.

    Parameter names (for :meth:`configure`, sweep grids and config files):

    * ``method__compressor__k``, ``method__alpha``, ...: ``set_params`` on a deep copy of the
      method; ``method`` replaces the method object.
    * ``problem__l2``, ``problem__dataset``, ...: parameters of a :class:`ProblemSpec`.
    * Any simulate() argument (``n_workers``, ``rounds``, ``lr``, ``batch_size``, ...), plus
      ``lr_factor`` (lr = lr_factor / L, L = ``problem.smoothness()``) and ``partition`` given as a
      dict of :func:`pyqsgd.data.partition` arguments (``{"scheme": "dirichlet", "alpha": 0.5}``,
      addressed as ``partition__alpha``) or as a scheme name.
    """

    def __init__(self, problem, method, **simulate):
        from .methods.base import Method

        if not isinstance(method, Method):
            raise TypeError(f"Spec: method must be a pyqsgd method, got {type(method).__name__}")
        unknown = sorted(set(simulate) - set(SIMULATE_ARGS))
        if unknown:
            raise ValueError(f"Spec: unknown simulate argument {unknown[0]!r}; valid: {', '.join(SIMULATE_ARGS)}")
        if simulate.get("lr") is not None and simulate.get("lr_factor") is not None:
            raise ValueError("Spec: give lr or lr_factor, not both")
        if isinstance(simulate.get("partition"), str):
            simulate["partition"] = {"scheme": simulate["partition"]}
        self.problem = problem
        self.method = method
        self.simulate = simulate

    def configure(self, **params):
        """A new Spec with ``params`` applied (see the class docstring for the names)."""
        out = Spec.__new__(Spec)
        out.problem, out.method, out.simulate = self.problem, self.method, dict(self.simulate)
        copied = set()
        # Whole objects first, so "method" and "method__compressor__k" in one grid compose.
        params = dict(sorted(params.items(), key=lambda kv: kv[0].count("__")))
        for name, value in params.items():
            head, _, rest = name.partition("__")
            if head in ("method", "problem"):
                if not rest:
                    # A private copy: nested names set next must not edit the caller's object.
                    setattr(out, head, copy.deepcopy(value))
                    copied.add(head)
                    continue
                obj = getattr(out, head)
                if not isinstance(obj, Params):
                    raise ValueError(f"Spec: cannot set {name!r}: the {head} ({type(obj).__name__}) has no "
                                     "parameters; use a ProblemSpec or a pyqsgd method")
                if head not in copied:
                    obj = copy.deepcopy(obj)
                    setattr(out, head, obj)
                    copied.add(head)
                try:
                    obj.set_params(**{rest: value})
                except (TypeError, ValueError) as e:
                    raise type(e)(f"cannot set {name}={value!r}: {e}") from None
            elif head in SIMULATE_ARGS:
                if rest:
                    sub = out.simulate.get(head)
                    if not isinstance(sub, dict):
                        raise ValueError(f"Spec: cannot set {name!r}: simulate argument {head!r} is not a dict")
                    out.simulate[head] = {**sub, rest: value}
                else:
                    out.simulate[head] = {"scheme": value} if head == "partition" and isinstance(value, str) else value
            else:
                raise ValueError(f"Spec: unknown parameter {name!r}; use method__<param>, problem__<param> or a "
                                 f"simulate argument ({', '.join(SIMULATE_ARGS)})")
        if out.simulate.get("lr") is not None and out.simulate.get("lr_factor") is not None:
            raise ValueError("Spec: give lr or lr_factor, not both")
        return out

    def build_problem(self):
        return self.problem.build() if isinstance(self.problem, ProblemSpec) else self.problem

    def simulate_kwargs(self, problem, key):
        """The exact keyword arguments passed to simulate() (partition and lr resolved)."""
        kw = dict(self.simulate)
        factor = kw.pop("lr_factor", None)
        if factor is not None:
            kw["lr"] = check_float("Spec", "lr_factor", factor, low=0.0, low_open=True) / problem.smoothness()
        part = kw.get("partition")
        if isinstance(part, dict):
            from .data import partition

            args = dict(part)
            scheme = args.pop("scheme", "iid")
            labels = _labels(problem)
            target = labels if labels is not None and scheme != "iid" else problem.n_samples
            kw["partition"] = partition(target, kw.get("n_workers", 20), scheme=scheme, key=key, **args)
        return kw

    def run(self, key=0):
        """Runs the experiment with seed ``key``; returns the History."""
        from .simulate import simulate

        problem = self.build_problem()
        return simulate(problem, self.method, key=key, **self.simulate_kwargs(problem, key))

    def __call__(self, key=0, **params):
        return self.configure(**params).run(key)

    def params(self):
        """Flat record of the configuration (one column each in sweep results)."""
        out = {"problem": repr(self.problem), "method": repr(self.method)}
        for name, value in self.simulate.items():
            out[name] = column_value(value)
        return out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.simulate.items())
        return f"Spec({self.problem!r}, {self.method!r}{', ' if args else ''}{args})"


def column_value(value):
    """A parameter value as a table cell: scalars unchanged, containers as JSON, objects as repr
    (an object with the default repr and a ``name`` attribute: its class and name)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.dumps(value, sort_keys=True)
        except TypeError:
            return repr(value)
    name = getattr(value, "name", None)
    if type(value).__repr__ is object.__repr__ and isinstance(name, str):
        # The default repr holds a memory address (a different text in every process); a name is stable.
        return f"{type(value).__name__}(name={name!r})"
    return repr(value)


def reference_optimum(problem, tol=1e-12, max_iter=20000):
    """``(f_star, x_star)`` of a (strongly convex) built-in problem by L-BFGS, for suboptimality plots.

    >>> import numpy as np, pyqsgd as pq
    >>> f, x = reference_optimum(pq.problems.LeastSquares(np.eye(3), np.ones(3)))
    >>> round(f, 8)
    0.0
    """
    from scipy.optimize import minimize

    res = minimize(lambda x: float(problem.loss(x)), np.zeros(problem.dim), jac=lambda x: problem.grad(x),
                   method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15})
    return float(res.fun), res.x


def measure_table(compressors, x, trials=200, key=0):
    """Measured and declared constants of several compressors on one vector, as a DataFrame.

    Parameters
    ----------
    compressors : dict
        ``{family: compressor or list of compressors}``; each compressor gives one row.
    x : array_like
        The test vector (e.g. a real gradient).

    Returns
    -------
    pandas.DataFrame
        Columns family, compressor (repr), bits, bits_per_coord, omega (mean ||C(x)-x||²/||x||²),
        omega_lo, omega_hi (confidence interval), delta, bias_norm_sq, bias_p, unbiased,
        omega_theory, delta_theory (from ``properties(d)``).
    """
    import pandas as pd

    from .measure import measure

    x = np.asarray(x)
    rows = []
    for family, cs in compressors.items():
        for c in (cs if isinstance(cs, (list, tuple)) else [cs]):
            m = measure(c, x, trials=trials, key=key)
            p = c.properties(x.size)
            rows.append({"family": family, "compressor": repr(c), "bits": m.bits_mean,
                         "bits_per_coord": m.bits_mean / x.size, "omega": m.omega, "omega_lo": m.omega_ci[0],
                         "omega_hi": m.omega_ci[1], "delta": m.delta, "bias_norm_sq": m.bias_norm_sq,
                         "bias_p": m.bias_p, "unbiased": p.unbiased, "omega_theory": p.omega,
                         "delta_theory": p.delta})
    return pd.DataFrame(rows)

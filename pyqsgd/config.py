"""Sweep configuration files (TOML) for ``pyqsgd sweep CONFIG.toml``.

Schema (every key optional unless marked; unknown keys are errors that name the key)::

    out = "results.parquet"        # .parquet, .csv or a folder; default: <config name>.parquet
                                   # next to the config file (relative paths are relative to it)
    seeds = [0, 1, 2]              # or a count: seeds = 3
    n_jobs = 2                     # worker processes (-1 = all cores)

    [problem]                      # pyqsgd.ProblemSpec
    name = "logistic"              # logistic | least_squares | softmax
    dataset = "breast_cancer"      # bundled name, "synthetic", a LIBSVM file name ("a9a.t") or path
    l2 = 1e-2
    fallback = "breast_cancer"     # optional: used (with a warning) when the dataset is not on this
                                   # machine; without it a missing dataset is an error. Results
                                   # record the dataset actually used (dataset, dataset_hash columns)

    [method]                       # (required) a class of pyqsgd.methods and its parameters
    name = "EF21"
    compressor = { name = "TopK", ratio = 0.1 }     # objects are tables with a `name`
    # compressor = { name = "induced", biased = { name = "TopK", k = 3 }, unbiased = { name = "RandK", k = 3 } }
    # aggregator = { name = "WeightedMean", weights = "data" }

    [simulate]                     # keyword arguments of pyqsgd.simulate (besides key)
    n_workers = 10
    rounds = 200
    lr_factor = 1.0                # lr = lr_factor / L; or lr = 0.05
    log_every = 10
    partition = { scheme = "dirichlet", alpha = 0.5 }

    [grid]                         # parameter name -> list of values (Cartesian product)
    method__compressor__ratio = [0.05, 0.1, 0.2]
    lr_factor = [0.5, 1.0]
    # method = [{ name = "EF21", compressor = { name = "TopK", k = 3 } }, { name = "EFSignSGD" }]
"""
from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path

__all__ = ["ConfigError", "load_config", "build_object", "registry"]

TOP_KEYS = ("out", "seeds", "n_jobs", "problem", "method", "simulate", "grid")


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the offending key."""


@functools.lru_cache(maxsize=None)
def registry():
    """Classes a config can name: compressors, aggregators, methods, plus ``chain``/``induced``."""
    import pyqsgd as pq
    from pyqsgd import methods

    from .aggregators import Aggregator
    from .compressors import Compressor

    out = {}
    for name in dir(pq):
        obj = getattr(pq, name)
        if inspect.isclass(obj) and issubclass(obj, (Compressor, Aggregator)) and obj not in (Compressor, Aggregator):
            out[name] = obj
    out["chain"], out["induced"] = pq.chain, pq.induced
    for name in getattr(methods, "__all__", []):
        obj = getattr(methods, name)
        if inspect.isclass(obj) and name != "Method":
            out[name] = obj
    return out


def build_object(table, where):
    """Builds a compressor / aggregator / method from ``{"name": ..., **params}`` (nested tables too)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with a 'name' (e.g. {{ name = \"TopK\", k = 3 }}), got {table!r}")
    if "name" not in table:
        raise ConfigError(f"{where}: missing key 'name' (the class, e.g. \"TopK\" or \"EF21\")")
    name = table["name"]
    known = registry()
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"{where}.name: unknown class {name!r}; choose one of {', '.join(sorted(known))}")
    factory = known[name]
    sig = inspect.signature(factory)
    valid = [p for p in sig.parameters if p != "self"]
    kwargs = {}
    for key, value in table.items():
        if key == "name":
            continue
        if key not in valid:
            raise ConfigError(f"{where}.{key}: unknown parameter {key!r} for {name}; valid: {', '.join(valid) or 'none'}")
        if isinstance(value, dict) and "name" not in value:
            raise ConfigError(f"{where}.{key}: missing key 'name' (objects are tables like {{ name = \"TopK\", k = 3 }})")
        kwargs[key] = _value(value, f"{where}.{key}")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _value(value, where):
    if isinstance(value, dict) and "name" in value:
        return build_object(value, where)
    if isinstance(value, list):
        return [_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _check_keys(table, valid, where):
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    for key in table:
        if key not in valid:
            raise ConfigError(f"{where + '.' if where else ''}{key}: unknown key {key!r}"
                              f"{' in [' + where + ']' if where else ' at top level'}; valid: {', '.join(valid)}")


def _read_toml(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file (path must name a .toml file)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def load_config(path, check=True):
    """Reads a sweep config; returns ``dict(run=Spec, grid=..., seeds=..., out=..., n_jobs=...)``.

    With ``check``, every grid point is configured and dry-run (0 rounds) so that bad values fail
    here, naming the key, rather than as failed runs. Raises :class:`ConfigError`.
    """
    from .experiment import SIMULATE_ARGS, ProblemSpec, Spec
    from .sweeps import _n_jobs, _seeds, expand_grid

    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"load_config: path must be a str or os.PathLike, got {path!r}")
    if not isinstance(check, bool):
        raise TypeError(f"load_config: check must be a bool, got {check!r}")
    path = Path(path)
    cfg = _read_toml(path)
    try:
        return _load(cfg, path, check, SIMULATE_ARGS, ProblemSpec, Spec, _n_jobs, _seeds, expand_grid)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _load(cfg, path, check, SIMULATE_ARGS, ProblemSpec, Spec, _n_jobs, _seeds, expand_grid):
    _check_keys(cfg, TOP_KEYS, "")
    if "method" not in cfg:
        raise ConfigError("method: missing required table [method] (e.g. name = \"EF21\" and a compressor)")

    problem_table = cfg.get("problem", {})
    _check_keys(problem_table, list(inspect.signature(ProblemSpec).parameters), "problem")
    try:
        problem = ProblemSpec(**problem_table)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"problem: {e}") from None

    method = build_object(cfg["method"], "method")
    from .methods.base import Method

    if not isinstance(method, Method):
        raise ConfigError(f"method.name: {cfg['method']['name']!r} is not a method")

    sim = cfg.get("simulate", {})
    _check_keys(sim, SIMULATE_ARGS, "simulate")
    for key in ("progress",):
        if key in sim:
            raise ConfigError(f"simulate.{key}: not settable from a config (the sweep shows progress)")
    try:
        spec = Spec(problem, method, **sim)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"simulate: {e}") from None

    grid = cfg.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(f"grid: expected a table of name = [values], got {grid!r}")
    built = {}
    for key, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(f"grid.{key}: expected a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"grid.{key}: empty list")
        built[key] = [_value(v, f"grid.{key}[{i}]") for i, v in enumerate(values)]
        for i, v in enumerate(built[key]):
            try:
                spec.configure(**{key: v})
            except (TypeError, ValueError) as e:
                raise ConfigError(f"grid.{key}: {e}") from None
    try:
        seeds = _seeds(cfg.get("seeds", [0]))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"seeds: {e}") from None
    try:
        n_jobs = _n_jobs(cfg.get("n_jobs", 1), 10**6)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"n_jobs: {e}") from None
    out = cfg.get("out", path.stem + ".parquet")
    if not isinstance(out, str) or not out:
        raise ConfigError(f"out: expected a path string, got {out!r}")
    out = Path(out) if os.path.isabs(out) else path.parent / out
    if out.suffix and out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"out: must end in .parquet or .csv (or be a folder), got {str(out)!r}")

    if check:
        for point in expand_grid(built):
            _dry_run(spec, point)
    return {"run": spec, "grid": built, "seeds": seeds, "out": out, "n_jobs": n_jobs}


def _dry_run(spec, point):
    """Configures and builds a 0-round simulation, so bad values fail before the sweep starts."""
    from .simulate import simulate

    label = ", ".join(f"{k}={v!r}" for k, v in point.items()) or "the base configuration"
    try:
        run = spec.configure(**point)
        problem = run.build_problem()
        kwargs = run.simulate_kwargs(problem, key=0)
    except (TypeError, ValueError, FileNotFoundError) as e:
        key = _key_of(e, point)
        if isinstance(e, FileNotFoundError) and key == "config":
            key = "problem.dataset"  # a dataset that is not on this machine (and no fallback)
        raise ConfigError(f"{key}: {e} (grid point: {label})") from None
    rounds = kwargs.pop("rounds", None)
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0):
        raise ConfigError(f"simulate.rounds: must be an int >= 0, got {rounds!r}")
    try:
        simulate(problem, run.method, key=0, rounds=0, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{_key_of(e, point)}: {e} (grid point: {label})") from None


def _key_of(error, point):
    """Best guess of the config key an error message refers to."""
    text = str(error)
    from .experiment import SIMULATE_ARGS

    for key in point:
        if key.rsplit("__", 1)[-1] in text:
            return f"grid.{key}"
    for key in SIMULATE_ARGS:
        if f" {key} " in text or f"{key}=" in text or f" {key}:" in text:
            return f"simulate.{key}"
    return "config"

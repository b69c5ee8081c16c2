"""Parameter records: keyword-only constructors whose arguments are stored unchanged.

Modelled on scikit-learn's ``BaseEstimator``: ``get_params`` / ``set_params`` with nested
``a__b`` names (what sweep grids address), a ``repr`` that round-trips through ``eval``, and
pickling that rebuilds any native object from the parameters.
"""
from __future__ import annotations

import inspect

import numpy as np

__all__ = ["Params"]


class Params:
    """Base class for objects defined by their constructor's keyword parameters."""

    # Attributes that hold derived, rebuildable state (native objects, caches); never pickled.
    _derived: tuple = ()

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        # *args/**kwargs are not parameters (a subclass without __init__ shows object's).
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    @classmethod
    def _defaults(cls):
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty}

    def get_params(self, deep=True):
        """Constructor parameters; with ``deep``, nested ones as ``outer__inner``."""
        out = {}
        for name in self._param_names():
            value = getattr(self, name)
            out[name] = value
            if deep and isinstance(value, Params):
                for sub, v in value.get_params(deep=True).items():
                    out[f"{name}__{sub}"] = v
        return out

    def set_params(self, **params):
        """Sets parameters (nested ``a__b`` names allowed), re-validates, returns ``self``.

        All or nothing: when a value is rejected the object (and its nested objects) keep their
        previous parameters.
        """
        saved = self._snapshot()
        try:
            return self._set_params(params)
        except Exception:
            self._restore(saved)
            raise

    def _snapshot(self):
        state = dict(self.__dict__)
        children = {k: v._snapshot() for k, v in state.items() if isinstance(v, Params)}
        return state, children

    def _restore(self, saved):
        state, children = saved
        self.__dict__.clear()
        self.__dict__.update(state)
        for k, child_state in children.items():
            state[k]._restore(child_state)

    def _set_params(self, params):
        valid = set(self._param_names())
        nested = {}
        for key, value in params.items():
            head, _, rest = key.partition("__")
            if head not in valid:
                raise ValueError(f"{type(self).__name__}.set_params: unknown parameter {head!r}; "
                                 f"valid parameters are {sorted(valid)}")
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                setattr(self, head, value)
        for head, sub in nested.items():
            child = getattr(self, head)
            if not isinstance(child, Params):
                raise ValueError(f"{type(self).__name__}.set_params: {head!r} has no nested parameters")
            child.set_params(**sub)
        self._reset()
        return self

    def _reset(self):
        """Re-validates and drops derived state after a parameter change."""
        for name in self._derived:
            self.__dict__.pop(name, None)
        self._validate()

    def _validate(self):
        """Subclasses raise TypeError/ValueError naming the parameter."""

    def _repr_args(self):
        defaults = self._defaults()
        parts = []
        for name in self._param_names():
            value = getattr(self, name)
            if name in defaults and _same(value, defaults[name]):
                continue
            parts.append(f"{name}={_plain(value)!r}")
        return parts

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(self._repr_args())})"

    def __eq__(self, other):
        # Compared through the normalised repr: NumPy scalars equal Python numbers, arrays compare
        # element-wise, and equal objects hash equally.
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self):
        return hash(repr(self))

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in self._derived:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


def _plain(value):
    """NumPy scalars and arrays as Python numbers and lists, so a repr evaluates without NumPy
    and does not depend on the NumPy version (sweep run ids are built from reprs)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        out = [_plain(v) for v in value]
        return out if isinstance(value, list) else tuple(out)
    return value


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - arrays and odd types compare ambiguously: show them
        return False

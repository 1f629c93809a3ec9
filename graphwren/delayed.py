"""``gw.delayed``, ``gw.compute`` and ``gw.persist``: dask.delayed's API on graphwren's stages.

>>> import graphwren as gw
>>> @gw.delayed
... def inc(x):
...     return x + 1
>>> total = gw.delayed(sum)([inc(i) for i in range(200)])   # 200 independent calls: one stage of 200 tasks
>>> total.compute()
20100
>>> gw.compute(total, gw.bag.from_sequence([1, 2, 3]).sum())   # one job; shared parts computed once
(20100, 6)

This module is callable: ``gw.delayed(f)`` and ``from graphwren import delayed;
delayed(f)`` both record calls, as ``dask.delayed`` does.
"""
from __future__ import annotations

import sys
import types

from .collections import delayed as _d
from .collections.array import Array
from .collections.bag import Bag, Item

Delayed = _d.Delayed
delayed = _d.delayed


def _expr(obj):
    """The expression of a graphwren collection or delayed value, None for anything else."""
    if isinstance(obj, Delayed):
        return obj._expr
    if isinstance(obj, (Bag, Array)):
        return obj.expr
    return None


def _walk(args, traverse: bool, exprs: list, index: dict):
    """Each argument as a function of the computed values; collections found are added to ``exprs``."""
    def visit(obj):
        expr = _expr(obj)
        if expr is not None:
            if expr.name not in index:   # the same value twice: computed once
                index[expr.name] = len(exprs)
                exprs.append(expr)
            i = index[expr.name]
            return lambda values, make: make(obj, i, values)
        if traverse and type(obj) in (list, tuple, set, frozenset):
            parts = [visit(x) for x in obj]
            return lambda values, make: type(obj)(p(values, make) for p in parts)
        if traverse and type(obj) is dict:
            parts = [(k, visit(v)) for k, v in obj.items()]
            return lambda values, make: {k: p(values, make) for k, p in parts}
        return lambda values, make: obj
    return [visit(a) for a in args]


def compute(*args, traverse: bool = True, optimize_graph: bool = True, scheduler=None, **settings) -> tuple:
    """Compute several collections and delayed values in ONE job; a tuple of their values (dask.compute).

    Subexpressions they share (by name) are computed once. Arguments that
    are not graphwren values come back unchanged; with ``traverse`` (the
    default) collections inside lists, tuples, sets and dicts are computed
    too. ``optimize_graph`` and ``scheduler`` are dask's and accepted for
    ports: graphwren always optimizes and runs on its configured backend.
    ``settings`` are graphwren's (``storage=``, ``backend=`` ...).
    """
    exprs: list = []
    builders = _walk(args, traverse, exprs, {})
    if not exprs:
        return tuple(b([], None) for b in builders)
    planned, got, _job, _settings = _d.run(exprs, settings)

    def make(obj, i, values):
        return _d.value_of(planned.roots[i], got, item=isinstance(obj, Item))

    return tuple(b(None, make) for b in builders)


def persist(*args, traverse: bool = True, optimize_graph: bool = True, scheduler=None, **settings) -> tuple:
    """Compute bags, items and delayed values in ONE job whose results stay in storage (dask.persist).

    Returns the same values, now reading their results back: later computes
    start from them. They live in storage as a kept job until
    ``graphwren clean`` removes it, and can be read only by this process
    (it alone holds the job's signing key). Arrays are persisted one by one
    (``Array.persist``).
    """
    exprs: list = []
    builders = _walk(args, traverse, exprs, {})
    others = [e for e in exprs if not _is_array_expr(e)]
    persisted = dict(zip((e.name for e in others), _d.persist_exprs(others, settings))) if others else {}

    def make(obj, i, values):
        if isinstance(obj, Array):
            return obj.persist(**settings)
        new = persisted[exprs[i].name]
        if isinstance(obj, Delayed):
            return Delayed(new, obj._length)
        return type(obj)(new)

    return tuple(b(None, make) for b in builders)


def _is_array_expr(expr) -> bool:
    from .logical.array import ArrayExpr
    return isinstance(expr, ArrayExpr)


class _CallableModule(types.ModuleType):
    """This module, callable as ``delayed``: ``gw.delayed`` is the module once anything imported it."""

    def __call__(self, *args, **kwargs):
        return delayed(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["delayed", "Delayed", "compute", "persist"]

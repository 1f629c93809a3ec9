"""How an input item becomes a call's arguments, as Lithops binds them (and PyWren, where they differ).

Lithops' rule: a tuple item is the function's positional arguments, a dict
item its keyword arguments, anything else its one argument; ``extra_args``
(a tuple, list or dict) is appended to every item. The reserved parameter
``id`` is left out of the binding and receives the call's index in the
worker. Binding happens here, in the driver, so a bad item is a TypeError at
submit naming the item, not a failure in a worker.

PyWren passed every item whole, as the one argument. Both programs keep
working because an item that cannot bind Lithops' way but binds as the
function's only argument is passed whole (``def f(pair)`` over tuples);
where both bindings fit (``def f(a, b=0)`` over pairs), Lithops' wins. A
function whose signature cannot be read (some builtins) gets each item whole.
"""
from __future__ import annotations

import inspect
import reprlib
from typing import Any, Callable

RESERVED = ("id",)   # filled in by the worker; ``obj`` is bound from the item, then opened by the worker


class Bound:
    """One call's arguments: by parameter name when the signature is known, else (args, kwargs)."""

    __slots__ = ("arguments", "args", "kwargs")

    def __init__(self, arguments: dict | None = None, args: tuple = (), kwargs: dict | None = None):
        self.arguments = arguments          # param name -> value, reserved ones left out
        self.args, self.kwargs = args, kwargs or {}

    def __getstate__(self):
        return (self.arguments, self.args, self.kwargs)

    def __setstate__(self, state):
        self.arguments, self.args, self.kwargs = state


def signature_of(fn: Callable) -> inspect.Signature | None:
    """The function's signature, or None where Python cannot tell it."""
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _by_keyword(sig: inspect.Signature | None, name: str) -> bool:
    # Reserved parameters are passed by name: a positional-only one (``len(obj, /)``) is an ordinary argument.
    p = sig.parameters.get(name) if sig is not None else None
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def reserved_params(sig: inspect.Signature | None) -> set[str]:
    """The reserved parameters ``fn`` takes (``id``; ``obj`` is bound like any other)."""
    return {p for p in RESERVED if _by_keyword(sig, p)}


def takes_obj(sig: inspect.Signature | None) -> bool:
    """True when the function has the reserved ``obj`` parameter: its items name stored objects to split."""
    return _by_keyword(sig, "obj")


def normalize_iterdata(iterdata) -> list:
    """The list of items: Lithops wraps a lone string, bytes or dict into one item; other iterables are the items."""
    if isinstance(iterdata, (str, bytes, dict)):
        return [iterdata]
    try:
        return list(iterdata)
    except TypeError:
        raise TypeError(f"map() needs an iterable of input items, got {type(iterdata).__name__} "
                        f"{reprlib.repr(iterdata)}") from None


def with_extra_args(item, extra_args, index: int) -> tuple[tuple, dict, bool]:
    """(positional, keyword, single) for one item plus ``extra_args``; ``single``: the item is one value."""
    if extra_args is not None and not isinstance(extra_args, (tuple, list, dict)):
        raise TypeError(f"extra_args must be a tuple, list or dict, got {type(extra_args).__name__}")
    if isinstance(item, tuple):
        args, kwargs, single = item, {}, False
    elif isinstance(item, dict):
        args, kwargs, single = (), dict(item), False
    else:
        args, kwargs, single = (item,), {}, True
    if isinstance(extra_args, (tuple, list)):
        args = tuple(args) + tuple(extra_args)
        single = False
    elif isinstance(extra_args, dict):
        clash = sorted(set(kwargs) & set(extra_args))
        if clash:
            raise TypeError(f"input item {index} and extra_args both give argument(s) {clash}")
        kwargs = {**kwargs, **extra_args}
        single = False
    return tuple(args), kwargs, single


def bind_item(fn: Callable, sig: inspect.Signature | None, item: Any, extra_args, index: int) -> Bound:
    """The call's arguments for input item ``index``; a TypeError naming the item if it cannot bind."""
    args, kwargs, single = with_extra_args(item, extra_args, index)
    if sig is None:
        return Bound(args=args, kwargs=kwargs)
    reserved = reserved_params(sig)
    visible = sig.replace(parameters=[p for n, p in sig.parameters.items() if n not in reserved])
    try:
        return Bound(arguments=dict(visible.bind(*args, **kwargs).arguments))
    except TypeError as lithops_way:
        if not single and extra_args is None:
            try:   # PyWren's rule: the item whole, as the only argument
                return Bound(arguments=dict(visible.bind(item).arguments))
            except TypeError:
                pass
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise TypeError(f"input item {index} ({reprlib.repr(item)}) does not fit {name}{sig}: "
                        f"{lithops_way}") from None


def call_arguments(sig: inspect.Signature | None, bound: Bound, reserved: dict) -> tuple[tuple, dict]:
    """(args, kwargs) to call with, the reserved parameters' values put in their places."""
    if bound.arguments is None:
        return bound.args, bound.kwargs
    full = inspect.BoundArguments(sig, {**bound.arguments, **reserved})
    return full.args, full.kwargs

"""Logical expressions: declared parameters, deterministic names (dask-expr style).

An ``Expr`` subclass lists its ``_parameters``; positional operands fill them
in order. Its ``name`` hashes the class and every operand, so two equal
subexpressions get one name, and a plan computes them once.
"""
from __future__ import annotations

import functools
import hashlib
import pickle
from typing import Any, Iterator

import cloudpickle

from ..tasks.describe import funcname  # workers label with it too, so it lives in tasks/


def tokenize(*args: Any) -> str:
    """A stable hex token for any picklable arguments (functions by their code)."""
    h = hashlib.sha1()
    for arg in args:
        h.update(_token_bytes(arg))
    return h.hexdigest()[:12]


def _token_bytes(obj: Any) -> bytes:
    if isinstance(obj, Expr):
        return obj.name.encode()
    if isinstance(obj, (list, tuple)):
        return b"(" + b",".join(_token_bytes(o) for o in obj) + b")"
    if isinstance(obj, dict):
        return b"{" + b",".join(_token_bytes(k) + b":" + _token_bytes(v) for k, v in sorted(obj.items(), key=repr)) + b"}"
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return repr(obj).encode()
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:  # noqa: BLE001 - lambdas and closures
        try:
            return cloudpickle.dumps(obj)
        except Exception:  # noqa: BLE001 - unpicklable: unique per object, never merged
            return f"id:{id(obj)}".encode()


class Expr:
    """A node of a logical plan. Subclasses declare ``_parameters`` and ``_defaults``."""

    _parameters: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, *operands, **kwargs):
        if len(operands) > len(self._parameters):
            raise TypeError(f"{type(self).__name__} takes {len(self._parameters)} operands")
        values = list(operands)
        for param in self._parameters[len(operands):]:
            if param in kwargs:
                values.append(kwargs.pop(param))
            elif param in self._defaults:
                values.append(self._defaults[param])
            else:
                raise TypeError(f"{type(self).__name__} is missing operand {param!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unknown operands {sorted(kwargs)}")
        self.operands = values

    def __getattr__(self, key: str):
        params = type(self)._parameters
        if key in params:
            return self.operands[params.index(key)]
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    @functools.cached_property
    def name(self) -> str:
        return f"{type(self).__name__.lower()}-{tokenize(type(self).__name__, *self.operands)}"

    @property
    def dependencies(self) -> list["Expr"]:
        """Operands that are expressions, including those inside tuple operands."""
        out = []
        for op in self.operands:
            if isinstance(op, Expr):
                out.append(op)
            elif isinstance(op, tuple):
                out.extend(o for o in op if isinstance(o, Expr))
        return out

    def substitute(self, **changes) -> "Expr":
        """A copy with some operands replaced."""
        values = dict(zip(self._parameters, self.operands))
        values.update(changes)
        return type(self)(**values)

    def walk(self) -> Iterator["Expr"]:
        """Every distinct node once, dependencies before dependents."""
        seen: set[str] = set()
        stack = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if node.name in seen:
                continue
            if expanded:
                seen.add(node.name)
                yield node
                continue
            stack.append((node, True))
            for dep in reversed(node.dependencies):
                if dep.name not in seen:
                    stack.append((dep, False))

    def _describe(self) -> str:
        """One line for explain(): the node and its non-expression parameters."""
        args = []
        for param, value in zip(self._parameters, self.operands):
            if isinstance(value, Expr):
                continue
            if callable(value):
                value = funcname(value)
            elif isinstance(value, (list, tuple)) and len(value) > 4:
                value = f"[{len(value)} items]"
            args.append(f"{param}={value}")
        return f"{type(self).__name__}({', '.join(args)})"

    def tree(self, indent: int = 0, seen: set | None = None) -> str:
        """The plan as an indented tree; a repeated subexpression is shown once."""
        seen = set() if seen is None else seen
        pad = "  " * indent
        if self.name in seen:
            return f"{pad}{self._describe()}  [same as above: {self.name}]"
        seen.add(self.name)
        lines = [f"{pad}{self._describe()}"]
        for dep in self.dependencies:
            lines.append(dep.tree(indent + 1, seen))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self._describe()

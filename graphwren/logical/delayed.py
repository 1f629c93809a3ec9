"""Logical nodes of delayed values (dask.delayed's model) and their bridges to bags.

A delayed node's name is its key: a token of the function and arguments for
a pure call, a fresh one otherwise (dask's ``pure=False`` default), or the
user's ``dask_key_name``. Nodes with one name are one value, computed once
per plan. ``Call`` is the only node that runs user code; the others are
values a task reads: a literal the driver ships, a partition (or all the
records) of a bag, a value an earlier job persisted. ``FromDelayed`` is the
bag whose partitions are delayed values.
"""
from __future__ import annotations

from .bag import BagExpr
from .expr import Expr, funcname


SHOWN = 20   # explain() lists a delayed graph's first and last this many nodes


class DelayedExpr(Expr):
    """A node whose value is one Python object. Subclasses carry their name as the ``key`` operand."""

    @property
    def name(self) -> str:   # the key, not a hash of the operands: a literal is never pickled to name it
        return self.key

    def _describe(self) -> str:
        return f"{type(self).__name__}({self.key})"

    def tree(self, indent: int = 0, seen: set | None = None) -> str:
        """One line per distinct node, dependencies first: a DAG, listed without recursion (deep chains).

        Long listings keep their first and last ``SHOWN`` lines; long input lists their first few.
        """
        pad = "  " * indent
        lines = []
        for node in self.walk():
            text = node._describe() if isinstance(node, DelayedExpr) else f"{node._describe()} [{node.name}]"
            deps = [d.name for d in node.dependencies]
            if len(deps) > 4:
                deps = deps[:3] + [f"... {len(deps) - 3} more"]
            lines.append(f"{pad}{text}" + (f" <- {', '.join(deps)}" if deps else ""))
        if len(lines) > 2 * SHOWN:
            lines[SHOWN:-SHOWN] = [f"{pad}... {len(lines) - 2 * SHOWN} more nodes ..."]
        return "\n".join(lines)


class Call(DelayedExpr):
    """``fn(*args, **kwargs)`` where the template arguments refer to ``deps`` by ``Ref``.

    ``fn`` is a callable, or a ``Ref`` when the function is itself a delayed value.
    """

    _parameters = ("fn", "args", "kwargs", "deps", "key", "nout")
    _defaults = {"nout": None}

    def _describe(self) -> str:
        from ..tasks.delayed_calls import Ref
        fn = "<delayed function>" if isinstance(self.fn, Ref) else funcname(self.fn)
        return f"{fn}() [{self.key}]"


class Literal(DelayedExpr):
    """A value the driver holds (``delayed(obj)``): shipped once, read by the tasks that use it."""

    _parameters = ("value", "key", "nout")
    _defaults = {"nout": None}

    def _describe(self) -> str:
        return f"literal {type(self.value).__name__} [{self.key}]"


class BagPartition(DelayedExpr):
    """Partition ``index`` of a bag, as a list (``Bag.to_delayed``)."""

    _parameters = ("frame", "index", "key")

    def _describe(self) -> str:
        return f"partition {self.index} of {self.frame._describe()} [{self.key}]"


class BagValue(DelayedExpr):
    """A whole bag as a value: its records as one list, or its one value for an Item (``item=True``)."""

    _parameters = ("frame", "item", "key")

    def _describe(self) -> str:
        return f"{'item' if self.item else 'records'} of {self.frame._describe()} [{self.key}]"


class PersistedValue(DelayedExpr):
    """A value an earlier job computed and kept (``persist()``): element ``index`` of a task's output."""

    _parameters = ("store", "job", "stage", "ntasks", "task", "index", "key")

    def _describe(self) -> str:
        return f"persisted [{self.key}] (job {self.job}, stage {self.stage} task {self.task})"


class FromDelayed(BagExpr):
    """A bag with one partition per delayed value (``from_delayed``); ``as_item``: an Item's one value."""

    _parameters = ("values", "as_item")
    _defaults = {"as_item": False}

    @property
    def npartitions(self):
        return len(self.values)

    @property
    def projected_bytes(self):
        return None   # not known before the calls run

    def _describe(self):
        return f"FromDelayed(npartitions={self.npartitions})"


class Roots(Expr):
    """Several expressions computed in one plan (``gw.compute(a, b)``): optimized and lowered together."""

    _parameters = ("exprs",)


def is_delayed_plan(expr: Expr) -> bool:
    """Whether ``expr`` needs the delayed lowering: it is, or reads, a delayed value."""
    return any(isinstance(node, (DelayedExpr, FromDelayed, Roots)) for node in expr.walk())

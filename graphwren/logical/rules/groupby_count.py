"""Rule: ``groupby(key).map(lambda kv: (kv[0], len(kv[1])))`` counts per key: no group is built.

The map's function is traced (logical/trace.py); when it reads a group only
as ``kv[0]`` and ``len(kv[1])``, the group's records need never move: a
count per key (foldby with a map-side combine) gives the same (key, count)
and the function runs on it with ``len(kv[1])`` read as ``kv[1]``.
"""
from __future__ import annotations

import operator

from ...tasks import aggregates as agg
from ...tasks import bag_ops as t
from ...tasks import traced as tr
from ..bag import Narrow, ReduceBy, Shuffle
from ..expr import Expr
from ..rewrite import rewrites
from ..trace import Untraceable, trace


@rewrites(Narrow)
def groupby_count(expr: Expr, settings=None) -> Expr:
    """Narrow(map f) over a groupby's grouping -> foldby's count, then f on (key, count)."""
    if not isinstance(expr, Narrow) or type(expr.op) is not t.Map or expr.op.args or expr.op.kwargs:
        return expr
    grouped = expr.frame
    if not (isinstance(grouped, Narrow) and type(grouped.op) is t.GroupValues
            and isinstance(grouped.frame, Shuffle) and grouped.frame.opname == "groupby"):
        return expr
    try:
        node = trace(expr.op.fn, 1)
    except Untraceable:
        return expr
    counted = _on_counts(node)
    if counted is None:
        return expr
    shuffle = grouped.frame
    counts = ReduceBy(shuffle.frame, grouped.op.key, agg.count_one, 0, operator.add, 0, shuffle.nparts, "groupby")
    return Narrow(counts, t.Map(tr.PythonFunction(counted, describe=f"{expr.op.fn.__qualname__} on counts")))


def _on_counts(node):
    """The expression with ``len(kv[1])`` as ``kv[1]``; None if it reads the group otherwise."""
    group = tr.Item(tr.Arg(0), 1)
    if node == tr.Call("len", (group,)):
        return group
    if node == tr.Item(tr.Arg(0), 0) or isinstance(node, tr.Const):
        return node
    if node == tr.Arg(0) or node == group or isinstance(node, tr.Item) and node.obj == tr.Arg(0):
        return None
    return tr.replace_children(node, _on_counts)

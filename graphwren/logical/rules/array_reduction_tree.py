"""Rule: an array reduction becomes a tree of ReduceLevel stages, split_every blocks per task per axis."""
from __future__ import annotations

from ..array import AxisReduction, ReduceLevel
from ..chunks import split_per_axis
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(AxisReduction)
def array_reduction_tree(expr: Expr, settings=None) -> Expr:
    """AxisReduction -> ReduceLevel(first) -> ReduceLevel(combine)* -> ReduceLevel(last)."""
    if not isinstance(expr, AxisReduction):
        return expr
    x, axes = expr.x, expr.axes
    split = split_per_axis(expr.split_every, axes)
    cur, first = x, True
    while True:
        ngroups = [-(-cur.numblocks[a] // s) for a, s in zip(axes, split)]
        last = all(g == 1 for g in ngroups)
        cur = ReduceLevel(cur, expr.how, axes, split, first, last, expr.keepdims if last else True,
                          expr.ddof, expr.dtype, x.dtype)
        first = False
        if last:
            return cur

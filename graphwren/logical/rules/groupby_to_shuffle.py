"""Rule: groupby() is a shuffle by key, then grouping within each bucket (no combiner can shrink it)."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import GroupBy, Narrow, Shuffle
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(GroupBy)
def groupby_to_shuffle(expr: Expr, settings=None) -> Expr:
    """GroupBy -> Shuffle by key, then (key, [records]) per key in each bucket."""
    if not isinstance(expr, GroupBy):
        return expr
    return Narrow(Shuffle(expr.frame, expr.key, expr.nparts, False, "groupby"), t.GroupValues(expr.key))

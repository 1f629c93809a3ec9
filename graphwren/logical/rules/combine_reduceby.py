"""Rule: reduceby/foldby reduce each partition before the shuffle, so only one record per key moves."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Narrow, ReduceBy, Shuffle
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(ReduceBy)
def combine_reduceby(expr: Expr, settings=None) -> Expr:
    """ReduceBy -> partial reduce per partition, Shuffle by key, combine the partials."""
    if not isinstance(expr, ReduceBy):
        return expr
    partial = Narrow(expr.frame, t.PartialReduceBy(expr.key, expr.binop, expr.initial, expr.opname))
    # nparts as the user gave it (None: the planner keeps the input's count).
    shuffled = Shuffle(partial, t.first, expr.nparts, True, expr.opname)
    return Narrow(shuffled, t.CombineByKey(expr.combine, expr.combine_initial))

"""Rule: frequencies() counts within each partition before the shuffle, so one (value, n) per value moves."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Frequencies, Narrow, Shuffle, TreeReduce
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Frequencies)
def combine_frequencies(expr: Expr, settings=None) -> Expr:
    """Frequencies -> count per partition, Shuffle by value, sum the counts (then gather to sort)."""
    if not isinstance(expr, Frequencies):
        return expr
    counted = Shuffle(Narrow(expr.frame, t.CountValues()), t.first, expr.nparts, True, "frequencies")
    out = Narrow(counted, t.SumCounts())
    if expr.sort:
        out = TreeReduce(out, t.SortByCount(), None)
    return out

"""Rule: distinct() drops duplicates within each partition before the shuffle, and again after it."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Distinct, Narrow, Shuffle
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Distinct)
def combine_distinct(expr: Expr, settings=None) -> Expr:
    """Distinct -> unique records per partition, Shuffle by key, unique records per bucket."""
    if not isinstance(expr, Distinct):
        return expr
    local = Narrow(expr.frame, t.UniqueRecords(expr.key))
    key = expr.key if expr.key is not None else t.identity
    return Narrow(Shuffle(local, key, expr.nparts, False, "distinct"), t.UniqueRecords(expr.key))

"""Rule: a join with records the driver holds ships them to every partition; nothing is shuffled."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Join, Narrow
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Join)
def broadcast_join(expr: Expr, settings=None) -> Expr:
    """Join with an in-memory collection -> one narrow op joining each partition with all of it."""
    if not isinstance(expr, Join) or isinstance(expr.other, Expr):
        return expr
    return Narrow(expr.frame, t.JoinBroadcast(list(expr.other), expr.on_self, expr.on_other))

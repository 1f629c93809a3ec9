"""Rule: a bag reduction runs its first half in each partition and its second in a gather tree."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Narrow, Reduction, TreeReduce
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Reduction)
def reduction_to_tree(expr: Expr, settings=None) -> Expr:
    """Reduction -> perpartition in each partition, then aggregate over a TreeReduce of the results."""
    if not isinstance(expr, Reduction):
        return expr
    return TreeReduce(Narrow(expr.frame, t.PerPartition(expr.perpartition, expr.as_list)), t.Aggregate(expr.aggregate),
                      expr.split_every)

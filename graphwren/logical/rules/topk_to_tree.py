"""Rule: topk() keeps each partition's k largest, then the k largest of those in a gather tree."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Narrow, TopK, TreeReduce
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(TopK)
def topk_to_tree(expr: Expr, settings=None) -> Expr:
    """TopK -> k largest per partition, then a TreeReduce keeping the k largest of the candidates."""
    if not isinstance(expr, TopK):
        return expr
    op = t.TopKRecords(expr.k, expr.key)
    return TreeReduce(Narrow(expr.frame, op), op, expr.split_every)

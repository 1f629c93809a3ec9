"""Rule: a join of two bags shuffles both by their keys into the same buckets, then joins bucket by bucket."""
from __future__ import annotations

from ..bag import HashJoin, Join, Shuffle
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Join)
def join_to_shuffles(expr: Expr, settings=None) -> Expr:
    """Join of two bags -> HashJoin(Shuffle(left), Shuffle(right)).

    Both shuffles get the user's nparts, None when none was given: the planner
    then sizes both to the larger side's partition count (a rule must not ask
    an input for its partitions: for read_text that lists and sizes files).
    """
    if not isinstance(expr, Join) or not isinstance(expr.other, Expr):
        return expr
    left = Shuffle(expr.frame, expr.on_self, expr.nparts, False, "join")
    right = Shuffle(expr.other, expr.on_other, expr.nparts, False, "join")
    return HashJoin(left, right, expr.on_self, expr.on_other)

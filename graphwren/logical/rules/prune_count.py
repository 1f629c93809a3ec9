"""Rule: count() does not need records mapped one-to-one first, so drop those maps."""
from __future__ import annotations

from ...tasks import bag_ops as t
from ..bag import Narrow, Reduction
from ..expr import Expr
from ..rewrite import rewrites

#: Ops that turn each record into exactly one record: they cannot change a count.
ONE_TO_ONE_OPS = (t.Map, t.Starmap, t.Pluck)


@rewrites(Reduction)
def prune_count(expr: Expr, settings=None) -> Expr:
    """Reduction(count) over one-to-one maps -> the same count over what the maps read."""
    if not (isinstance(expr, Reduction) and expr.opname == "count"):
        return expr
    frame = expr.frame
    while isinstance(frame, Narrow) and isinstance(frame.op, ONE_TO_ONE_OPS):
        frame = frame.frame
    return expr if frame is expr.frame else expr.substitute(frame=frame)

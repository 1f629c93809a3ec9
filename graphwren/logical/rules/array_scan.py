"""Rule: cumsum/cumprod become one stage of per-block totals and a Scan that offsets each block by them."""
from __future__ import annotations

from ..array import Cumulative, ReduceLevel, Scan
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Cumulative)
def array_scan(expr: Expr, settings=None) -> Expr:
    """Cumulative -> Scan(x, totals): totals is a one-level ReduceLevel keeping one block per input block."""
    if not isinstance(expr, Cumulative):
        return expr
    total = "sum" if expr.how == "cumsum" else "prod"
    totals = ReduceLevel(expr.x, total, (expr.axis,), (1,), True, False, True, 0, expr.dtype, expr.x.dtype)
    return Scan(expr.x, totals, expr.how, expr.axis, expr.dtype)

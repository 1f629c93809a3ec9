"""Rule: a chain of narrow ops becomes one Fused node, the single pass lowering runs (explain's view)."""
from __future__ import annotations

from ..bag import Fused, Narrow
from ..expr import Expr
from ..rewrite import rewrites


@rewrites(Narrow, Fused)
def fuse_narrow(expr: Expr, settings=None) -> Expr:
    """Narrow over narrow (or fused) -> one Fused node listing the ops in order."""
    if isinstance(expr, Narrow):
        inner = expr.frame
        if isinstance(inner, Fused):
            return Fused(inner.frame, tuple(inner.ops) + (expr.op,))
        if isinstance(inner, Narrow):
            return Fused(inner.frame, (inner.op, expr.op))
        return Fused(inner, (expr.op,))
    if isinstance(expr, Fused) and isinstance(expr.frame, Fused):
        return Fused(expr.frame.frame, tuple(expr.frame.ops) + tuple(expr.ops))
    return expr

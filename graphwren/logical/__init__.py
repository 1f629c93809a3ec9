"""The logical layer: driver-only expressions and the rules that optimize them.

``optimize(expr, settings)`` is the one entry point: it picks the rule list
by the kind of plan (a bag or an array) and runs the one rewrite driver
(``logical.rewrite``). ``fused_view`` is the optimized bag plan with narrow
chains fused, as explain() prints it. Nothing here runs a task or touches
storage beyond what a source needs to know its partitions.
"""
from __future__ import annotations

from .array import ArrayExpr
from .bag import BagExpr
from .expr import Expr
from .rewrite import rewrite
from .rules import ARRAY_RULES, BAG_RULES, FUSION_RULES


def optimize(expr: Expr, settings=None) -> Expr:
    """``expr`` rewritten by the rules for its kind (BAG_RULES or ARRAY_RULES) until none applies."""
    if isinstance(expr, BagExpr):
        rules = BAG_RULES
    elif isinstance(expr, ArrayExpr):
        rules = ARRAY_RULES
    else:
        raise TypeError(f"optimize() takes a bag or array expression, got {type(expr).__name__}")
    return rewrite(expr, rules, settings)


def fused_view(expr: Expr, settings=None) -> Expr:
    """An optimized bag plan with narrow chains fused, as it will run (for explain).

    Lowering fuses on its own as it walks, and still sees which nodes two
    consumers share: this view is for reading, never for lowering.
    """
    return rewrite(expr, FUSION_RULES, settings)


__all__ = ["optimize", "fused_view", "rewrite"]

"""Optimizer rules for bag plans: each rule is a small function Expr -> Expr.

``optimize`` folds the rules over the plan bottom-up until nothing changes:
prune work whose result cannot matter, insert map-side combiners before
shuffles, and fuse chains of narrow ops into one pass.
"""
from __future__ import annotations

from ..tasks import bag_ops as t
from .bag import Distinct, Frequencies, Fused, GroupBy, HashJoin, Join, Narrow, ReduceBy, Reduction, Shuffle, TopK, TreeReduce
from .expr import Expr

_ONE_TO_ONE_OPS = (t.Map, t.Starmap, t.Pluck)


def _first(kv):
    return kv[0]


def prune_count(expr: Expr) -> Expr:
    """count() does not need records mapped one-to-one first: drop those maps."""
    if isinstance(expr, Reduction) and expr.opname == "count":
        frame = expr.frame
        while isinstance(frame, Narrow) and isinstance(frame.op, _ONE_TO_ONE_OPS):
            frame = frame.frame
        if frame is not expr.frame:
            return expr.substitute(frame=frame)
    return expr


def combine_reduceby(expr: Expr) -> Expr:
    """reduceby/foldby -> partial reduce, shuffle by key, combine."""
    if not isinstance(expr, ReduceBy):
        return expr
    partial = Narrow(expr.frame, t.PartialReduceBy(expr.key, expr.binop, expr.initial, expr.opname))
    shuffled = Shuffle(partial, _first, expr.npartitions, True, expr.opname)
    return Narrow(shuffled, t.CombineByKey(expr.combine, expr.combine_initial))


def combine_frequencies(expr: Expr) -> Expr:
    if not isinstance(expr, Frequencies):
        return expr
    counted = Shuffle(Narrow(expr.frame, t.CountValues()), _first, expr.nparts or expr.frame.npartitions, True,
                      "frequencies")
    out = Narrow(counted, t.SumCounts())
    if expr.sort:
        out = TreeReduce(out, t.SortByCount(), None)
    return out


def combine_distinct(expr: Expr) -> Expr:
    if not isinstance(expr, Distinct):
        return expr
    local = Narrow(expr.frame, t.Distinct(expr.key))
    key = expr.key if expr.key is not None else _identity
    return Narrow(Shuffle(local, key, expr.npartitions, False, "distinct"), t.Distinct(expr.key))


def _identity(x):
    return x


def lower_groupby(expr: Expr) -> Expr:
    if not isinstance(expr, GroupBy):
        return expr
    return Narrow(Shuffle(expr.frame, expr.key, expr.npartitions, False, "groupby"), t.GroupValues(expr.key))


def lower_reduction(expr: Expr) -> Expr:
    if isinstance(expr, Reduction):
        return TreeReduce(Narrow(expr.frame, t.PerPartition(expr.perpartition)), t.Aggregate(expr.aggregate),
                          expr.split_every)
    if isinstance(expr, TopK):
        op = t.TopK(expr.k, expr.key)
        return TreeReduce(Narrow(expr.frame, op), op, expr.split_every)
    return expr


def lower_join(expr: Expr) -> Expr:
    if not isinstance(expr, Join):
        return expr
    if not isinstance(expr.other, Expr):  # a small in-memory collection: broadcast it
        return Narrow(expr.frame, t.JoinBroadcast(list(expr.other), expr.on_self, expr.on_other))
    left = Shuffle(expr.frame, expr.on_self, expr.npartitions, False, "join")
    right = Shuffle(expr.other, expr.on_other, expr.npartitions, False, "join")
    return HashJoin(left, right, expr.on_self, expr.on_other)


def fuse(expr: Expr) -> Expr:
    """Narrow over narrow -> one Fused node (one pass, one stage)."""
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


REWRITES = [prune_count, combine_reduceby, combine_frequencies, combine_distinct, lower_groupby,
            lower_reduction, lower_join]


def _rewrite(expr: Expr, rules, memo: dict) -> Expr:
    if expr.name in memo:
        return memo[expr.name]
    changed = {}
    for param, value in zip(expr._parameters, expr.operands):
        if isinstance(value, Expr):
            new = _rewrite(value, rules, memo)
            if new is not value:
                changed[param] = new
    out = expr.substitute(**changed) if changed else expr
    for rule in rules:
        new = rule(out)
        if new is not out:
            out = _rewrite(new, rules, memo)
    memo[expr.name] = out
    return out


def optimize(expr: Expr) -> Expr:
    """Rewrite into the physical shapes lowering knows.

    Narrow chains are left unfused here: lowering fuses them as it walks, and
    can still see which nodes two consumers share (computed once).
    """
    return _rewrite(expr, REWRITES, {})


def fused_view(expr: Expr) -> Expr:
    """The optimized plan as it will run, narrow chains fused (for explain)."""
    return _rewrite(expr, [fuse], {})

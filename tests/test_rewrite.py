"""The one rewrite driver (logical.rewrite) and the one optimize entry point."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from graphwren import array as ga
from graphwren import bag as db
from graphwren.errors import GraphwrenError, RewriteError
from graphwren.logical import fused_view, optimize, rewrite
from graphwren.logical import array as a
from graphwren.logical import bag as e
from graphwren.logical.rules import ARRAY_RULES, BAG_RULES
from graphwren.tasks import bag_ops as t


def inc(x):
    return x + 1


def dec(x):
    return x - 1


def mod2(x):
    return x % 2


def source(n=10, nparts=2):
    return e.Range(n, nparts)


def map_inc_to_dec(expr, settings):
    if isinstance(expr, e.Narrow) and isinstance(expr.op, t.Map) and expr.op.fn is inc:
        return expr.substitute(op=t.Map(dec))
    return expr


def map_dec_to_inc(expr, settings):
    if isinstance(expr, e.Narrow) and isinstance(expr.op, t.Map) and expr.op.fn is dec:
        return expr.substitute(op=t.Map(inc))
    return expr


def test_rules_that_undo_each_other_raise_naming_rule_and_node():
    plan = e.Narrow(source(), t.Map(inc))
    with pytest.raises(RewriteError) as info:
        rewrite(plan, [map_inc_to_dec, map_dec_to_inc])
    msg = str(info.value)
    assert "map_dec_to_inc" in msg and "map(dec)" in msg and "map(inc)" in msg and "loop forever" in msg
    assert isinstance(info.value, GraphwrenError)


def test_a_rule_that_keeps_making_new_nodes_hits_the_bound():
    def grow(expr, settings):
        return e.Range(expr.n + 1, expr.nparts) if isinstance(expr, e.Range) else expr

    with pytest.raises(RewriteError, match=r"did not converge after 50 rewrites.*grow on Range\(n=60"):
        rewrite(e.Narrow(source(), t.Map(inc)), [grow], max_rewrites=50)


def test_a_rule_wrapping_its_own_input_is_a_loop_not_a_hang():
    def wrap(expr, settings):
        return e.Narrow(expr, t.Map(inc)) if isinstance(expr, e.Range) else expr

    with pytest.raises(RewriteError, match=r"wrap rewrote Range\(n=10.* into map\(inc\).*loop forever"):
        rewrite(source(), [wrap])


def forgot(expr, settings):
    return None  # a rule that forgot to return its input


def test_a_rule_returning_none_is_named():
    with pytest.raises(RewriteError, match="rule forgot returned None"):
        rewrite(source(), [forgot])


def test_shared_subexpression_is_rewritten_once_and_stays_shared():
    seen: list[str] = []

    def swap(expr, settings):
        seen.append(expr.name)
        return map_inc_to_dec(expr, settings)

    shared = e.Narrow(source(), t.Map(inc))
    plan = e.Join(shared, e.Narrow(shared, t.Filter(mod2)), mod2, mod2, None)
    out = rewrite(plan, [swap])
    assert seen.count(shared.name) == 1                  # the shared node: one visit for two consumers
    assert len(seen) == len(set(seen))                   # no node, old or new, tried twice
    left, right = out.frame, out.other.frame
    assert left is right and left.op.fn is dec           # both consumers read the one rewritten node


def test_rules_reach_expressions_inside_tuple_operands():
    x = a.Full(1.0, (4,), ((2, 2),), np.float64)
    y = a.Full(2.0, (4,), ((2, 2),), np.float64)
    plan = a.Elemwise(np.add, (x, 3, y), np.float64)

    def double(expr, settings):
        if isinstance(expr, a.Full) and expr.value < 10:
            return expr.substitute(value=expr.value * 10)
        return expr

    out = rewrite(plan, [double])
    values = [arg.value if isinstance(arg, a.Full) else arg for arg in out.args]
    assert values == [10.0, 3, 20.0]


def test_join_other_expression_is_rewritten():
    plan = e.Join(source(), e.Narrow(source(4, 1), t.Map(inc)), mod2, mod2, None)
    out = rewrite(plan, [map_inc_to_dec])
    assert out.other.op.fn is dec


def test_long_narrow_chain_does_not_recurse():
    plan = source()
    for _ in range(2 * sys.getrecursionlimit()):
        plan = e.Narrow(plan, t.Map(inc))
        plan.name  # noqa: B018 - names are cached as the chain grows, so only the driver could recurse
    out = rewrite(plan, [map_inc_to_dec])
    assert isinstance(out.op, t.Map) and out.op.fn is dec and out.frame.op.fn is dec


def test_fused_view_fuses_a_narrow_chain_into_one_node():
    plan = e.Narrow(e.Narrow(e.Narrow(source(), t.Map(inc)), t.Filter(mod2)), t.Map(dec))
    view = fused_view(plan)
    assert isinstance(view, e.Fused) and isinstance(view.frame, e.Range)
    assert [type(op) for op in view.ops] == [t.Map, t.Filter, t.Map]


def test_optimized_plans_are_fixpoints():
    b = db.from_sequence(range(20), npartitions=4)
    bags = [b.map(inc).count(), b.frequencies(sort=True), b.distinct(), b.groupby(mod2), b.topk(3),
            b.foldby(mod2, max), b.join(b.map(inc), mod2), b.join([1, 2], mod2), b.sum()]
    for bag in bags:
        opt = optimize(bag.expr)
        assert rewrite(opt, BAG_RULES) is opt
        assert not any(isinstance(n, (e.ReduceBy, e.Frequencies, e.Distinct, e.GroupBy, e.Reduction, e.TopK,
                                      e.Join)) for n in opt.walk())
    arr = ga.ones((8, 8), chunks=2).sum(axis=0, split_every=2).expr
    opt = optimize(arr)
    assert rewrite(opt, ARRAY_RULES) is opt and not any(isinstance(n, a.AxisReduction) for n in opt.walk())


class Unsized(e.BagExpr):
    """A source whose partition count must not be asked for (as read_text would list files for it)."""

    _parameters = ("tag",)

    @property
    def npartitions(self):
        raise AssertionError("a rule asked a source for its npartitions")


def test_rules_never_ask_an_input_for_its_partitions():
    frame = Unsized("x")
    plans = [e.ReduceBy(frame, mod2, max, None, max, None, None, "reduceby"), e.Frequencies(frame, False, None),
             e.Distinct(frame, None, None), e.GroupBy(frame, mod2, None),
             e.Join(frame, Unsized("y"), mod2, mod2, None), e.Reduction(frame, sum, sum, None, "sum"),
             e.TopK(frame, 2, None, None)]
    for plan in plans:
        opt = optimize(plan)
        shuffles = [n for n in opt.walk() if isinstance(n, e.Shuffle)]
        assert all(s.nparts is None for s in shuffles), plan


def test_user_nparts_pass_through_and_none_falls_back_to_the_input():
    b = db.from_sequence(range(20), npartitions=4)
    opt = optimize(b.groupby(mod2, npartitions=3).expr)
    assert [n.nparts for n in opt.walk() if isinstance(n, e.Shuffle)] == [3]
    opt = optimize(b.groupby(mod2).expr)
    (shuffle,) = [n for n in opt.walk() if isinstance(n, e.Shuffle)]
    assert shuffle.nparts is None and shuffle.npartitions == 4
    small = db.from_sequence(range(5), npartitions=2)
    join = optimize(small.join(b, mod2).expr)
    assert isinstance(join, e.HashJoin) and join.left.nparts is None and join.npartitions == 4


def test_planner_sizes_both_join_shuffles_alike():
    from graphwren import config, planner
    settings = config.resolve({})
    left, right = db.from_sequence(range(10), npartitions=3), db.from_sequence(range(10), npartitions=2)
    # A few bytes: one reducer for both sides (planner/sizing.py), unless npartitions is given.
    for bag, n in [(left.join(right, mod2), 1), (right.join(left, mod2), 1), (left.join(right, mod2, npartitions=5), 5)]:
        plan = planner.plan(bag.expr, settings).plan
        assert sorted(s.nbuckets for s in plan.stages if s.nbuckets) == [n, n]
        assert plan.stages[-1].ntasks == n
        assert sorted(bag.compute()) == sorted((x, y) for y in range(10) for x in range(10) if x % 2 == y % 2)


def test_optimize_refuses_what_is_not_a_plan():
    with pytest.raises(TypeError, match="bag or array expression"):
        optimize(42)


def test_the_logical_layer_does_not_import_the_planner():
    code = ("import sys, graphwren.logical, graphwren.logical.rules; "
            "print([m for m in sys.modules if m.startswith('graphwren.planner')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""gw.delayed: lazy calls against plain-Python references, the stages they plan into, errors, persist, bags."""
from __future__ import annotations

import collections
import operator
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import config, planner

HYP = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
Point = collections.namedtuple("Point", "x y")


# -- helpers (module level: workers import them by reference) -------------------------
def inc(x):
    return x + 1


def add(*xs):
    return sum(xs)


def mul(a, b):
    return a * b


def marked(x, directory, tag="call"):
    """x itself, leaving one marker file per call (so a test counts how often it ran).

    A stage of four or more tasks may start a backup copy of a slow one, which
    would mark twice: tests counting such stages turn speculation off.
    """
    with open(os.path.join(directory, f"{tag}-{uuid.uuid4().hex}"), "w") as f:
        f.write(repr(x))
    return x


def calls(directory, tag="call") -> int:
    return sum(1 for name in os.listdir(directory) if name.startswith(f"{tag}-"))


def describe(obj, *, scale=1, **extra):
    """A structure built from every kind of argument: positional, keyword, nested."""
    return {"obj": obj, "scale": scale, **extra}


def fails_on(x, bad):
    if x == bad:
        raise KeyError(f"no record {x}")
    return x


@gw.delayed
def square(x):
    """Decorated at module level: the module's name now holds the Delayed, not the function."""
    return x * x


@gw.delayed(pure=True, nout=2)
def halves(x):
    return x // 2, x - x // 2


class Counter:
    """A small object whose attributes and methods delayed values reach into."""

    def __init__(self, start):
        self.value = start
        self.items = [start, start + 1]

    def scaled(self, k, offset=0):
        return self.value * k + offset


def plan_of(value, **settings):
    return planner.plan(value._expr, config.resolve(settings)).plan


def stage_sizes(plan) -> list[int]:
    return [s.ntasks for s in plan.stages if s.external is None]


# -- building ------------------------------------------------------------------------------
def test_decorator_forms_and_calls_match_python():
    dinc = gw.delayed(inc)

    @gw.delayed
    def double(x):
        return 2 * x

    @gw.delayed(pure=True)
    def triple(x):
        return 3 * x

    assert double(dinc(4)).compute() == 10
    lo, hi = halves(square(dinc(4)))          # module-level decorated functions travel to the workers too
    assert gw.compute(lo, hi) == (12, 13)
    assert triple(dinc(1)).compute() == 6
    assert gw.delayed(inc)(gw.delayed(41)).compute() == 42
    assert gw.delayed(5).compute() == 5           # a value: nothing runs
    assert gw.delayed(inc).compute() is inc       # a delayed function computes to the function
    import graphwren.delayed as module            # the module is the callable: both spellings work
    assert module is gw.delayed and isinstance(module(inc)(1), gw.Delayed)
    assert module.delayed(inc)(2).compute() == 3


def test_keys_pure_impure_and_given_names():
    assert gw.delayed(inc, pure=True)(1).key == gw.delayed(inc, pure=True)(1).key
    assert gw.delayed(inc, pure=True)(1).key != gw.delayed(inc, pure=True)(2).key
    assert gw.delayed(inc)(1).key != gw.delayed(inc)(1).key     # dask's default: every call its own
    assert gw.delayed(inc)(1, dask_key_name="mine").key == "mine"
    assert gw.delayed(inc)(1, pure=True).key == gw.delayed(inc)(1, pure=True).key
    assert gw.delayed([1, 2], name="pair").key == "pair"
    x = gw.delayed(inc)(1)
    assert (x + 1).key == (x + 1).key                           # operators are pure, as dask's
    assert x.key.startswith("inc-")
    assert repr(x) == f"Delayed({x.key!r})"


def test_nested_containers_of_delayed_args():
    a, b = gw.delayed(inc)(1), gw.delayed(inc)(2)     # 2, 3
    got = gw.delayed(describe)([a, (b, 4)], scale={"k": b, a: "key"}, extra={a, 9}, p=Point(a, b)).compute()
    assert got == describe([2, (3, 4)], scale={"k": 3, 2: "key"}, extra={2, 9}, p=Point(2, 3))
    assert isinstance(got["p"], Point)
    assert gw.delayed([a, {"b": b}, (a, b)]).compute() == [2, {"b": 3}, (2, 3)]
    assert isinstance(gw.delayed((a, b), traverse=False).compute()[0], gw.Delayed)   # not traversed: as given
    assert gw.delayed(add)(*[gw.delayed(inc)(i) for i in range(5)]).compute() == sum(range(1, 6))


def test_attributes_methods_items_and_operators():
    c = gw.delayed(Counter)(10)
    ref = Counter(10)
    assert c.value.compute() == ref.value
    assert c.items[1].compute() == ref.items[1]
    assert c.scaled(3, offset=1).compute() == ref.scaled(3, offset=1)
    x, y = gw.delayed(inc)(6), gw.delayed(inc)(2)      # 7, 3
    got = gw.compute(x + y, x - y, x * y, x / y, x // y, x % y, x ** y, -x, +x, abs(-x), ~x,
                     x & y, x | y, x ^ y, x << y, x >> y, 1 + x, 20 - x, 2 * x, 70 / x, 2 ** y,
                     x < y, x <= y, x > y, x >= y, x == 7, x != 7)
    a, b = 7, 3
    assert got == (a + b, a - b, a * b, a / b, a // b, a % b, a ** b, -a, +a, abs(-a), ~a,
                   a & b, a | b, a ^ b, a << b, a >> b, 1 + a, 20 - a, 2 * a, 70 / a, 2 ** b,
                   a < b, a <= b, a > b, a >= b, a == 7, a != 7)
    f = gw.delayed(lambda: mul)()        # calling a delayed value calls the computed function
    assert f(6, 7).compute() == 42


def test_nout_iterates_and_unknown_lengths_refuse():
    q, r = gw.delayed(divmod, nout=2)(17, 5)
    assert gw.compute(q, r) == divmod(17, 5)
    assert len(gw.delayed(divmod, nout=2)(1, 1)) == 2
    x = gw.delayed(inc)(1)
    with pytest.raises(TypeError, match="unspecified length"):
        iter(x)
    with pytest.raises(TypeError, match="unspecified length"):
        len(x)
    with pytest.raises(TypeError, match="truth"):
        bool(x)
    with pytest.raises(TypeError, match="immutable"):
        x.y = 1
    with pytest.raises(ValueError, match="nout"):
        gw.delayed(divmod, nout=-1)
    with pytest.raises(TypeError, match="dask_key_name"):
        gw.delayed(inc)(1, dask_key_name=3)


# -- graphs against plain Python ------------------------------------------------------------
def test_diamond_runs_each_call_once_in_three_stages(tmp_path):
    d = str(tmp_path)
    top = gw.delayed(marked)(3, d)
    left = gw.delayed(marked)(gw.delayed(inc)(top), d)
    right = gw.delayed(marked)(gw.delayed(mul)(top, 10), d)
    bottom = gw.delayed(add)(left, right)
    assert bottom.compute() == (3 + 1) + (3 * 10)
    assert calls(d) == 3
    # top | inc->marked and mul->marked (two fused chains) | add
    assert stage_sizes(plan_of(bottom)) == [1, 2, 1]


def test_wide_fan_out_of_200_independent_calls_is_one_stage(tmp_path):
    d = str(tmp_path)
    parts = [gw.delayed(marked)(gw.delayed(inc)(i), d) for i in range(200)]
    total = gw.delayed(sum)(parts)
    # one level: 200 chains of two calls, packed four tasks per worker; one task per chain on 64 workers
    assert stage_sizes(plan_of(total, workers=4)) == [16, 1]
    assert stage_sizes(plan_of(total, workers=64)) == [200, 1]
    assert total.compute(workers=4, speculation=False) == sum(i + 1 for i in range(200))
    assert calls(d) == 200
    assert gw.compute(*parts) == tuple(i + 1 for i in range(200))


def test_deep_chain_fuses_into_one_task():
    x = gw.delayed(0)
    for _ in range(400):
        x = gw.delayed(inc)(x)
    assert stage_sizes(plan_of(x)) == [1]
    assert x.compute() == 400
    assert "up to 400 calls per task" in x.explain()


def test_chain_with_a_side_branch_is_cut_where_two_read(tmp_path):
    d = str(tmp_path)
    a = gw.delayed(inc)(gw.delayed(inc)(0))          # chain of two
    b = gw.delayed(marked)(a, d)                      # a is read twice: b and c
    c = gw.delayed(mul)(a, 5)
    out = gw.delayed(add)(gw.delayed(inc)(b), c)
    assert out.compute() == (2 + 1) + 2 * 5
    assert calls(d) == 1
    assert stage_sizes(plan_of(out)) == [1, 2, 1]


@st.composite
def dags(draw):
    """A random DAG of n nodes: each an op over 1-3 earlier nodes (or constants)."""
    n = draw(st.integers(1, 14))
    nodes = []
    for i in range(n):
        k = draw(st.integers(0, min(3, i)))
        inputs = draw(st.lists(st.integers(0, i - 1), min_size=k, max_size=k)) if i else []
        op = draw(st.sampled_from(["add", "mul", "inc"]))
        nodes.append((op, inputs, draw(st.integers(-3, 3))))
    roots = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
    return nodes, roots


def _evaluate(nodes, roots, make_call, const):
    vals = []
    for op, inputs, c in nodes:
        args = [vals[j] for j in inputs] or [const(c)]
        if op == "inc":
            vals.append(make_call(inc, args[0]))
        elif op == "add":
            vals.append(make_call(add, *args, const(c)))
        else:
            vals.append(make_call(mul, args[0], args[-1] if len(args) > 1 else const(c)))
    return [vals[r] for r in roots]


@HYP
@given(dags())
def test_random_dags_match_plain_python(dag):
    nodes, roots = dag
    want = _evaluate(nodes, roots, lambda f, *a: f(*a), lambda c: c)
    lazy = _evaluate(nodes, roots, lambda f, *a: gw.delayed(f)(*a), lambda c: c)
    assert list(gw.compute(*lazy)) == want


# -- shared values, errors, persist ---------------------------------------------------------
def test_shared_subexpression_is_computed_once(tmp_path):
    d = str(tmp_path)
    shared = gw.delayed(marked)(21, d)
    users = [gw.delayed(mul)(shared, k) for k in range(5)]
    assert gw.delayed(sum)(users).compute() == sum(21 * k for k in range(5))
    assert calls(d) == 1
    # pure calls built twice are one value; impure ones are two
    once = [gw.delayed(marked, pure=True)(7, d, "pure") for _ in range(3)]
    assert gw.compute(*once) == (7, 7, 7)
    assert calls(d, "pure") == 1
    twice = [gw.delayed(marked)(7, d, "impure") for _ in range(2)]
    assert gw.compute(*twice) == (7, 7)
    assert calls(d, "impure") == 2


def test_user_exception_arrives_with_type_and_remote_traceback():
    bad = gw.delayed(fails_on)(gw.delayed(inc)(3), 4)
    with pytest.raises(KeyError, match="no record 4") as info:
        gw.delayed(add)(bad, 1).compute(retries=0)
    exc = info.value
    assert "fails_on" in exc.remote_traceback
    assert "delayed call fails_on" in exc.graphwren_where


def test_persist_then_two_computes_do_not_recompute(tmp_path):
    d = str(tmp_path)
    base = gw.delayed(marked)(gw.delayed(marked)(5, d), d)
    kept = base.persist()
    assert calls(d) == 2
    assert kept.compute() == 5
    assert (kept * 2).compute() == 10
    assert gw.compute(kept + 1, gw.delayed(add)(kept, kept)) == (6, 10)
    assert calls(d) == 2
    # two values persisted by two jobs meet in one plan (their stage names differ)
    other = gw.delayed(inc)(1).persist()
    assert gw.delayed(add)(kept, other).compute() == 7


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="Array cannot be an argument"):
        gw.delayed(inc)(gw.array.ones((2, 2)))
    with pytest.raises(TypeError, match="value 1 is a int, not a Delayed"):
        gw.bag.from_delayed([gw.delayed([1]), 3])
    with pytest.raises(ValueError, match="at least one"):
        gw.bag.from_delayed([])
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle
        pickle.dumps(gw.delayed(inc)(1))


# -- bags -------------------------------------------------------------------------------------
def test_bag_to_delayed_and_from_delayed_round_trip():
    b = gw.bag.from_sequence(range(10), npartitions=3)
    parts = b.to_delayed()
    assert len(parts) == 3
    want = [list(range(0, 4)), list(range(4, 8)), [8, 9]]
    assert list(gw.compute(*parts)) == want
    scaled = [gw.delayed(lambda p: [x * 10 for x in p])(p) for p in parts]
    back = gw.bag.from_delayed(scaled)
    assert back.npartitions == 3
    assert back.compute() == [x * 10 for x in range(10)]
    assert back.map(inc).sum().compute() == sum(x * 10 + 1 for x in range(10))
    assert gw.bag.from_delayed(b.map(inc).to_delayed()).compute() == [x + 1 for x in range(10)]
    tuples = gw.bag.from_delayed([gw.delayed(range)(3), gw.delayed((5, 6))])   # any iterable partition
    assert tuples.compute() == [0, 1, 2, 5, 6]


@HYP
@given(st.lists(st.lists(st.integers(-9, 9), max_size=6), min_size=1, max_size=6))
def test_partition_layouts_round_trip_through_delayed(partitions):
    b = gw.bag.from_partitions(partitions)
    parts = b.to_delayed()
    assert list(gw.compute(*parts)) == partitions
    back = gw.bag.from_delayed([gw.delayed(sorted)(p) for p in parts])
    assert back.npartitions == len(partitions)
    assert gw.compute(back, back.count()) == ([x for p in partitions for x in sorted(p)],
                                               sum(map(len, partitions)))


def test_item_to_delayed_and_bags_as_arguments():
    b = gw.bag.from_sequence([3, 1, 2], npartitions=2)
    total = b.sum().to_delayed()
    assert total.compute() == 6
    assert (total * 2).compute() == 12
    assert gw.delayed(sorted)(b).compute() == [1, 2, 3]           # a bag argument is its records
    assert gw.delayed(inc)(b.count()).compute() == 4              # an item argument is its value
    assert gw.bag.Item.from_delayed(gw.delayed(inc)(1)).compute() == 2
    assert gw.delayed(b).compute() == [3, 1, 2]


def test_delayed_partitions_feed_a_shuffle_and_back(tmp_path):
    d = str(tmp_path)
    loads = [gw.delayed(marked)(list(range(i, i + 5)), d) for i in range(4)]
    b = gw.bag.from_delayed(loads)
    freq = b.map(lambda x: x % 3).frequencies()
    top = gw.delayed(lambda pairs: max(pairs)[1])(freq)
    want = collections.Counter(x % 3 for i in range(4) for x in range(i, i + 5))
    assert top.compute(speculation=False) == max(want.items())[1]
    assert calls(d) == 4


def test_explain_lists_calls_and_stages_without_running(tmp_path):
    d = str(tmp_path)
    x = gw.delayed(add)(*[gw.delayed(marked)(i, d) for i in range(30)])
    text = x.explain(workers=8)
    assert "delayed level 0: 30 tasks: marked x30" in text
    assert "delayed level 1: 1 task: add" in text
    assert "more nodes" not in text and "... 27 more" in text
    assert calls(d) == 0


# -- other stores -------------------------------------------------------------------------
def test_diamond_and_persist_through_redis(redis_store_url, tmp_path):
    d = str(tmp_path)
    top = gw.delayed(marked)(2, d)
    out = gw.delayed(add)(gw.delayed(inc)(top), gw.delayed(mul)(top, 3))
    assert out.compute(storage=redis_store_url) == 3 + 6
    kept = out.persist(storage=redis_store_url)
    assert (kept + 1).compute(storage=redis_store_url) == 10
    assert calls(d) == 2


def test_bags_and_delayed_through_s3(s3_url, tmp_path):
    d = str(tmp_path)
    parts = gw.bag.from_sequence(range(8), npartitions=4).to_delayed()
    sums = [gw.delayed(marked)(gw.delayed(sum)(p), d) for p in parts]
    b = gw.bag.from_delayed([gw.delayed(lambda s: [s])(s) for s in sums])
    assert gw.compute(b.sum(), *sums, storage=s3_url, speculation=False) == (28, 1, 5, 9, 13)
    assert calls(d) == 4


def test_explain_of_calls_over_an_unlisted_s3_bag_needs_no_endpoint(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")   # nothing listens there
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    lines = gw.bag.read_text("s3://bucket/logs/*.txt")
    text = gw.delayed(len)(lines.map(str.upper)).explain()
    assert "? tasks" in text and "delayed level 0: 1 task: len" in text

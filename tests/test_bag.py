"""The lazy bag: constructors, narrow and wide ops against plain-Python references, errors, storage."""
from __future__ import annotations

import collections
import functools
import math
import operator
import os
import statistics
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import config

db = gw.bag
HYP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- helpers (module level: workers import them by reference) -------------------------
def mark(x, directory):
    """Record one call of the map function as a marker file; the record passes through."""
    with open(os.path.join(directory, uuid.uuid4().hex), "w") as f:
        f.write(repr(x))
    return x


def mark_partition(records, directory):
    with open(os.path.join(directory, f"part-{uuid.uuid4().hex}"), "w") as f:
        f.write(repr(records))
    return records


def markers(directory) -> int:
    return len(os.listdir(directory))


def inc(x, by=1, times=1):
    return (x + by) * times


def is_even(x):
    return x % 2 == 0


def mod3(x):
    return x % 3


def add(a, b):
    return a + b


def nplan(bag):
    """The physical plan compute() would run."""
    from graphwren.planner.bag import lower
    from graphwren.logical import optimize
    settings = config.resolve({})
    return lower(optimize(bag.expr, settings), settings)


def split(seq, cuts):
    """Partitions of seq cut at the given (sorted, clipped) positions: empty partitions allowed."""
    cuts = sorted(min(max(c, 0), len(seq)) for c in cuts)
    bounds = [0, *cuts, len(seq)]
    return [list(seq[a:b]) for a, b in zip(bounds, bounds[1:])]


partitioned_ints = st.tuples(st.lists(st.integers(-50, 50), max_size=40),
                             st.lists(st.integers(0, 40), max_size=5)).map(lambda t: split(*t))


# -- constructors --------------------------------------------------------------------
def test_from_sequence_npartitions_and_partition_size():
    b = db.from_sequence(range(10), npartitions=3)
    assert b.npartitions == 3
    assert b.compute() == list(range(10))
    b = db.from_sequence(range(10), partition_size=4)
    assert b.npartitions == 3
    assert b.compute() == list(range(10))
    assert db.from_sequence([]).compute() == []
    assert db.from_sequence([], npartitions=3).compute() == []
    assert db.from_sequence(["a", ("b", 1), {"c": [2]}, None]).compute() == ["a", ("b", 1), {"c": [2]}, None]


def test_range_and_from_partitions():
    assert db.range(10, npartitions=3).compute() == list(range(10))
    assert db.range(0, npartitions=2).compute() == []
    assert db.range(3, npartitions=5).compute() == [0, 1, 2]
    b = db.from_partitions([[1, 2], [], [3], []])
    assert b.npartitions == 4
    assert b.compute() == [1, 2, 3]
    assert b.map_partitions(lambda p: [len(p)]).compute() == [2, 0, 1, 0]


@pytest.mark.parametrize("call", [
    lambda: db.from_sequence([1, 2], npartitions=0),
    lambda: db.from_sequence([1, 2], partition_size=0),
    lambda: db.range(5, npartitions=0),
    lambda: db.from_sequence([1]).repartition(0),
    lambda: db.from_sequence([1]).groupby(str, npartitions=0),
    lambda: db.from_sequence([1]).reduceby(str, add, npartitions=0),
    lambda: db.from_sequence([1]).frequencies(npartitions=0),
    lambda: db.from_sequence([1]).distinct(npartitions=0),
    lambda: db.from_partitions([]),
    lambda: db.from_sequence([1]).topk(-1),
])
def test_bad_arguments_fail_at_call_time(call):
    with pytest.raises(ValueError):
        call()


def test_non_callable_arguments_fail_at_call_time():
    b = db.from_sequence([1])
    with pytest.raises(TypeError, match="map needs a function"):
        b.map(3)
    with pytest.raises(TypeError):
        b.filter("x")


# -- narrow ops -------------------------------------------------------------------------
def test_narrow_ops_and_their_fusion_into_one_stage():
    b = db.from_sequence(range(20), npartitions=4)
    chain = (b.map(inc, 2, times=3)
              .filter(is_even)
              .remove(lambda x: x % 4 == 0)
              .map(lambda x: (x, [x, -x]))
              .starmap(lambda x, pair, k=0: pair + [x + k], k=1)
              .flat_map(lambda lst: lst[:2])
              .map(lambda x: [x])
              .flatten()
              .map_partitions(lambda part, n: [y * n for y in part], 10))
    xs = [(x + 2) * 3 for x in range(20)]
    xs = [x for x in xs if x % 2 == 0 and x % 4 != 0]
    expect = [y * 10 for x in xs for y in [x, -x]]
    assert chain.compute() == expect
    plan = nplan(chain)
    assert len(plan.stages) == 1
    assert plan.stages[0].ntasks == 4


def test_starmap_and_map_with_args():
    b = db.from_sequence([(1, 2), (3, 4)], npartitions=2)
    assert b.starmap(operator.add).compute() == [3, 7]
    assert b.starmap(lambda a, c, d, e=0: a + c + d + e, 10, e=100).compute() == [113, 117]
    assert db.from_sequence([1, 2]).map(inc, by=5).compute() == [6, 7]


def test_pluck():
    recs = [{"a": 1, "b": 2}, {"a": 3}, {"a": 5, "b": 6}]
    b = db.from_sequence(recs, npartitions=2)
    assert b.pluck("a").compute() == [1, 3, 5]
    assert b.pluck("b", default=None).compute() == [2, None, 6]
    assert b.pluck(["a", "b"], default=0).compute() == [(1, 2), (3, 0), (5, 6)]
    t = db.from_sequence([(1, "x", True), (2, "y", False)])
    assert t.pluck(1).compute() == ["x", "y"]
    assert t.pluck([2, 0]).compute() == [(True, 1), (False, 2)]
    with pytest.raises(KeyError):
        b.pluck("b").compute()


# -- wide ops vs plain Python (hypothesis) ----------------------------------------------
def py_reduceby(records, key, binop, initial=None):
    acc = {}
    for r in records:
        k = key(r)
        if k in acc:
            acc[k] = binop(acc[k], r)
        else:
            acc[k] = r if initial is None else binop(initial, r)
    return acc


@HYP
@given(parts=partitioned_ints, nout=st.none() | st.integers(1, 4))
def test_reduceby_groupby_frequencies_distinct(parts, nout):
    flat = [x for p in parts for x in p]
    b = db.from_partitions(parts) if parts else db.from_sequence([])
    # reduceby: toolz semantics (binop folds records; the same binop merges partials)
    got = b.reduceby(mod3, add, npartitions=nout).compute()
    assert len(got) == len({k for k, _ in got})
    assert dict(got) == py_reduceby(flat, mod3, add)
    got = b.reduceby(mod3, lambda acc, x: acc + x, 0).compute()
    assert dict(got) == py_reduceby(flat, mod3, add, 0)
    # groupby: (key, list); the list holds every record once
    got = b.groupby(mod3, npartitions=nout).compute()
    assert {k: sorted(v) for k, v in got} == {k: sorted(x for x in flat if x % 3 == k) for k in {x % 3 for x in flat}}
    assert len(got) == len({k for k, _ in got})
    # frequencies, sorted or not
    counts = collections.Counter(flat)
    assert dict(b.frequencies(npartitions=nout).compute()) == counts
    srt = b.frequencies(sort=True).compute()
    assert dict(srt) == counts
    assert [c for _, c in srt] == sorted(counts.values(), reverse=True)
    # distinct: every value once; with key=, one record per key, the first one seen
    assert sorted(b.distinct().compute()) == sorted(set(flat))
    got = b.distinct(key=abs).compute()
    first = {}
    for x in flat:
        first.setdefault(abs(x), x)
    assert sorted(got) == sorted(first.values())


@HYP
@given(parts=partitioned_ints)
def test_foldby_follows_dask(parts):
    flat = [x for p in parts for x in p]
    b = db.from_partitions(parts) if parts else db.from_sequence([])
    # binop folds records into a per-partition total starting at initial; combine merges totals
    got = dict(b.foldby(mod3, lambda acc, x: acc + [x], [], lambda a, c: a + c, []).compute())
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(x for x in flat if x % 3 == k) for k in {x % 3 for x in flat}}
    # combine_initial is used once per key on the reduce side; initial once per key per partition
    nonempty_parts_with = collections.Counter(k for p in parts for k in {x % 3 for x in p})
    got = dict(b.foldby(mod3, add, 1000, add, 7).compute())
    expect = {k: 7 + 1000 * nonempty_parts_with[k] + sum(x for x in flat if x % 3 == k) for k in nonempty_parts_with}
    assert got == expect
    # combine defaults to binop
    assert dict(b.foldby(mod3, add).compute()) == py_reduceby(flat, mod3, add)


@HYP
@given(parts=partitioned_ints)
def test_aggregations(parts):
    flat = [x for p in parts for x in p]
    b = db.from_partitions(parts) if parts else db.from_sequence([])
    assert b.count().compute() == len(flat)
    assert b.sum().compute() == sum(flat)
    assert b.map(lambda x: x > -40).all().compute() == all(x > -40 for x in flat)
    assert b.map(lambda x: x > 40).any().compute() == any(x > 40 for x in flat)
    if flat:
        assert b.min().compute() == min(flat)
        assert b.max().compute() == max(flat)
        assert math.isclose(b.mean().compute(), statistics.fmean(flat), abs_tol=1e-9)
        assert math.isclose(b.var().compute(), statistics.pvariance(flat), rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(b.std().compute(), statistics.pstdev(flat), rel_tol=1e-9, abs_tol=1e-9)
        if len(flat) > 1:
            assert math.isclose(b.var(ddof=1).compute(), statistics.variance(flat), rel_tol=1e-9, abs_tol=1e-9)
    else:
        for item in (b.min(), b.max(), b.mean()):
            with pytest.raises(ValueError):
                item.compute()
    assert b.topk(3).compute() == sorted(flat, reverse=True)[:3]
    assert b.topk(2, key=lambda x: -abs(x)).compute() == sorted(flat, key=lambda x: -abs(x), reverse=True)[:2]


@HYP
@given(parts=partitioned_ints, n=st.integers(1, 9))
def test_repartition_preserves_order(parts, n):
    flat = [x for p in parts for x in p]
    b = db.from_partitions(parts) if parts else db.from_sequence([])
    r = b.repartition(n)
    assert r.npartitions == n
    assert r.compute() == flat
    sizes = r.map_partitions(lambda p: [len(p)]).compute()
    assert len(sizes) == n and sum(sizes) == len(flat)


@HYP
@given(left=partitioned_ints, right=st.lists(st.integers(-5, 5), max_size=10),
       nright=st.integers(1, 3))
def test_join_with_bag_and_list(left, right, nright):
    flat = [x for p in left for x in p]
    b = db.from_partitions(left) if left else db.from_sequence([])
    other = [(y, f"r{i}") for i, y in enumerate(right)]
    expect = sorted((o, x) for x in flat for o in other if o[0] == x % 7 - 3)
    key = lambda x: x % 7 - 3  # noqa: E731
    got = b.join(db.from_sequence(other, npartitions=nright), key, lambda o: o[0]).compute()
    assert sorted(got) == expect
    # join with a list keeps self's order, as dask does
    listed = b.join(other, key, lambda o: o[0]).compute()
    assert listed == [(o, x) for x in flat for o in other if o[0] == x % 7 - 3]


def test_reduction_tree_and_split_every():
    b = db.from_sequence(range(100), npartitions=10)
    r = b.reduction(lambda p: sum(p), sum, split_every=2)
    assert r.compute() == 4950
    plan = nplan(r)
    assert len(plan.stages) > 2  # leaves, tree levels, root
    assert b.reduction(lambda p: [max(p, default=None)], lambda parts: sorted(x for x in sum(parts, []) if x is not None)[-1]).compute() == 99
    assert b.sum(split_every=3).compute() == 4950
    assert b.topk(4, split_every=2).compute() == [99, 98, 97, 96]
    assert db.from_sequence(range(40), npartitions=20).frequencies(sort=True).count().compute() == 40


def test_topk_with_index_key_like_dask():
    b = db.from_sequence([(1, "a"), (3, "b"), (2, "c")], npartitions=2)
    assert b.topk(2, key=0).compute() == [(3, "b"), (2, "c")]
    assert b.topk(0).compute() == []


# -- take --------------------------------------------------------------------------------
def test_take_reads_only_the_first_partitions(tmp_path):
    b = db.from_sequence(range(20), npartitions=4).map_partitions(mark_partition, str(tmp_path))
    assert b.take(3) == (0, 1, 2)
    assert markers(tmp_path) == 1
    assert b.take(7, npartitions=2) == tuple(range(7))
    assert markers(tmp_path) == 3
    with pytest.warns(UserWarning, match="Insufficient elements"):
        assert b.take(8) == tuple(range(5))
    assert b.take(100, npartitions=-1, warn=False) == tuple(range(20))
    assert isinstance(b.take(0, warn=False), tuple)


def test_take_after_shuffle():
    b = db.from_sequence(range(10), npartitions=3).groupby(mod3)
    assert len(b.take(2, npartitions=-1)) == 2


# -- persist and shared subexpressions ----------------------------------------------------
def test_persist_reuses_partitions(tmp_path):
    d = str(tmp_path)
    p = db.from_sequence(range(12), npartitions=3).map(mark, d).persist()
    assert markers(d) == 12
    assert p.sum().compute() == 66
    assert p.count().compute() == 12
    assert p.map(inc).compute() == list(range(1, 13))
    assert markers(d) == 12


def test_shared_subexpression_computed_once(tmp_path):
    d = str(tmp_path)
    src = db.from_sequence(range(20), npartitions=4).map(mark, d)
    left = src.map(lambda x: (x % 5, x))
    right = src.filter(is_even)
    got = left.join(right, lambda kv: kv[0], lambda y: y % 5).compute()
    assert sorted(got) == sorted((y, (x % 5, x)) for x in range(20) for y in range(0, 20, 2) if y % 5 == x % 5)
    assert markers(d) == 20


# -- errors ---------------------------------------------------------------------------------
def boom_on_seven(x):
    if x == 7:
        raise KeyError(f"no such thing {x}")
    return x % 2


def test_failing_key_function_reaches_compute_with_a_note():
    b = db.from_sequence(range(10), npartitions=3)
    with pytest.raises(KeyError, match="no such thing 7") as info:
        b.groupby(boom_on_seven).compute()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "stage" in notes and "task" in notes
    with pytest.raises(KeyError):
        b.reduceby(boom_on_seven, add).compute()
    with pytest.raises(ZeroDivisionError) as info:
        b.map(lambda x: 1 / (x - 4)).sum().compute()
    assert "task 1" in "\n".join(info.value.__notes__)


@pytest.mark.parametrize("make", [
    lambda b: b.groupby(lambda x: [x]),
    lambda b: b.groupby(lambda x: [x], npartitions=1),
    lambda b: b.reduceby(lambda x: {x}, add),
    lambda b: b.map(lambda x: [x]).frequencies(),
    lambda b: b.map(lambda x: [x]).distinct(),
    lambda b: b.distinct(key=lambda x: {"k": x}),
    lambda b: b.join(db.from_sequence([1, 2]), lambda x: [x], lambda y: y),
    lambda b: b.join([1, 2], lambda x: [x], lambda y: y),
], ids=["groupby", "groupby-1", "reduceby", "frequencies", "distinct", "distinct-key", "join", "join-list"])
def test_unhashable_keys_give_a_clear_type_error(make):
    b = db.from_sequence([1, 2, 3], npartitions=2)
    with pytest.raises(TypeError, match="unhashable") as info:
        make(b).compute()
    assert "key" in str(info.value)


def test_var_ddof_too_large():
    with pytest.raises(ValueError, match="ddof"):
        db.from_sequence([1.0]).var(ddof=1).compute()


# -- storage backends ------------------------------------------------------------------------
WORDS = ["the quick brown fox", "jumps over the lazy dog", "", "the end"]


def test_word_count_and_shuffles_on_every_store(store_url, tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(WORDS) + "\n")
    counts = db.read_text(str(path), blocksize=8).flat_map(str.split).frequencies()
    assert dict(counts.compute(storage=store_url)) == collections.Counter(" ".join(WORDS).split())

    b = db.from_sequence(range(30), npartitions=3)
    assert dict(b.reduceby(mod3, add, npartitions=2).compute(storage=store_url)) == py_reduceby(range(30), mod3, add)
    grouped = b.groupby(lambda x: x % 4).compute(storage=store_url)
    assert {k: sorted(v) for k, v in grouped} == {k: list(range(k, 30, 4)) for k in range(4)}
    other = db.from_sequence([(k, str(k)) for k in range(3)], npartitions=2)
    joined = b.join(other, mod3, lambda o: o[0]).compute(storage=store_url)
    assert sorted(joined) == sorted(((x % 3, str(x % 3)), x) for x in range(30))


def test_take_more_partitions_than_the_bag_has_is_an_error_like_dask():
    with pytest.raises(ValueError, match="only 2 partitions"):
        db.from_sequence(range(10), npartitions=2).take(3, npartitions=5)


def test_field_name_keys_like_dask():
    recs = [{"k": i % 2, "v": i} for i in range(6)]
    b = db.from_sequence(recs, npartitions=2)
    assert sorted(b.foldby("k", lambda a, r: a + r["v"], 0, add, 0).compute()) == [(0, 6), (1, 9)]
    assert sorted((k, [r["v"] for r in v]) for k, v in b.groupby("k").compute()) == [(0, [0, 2, 4]), (1, [1, 3, 5])]
    assert sorted(r["v"] for r in b.distinct(key="k").compute()) == [0, 1]
    top = b.reduceby("k", lambda a, r: r if r["v"] > a["v"] else a).compute()
    assert sorted((k, r["v"]) for k, r in top) == [(0, 4), (1, 5)]

"""gw.compute and gw.persist: several bags, items, arrays and delayed values in one job, shared parts once."""
from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

import graphwren as gw
from graphwren import config, planner
from graphwren.runtime import lease
from graphwren.runtime.storage import open_store

db = gw.bag


def marked(x, directory):
    """x itself, leaving one marker file per call (counting tests turn off backup copies of slow tasks)."""
    with open(os.path.join(directory, uuid.uuid4().hex), "w") as f:
        f.write(repr(x))
    return x


def calls(directory) -> int:
    return len(os.listdir(directory))


def inc(x):
    return x + 1


def jobs_in(url) -> int:
    return len(lease.jobs_in(open_store(url)))


def test_returns_a_tuple_like_dask_compute():
    b = db.from_sequence(range(6), npartitions=2)
    x = gw.delayed(inc)(1)
    got = gw.compute(b, b.sum(), x, 7, [x, {"k": b.count()}], "text")
    assert got == (list(range(6)), 15, 2, 7, [2, {"k": 6}], "text")
    assert gw.compute() == ()
    assert gw.compute(1, [2]) == (1, [2])
    assert gw.compute([x], traverse=False)[0][0] is x


def test_mixed_bags_and_delayed_run_as_one_job_with_shared_parts_once(tmp_path):
    d, store = str(tmp_path / "marks"), f"file://{tmp_path}/store"
    os.mkdir(d)
    src = db.from_sequence(range(20), npartitions=4).map(marked, d)
    evens = src.filter(lambda x: x % 2 == 0)
    parts = src.to_delayed()
    biggest = gw.delayed(max)([gw.delayed(max)(p) for p in parts])
    total, n, top, listed, big = gw.compute(src.sum(), evens.count(), biggest, evens, gw.delayed(inc)(biggest),
                                            storage=store, keep=True, speculation=False)
    assert (total, n, top, listed, big) == (sum(range(20)), 10, 19, list(range(0, 20, 2)), 20)
    assert calls(d) == 20          # src's map ran once for all five results
    assert jobs_in(store) == 1     # and in one job


def test_one_plan_holds_every_root_and_the_shared_stage_once():
    src = db.from_sequence(range(8), npartitions=2).map(inc)
    roots = [src.sum().expr, src.count().expr, gw.delayed(sorted)(src)._expr]
    planned = planner.plan_many(roots, config.resolve({}))
    sources = [s for s in planned.plan.stages if "from_sequence" in s.label]
    assert len(sources) == 1                     # the mapped bag is one stage the three results read
    assert len(planned.roots) == 3
    assert set(planned.plan.outputs) == {r.stage for r in planned.roots}


def test_same_value_twice_and_bags_inside_delayed_calls():
    b = db.from_sequence([3, 1, 2], npartitions=3)
    s = b.sum()
    assert gw.compute(s, s, b, b) == (6, 6, [3, 1, 2], [3, 1, 2])
    assert gw.compute(gw.delayed(sorted)(b), gw.delayed(inc)(s)) == ([1, 2, 3], 7)


def test_arrays_join_the_job_and_a_shared_matmul_is_one_stage():
    x = np.arange(16.0).reshape(4, 4)
    a = gw.array.from_numpy(x, chunks=2)
    m = a @ a.T
    plan = planner.plan_many([m.sum().expr, (m + 1).expr], config.resolve({})).plan
    assert sum("matmul" in s.label for s in plan.stages) == 1
    b = db.from_sequence([1, 2], npartitions=1)
    total, plus, n, v = gw.compute(m.sum(), m + 1, b.count(), gw.delayed(inc)(1))
    np.testing.assert_allclose(total, (x @ x.T).sum())
    np.testing.assert_allclose(plus, x @ x.T + 1)
    assert (n, v) == (2, 2)


def test_persist_many_then_computes_read_the_stored_results(tmp_path):
    d = str(tmp_path)
    b = db.from_sequence(range(10), npartitions=2).map(marked, d)
    x = gw.delayed(marked)(100, d)
    pb, pitem, px, same = gw.persist(b, b.sum(), x, 5, speculation=False)
    assert calls(d) == 11 and same == 5
    assert isinstance(pb, db.Bag) and isinstance(pitem, db.Item) and isinstance(px, gw.Delayed)
    assert pb.compute() == list(range(10))
    assert gw.compute(pb.map(inc).sum(), pitem, px + pitem, gw.delayed(len)(pb)) == (55, 45, 145, 10)
    assert calls(d) == 11


def test_array_persist_keeps_blocks_for_later_computes(tmp_path):
    store = f"file://{tmp_path}/store"
    x = np.arange(12.0).reshape(3, 4)
    kept = (gw.array.from_numpy(x, chunks=2) * 3).persist(storage=store)
    np.testing.assert_allclose(kept.compute(storage=store), x * 3)
    np.testing.assert_allclose(gw.compute(kept.sum(), storage=store)[0], (x * 3).sum())
    found = lease.jobs_in(open_store(store))
    assert [info.lease["state"] for info in found] == ["finished"]
    assert "persist array" in found[0].lease["description"]


def test_errors_in_one_root_fail_the_job_with_the_users_exception():
    def bad(x):
        raise ZeroDivisionError(f"bad {x}")
    with pytest.raises(ZeroDivisionError, match="bad 3"):
        gw.compute(db.from_sequence([1]).sum(), gw.delayed(bad)(3), retries=0)


def first(kv):
    return kv[0]


def test_two_persisted_bags_meet_in_one_plan():
    left = db.from_sequence([(1, "a"), (2, "b"), (3, "c")], npartitions=2).persist()
    right = db.from_sequence([(1, "x"), (3, "y")], npartitions=2).persist()
    got = left.join(right, first).compute()
    assert sorted(got) == [((1, "x"), (1, "a")), ((3, "y"), (3, "c"))]
    assert gw.compute(left.count(), right.count()) == (3, 2)


def test_explain_after_persist_numbers_the_coalesced_stage_as_its_table(tmp_path, monkeypatch):
    from graphwren.planner import sizing
    monkeypatch.setattr(sizing, "REDUCER_BYTES", 16 * 1024)   # several reducers planned, then coalesced
    words = [f"w{i % 150}" for i in range(60_000)]
    store = f"file://{tmp_path}/store"
    bag = db.from_sequence(words, npartitions=8).frequencies()
    kept = bag.persist(storage=store, progress=False)
    assert dict(kept.compute(storage=store, progress=False)) == {f"w{i}": 400 for i in range(150)}
    after = bag.explain(storage=store).split("== Adaptive execution in the last run ==")[1]
    assert after.strip().startswith("stage 1: planned 8 tasks, ran")


def test_a_persisted_bag_and_its_persisted_partitions_read_one_stored_stage():
    b = db.from_sequence(range(6), npartitions=3)
    kept, first, whole = gw.persist(b, b.to_delayed()[0], b.sum())
    assert gw.compute(first, kept, whole, gw.delayed(len)(kept)) == ([0, 1], list(range(6)), 15, 6)
    assert gw.compute(gw.delayed(sum)(first), kept.count()) == (1, 6)

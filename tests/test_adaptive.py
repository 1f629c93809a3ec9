"""Adaptive execution at stage boundaries: a shuffle's reducers coalesced from its measured buckets.

Results are checked against plain-Python references with coalescing forced
on (a small reducer target, so the planner plans several reducers and the
driver merges them) and off (npartitions= given: the user's count is kept).
"""
from __future__ import annotations

import collections
import operator
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import config, planner
from graphwren.planner import sizing
from graphwren.planner.outputs import Partitions
from graphwren.runtime import adaptive
from graphwren.runtime.driver import Driver
from graphwren.runtime.plan import BROADCAST, CUSTOM, GATHER, HASH_SHUFFLE, ONE_TO_ONE, Adaptive, Edge, Plan, Stage

pytestmark = pytest.mark.usefixtures("isolated_config")

SMALL = 16 * 1024   # reducer bytes in the tests: 1 MiB of records plans 8 reducers of 8 map tasks


def words(skewed: bool, n: int = 60_000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(150)]
    if skewed:   # one word is 30% of all words
        return [("the" if rng.random() < 0.3 else rng.choice(vocab)) for _ in range(n)]
    return [rng.choice(vocab) for _ in range(n)]


def first_letter_and_len(w):
    return (w[0], len(w))


def key_len(w):
    return len(w)


def with_one(w):
    return (w, 1)


def first(pair):
    return pair[0]


def add_pairs(a, b):
    return (a[0], a[1] + b[1])


def key_mod(x):
    return x % 97


@pytest.fixture
def small_target(monkeypatch):
    """Reducers sized to 16 KiB: the planner plans several, and the driver has buckets to coalesce."""
    monkeypatch.setattr(sizing, "REDUCER_BYTES", SMALL)


def run(bag, tmp_path, **kw):
    """(partitions, the plan as it ran, the driver's decisions) of computing ``bag``."""
    settings = config.resolve({"storage": f"file://{tmp_path}/store", "progress": False, **kw})
    planned = planner.plan(bag.expr, settings)
    out = Partitions()
    planner.execute(planned, settings, out)
    return out.value(), planned, planned.adapted


# -- the coalescing function -----------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1000), max_size=60), st.integers(1, 1500))
def test_coalesce_groups_adjacent_buckets_under_the_target(sizes, target):
    groups = adaptive.coalesce(sizes, target)
    assert [b for g in groups for b in g] == list(range(len(sizes)))   # every bucket once, in order
    assert all(g for g in groups)
    for g in groups:
        assert sum(sizes[b] for b in g) <= target or len(g) == 1       # over target only alone
    for a, b in zip(groups, groups[1:]):   # greedy: the next bucket did not fit in the group before it
        assert sum(sizes[x] for x in a) + sizes[b[0]] > target


def test_coalesce_refuses_a_bad_target_or_size():
    with pytest.raises(ValueError, match="positive target"):
        adaptive.coalesce([1, 2], 0)
    with pytest.raises(ValueError, match="bucket 1 has a negative size"):
        adaptive.coalesce([1, -2], 10)
    with pytest.raises(ValueError, match="positive whole number"):
        Adaptive(0)


def test_bucket_sizes_sum_over_map_tasks():
    assert adaptive.bucket_sizes([[0, 8, 8, 24], [0, 0, 16, 16]]) == [8, 16, 16]
    with pytest.raises(ValueError, match="disagree on their bucket count"):
        adaptive.bucket_sizes([[0, 8], [0, 8, 16]])


# -- the contract: which stages may be adaptive ------------------------------------------------
def emit(ctx):
    return [ctx.task]


def test_an_adaptive_stage_must_read_a_hash_shuffle():
    with pytest.raises(ValueError, match="must read at least one hash shuffle"):
        Stage("s", 2, emit, [Edge("up", ONE_TO_ONE)], adaptive=Adaptive(100))
    with pytest.raises(ValueError, match="must read at least one hash shuffle"):
        Stage("s", 2, emit, [Edge("up", HASH_SHUFFLE), Edge("other", GATHER)], adaptive=Adaptive(100))
    Stage("s", 2, emit, [Edge("up", HASH_SHUFFLE), Edge("b", BROADCAST)], adaptive=Adaptive(100))


def test_a_plan_refuses_an_adaptive_stage_read_one_to_one():
    up = Stage("up", 2, emit, nbuckets=2)
    mid = Stage("mid", 2, emit, [Edge("up", HASH_SHUFFLE)], adaptive=Adaptive(100))
    with pytest.raises(ValueError, match="stage 'mid' is adaptive, but stage 'down' reads it one-to-one"):
        Plan([up, mid, Stage("down", 2, emit, [Edge("mid", ONE_TO_ONE)])], ["down"])
    with pytest.raises(ValueError, match="reads it custom"):
        Plan([up, mid, Stage("down", 1, emit, [Edge("mid", CUSTOM, [[(0, None), (1, None)]])])], ["down"])
    Plan([up, mid, Stage("down", 1, emit, [Edge("mid", GATHER)])], ["down"])


# -- the driver on hand-built plans ----------------------------------------------------------------
def spread(ctx):
    """Map task j: the numbers j*100 .. j*100+99, bucket = x % nbuckets; bucket 0 gets 50x more."""
    buckets = [[] for _ in range(ctx.nbuckets)]
    for x in range(ctx.task * 100, ctx.task * 100 + 100):
        buckets[x % ctx.nbuckets].append(x)
    buckets[0].extend(range(10_000 + ctx.task * 5000, 10_000 + ctx.task * 5000 + 5000))
    return buckets


def collect_all(ctx):
    return [x for part in ctx.input(0) for x in part]


def join_sides(ctx):
    left = sorted(x for part in ctx.input(0) for x in part)
    right = sorted(x for part in ctx.input(1) for x in part)
    return [(left, right)]


def make_driver(tmp_path):
    return Driver(config.resolve({"storage": f"file://{tmp_path}/store", "progress": False}))


def driver_run(driver, plan):
    outputs = {}

    def on_output(stage, task, part):
        outputs[(stage, task)] = part
    driver.run(plan, on_output)
    return outputs


def test_driver_coalesces_small_buckets_and_keeps_a_skewed_one_alone(tmp_path):
    plan = Plan([Stage("map", 4, spread, nbuckets=8),
                 Stage("reduce", 8, collect_all, [Edge("map", HASH_SHUFFLE)], adaptive=Adaptive(4096))],
                ["reduce"])
    driver = make_driver(tmp_path)
    outputs = driver_run(driver, plan)
    (decision,) = driver.adaptive
    assert decision.planned == 8 and decision.stage == "reduce"
    assert decision.groups[0] == [0] and decision.skewed == [0]   # the big bucket alone, not split
    assert 1 < plan.stage("reduce").ntasks < 8 == len(decision.bucket_bytes)
    assert plan.stage("reduce").ntasks == decision.ran == len({t for s, t in outputs})
    # the coalesced reducers' outputs are the planned reducers' outputs, concatenated in order
    expected = [[x for j in range(4) for x in spread_reference(j, b)] for b in range(8)]
    got = [outputs[("reduce", t)] for t in range(decision.ran)]
    assert got == [[x for b in g for x in expected[b]] for g in decision.groups]
    assert "skewed bucket 0" in decision.describe()
    assert any(stage == "reduce" and event.startswith("adaptive: planned 8 tasks, ran")
               for _, stage, event in driver.timeline)


def spread_reference(j, b):
    out = [x for x in range(j * 100, j * 100 + 100) if x % 8 == b]
    return out + (list(range(10_000 + j * 5000, 15_000 + j * 5000)) if b == 0 else [])


def test_driver_gathers_a_shuffle_smaller_than_the_target(tmp_path):
    plan = Plan([Stage("map", 4, spread, nbuckets=8),
                 Stage("reduce", 8, collect_all, [Edge("map", HASH_SHUFFLE)], adaptive=Adaptive(1 << 30))],
                ["reduce"])
    driver = make_driver(tmp_path)
    outputs = driver_run(driver, plan)
    assert plan.stage("reduce").ntasks == 1
    assert sorted(outputs[("reduce", 0)]) == sorted(x for j in range(4) for b in range(8) for x in spread_reference(j, b))
    assert "a gather" in driver.adaptive[0].describe()


def test_driver_coalesces_both_sides_of_a_join_alike(tmp_path):
    plan = Plan([Stage("left", 3, spread, nbuckets=8), Stage("right", 2, spread, nbuckets=8),
                 Stage("join", 8, join_sides, [Edge("left", HASH_SHUFFLE), Edge("right", HASH_SHUFFLE)],
                       adaptive=Adaptive(8192))], ["join"])
    driver = make_driver(tmp_path)
    outputs = driver_run(driver, plan)
    (decision,) = driver.adaptive
    assert decision.ran < 8
    for t, group in enumerate(decision.groups):   # task t read the same buckets of both sides
        left, right = outputs[("join", t)][0]
        assert left == sorted(x for j in range(3) for b in group for x in spread_reference(j, b))
        assert right == sorted(x for j in range(2) for b in group for x in spread_reference(j, b))


def test_a_stage_that_is_not_adaptive_keeps_its_tasks(tmp_path):
    plan = Plan([Stage("map", 4, spread, nbuckets=8), Stage("reduce", 8, collect_all, [Edge("map", HASH_SHUFFLE)])],
                ["reduce"])
    driver = make_driver(tmp_path)
    outputs = driver_run(driver, plan)
    assert plan.stage("reduce").ntasks == 8 and len(outputs) == 8 and driver.adaptive == []


# -- bags: results against plain Python, coalescing on and off ---------------------------------------
OPS = {
    "frequencies": (lambda b: b.frequencies(), lambda ws: dict(collections.Counter(ws))),
    "reduceby": (lambda b: b.map(with_one).reduceby(first, add_pairs),
                 lambda ws: {w: (w, c) for w, c in collections.Counter(ws).items()}),
    "groupby": (lambda b: b.groupby(key_len), None),
    "distinct": (lambda b: b.distinct(), lambda ws: set(ws)),
}


def as_result(name, records):
    if name == "distinct":
        assert len(records) == len(set(records))
        return set(records)
    if name == "groupby":
        return {k: sorted(v) for k, v in records}
    assert len(records) == len({k for k, _ in records})
    return dict(records)


def groupby_reference(ws):
    out = collections.defaultdict(list)
    for w in ws:
        out[len(w)].append(w)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("skewed", [False, True], ids=["uniform", "skewed"])
@pytest.mark.parametrize("name", list(OPS))
def test_bag_results_match_python_with_coalescing(name, skewed, tmp_path, small_target):
    ws = words(skewed)
    make, reference = OPS[name]
    bag = make(gw.bag.from_sequence(ws, npartitions=8))
    parts, planned, decisions = run(bag, tmp_path)
    expected = reference(ws) if reference else groupby_reference(ws)
    assert as_result(name, [r for p in parts for r in p]) == expected
    (decision,) = decisions
    reducer = planned.plan.stage(decision.stage)
    assert decision.planned == 8 and reducer.ntasks == decision.ran == len(parts)
    if name in ("frequencies", "distinct") and not skewed:   # combined buckets well under the target
        assert decision.ran < decision.planned


@pytest.mark.parametrize("name", ["reduceby", "groupby"])
def test_bag_results_match_python_without_coalescing(name, tmp_path, small_target):
    ws = words(True)
    bag = gw.bag.from_sequence(ws, npartitions=8)
    bag = (bag.groupby(key_len, npartitions=8) if name == "groupby"
           else bag.map(with_one).reduceby(first, add_pairs, npartitions=8))
    parts, planned, decisions = run(bag, tmp_path)
    expected = (groupby_reference(ws) if name == "groupby"
                else {w: (w, c) for w, c in collections.Counter(ws).items()})
    assert as_result(name, [r for p in parts for r in p]) == expected
    assert decisions == [] and len(parts) == 8   # npartitions= given: the user's count is kept
    assert all(s.adaptive is None for s in planned.plan.stages)


def test_the_default_target_plans_one_reducer_for_small_data(tmp_path):
    ws = words(False, n=5000)
    parts, planned, decisions = run(gw.bag.from_sequence(ws, npartitions=4).frequencies(), tmp_path)
    assert dict(r for p in parts for r in p) == collections.Counter(ws)
    assert [d.ran for d in decisions] == [1]   # 64 MiB per reducer: one planned, one run


def test_join_coalesces_both_sides_alike(tmp_path, small_target):
    rng = random.Random(3)
    left = [rng.randrange(3000) for _ in range(20_000)]
    right = [rng.randrange(3000) for _ in range(5_000)]
    bag = gw.bag.from_sequence(left, npartitions=8).join(gw.bag.from_sequence(right, npartitions=4), key_mod)
    parts, planned, decisions = run(bag, tmp_path)
    by_key = collections.defaultdict(list)
    for y in right:
        by_key[key_mod(y)].append(y)
    expected = sorted((y, x) for x in left for y in by_key[key_mod(x)])
    assert sorted(r for p in parts for r in p) == expected
    (decision,) = decisions
    assert planned.plan.stage(decision.stage).ntasks == decision.ran <= decision.planned


def test_a_shared_stage_read_one_to_one_is_never_replanned(tmp_path, small_target):
    ws = words(False)
    counts = gw.bag.from_sequence(ws, npartitions=8).frequencies()
    left = counts.map(lambda kv: (len(kv[0]), kv))
    right = counts.filter(lambda kv: kv[1] > 150)
    bag = left.join(right, lambda lk: lk[0], lambda kv: len(kv[0]))
    parts, planned, decisions = run(bag, tmp_path)
    plan = planned.plan
    shared = [s for s in plan.stages
              if any(e.kind == HASH_SHUFFLE for e in s.inputs)
              and any(e.source == s.name and e.kind == ONE_TO_ONE for d in plan.stages for e in d.inputs)]
    assert shared and all(s.adaptive is None for s in shared)
    assert all(d.stage not in {s.name for s in shared} for d in decisions)
    counter = collections.Counter(ws)
    lefts = [(len(w), (w, c)) for w, c in counter.items()]
    rights = [(w, c) for w, c in counter.items() if c > 150]
    expected = sorted((r, lv) for lv in lefts for r in rights if len(r[0]) == lv[0])
    assert sorted(r for p in parts for r in p) == expected


def test_sort_after_a_coalesced_shuffle(tmp_path, small_target):
    ws = words(True)
    parts, planned, decisions = run(gw.bag.from_sequence(ws, npartitions=8).distinct().sort(), tmp_path)
    assert [r for p in parts for r in p] == sorted(set(ws))
    assert decisions and all(planned.plan.stage(d.stage).ntasks == d.ran for d in decisions)


def test_take_and_writers_keep_the_output_count(tmp_path, small_target):
    ws = words(False)
    bag = gw.bag.from_sequence(ws, npartitions=8).distinct()
    settings = config.resolve({"storage": f"file://{tmp_path}/store", "progress": False})
    planned = planner.plan(bag.expr, settings, ntasks=1)
    assert planned.plan.stage(planned.output).adaptive is None
    out_dir = tmp_path / "out"
    files = bag.to_textfiles(f"{out_dir}/*.txt", storage=f"file://{tmp_path}/store", progress=False)
    assert len(files) == bag.npartitions == 8
    assert sorted(line for f in sorted(out_dir.iterdir()) for line in f.read_text().split()) == sorted(set(ws))


# -- persist and explain after a run ------------------------------------------------------------------
def test_persist_after_coalescing_reads_back_the_right_partitions(tmp_path, small_target):
    ws = words(False)
    store = f"file://{tmp_path}/store"
    bag = gw.bag.from_sequence(ws, npartitions=8).frequencies()
    kept = bag.persist(storage=store, progress=False)
    (decision,) = bag._adapted
    assert decision.ran < decision.planned and kept.npartitions == decision.ran
    assert dict(kept.compute(storage=store, progress=False)) == collections.Counter(ws)
    assert kept.map(operator.itemgetter(1)).sum().compute(storage=store, progress=False) == len(ws)


def test_explain_shows_the_adaptive_stage_and_after_a_run_what_changed(tmp_path, small_target):
    ws = words(False)
    store = f"file://{tmp_path}/store"
    bag = gw.bag.from_sequence(ws, npartitions=8).distinct()
    before = bag.explain(storage=store)
    assert "adaptive: the run coalesces adjacent buckets up to 16.0 KiB per task" in before
    assert "Adaptive execution" not in before
    assert sorted(bag.compute(storage=store, progress=False)) == sorted(set(ws))
    after = bag.explain(storage=store)
    (decision,) = bag._adapted
    assert "== Adaptive execution in the last run ==" in after
    assert f"stage 1: planned 8 tasks, ran {decision.ran} (8 buckets of ~" in after
    assert f"coalesced to {decision.ran} of ~" in after


def test_coalesced_reads_on_every_store(store_url, small_target):
    ws = words(True, n=30_000)
    bag = gw.bag.from_sequence(ws, npartitions=8).frequencies()
    settings = config.resolve({"storage": store_url, "progress": False})
    planned = planner.plan(bag.expr, settings)
    out = Partitions()
    planner.execute(planned, settings, out)
    assert dict(r for p in out.value() for r in p) == collections.Counter(ws)
    (decision,) = planned.adapted
    assert decision.ran < decision.planned == 8 and len(out.value()) == decision.ran


# -- skewed buckets: split where the operation allows it -------------------------------------------
def test_driver_splits_a_skewed_join_bucket_over_the_big_sides_map_outputs(tmp_path):
    plan = Plan([Stage("left", 4, spread, nbuckets=8), Stage("right", 2, spread_small, nbuckets=8),
                 Stage("join", 8, join_sides, [Edge("left", HASH_SHUFFLE), Edge("right", HASH_SHUFFLE)],
                       adaptive=Adaptive(8192, split_inputs=(0, 1)))], ["join"])
    driver = make_driver(tmp_path)
    outputs = driver_run(driver, plan)
    (decision,) = driver.adaptive
    assert decision.skewed == [0] and decision.splits[0] > 1
    split_tasks = [t for t, g in enumerate(decision.groups) if g == [0]]
    assert len(split_tasks) == decision.splits[0]
    # each split task read a share of the left side's bucket 0 and the right side's bucket 0 whole
    lefts = []
    for t in split_tasks:
        left, right = outputs[("join", t)][0]
        assert right == sorted(x for j in range(2) for x in small_reference(j, 0))
        lefts.extend(left)
    assert sorted(lefts) == sorted(x for j in range(4) for x in spread_reference(j, 0))
    for t, group in enumerate(decision.groups):
        if t not in split_tasks:
            left, right = outputs[("join", t)][0]
            assert left == sorted(x for j in range(4) for b in group for x in spread_reference(j, b))
    assert "skewed bucket 0" in decision.describe() and "split over" in decision.describe()


def spread_small(ctx):
    buckets = [[] for _ in range(ctx.nbuckets)]
    for x in range(ctx.task * 10, ctx.task * 10 + 10):
        buckets[x % ctx.nbuckets].append(x)
    return buckets


def small_reference(j, b):
    return [x for x in range(j * 10, j * 10 + 10) if x % 8 == b]


def test_a_skewed_bucket_of_a_reducer_that_needs_whole_keys_is_never_split(tmp_path):
    plan = Plan([Stage("map", 4, spread, nbuckets=8),
                 Stage("reduce", 8, collect_all, [Edge("map", HASH_SHUFFLE)], adaptive=Adaptive(4096))],
                ["reduce"])
    driver = make_driver(tmp_path)
    driver_run(driver, plan)
    assert driver.adaptive[0].skewed == [0] and driver.adaptive[0].splits == {}


def test_split_inputs_must_name_hash_shuffle_inputs():
    with pytest.raises(ValueError, match="split only hash-shuffle inputs"):
        Stage("j", 2, collect_all, [Edge("a", HASH_SHUFFLE), Edge("b", BROADCAST)],
              adaptive=Adaptive(100, split_inputs=(1,)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 500), min_size=3, max_size=3), min_size=1, max_size=6),
       st.lists(st.lists(st.integers(0, 50), min_size=3, max_size=3), min_size=1, max_size=3),
       st.integers(1, 600))
def test_replan_reads_every_pair_of_pieces_exactly_once(left, right, target):
    """Whatever is coalesced or split, each (left piece, right piece) of one bucket meets in exactly one task."""
    stage = Stage("j", 3, collect_all, [Edge("l", HASH_SHUFFLE), Edge("r", HASH_SHUFFLE)],
                  adaptive=Adaptive(target, split_inputs=(0, 1)))
    decision = adaptive.replan(stage, {"l": left, "r": right})
    assert stage.ntasks == decision.ran
    met = collections.Counter()
    for t in range(stage.ntasks):
        lp = stage.inputs[0].pieces(t, len(left))
        rp = stage.inputs[1].pieces(t, len(right))
        for (jl, bl) in lp:
            for (jr, br) in rp:
                if bl == br:
                    met[(jl, jr, bl)] += 1
    assert met == collections.Counter((jl, jr, b) for b in range(3) for jl in range(len(left))
                                      for jr in range(len(right)))


def test_a_skewed_join_matches_python(tmp_path, small_target):
    rng = random.Random(5)
    left = [0 if rng.random() < 0.5 else rng.randrange(1, 3000) for _ in range(40_000)]   # key 0: half the rows
    right = [rng.randrange(3000) for _ in range(3_000)]
    bag = gw.bag.from_sequence(left, npartitions=8).join(gw.bag.from_sequence(right, npartitions=4), key_mod)
    parts, planned, decisions = run(bag, tmp_path)
    by_key = collections.defaultdict(list)
    for y in right:
        by_key[key_mod(y)].append(y)
    expected = sorted((y, x) for x in left for y in by_key[key_mod(x)])
    assert sorted(r for p in parts for r in p) == expected
    (decision,) = decisions
    assert decision.splits, decision.describe()
    assert planned.plan.stage(decision.stage).ntasks == decision.ran == len(parts)

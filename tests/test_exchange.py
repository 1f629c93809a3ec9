"""The two-level exchange: a shuffle's M x R pieces merged in G x H tasks so S3 GETs fall to M x H + R x G.

Results are checked against plain Python with the second level forced on
(``exchange_levels="2"``); the request counts against what the tasks did
on the wire (a counting proxy in front of moto's S3 server).
"""
from __future__ import annotations

import collections
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import config, planner
from graphwren.planner import exchange
from graphwren.runtime.plan import CUSTOM

from test_requests import CountingProxy

pytestmark = pytest.mark.usefixtures("isolated_config")


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 60), st.integers(2, 60))
def test_every_piece_reaches_its_reducer_exactly_once_in_map_order(maps, reducers):
    layout = exchange.choose(maps, reducers, "file:///x", "2")
    merge = exchange.merge_stage("m", "map", layout, None, None)
    edge = exchange.reducer_edge("m", layout)
    assert merge.ntasks == layout.groups * layout.runs and len(edge.table) == reducers
    reached = []
    for r in range(reducers):
        for task, slot in edge.pieces(r, merge.ntasks):
            (pieces,) = [merge.inputs[0].pieces(task, maps)]
            for j, (lo, hi) in pieces:
                assert hi - lo <= layout.width and 0 <= slot < layout.width
                if slot < hi - lo:
                    reached.append((r, j, lo + slot))
    # reducer r sees bucket r of every map task, once each, in map-task order
    assert reached == [(r, j, r) for r in range(reducers) for j in range(maps)]
    assert layout.gets == sum(len(merge.inputs[0].pieces(t, maps)) for t in range(merge.ntasks)) + \
        sum(len(row) for row in edge.table)


def test_auto_goes_two_level_only_where_s3_requests_would_dominate_even_spread():
    # spread over one prefix per map output (256 at most), a direct exchange takes its GETs in parallel
    assert exchange.choose(300, 300, "s3://b/j") is None               # 90,000 GETs over 256 prefixes: 0.06 s
    assert exchange.choose(1000, 1000, "s3://b/j") is None             # 1M GETs over 256 prefixes: 0.7 s
    assert exchange.choose(50, 200_000, "s3://b/j") is not None        # 10M GETs over only 50 prefixes: 36 s
    assert exchange.choose(50, 200_000, "file:///tmp/x") is None       # a local disk has no request rate
    assert exchange.choose(50, 200_000, "s3://b/j", "1") is None
    layout = exchange.choose(5000, 5000, "s3://b/j")                   # 25M GETs over 256 prefixes: 18 s
    assert layout.direct_gets == 25_000_000 and layout.gets <= 800_000


def test_explain_shows_the_merge_stage_and_its_requests(tmp_path):
    bag = gw.bag.from_sequence(range(30_000), npartitions=300).groupby(lambda x: x % 1000, npartitions=300)
    text = bag.explain(storage="s3://bkt/jobs", exchange_levels="2")
    assert "two-level exchange: 18 groups of map tasks x 18 runs of buckets (90,000 direct GETs -> 10,800)" in text
    direct = bag.explain(storage="s3://bkt/jobs")   # auto: spread, the direct exchange is within budget
    assert "two-level exchange:" not in direct and "90,000 ranged GETs" in direct
    # 90,300 offsets take an offset table: each of the 300 readers GETs the manifest and its columns
    assert "(+600 manifest GETs)" in direct
    assert "outputs spread over 19 key prefixes" in direct and "note:" not in direct
    # on one prefix it would not be: the over-budget note names the remedies, the two levels among them
    one = bag.explain(storage="s3://bkt/jobs", key_prefixes=1)
    assert "spread over" not in one and "exchange_levels=\"2\"" in one


def words(n=40_000, seed=11):
    rng = random.Random(seed)
    return [("hot" if rng.random() < 0.3 else f"w{rng.randrange(500)}") for _ in range(n)]


CASES = {
    "groupby": (lambda b: b.groupby(len, npartitions=7).map(lambda kv: (kv[0], sorted(kv[1]))),
                lambda ws: sorted((k, sorted(v)) for k, v in _groups(ws, len).items())),
    "frequencies": (lambda b: b.frequencies(), lambda ws: sorted(collections.Counter(ws).items())),
    "reduceby": (lambda b: b.map(lambda w: (w, 1)).reduceby(lambda kv: kv[0], lambda a, c: (a[0], a[1] + c[1]),
                                                             npartitions=5),
                 lambda ws: sorted((w, (w, c)) for w, c in collections.Counter(ws).items())),
    "distinct": (lambda b: b.distinct(npartitions=6), lambda ws: sorted(set(ws))),
}


def _groups(ws, key):
    out = collections.defaultdict(list)
    for w in ws:
        out[key(w)].append(w)
    return out


@pytest.mark.parametrize("nparts", [3, 9])
@pytest.mark.parametrize("name", list(CASES))
def test_bag_results_match_python_through_two_levels(name, nparts, tmp_path):
    ws = words()
    make, reference = CASES[name]
    bag = make(gw.bag.from_sequence(ws, npartitions=nparts))
    opts = dict(storage=f"file://{tmp_path}/store", exchange_levels="2", progress=False)
    stages = planner.plan(bag.expr, config.resolve(opts)).plan.stages
    # frequencies of few words plans one reducer: a single bucket has nothing to merge
    assert any(s.label.startswith("two-level exchange") for s in stages) == (name != "frequencies")
    assert sorted(bag.compute(**opts)) == reference(ws)


def test_groupby_keeps_map_order_within_a_group(tmp_path):
    xs = list(range(5000))
    bag = gw.bag.from_sequence(xs, npartitions=8).groupby(lambda x: x % 13, npartitions=4)
    got = dict(bag.compute(storage=f"file://{tmp_path}/store", exchange_levels="2", progress=False))
    assert got == {k: [x for x in xs if x % 13 == k] for k in range(13)}


def test_a_join_with_one_side_two_level_matches_python(tmp_path):
    rng = random.Random(2)
    left = [rng.randrange(400) for _ in range(6000)]
    right = [rng.randrange(400) for _ in range(800)]
    bag = gw.bag.from_sequence(left, npartitions=6).join(gw.bag.from_sequence(right, npartitions=3),
                                                         lambda x: x % 50, npartitions=4)
    got = bag.compute(storage=f"file://{tmp_path}/store", exchange_levels="2", progress=False)
    by_key = _groups(right, lambda x: x % 50)
    assert sorted(got) == sorted((y, x) for x in left for y in by_key[x % 50])


def test_on_s3_each_merge_reads_a_run_with_one_ranged_get(tmp_path, s3_endpoint, s3_url):
    ws = words(8000)
    proxy = CountingProxy(s3_endpoint)
    try:
        opts = dict(storage=f"{s3_url}?endpoint={proxy.url}", inline_limit=0, speculation=False,
                    progress=False, exchange_levels="2")
        bag = gw.bag.from_sequence(ws, npartitions=9).groupby(len, npartitions=8)
        plan = planner.plan(bag.expr, config.resolve(opts)).plan
        merge = next(s for s in plan.stages if s.label.startswith("two-level"))
        layout = exchange.choose(9, 8, "s3://x", "2")
        proxy.seen.clear()
        got = {k: sorted(v) for k, v in bag.compute(**opts)}
        assert got == {k: sorted(v) for k, v in _groups(ws, len).items()}
        seen = collections.Counter((kind, re.sub(r"^.*?/(\d+-\w+)/(out|done|manifest).*$", r"\1 \2", path))
                                   for kind, path in proxy.seen)
        assert seen[("GET", "0-shuffle out")] == 9 * layout.runs          # M x H, not M x R = 72
        assert seen[("GET", f"{merge.name} out")] == 8 * layout.groups    # R x G
        assert merge.inputs[0].kind == CUSTOM
    finally:
        proxy.close()


@pytest.mark.parametrize("columnar", [False, True], ids=["records", "columnar"])
def test_a_sort_through_two_levels_is_sorted_and_stable(columnar, tmp_path):
    rng = random.Random(4)
    rows = [{"k": rng.randrange(300), "i": i} for i in range(6000)]
    opts = dict(storage=f"file://{tmp_path}/store", exchange_levels="2", progress=False)
    if columnar:
        import pyarrow as pa
        import pyarrow.parquet as pq
        (tmp_path / "pq").mkdir()
        for p in range(6):
            pq.write_table(pa.Table.from_pylist(rows[p::6]), tmp_path / "pq" / f"part-{p}.parquet")
        bag = gw.bag.read_parquet(str(tmp_path / "pq" / "*.parquet")).sort("k", npartitions=5)
        source = [r for p in range(6) for r in rows[p::6]]
    else:
        bag = gw.bag.from_sequence(rows, npartitions=6).sort(lambda r: r["k"], npartitions=5)
        source = rows
    stages = planner.plan(bag.expr, config.resolve(opts)).plan.stages
    assert any(s.label.startswith("two-level exchange") for s in stages)
    if columnar:
        assert any("columnar" in s.label for s in stages)
    assert bag.compute(**opts) == sorted(source, key=lambda r: r["k"])   # stable: ties keep input order

"""The request budget (planner/requests.py): the counts explain() prints are the requests a run makes."""
from __future__ import annotations

import collections
import dataclasses
import pathlib
import re
import sys

from hypothesis import given, settings as hsettings, strategies as st

import graphwren as gw
from graphwren.planner import requests
from graphwren.planner.explain import human_bytes
from graphwren.runtime.plan import (BROADCAST, CUSTOM, GATHER, HASH_SHUFFLE, ONE_TO_ONE, RANGE_SHUFFLE, Edge,
                                    Plan, Stage)

sys.path.insert(0, str(pathlib.Path(__file__).parent / "faults"))
from faultproxy import FaultProxy  # noqa: E402 - the wire proxy of the fault suite, here without faults


def _noop(ctx):
    return None


@st.composite
def edges(draw):
    """(edge, upstream tasks, downstream tasks) of every kind, custom tables included."""
    m, r = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kind = draw(st.sampled_from([ONE_TO_ONE, HASH_SHUFFLE, RANGE_SHUFFLE, GATHER, BROADCAST, CUSTOM]))
    if kind == ONE_TO_ONE:
        r = m
    table = None
    if kind == CUSTOM:
        piece = st.tuples(st.integers(0, m - 1), st.one_of(st.none(), st.integers(0, 3)))
        table = draw(st.lists(st.lists(piece, max_size=6), min_size=r, max_size=r))
    return Edge("up", kind, table), m, r


@given(edges())
@hsettings(max_examples=200, deadline=None)
def test_pieces_counted_are_the_pieces_the_tasks_read(drawn):
    edge, m, r = drawn
    assert requests.pieces_read(edge, m, r) == sum(len(edge.pieces(i, m)) for i in range(r))


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 5))
@hsettings(max_examples=50, deadline=None)
def test_a_shuffle_costs_m_puts_and_m_times_r_ranged_gets(m, r, readers):
    # one map stage read by `readers` reduce stages (a stage shuffled once and read twice, as a join may)
    stages = [Stage("up", m, _noop, nbuckets=r, storage="s3://b/p")]
    stages += [Stage(f"down{k}", r, _noop, [Edge("up", HASH_SHUFFLE)]) for k in range(readers)]
    counted = requests.count(Plan(stages, [s.name for s in stages[1:]]), "file:///unused")["up"]
    assert (counted.puts, counted.commits, counted.gets, counted.manifest_gets) == (m, m, readers * m * r, readers * r)
    assert counted.ranged and counted.store == "s3://b/p"
    get_s = (readers * m * r + readers * r) / requests.S3_GET_PER_S
    put_s = 2 * m / requests.S3_PUT_PER_S
    note = requests.over_budget(counted, "stage 0")
    assert (note is not None) == (max(get_s, put_s) > requests.BUDGET_SECONDS)
    assert requests.over_budget(counted.__class__(**{**counted.__dict__, "store": "redis://127.0.0.1:1/0"}),
                                "stage 0") is None   # the budget is S3's


def _write_corpus(root: pathlib.Path, nfiles: int, seed: int = 0) -> collections.Counter:
    """Small text files of a few words each; the word counts as plain Python sees them."""
    import random
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)]
    root.mkdir(parents=True, exist_ok=True)
    ref: collections.Counter = collections.Counter()
    for i in range(nfiles):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(1, 20))]
        (root / f"part-{i:03d}.txt").write_text("\n".join(lines) + "\n")
        ref.update(w for line in lines for w in line.split())
    return ref


def test_explain_of_a_word_count_over_small_files_says_what_a_user_looks_for(tmp_path):
    _write_corpus(tmp_path / "src", 40)
    files = sorted((tmp_path / "src").glob("*.txt"))
    total = sum(f.stat().st_size for f in files)
    text = gw.bag.read_text(str(tmp_path / "src" / "*.txt")).flat_map(str.split).frequencies().explain()
    physical = text.split("== Physical plan", 1)[1]
    # the split decision: how many files, their size, how many splits of what size
    split = re.search(r"stage 0: (\d+) tasks?  read_text\(40 files, ([\d.]+ \w+), packed into (\d+) splits? of ~", physical)
    assert split, physical
    ntasks, nsplits = int(split.group(1)), int(split.group(3))
    assert ntasks == nsplits and 1 <= nsplits < len(files)   # small files are packed, not one task each
    assert split.group(2) == human_bytes(total)
    # bytes per task: the split's share of the input
    assert f"reads ~{human_bytes(total)} (~{human_bytes(total / ntasks)} per task)" in physical
    # the reducer choice and why, then what the exchange costs in requests
    reducers = re.search(r"-> hash shuffle into (\d+) \(~[\d.]+ \w+ at most, [\d.]+ MiB per reducer\)", physical)
    assert reducers, physical
    r = int(reducers.group(1))
    assert f"requests: {ntasks} PUTs (+{ntasks} commit records), {ntasks * r} ranged GET" in physical
    assert re.search(rf"stage 1: {r} tasks?  sum_counts", physical)
    assert "note:" not in text   # a small local job has nothing to warn about


def test_an_s3_shuffle_over_one_prefix_budget_is_spread_over_prefixes(tmp_path):
    _write_corpus(tmp_path / "src", 100)
    bag = gw.bag.read_text(str(tmp_path / "src" / "*.txt"), files_per_partition=1).flat_map(str.split)
    # 100 map tasks x 60 reducers = 6,000 ranged GETs + 60 manifests: 1.1 s at 5,500 GET/s on one prefix;
    # over two prefixes, 3,000 + 60 on the busier: within the budget, so no note
    text = bag.groupby(len, npartitions=60).explain(storage="s3://bkt/jobs")
    assert ("requests: 100 PUTs (+100 commit records), 6,000 ranged GETs (+60 manifest GETs); "
            "outputs spread over 2 key prefixes (~0.6 s of GETs at S3's per-prefix rate)") in text, text
    assert "note:" not in text
    # on local files, or a smaller S3 shuffle, nothing is spread
    for quiet in (bag.groupby(len, npartitions=60).explain(storage=f"file://{tmp_path}/store"),
                  bag.groupby(len, npartitions=50).explain(storage="s3://bkt/jobs")):
        assert "spread over" not in quiet and "note:" not in quiet


def test_s3_shuffle_still_over_the_budget_gets_a_note_with_its_time_and_the_remedies(tmp_path):
    _write_corpus(tmp_path / "src", 3)
    bag = gw.bag.read_text(str(tmp_path / "src" / "*.txt"), files_per_partition=1).flat_map(str.split)
    # 3 map tasks x 3,000 reducers: 9,000 GETs need 4 prefixes beside the 3,000 manifest GETs, but 3 objects
    # spread over 3 at most: 3,000 + 3,000 GETs on the busiest, 1.1 s
    text = bag.groupby(len, npartitions=3000).explain(storage="s3://bkt/jobs", exchange_levels="1")
    assert "outputs spread over 3 key prefixes" in text
    notes = [line for line in text.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, text
    assert ("stage 0 (3 tasks read by 3,000) exchanges through s3://bkt/jobs: 12,000 GETs over 3 prefixes, "
            "~1 s at S3's") in notes[0]
    assert "npartitions=" in notes[0] and "blocksize=" in notes[0] and "shuffle_redis=" in notes[0]


def test_source_reads_are_counted_one_get_per_file_or_block(tmp_path):
    _write_corpus(tmp_path / "src", 40)
    small = gw.bag.read_text(str(tmp_path / "src" / "*.txt")).flat_map(str.split).frequencies().explain()
    assert "source reads: ~40 GETs of file:///" in small   # packed into a few splits, still a GET per file
    big = tmp_path / "big.txt"
    big.write_text("".join(f"line {i}\n" for i in range(30_000)))
    # 4 blocks: a GET each, and one more for each of the 3 that end inside the file (the rest of a line)
    text = gw.bag.read_text(str(big), blocksize=big.stat().st_size // 4 + 1).count().explain()
    assert "source reads: ~7 GETs of file:///" in text


def test_many_s3_source_objects_get_a_note_about_their_prefix():
    r = requests.Requests("s", "file:///x", 1, 1, 0, False, 0, source_gets={"s3://logs": 20_000, "file:///": 9})
    assert requests.sources_over_budget(r, "stage 0") == (
        "stage 0 reads its sources with ~20,000 GETs of s3://logs: ~4 s if they share one prefix (S3 serves "
        "~5,500 GET/s per prefix); fewer, larger files, or files under several prefixes, read faster")
    assert requests.sources_over_budget(
        requests.Requests("s", "file:///x", 1, 1, 0, False, 0, source_gets={"s3://logs": 5_000}), "stage 0") is None


@given(gets=st.integers(0, 10**8), manifests=st.integers(0, 10**4), ntasks=st.integers(1, 10**4))
@hsettings(max_examples=100, deadline=None)
def test_prefixes_bring_the_busiest_prefix_within_budget_where_the_objects_allow(gets, manifests, ntasks):
    r = requests.Requests("s", "s3://b/p", ntasks, ntasks, gets, True, manifests)
    p = requests.prefixes_for(r, ntasks)
    assert 1 <= p <= min(ntasks, requests.MAX_PREFIXES)
    spread = dataclasses.replace(r, prefixes=p)
    if p < min(ntasks, requests.MAX_PREFIXES) and manifests < requests.S3_GET_PER_S:
        assert spread.busiest_prefix_gets <= requests.S3_GET_PER_S * requests.BUDGET_SECONDS
    if p > 1:   # never more prefixes than it takes
        fewer = dataclasses.replace(r, prefixes=p - 1)
        assert fewer.busiest_prefix_gets > requests.S3_GET_PER_S * requests.BUDGET_SECONDS
    assert requests.prefixes_for(dataclasses.replace(r, store="redis://127.0.0.1:1/0"), ntasks) == 1


def test_spread_outputs_lie_under_their_prefixes_and_read_back_on_s3(tmp_path, s3_endpoint, s3_url):
    import boto3
    ref = _write_corpus(tmp_path / "src", 6, seed=5)
    storage = f"{s3_url}?endpoint={s3_endpoint}"
    opts = dict(storage=storage, inline_limit=0, progress=False, key_prefixes=4)
    bag = gw.bag.read_text(str(tmp_path / "src" / "*.txt"), files_per_partition=1).flat_map(str.split)
    job = bag.map(lambda w: (w, 1)).reduceby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]), npartitions=3)
    assert "outputs spread over 4 key prefixes" in job.explain(**opts)
    assert {k: v[1] for k, v in job.compute(keep=True, **opts)} == dict(ref)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="gw-test", Prefix="t/")
            for o in page.get("Contents", ())]
    outs = [k for k in keys if re.search(r"/\d+-shuffle\w*/out/", k)]
    assert len(outs) == 6, keys   # one object per map task ...
    prefixes = {re.search(r"/out/([0-9a-f]{2})/(\d+)\.", k).groups() for k in outs}
    # ... map task j under prefix j mod 4
    assert {(f"{int(task) % 4:02x}", task) for _, task in prefixes} == prefixes
    assert len({p for p, _ in prefixes}) == 4


class CountingProxy(FaultProxy):
    """The fault proxy with no faults: it forwards every request and remembers (class, path)."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.seen: list[tuple[str, str]] = []

    def decide(self, kind, path):
        with self._lock:
            self.seen.append((kind, path))
        return super().decide(kind, path)


def test_a_run_on_s3_makes_the_requests_explain_counted(tmp_path, s3_endpoint, s3_url):
    ref = _write_corpus(tmp_path / "src", 5, seed=3)
    proxy = CountingProxy(s3_endpoint)
    try:
        storage = f"{s3_url}?endpoint={proxy.url}"
        # inline_limit=0: every output is an object of its own, as for shuffles of real size;
        # no speculation: a backup copy of a straggler would read its pieces twice
        opts = dict(storage=storage, inline_limit=0, speculation=False, progress=False)
        bag = gw.bag.read_text(str(tmp_path / "src" / "*.txt"), files_per_partition=1).flat_map(str.split)
        job = bag.map(lambda w: (w, 1)).reduceby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]),
                                                 npartitions=3)
        text = job.explain(**opts)
        assert "requests: 5 PUTs (+5 commit records), 15 ranged GETs (+3 manifest GETs)" in text, text
        proxy.seen.clear()
        assert {k: v[1] for k, v in job.compute(**opts)} == dict(ref)
        seen = collections.Counter((kind, re.sub(r"^.*?/(\d+-\w+)/(out|done|manifest).*$", r"\1 \2", path))
                                   for kind, path in proxy.seen)
        shuffle = "0-shuffle"
        assert seen[("PUT", f"{shuffle} out")] == 5
        assert seen[("PUT", f"{shuffle} done")] == 5
        assert seen[("GET", f"{shuffle} out")] == 15
        assert 1 <= seen[("GET", f"{shuffle} manifest")] <= 3   # warm workers reuse a manifest they read
    finally:
        proxy.close()

"""The request budget (planner/requests.py): the counts explain() prints are the requests a run makes."""
from __future__ import annotations

import collections
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


def test_s3_shuffle_over_the_budget_gets_a_note_with_its_time_and_the_remedies(tmp_path):
    _write_corpus(tmp_path / "src", 100)
    bag = gw.bag.read_text(str(tmp_path / "src" / "*.txt"), files_per_partition=1).flat_map(str.split)
    # 100 map tasks x 60 reducers = 6,000 ranged GETs + 60 manifests: 1.1 s at 5,500 GET/s
    text = bag.groupby(len, npartitions=60).explain(storage="s3://bkt/jobs")
    assert "requests: 100 PUTs (+100 commit records), 6,000 ranged GETs (+60 manifest GETs)" in text
    notes = [line for line in text.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, text
    assert "stage 0 (100 tasks read by 60) exchanges through s3://bkt/jobs: 6,060 GETs, ~1 s" in notes[0]
    assert "npartitions=" in notes[0] and "blocksize=" in notes[0] and "shuffle_redis=" in notes[0]
    # the same plan on local files, or a smaller S3 shuffle, stays quiet
    assert "note:" not in bag.groupby(len, npartitions=60).explain(storage=f"file://{tmp_path}/store")
    assert "note:" not in bag.groupby(len, npartitions=50).explain(storage="s3://bkt/jobs")


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

"""The commit rule under duplicate and concurrent deliveries of every event.

Each delivery of a task writes its output under its own nonce; the first
``done`` record wins and every reader follows it. The jobs here make every
delivery's output different (a random filter, set iteration order, a random
token per delivery), so a reader that mixed two deliveries' bytes, or read
one delivery's bytes at another's offsets, gives an answer that is not
self-consistent, or fails to decode.
"""
from __future__ import annotations

import random
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import config
from graphwren.runtime import integrity, records, worker
from graphwren.runtime.driver import Driver, fetch_output, manifest_record, read_commit
from graphwren import planner
from graphwren.runtime.plan import HASH_SHUFFLE
from graphwren.runtime.storage import open_store
from graphwren.runtime.worker import InputSpec

pytestmark = pytest.mark.usefixtures("isolated_config")

N, PARTS = 600, 6


class TwiceBackend:
    """Hands every event to the real backend twice: Lambda's at-least-once delivery."""

    def __init__(self, inner):
        self.inner = inner
        self.parallelism = inner.parallelism
        self.delivered = 0

    def invoke(self, events):
        doubled = [dict(e) for e in events for _ in range(2)]
        self.delivered += len(doubled)
        self.inner.invoke(doubled)

    def __getattr__(self, name):   # wait, lost, cancel, progress_count
        return getattr(self.inner, name)


class ThreadBackend:
    """Runs each event twice in this process: one after the other, or both at once."""

    def __init__(self, concurrent: bool):
        self.concurrent = concurrent
        self.parallelism = 4
        self.delivered = 0
        self.results = []
        self._threads = []

    def invoke(self, events):
        for event in events:
            self.delivered += 2
            if self.concurrent:
                gate = threading.Barrier(2, timeout=30)   # both copies start their task together
                for _ in range(2):
                    self._spawn(self._run, dict(event), gate)
            else:
                self._spawn(self._run_twice, dict(event))

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, event, gate=None):
        if gate is not None:
            gate.wait()
        self.results.append(worker.handle(event))

    def _run_twice(self, event):
        self._run(event)
        self._run(dict(event))

    def join(self):
        for thread in self._threads:
            thread.join(30)
        return [t for t in self._threads if t.is_alive()]


def random_keep(part):
    """Keep a random half of the partition, in set order, tagged with this delivery's token."""
    rng = random.SystemRandom()
    token = uuid.uuid4().hex
    kept = {x for x in part if rng.random() < 0.5}
    out = [("r", x, token) for x in kept]
    return out + [("d", min(part), token, len(kept))]


def summarize(group):
    """One delivery's records, gathered by its token: (partition, token, records, declared, xs)."""
    token, recs = group
    xs = sorted(r[1] for r in recs if r[0] == "r")
    declared = [r[3] for r in recs if r[0] == "d"]
    first = [r[1] for r in recs if r[0] == "d"]
    return (first[0] if first else -1, token, len(xs), declared, xs)


def by_partition(s):
    return s[0]


def check_job(result):
    """The answer is self-consistent: one delivery per partition won, whole, everywhere."""
    size = N // PARTS
    got = dict(result)
    assert sorted(got) == [p * size for p in range(PARTS)], f"partitions seen: {sorted(got)}"
    for first, summaries in got.items():
        assert len(summaries) == 1, f"partition {first}: records of {len(summaries)} deliveries: {summaries}"
        (_, token, n, declared, xs) = summaries[0]
        assert declared == [n], f"partition {first}: delivery {token} declared {declared}, readers saw {n}"
        assert len(set(xs)) == len(xs) and all(first <= x < first + size for x in xs), (first, xs)


def job_bag():
    return (gw.bag.from_sequence(range(N), npartitions=PARTS)
            .map_partitions(random_keep)
            .groupby(lambda r: r[2], npartitions=4)      # shuffle 1: a delivery's records meet
            .map(summarize)
            .groupby(by_partition, npartitions=3))       # shuffle 2: a partition's deliveries meet


def run_job(store_url, backend, **settings):
    settings = config.resolve({"storage": store_url, "progress": False, "speculation": False, **settings})
    plan = planner.plan(job_bag().expr, settings).plan
    parts = {}
    # keep: copies that lost the race may still be running when the job ends
    job = Driver(settings, backend=backend).run(plan, lambda stage, task, part: parts.__setitem__(task, part),
                                                keep=True)
    return [r for t in sorted(parts) for r in parts[t]], plan, job


@pytest.mark.parametrize("inline_limit", [0, 64 * 1024], ids=["objects", "inline"])
def test_every_event_delivered_twice(store_url, inline_limit):
    from graphwren.runtime.backends import get_backend
    backend = TwiceBackend(get_backend(config.resolve({"storage": store_url})))
    result, plan, job = run_job(store_url, backend, inline_limit=inline_limit)
    check_job(result)
    assert backend.delivered == 2 * sum(s.ntasks for s in plan.stages)
    open_store(store_url).delete(f"{job}/")


@pytest.mark.parametrize("concurrent", [False, True], ids=["one-after-the-other", "concurrently"])
@pytest.mark.parametrize("inline_limit", [0, 64 * 1024], ids=["objects", "inline"])
def test_every_event_run_twice_in_threads(store_url, inline_limit, concurrent):
    backend = ThreadBackend(concurrent)
    result, plan, job = run_job(store_url, backend, inline_limit=inline_limit)
    assert backend.join() == []
    open_store(store_url).delete(f"{job}/")
    check_job(result)
    assert backend.delivered == 2 * sum(s.ntasks for s in plan.stages)
    # every delivery committed or lost the race cleanly; per task, exactly one won
    assert all(r["ok"] for r in backend.results), [r for r in backend.results if not r["ok"]]
    assert sum(r["committed"] for r in backend.results) == sum(s.ntasks for s in plan.stages)


# -- the commit rule as a property: any interleaving of N deliveries' steps ------------------------
records_st = st.lists(st.one_of(st.integers(-2**70, 2**70), st.text(max_size=4),
                                st.tuples(st.integers(), st.booleans())), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n=st.integers(2, 4), nbuckets=st.sampled_from([None, 1, 3]),
       inline=st.booleans(), via_manifest=st.booleans())
def test_any_interleaving_of_puts_and_commits_has_one_winner(store_url, data, n, nbuckets, inline, via_manifest):
    """Each delivery puts its output, then races for the commit; readers see the winner's bytes only."""
    store = open_store(store_url)
    job, key = records.new_job_id(), integrity.new_key()
    spec = worker.StageSpec(name="s", label="s", fn=None, ntasks=1, nbuckets=nbuckets, inputs=[], job=job,
                            data_store=store_url, inline_limit=1 << 20 if inline else 0)
    outs = [data.draw(records_st) if nbuckets is None else [data.draw(records_st) for _ in range(nbuckets)]
            for _ in range(n)]
    attempts = [data.draw(st.integers(0, 1)) for _ in range(n)]   # duplicates share an attempt number
    steps = data.draw(st.permutations([i for i in range(n) for _ in range(2)]))
    written, won, first_to_commit = {}, {}, None
    for i in steps:
        if i not in written:
            written[i] = worker._write_output(store, spec, 0, attempts[i], outs[i], key)
        else:
            won[i] = worker._publish(store, spec, 0, written[i])
            first_to_commit = i if first_to_commit is None else first_to_commit
    assert sum(won.values()) == 1 and won[first_to_commit]
    w = first_to_commit

    header, payload = read_commit(store, job, "s", 0, key)
    assert header["a"] == attempts[w]
    name = records.manifest_key(job, "s")
    store.put(name, manifest_record(key, name, [(header, payload if via_manifest else None)]))
    edge = InputSpec(store_url, job, "s", 1, HASH_SHUFFLE)
    if nbuckets is None:
        assert fetch_output(store, job, "s", 0, header, payload, key) == outs[w]
        assert worker.read_piece(edge, (0, None), key) == outs[w]
    else:
        assert [worker.read_piece(edge, (0, r), key) for r in range(nbuckets)] == outs[w]
    # the losers' output objects are gone; the winner's is the one the record names
    left = store.list(f"{job}/s/out/")
    assert left == ([] if header.get("inline") else [records.out_key(job, "s", 0, attempts[w], header["x"])])
    store.delete(f"{job}/")

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

import graphwren as gw
from graphwren import config
from graphwren.runtime import worker
from graphwren.runtime.driver import Driver
from graphwren.runtime.storage import open_store

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
    plan = job_bag()._plan(settings)
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

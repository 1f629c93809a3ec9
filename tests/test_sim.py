"""The simulated cloud (graphwren.sim) enforces its limits, and the real driver survives them with right answers."""
from __future__ import annotations

import collections
import threading
import time

import pytest

import graphwren as gw
from graphwren import sim
from graphwren.errors import MissingKey, StorageError, TaskLost, TransientStorageError
from graphwren.runtime import cost

WORDS = [f"w{i % 23}" for i in range(1200)]
EXPECTED = dict(collections.Counter(WORDS))


def count_words(cloud: sim.Cloud, **settings):
    """A word count (map, hash shuffle, reduce) with real task bodies on the simulated cloud."""
    with sim.Simulation(cloud) as s:
        with gw.config.set(**s.settings(**settings)):
            out = dict(gw.bag.from_sequence(WORDS, npartitions=24).frequencies().compute())
    return s, out


def modelled(cloud: sim.Cloud, cost_of: sim.StageCost, ntasks: int = 20, **settings):
    """A one-stage job whose tasks are modelled: returns the simulation and the job's record."""
    with sim.Simulation(cloud, {"*": cost_of}) as s:
        with gw.config.set(**s.settings(**settings)):
            out = gw.bag.from_sequence(range(ntasks), npartitions=ntasks).map(str).compute()
        record = gw.last_job().record
    assert out == []   # a modelled result reads as an empty partition
    return s, record


def test_a_job_runs_on_the_simulated_cloud_and_leaves_no_key():
    s, out = count_words(sim.Cloud())
    assert out == EXPECTED
    assert s.counts["invocations"] >= 25 and s.counts["s3_put_if_absent"] >= 25   # every task committed
    assert s.open("s3://gw-sim/jobs").list("") == []


def test_lambda_throttles_beyond_its_concurrency_and_the_job_still_succeeds():
    s, out = count_words(sim.Cloud(concurrency=3), lambda_max_workers=10)
    assert out == EXPECTED
    assert s.counts["throttled"] > 0
    assert s.peak_running <= 3


def test_s3_answers_slowdown_over_its_request_rate_and_the_job_still_succeeds():
    s, out = count_words(sim.Cloud(s3_get_per_s=5, s3_put_per_s=5))
    assert out == EXPECTED
    assert s.counts["slowdown"] > 0


def test_slowdown_past_the_retries_fails_naming_the_key_and_the_limit():
    with sim.Simulation(sim.Cloud(s3_put_per_s=2, s3_retries=0)) as s:
        store = s.open("s3://bucket/x")
        store.put("p/a", b"1")
        store.put("p/b", b"2")
        with pytest.raises(TransientStorageError, match=r"'p/c'.*503 SlowDown.*2 PUT/s on prefix 'x/p'"):
            store.put("p/c", b"3")
        store.put("q/c", b"3")   # another prefix has its own budget


def test_a_prefix_passes_requests_at_its_rate_and_no_faster():
    with sim.Simulation(sim.Cloud(s3_get_per_s=10, s3_get_latency=0.0)) as s:
        store = s.open("s3://bucket/x")
        store.put("p/a", b"1")
        start = s.now
        for _ in range(40):
            assert store.get("p/a") == b"1"
        # a second's burst (10), then 30 more at 10/s: at least 3 virtual seconds, with SlowDowns on the way
        assert s.now - start >= 3.0
        assert s.counts["slowdown"] > 0


def test_every_event_delivered_twice_changes_nothing_but_the_count():
    s, out = count_words(sim.Cloud(duplicate_rate=1.0, concurrency=8), lambda_max_workers=8)
    assert out == EXPECTED
    assert s.counts["duplicates"] == s.counts["invocations"] > 0
    assert s.peak_running <= 8   # the copies wait for a free execution too


def test_redis_shuffle_goes_through_the_simulated_redis():
    s, out = count_words(sim.Cloud(), shuffle_storage="redis://sim-redis:6379/0")
    assert out == EXPECTED
    assert s.counts["redis_put"] + s.counts["redis_put_if_absent"] > 0 and s.counts["redis_get"] > 0


def test_a_modelled_task_takes_its_bytes_over_the_function_bandwidth():
    # 350 MB read each at 35 MB/s (nothing written): ten virtual seconds per task, twenty tasks at once
    s, record = modelled(sim.Cloud(), sim.StageCost(source_bytes=350e6, out_ratio=0.0))
    assert 10.0 <= record.duration < 20.0
    bill = cost.measured(record)
    gb_s = next(line for line in bill.lines if line.item.startswith("Lambda compute")).quantity
    assert gb_s >= 20 * 10.0 * 2.0   # 20 tasks x 10 s x 2 GB, in the job's own record
    assert s.counts["s3_get"] >= 20 * 6   # 64 MiB ranged GETs of each task's input


def test_stragglers_get_a_backup_copy_that_finishes_first():
    # a tenth of the invocations run 8-10x slower (20 s and up, against 2.5 s): the driver's speculation
    # launches backups, and a backup (slow itself one time in ten) commits first
    s, record = modelled(sim.Cloud(straggler_rate=0.1, straggler_slowdown=(8.0, 10.0), seed=1),
                         sim.StageCost(source_bytes=87.5e6, out_ratio=0.0), ntasks=40)
    assert s.counts["stragglers"] > 0
    assert any(a["kind"] == "backup" and a["outcome"] == "committed" for a in record.attempts)


def test_the_drivers_task_timeout_runs_on_the_virtual_clock():
    with pytest.raises(TaskLost, match="task_timeout=30s"):
        modelled(sim.Cloud(), sim.StageCost(cpu_fixed=100.0), ntasks=4, task_timeout=30, task_retries=1)


def test_the_virtual_clock_skips_idle_time_and_fires_timers_in_order():
    clock = sim.VirtualClock()
    try:
        fired = []
        for when in (5.0, 1.0, 3.0):
            clock.call_at(when, lambda w=when: fired.append(w))
        done = threading.Event()

        slept = []

        def actor():
            with clock.acting():
                start = clock.monotonic()
                clock.sleep(3600.0)   # an hour of virtual time
                slept.append(clock.monotonic() - start)
            done.set()
        threading.Thread(target=actor).start()
        assert done.wait(10)
        assert fired == [1.0, 3.0, 5.0]
        assert slept == [pytest.approx(3600.0)]
    finally:
        clock.close()


def test_an_actor_that_computes_holds_virtual_time_however_long_it_takes():
    # real work is instantaneous in virtual time: 50 ms of wall-clock computing (a starved driver on a
    # loaded machine, a thread being started) must not let a pending timer fire
    clock = sim.VirtualClock()
    try:
        fired = []
        clock.call_at(1.0, lambda: fired.append(clock.monotonic()))
        with clock.acting():
            deadline = time.perf_counter() + 0.05
            while time.perf_counter() < deadline:
                pass
            assert fired == [] and clock.monotonic() == 0.0
            threading.Thread(target=time.sleep, args=(0.01,)).start()   # a real wait, outside the clock
            time.sleep(0.02)
            assert fired == [] and clock.monotonic() == 0.0
        done = threading.Event()
        clock.call_at(2.0, done.set)
        assert done.wait(10) and fired == [1.0]   # once nobody acts, time moves on
    finally:
        clock.close()


def test_an_actor_blocked_outside_the_clock_lets_time_move_after_the_stall_limit():
    # the safety net: an actor waits (outside the clock) on a thread that itself sleeps on the clock
    clock = sim.VirtualClock()
    try:
        woke = threading.Event()

        def sleeper():
            clock.sleep(5.0)
            woke.set()
        with clock.acting():
            threading.Thread(target=sleeper, daemon=True).start()
            start = time.perf_counter()
            assert woke.wait(10 * sim.clock.STALL + 5)
            assert time.perf_counter() - start >= sim.clock.STALL * 0.9
        assert clock.stalls >= 1 and clock.monotonic() == pytest.approx(5.0)
    finally:
        clock.close()


def test_the_simulated_store_keeps_the_store_contract():
    with sim.Simulation() as s:
        store = s.open("s3://bucket/root")
        store.put("a/1", b"hello")
        assert store.get("a/1", 1, 3) == b"el" and store.get("a/1", 9) == b""
        assert store.put_if_absent("a/2", b"x") and not store.put_if_absent("a/2", b"y")
        assert store.get("a/2") == b"x" and store.size("a/1") == 5 and store.exists("a/1")
        assert store.list("a/") == ["a/1", "a/2"] and store.list_sized("a/") == [("a/1", 5), ("a/2", 1)]
        assert s.open("s3://bucket").list("root/") == ["root/a/1", "root/a/2"]   # one bucket, two roots
        with pytest.raises(MissingKey):
            store.get("a/3")
        store.put_virtual("v", 10**12)
        with pytest.raises(StorageError, match="'v'.*modelled"):
            store.get("v")
        assert store.delete("a/") == 2 and store.list("") == ["v"]

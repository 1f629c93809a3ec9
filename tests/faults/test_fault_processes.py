"""Jobs while processes die or run twice: SIGKILLed workers, a SIGKILLed driver, and Lambda's
at-least-once delivery with output that differs between the two copies.

Each run must end with the right answer or a graphwren error within the bound, and leave
nothing in storage; a killed driver must take its workers with it.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction

import pytest

import faultkit as fk
import graphwren as gw
from lambda_fixtures import DUP, lambda_emulator, lambda_settings  # noqa: F401
from processes import alive, children_of

BOUND = 90.0
WORK = 0.0004


def test_jobs_survive_random_worker_sigkills(tmp_path, fault_table):
    name = "local: a random worker SIGKILLed every 0.3-0.8 s mid-job"
    url = f"file://{tmp_path}/store"
    settings = dict(storage=url, task_retries=6, progress=False, workers=2)
    ex = gw.Executor(**settings)
    rng = random.Random(7)
    for job, fn, reference in [("bag frequencies", lambda: fk.bag_job(settings, WORK), fk.bag_reference()),
                               ("map_reduce", lambda: fk.map_reduce_job(settings, BOUND, WORK),
                                fk.map_reduce_reference())] * 2:
        stop = threading.Event()
        kills = []

        def killer():
            while not stop.wait(rng.uniform(0.3, 0.8)) and len(kills) < 6:
                pid = rng.choice(ex.driver.backend.worker_pids())
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                except ProcessLookupError:
                    pass

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        out = fk.judge(fn, reference, BOUND, lambda: os.listdir(tmp_path / "store"))
        stop.set()
        thread.join(10)
        out.detail = f"[{job}, {len(kills)} kills] {out.detail}"
        fault_table.record(name, out)
        assert out.kind == "correct" and not out.leftovers, out
        assert kills, "no worker was killed: the scenario tested nothing"


def test_a_sigkilled_driver_takes_its_workers_and_writes_stop(tmp_path, fault_table):
    name = "local: the driver SIGKILLed mid-job"
    store = tmp_path / "store"
    script = textwrap.dedent(f"""
        import time, graphwren as gw
        def slow(x):
            time.sleep(0.5)
            return x
        ex = gw.Executor(storage="file://{store}", workers=2, progress=False)
        futures = ex.map(slow, range(200), chunksize=1)
        time.sleep(1.5)
        print(*ex.driver.backend.worker_pids(), flush=True)
        time.sleep(60)
    """)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [w for w in workers if alive(w)]

    def snapshot():
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs)

    before = snapshot()
    time.sleep(1.5)   # nothing may land once the workers are gone
    after = snapshot()
    ok = len(workers) == 2 and not survivors and before == after
    detail = "" if ok else f"workers {workers}, still alive {survivors}, {len(after) - len(before)} late writes"
    fault_table.record(name, fk.Outcome("correct" if ok else "wrong", detail, time.monotonic() - t0, []))
    fault_table.note(name, "the job's keys stay behind until its lease expires and `graphwren clean` runs")
    assert ok, detail


def words_of(x):
    # Each delivery of an event produces different bytes of a different size: a set's order
    # differs between interpreters (str hashes are salted per process), and each count is
    # at random an int or a Fraction, equal under == but encoded differently.
    words = {f"w{x % 13}", f"v{x % 5}", f"u{x % 3}"}
    return [(w, 1 if random.random() < 0.5 else Fraction(1)) for w in words]


def add_counts(a, b):
    return a + b


@pytest.mark.parametrize("store", ["s3", "redis"])
def test_duplicate_lambda_deliveries_with_differing_output(store, lambda_settings, lambda_emulator,  # noqa: F811
                                                           request, fault_table):
    name = f"lambda: every event delivered twice, outputs differ between copies ({store})"
    url = request.getfixturevalue("s3_url" if store == "s3" else "redis_store_url")
    fn = lambda_emulator.function(DUP)
    before = fn.deliveries
    settings = dict(storage=url, lambda_function=DUP, **lambda_settings)
    reference = collections.Counter(w for x in range(600) for w, _ in words_of(x))

    def job():
        b = gw.bag.from_sequence(range(600), npartitions=6).map(words_of).flatten()
        pairs = b.foldby(lambda kv: kv[0], lambda acc, kv: acc + kv[1], 0, add_counts, npartitions=3)
        return dict(pairs.compute(**settings))

    out = fk.judge(job, reference, BOUND, lambda: [])
    out.detail = f"[{fn.deliveries - before} deliveries] {out.detail}"
    fault_table.record(name, out)
    assert out.kind == "correct", out
    assert fn.deliveries - before >= 2 * (6 + 3), "the events were not delivered twice"


import cloudpickle  # noqa: E402 - the Lambda workers cannot import this test module

cloudpickle.register_pickle_by_value(sys.modules[__name__])

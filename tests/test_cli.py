"""Job leases, and job ids' times under any time zone."""
from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import graphwren as gw
from graphwren.runtime import lease, records
from graphwren.runtime.storage import open_store

pytestmark = pytest.mark.usefixtures("isolated_config")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- job ids are UTC, whatever the local time zone ----------------------------------------------
@pytest.mark.parametrize("tz", ["UTC0", "CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0", "NZST-12NZDT,M9.5.0,M4.1.0/3"])
def test_job_time_is_right_in_daylight_saving_zones(tz):
    script = textwrap.dedent("""
        import time, calendar, json
        from graphwren.runtime import records
        t0 = time.time()
        fresh = records.job_time(records.new_job_id())
        t1 = time.time()
        summer, winter = "20240701T120000-x", "20240115T120000-x"
        old = time.mktime(time.strptime("20240701T120000", "%Y%m%dT%H%M%S")) - time.timezone
        print(json.dumps({"summer": records.job_time(summer), "winter": records.job_time(winter),
                          "fresh_ok": int(t0) - 1 <= fresh <= t1 + 1, "old_summer": old,
                          "dst": time.localtime(calendar.timegm((2024, 7, 1, 12, 0, 0))).tm_isdst}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TZ": tz, "PYTHONPATH": REPO})
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["summer"] == calendar.timegm((2024, 7, 1, 12, 0, 0, 0, 0, 0)) == 1719835200
    assert got["winter"] == calendar.timegm((2024, 1, 15, 12, 0, 0, 0, 0, 0))
    assert got["fresh_ok"]
    # the zone really observes DST in July (north) or not (south), and the old formula was off there
    assert (got["old_summer"] != got["summer"]) == bool(got["dst"])


def test_job_time_of_keys_that_are_not_jobs():
    assert records.job_time("not-a-job") is None and records.job_time("2024-bad") is None
    assert records.lease_key("J") == "J/lease"


# -- the lease itself ---------------------------------------------------------------------------
def _wait(cond, seconds=30.0, what="condition"):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met within {seconds}s"
        time.sleep(0.02)


def test_lease_is_written_first_renewed_and_ended(store_url, tmp_path):
    store = open_store(store_url)
    other = open_store(f"file://{tmp_path}/other")
    job = records.new_job_id()
    held = lease.Lease(job, "map(f)", renew=0.05, ttl=5.0)
    stores = lease.LeasedStores(held)
    stores[store.url] = store
    rec = lease.read(store, job)
    assert rec["state"] == "running" and rec["pid"] == os.getpid() and rec["description"] == "map(f)"
    assert rec["ttl"] == 5.0 and lease.state(rec) == "running"
    assert stores.setdefault(other.url, other) is other    # a store the job opens later
    assert lease.read(other, job)["state"] == "running"      # gets the lease at once
    first = rec["renewed"]
    _wait(lambda: lease.read(store, job)["renewed"] > first and lease.read(other, job)["renewed"] > first,
          what="a renewal in both stores")
    held.end("finished")
    for s in (store, other):
        assert lease.read(s, job)["state"] == "finished"
    ended = lease.read(store, job)
    time.sleep(0.3)    # several renewal periods: nothing may overwrite the end
    assert lease.read(store, job) == ended
    assert not held._thread.is_alive()
    # the same for a job whose keys go: no final write, and no renewal after the end
    gone = lease.Lease(records.new_job_id(), renew=0.05)
    gone.add(store)
    gone.end("failed", record=False)
    store.delete(f"{gone.job}/")
    time.sleep(0.3)
    assert store.list(f"{gone.job}/") == []


def test_lease_states():
    now = 1000.0
    assert lease.state(None) == "no lease"
    assert lease.state({"state": "running", "renewed": 950, "ttl": 60}, now) == "running"
    assert lease.state({"state": "running", "renewed": 939, "ttl": 60}, now) == "abandoned"
    assert lease.state({"state": "running", "renewed": 2000, "ttl": 60}, now) == "running"  # clock skew
    assert lease.state({"state": "finished", "renewed": 10, "ttl": 60}, now) == "finished"
    assert lease.state({"state": "running"}, now) == "unreadable"
    assert lease.state({"state": "odd"}, now) == "unreadable"
    assert [lease.ending(e) for e in (None, ValueError(), KeyboardInterrupt(), SystemExit())] == [
        "finished", "failed", "cancelled", "cancelled"]
    with pytest.raises(ValueError, match="not 'running'"):
        lease.Lease("j").end("running")


def test_garbled_lease_reads_as_unreadable(tmp_path):
    store = open_store(f"file://{tmp_path}/s")
    store.put("J/lease", b"\x00not json")
    assert lease.read(store, "J") == {"state": "unreadable"}
    store.put("K/lease", b"[1, 2]")
    assert lease.read(store, "K") == {"state": "unreadable"}


def _fail(values):
    raise RuntimeError("reduce failed on purpose")


def test_driver_leaves_final_states_when_keys_stay(store_url):
    ex = gw.Executor(storage=store_url, progress=False, keep=True)
    assert ex.map_reduce(abs, range(-3, 3), sum).result(timeout=60) == 9
    with pytest.raises(RuntimeError, match="on purpose"):
        ex.map_reduce(abs, range(3), _fail).result(timeout=60)
    ex.wait_all()
    found = {info.job: info for info in lease.jobs_in(open_store(store_url))}
    assert sorted(i.state() for i in found.values()) == ["failed", "finished"]
    for info in found.values():
        assert info.lease["description"].startswith("map_reduce(") and info.lease["pid"] == os.getpid()


def test_driver_without_keep_leaves_no_lease(store_url):
    ex = gw.Executor(storage=store_url, progress=False)
    assert ex.map_reduce(abs, range(-3, 3), sum).result(timeout=60) == 9
    ex.wait_all()
    _wait(lambda: open_store(store_url).list("") == [], what="the job's keys gone")


def test_every_store_a_job_uses_gets_its_lease(tmp_path, redis_store_url):
    main_url, shuffle_url = f"file://{tmp_path}/main", redis_store_url
    got = (gw.bag.from_sequence(range(60), npartitions=3).map(lambda x: x % 4).frequencies()
           .compute(storage=main_url, shuffle_storage=shuffle_url, keep=True, progress=False))
    assert sorted(got) == [(0, 15), (1, 15), (2, 15), (3, 15)]
    [in_main] = lease.jobs_in(open_store(main_url))
    [in_shuffle] = lease.jobs_in(open_store(shuffle_url))
    assert in_main.job == in_shuffle.job and in_shuffle.keys > 1
    assert in_main.state() == in_shuffle.state() == "finished"

"""The graphwren command's config, jobs and clean; job leases; job ids' times under any time zone."""
from __future__ import annotations

import calendar
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

import graphwren as gw
from graphwren.cli import main
from graphwren.runtime import lease, records
from graphwren.runtime.storage import open_store
from graphwren.runtime.storage.file import TRASH

pytestmark = pytest.mark.usefixtures("isolated_config")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, env=None, timeout=120):
    """``python -m graphwren.cli ARGS`` in a fresh interpreter, as a user runs it."""
    full = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "graphwren.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full)


def _put_lease(store, job, state="running", renewed_ago=0.0, ttl=60.0, description="map(f)"):
    now = time.time()
    record = {"state": state, "pid": 4242, "host": "elsewhere", "description": description,
              "started": now - renewed_ago - 1, "renewed": now - renewed_ago, "ttl": ttl}
    store.put(records.lease_key(job), json.dumps(record).encode())


def _job(store, created_ago: float, n_keys: int = 2) -> str:
    """A job id created ``created_ago`` seconds ago, with ``n_keys`` task keys."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - created_ago))
    job = f"{stamp}-{os.urandom(5).hex()}"
    for i in range(n_keys):
        store.put(records.done_key(job, "map", i), b"y")
    return job


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
    # the same for a job whose keys go: no final write, and no renewal after the end
    gone = lease.Lease(records.new_job_id(), renew=0.05)
    gone.add(store)
    gone.end("failed", record=False)
    store.delete(f"{gone.job}/")
    time.sleep(0.3)
    assert store.list(f"{gone.job}/") == []


def test_one_thread_renews_every_lease_of_the_process(tmp_path):
    import threading
    store = open_store(f"file://{tmp_path}/s")
    leases = [lease.Lease(records.new_job_id() + f"-{i}", renew=0.05) for i in range(5)]
    for held in leases:
        held.add(store)
    first = {held.job: lease.read(store, held.job)["renewed"] for held in leases}
    leases[0].end("cancelled")
    ended = lease.read(store, leases[0].job)
    _wait(lambda: all(lease.read(store, h.job)["renewed"] > first[h.job] for h in leases[1:]),
          what="every live lease renewed")
    assert lease.read(store, leases[0].job) == ended and ended["state"] == "cancelled"
    assert [t.name for t in threading.enumerate()].count("gw-lease") == 1
    for held in leases[1:]:
        held.end("finished")
    assert {lease.read(store, h.job)["state"] for h in leases[1:]} == {"finished"}


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
    store.put("L/lease", b'{"state": "running", "renewed": "soon", "ttl": 60}')
    assert lease.read(store, "L") == {"state": "unreadable"}
    store.put("M/lease", b'{"state": "finished", "renewed": 5, "ttl": "60"}')
    assert lease.read(store, "M") == {"state": "finished", "renewed": 5.0, "ttl": 60.0}


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


# -- graphwren jobs / clean ---------------------------------------------------------------------
def test_jobs_and_clean_by_state(store_url, capsys):
    store = open_store(store_url)
    live = _job(store, created_ago=3 * 86400)      # old, but its driver still renews the lease
    _put_lease(store, live, renewed_ago=5)
    abandoned = _job(store, created_ago=600)
    _put_lease(store, abandoned, renewed_ago=90)   # ttl 60: expired 30 s ago
    finished = _job(store, created_ago=600)
    _put_lease(store, finished, state="finished", renewed_ago=120, description="compute")
    old = _job(store, created_ago=2 * 86400)       # a job of a version without leases
    young = _job(store, created_ago=60)            # no lease, a minute old
    garbled = _job(store, created_ago=7200, n_keys=1)
    store.put(records.lease_key(garbled), b"{not json")
    store.put("not-a-job/thing", b"z")

    assert main(["jobs", "--storage", store_url]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("20")}
    assert rows[live][:3] == ["running", "3.0d", "3"] and "pid 4242 on elsewhere (map(f))" in out
    assert rows[abandoned][0] == "abandoned" and re.fullmatch(r"1[01]m", rows[abandoned][1])
    assert rows[finished][0] == "finished" and rows[finished][2] == "3" and "(compute)" in out
    assert rows[old][:4] == ["no", "lease", "2.0d", "2"] and rows[young][:2] == ["no", "lease"]
    assert rows[garbled][:3] == ["unreadable", "2.0h", "2"]
    assert f"6 job(s) in {store.url}" in out

    assert main(["clean", "--storage", store_url, "--older-than", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"skipped live job {live} \(3 keys\): lease renewed \d+s ago by pid 4242", out)
    assert re.search(rf"would delete job {abandoned} \(3 keys\): lease expired \d+s ago", out)
    assert len(store.list("")) == 16

    assert main(["clean", "--storage", store_url, "--older-than", "1h"]) == 0
    out = capsys.readouterr().out
    assert f"deleted job {old} (2 keys): no lease, created 2.0d ago" in out
    assert f"deleted job {garbled} (2 keys): unreadable lease, created 2.0h ago" in out
    assert f"skipped live job {live}" in out
    assert abandoned not in out and finished not in out and young not in out   # active within the hour
    assert "2 job(s) removed" in out and "1 live job(s) skipped, 3 younger kept" in out

    assert main(["clean", "--storage", store_url, "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"deleted job {abandoned} \(3 keys\): lease expired \d+s ago", out)
    assert re.search(rf"deleted job {finished} \(3 keys\): finished 2\.\dm ago", out)
    assert re.search(rf"deleted job {young} \(2 keys\): no lease, created 1\.\dm ago", out)
    assert f"skipped live job {live}" in out
    assert sorted(store.list("")) == sorted([*(f"{live}/map/done/{i}" for i in range(2)),
                                             records.lease_key(live), "not-a-job/thing"])


def test_clean_rechecks_a_lease_before_deleting(tmp_path, monkeypatch, capsys):
    """A driver that renews between clean's listing and its delete keeps its job."""
    store = open_store(f"file://{tmp_path}/s")
    job = _job(store, created_ago=600)
    _put_lease(store, job, renewed_ago=600)
    listed = lease.jobs_in

    def list_then_renew(s):
        out = listed(s)
        _put_lease(store, job, renewed_ago=0)
        return out

    monkeypatch.setattr(lease, "jobs_in", list_then_renew)
    assert main(["clean", "--storage", store.url, "--older-than", "0"]) == 0
    assert re.search(rf"skipped live job {job}: lease renewed \d+s ago", capsys.readouterr().out)
    assert len(store.list(f"{job}/")) == 3


def test_clean_sweeps_interrupted_deletions(tmp_path, capsys):
    from graphwren.cli import clean
    store = open_store(f"file://{tmp_path}/s")
    trash = tmp_path / "s" / f"{TRASH}20240101T000000-abc-77-0"
    (trash / "map").mkdir(parents=True)
    (trash / "map" / "out").write_bytes(b"x")
    assert clean(store.url, 0) == []            # a minute has not passed: a deleter may be at work
    assert trash.exists() and "swept" not in capsys.readouterr().out
    assert clean(store.url, 0, dry_run=True, trash_older_than=0) == []
    assert trash.exists()
    assert clean(store.url, 0, trash_older_than=0) == []
    out = capsys.readouterr().out
    assert f"swept interrupted deletion {trash.name}" in out and "1 interrupted deletion(s) swept" in out
    assert not trash.exists()


def test_clean_and_jobs_in_a_fresh_interpreter(store_url):
    store = open_store(store_url)
    old = _job(store, created_ago=2 * 86400)
    proc = _cli("jobs", "--storage", store_url)
    assert proc.returncode == 0, proc.stderr
    assert old in proc.stdout and "no lease" in proc.stdout
    proc = _cli("clean", "--storage", store_url)
    assert proc.returncode == 0, proc.stderr
    assert f"deleted job {old} (2 keys): no lease, created 2.0d ago" in proc.stdout
    assert store.list("") == []


def test_clean_with_a_mistyped_url_is_an_error(tmp_path):
    proc = _cli("clean", "--storage", "s3:/bucket/x", env={"HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert "did you mean 's3://bucket/x'" in proc.stderr and proc.stdout == ""
    assert not os.path.exists("s3:")


_LIVE_JOB = textwrap.dedent("""
    import os, sys, time
    import graphwren as gw

    def slow(x):
        d = sys.argv[1] if len(sys.argv) > 1 else os.environ["GW_TEST_DIR"]
        open(os.path.join(d, f"started-{x}"), "w").close()
        deadline = time.monotonic() + 60          # bounded: the test lets it go much sooner
        while not os.path.exists(os.path.join(d, "go")) and time.monotonic() < deadline:
            time.sleep(0.02)
        return x * x

    if __name__ == "__main__":
        ex = gw.Executor(storage=os.environ["GW_TEST_URL"], progress=False, keep=True, workers=2)
        print(gw.get_all_results(ex.map(slow, range(4), chunksize=2)), flush=True)
""")


def test_clean_never_removes_a_running_job(store_url, tmp_path):
    """A real job in another process, mid-run: clean --older-than 0 leaves it, and it completes."""
    env = {**os.environ, "GW_TEST_URL": store_url, "GW_TEST_DIR": str(tmp_path),
           "PYTHONPATH": REPO, "GRAPHWREN_CONFIG": os.devnull}
    job_proc = subprocess.Popen([sys.executable, "-c", _LIVE_JOB], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait(lambda: (tmp_path / "started-0").exists() or job_proc.poll() is not None, 90,
              "the job's first task to start")
        assert job_proc.poll() is None, job_proc.communicate()
        store = open_store(store_url)
        [running] = lease.jobs_in(store)
        before = store.list(f"{running.job}/")
        assert running.state() == "running" and running.lease["pid"] == job_proc.pid

        proc = _cli("clean", "--storage", store_url, "--older-than", "0", env={"GRAPHWREN_CONFIG": os.devnull})
        assert proc.returncode == 0, proc.stderr
        assert f"skipped live job {running.job}" in proc.stdout and "0 job(s) removed" in proc.stdout
        proc = _cli("jobs", "--storage", store_url, env={"GRAPHWREN_CONFIG": os.devnull})
        assert f"{running.job}  running" in proc.stdout
        assert set(before) <= set(store.list(f"{running.job}/"))

        (tmp_path / "go").touch()
        out, err = job_proc.communicate(timeout=120)
    finally:
        if job_proc.poll() is None:
            job_proc.kill()
            job_proc.wait(timeout=10)
    assert job_proc.returncode == 0, err
    assert out.strip() == "[0, 1, 4, 9]"
    [done] = lease.jobs_in(open_store(store_url))
    assert done.job == running.job and done.state() == "finished"


# -- graphwren config ---------------------------------------------------------------------------
def test_config_prints_every_setting_and_its_source(monkeypatch, tmp_path, capsys):
    path = tmp_path / "gw.toml"
    path.write_text('retries = 1\nshuffle_redis = "redis://127.0.0.1:6379/0"\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", str(path))
    monkeypatch.setenv("GRAPHWREN_WORKERS", "3")
    with gw.config.set(keep=True):
        assert main(["config"]) == 0
    out = capsys.readouterr().out
    lines = {(line[2:].split()[0] if line.startswith("# ") else line.split("=")[0].strip()): line
             for line in out.splitlines()[1:]}
    assert out.splitlines()[0] == f"# config file: {path} (named by GRAPHWREN_CONFIG)"
    assert list(lines) == list(gw.config.DEFAULTS)
    assert "retries = 1" in out and lines["retries"].endswith(f"# file {path}")
    assert 'shuffle_redis = "redis://127.0.0.1:6379/0"' in out
    assert lines["workers"].endswith("# env GRAPHWREN_WORKERS") and "workers = 3" in lines["workers"]
    assert "keep = true" in out and lines["keep"].endswith("# config.set")
    assert lines["backend"].endswith("# default") and 'backend = "local"' in lines["backend"]
    assert "# shuffle_storage is unset" in out
    assert len(out.splitlines()) == 1 + len(gw.config.DEFAULTS)
    # the printed lines are TOML: pasted into a config file they give the same settings
    import tomllib
    pasted = tomllib.loads("\n".join(out.splitlines()))
    assert pasted == {k: v for k, v in gw.config.resolve({"keep": True}).items() if v is not None}


def test_config_in_a_fresh_interpreter_warns_and_errs(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": "", "GRAPHWREN_CONFIG": "", "GRAPHWREN_WORKER": "4"}
    proc = _cli("config", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "GRAPHWREN_WORKER is not a graphwren setting" in proc.stderr and "GRAPHWREN_WORKERS" in proc.stderr
    assert f'storage = "file://{tmp_path}/.cache/graphwren"' in proc.stdout
    assert "# config file: none" in proc.stdout
    proc = _cli("config", env={**env, "GRAPHWREN_CONFIG": str(tmp_path / "missing.toml")})
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"graphwren config: config file {tmp_path}/missing.toml named by GRAPHWREN_CONFIG does not exist" in proc.stderr

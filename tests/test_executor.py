"""The PyWren-style API: map, call_async, map_reduce, wait, errors, retries, cleanup.

Executor tests run against file, S3 (moto server) and Redis (redis-server) stores.
Tasks run in the shared local worker pool; nothing here asserts timing.
"""
from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
import traceback

import pytest

import graphwren as gw
from graphwren import config
from graphwren.errors import StorageError
from graphwren.runtime import records
from graphwren.runtime.storage import open_store


pytestmark = pytest.mark.usefixtures("isolated_config")


def _square(x):
    return x * x


def _count_words(chunk):
    counts = {}
    for word in chunk.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def _merge_counts(parts):
    total = {}
    for part in parts:
        for word, n in part.items():
            total[word] = total.get(word, 0) + n
    return total


def _fail_on_three(x):
    if x == 3:
        raise ValueError(f"boom {x}")
    return x


class Custom(Exception):
    pass


def _job_keys(url):
    return open_store(url).list("")


# -- the quick start, on every store -----------------------------------------------------------
def test_map_get_all_results(store_url):
    ex = gw.Executor(storage=store_url, progress=False)
    futures = ex.map(lambda x: x * x, range(1000))
    assert len(futures) == 1000
    assert gw.get_all_results(futures) == [x * x for x in range(1000)]
    ex.wait_all()
    assert _job_keys(store_url) == []   # fetched results: the job's keys are gone


def test_call_async_and_map_reduce(store_url):
    ex = gw.Executor(storage=store_url, progress=False)
    f = ex.call_async(_square, 12)
    assert f.result(timeout=30) == 144
    assert f.done() and f.exception() is None
    chunks = ["a b a", "b c", "a"] * 20
    total = ex.map_reduce(_count_words, chunks, _merge_counts).result(timeout=60)
    assert total == {"a": 60, "b": 40, "c": 20}
    ex.wait_all()
    assert _job_keys(store_url) == []


def test_user_exception_on_every_store(store_url):
    ex = gw.Executor(storage=store_url, progress=False)
    futures = ex.map(_fail_on_three, range(6), chunksize=2)
    with pytest.raises(ValueError, match="boom 3") as info:
        futures[3].result(timeout=30)
    assert any("call 3 of map(_fail_on_three)" in n and "on input 3" in n for n in info.value.__notes__)
    # the other items of the same task and of other tasks are unaffected
    assert [f.result() for i, f in enumerate(futures) if i != 3] == [0, 1, 2, 4, 5]


def test_keep_true_leaves_the_job_keys(store_url):
    ex = gw.Executor(storage=store_url, progress=False, keep=True)
    assert gw.get_all_results(ex.map(_square, range(10))) == [x * x for x in range(10)]
    ex.wait_all()
    keys = _job_keys(store_url)
    assert keys
    jobs = {k.split("/", 1)[0] for k in keys}
    assert len(jobs) == 1
    created = records.job_time(jobs.pop())
    assert created is not None and abs(time.time() - created) < 600
    # the inputs travelled by reference through storage: one data object for the job
    assert len([k for k in keys if "/data/" in k]) == 1


# -- results, ordering, empty input, chunking --------------------------------------------------
def test_empty_and_chunking(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    assert ex.map(_square, []) == []
    assert ex.map_reduce(_square, [], len).result() == 0
    for chunksize in (1, 7, 1000):
        assert gw.get_all_results(ex.map(_square, range(50), chunksize=chunksize)) == [x * x for x in range(50)]
    with pytest.raises(ValueError, match="chunksize"):
        ex.map(_square, range(3), chunksize=0)


def test_map_reduce_sees_results_in_input_order(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    assert ex.map_reduce(_square, range(100), list, chunksize=3).result(timeout=60) == [x * x for x in range(100)]


def test_context_manager_waits_for_jobs(tmp_path):
    url = f"file://{tmp_path}/s"
    with gw.Executor(storage=url, progress=False) as ex:
        futures = ex.map(_square, range(20))
    assert all(f.done() for f in futures)
    assert _job_keys(url) == []


# -- errors -------------------------------------------------------------------------------------
def test_exception_carries_type_remote_traceback_and_note(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)

    def raises_custom(x):
        raise Custom(f"bad item {x}")

    f = ex.call_async(raises_custom, "abc")
    exc = f.exception(timeout=30)
    assert type(exc) is Custom
    text = "".join(traceback.format_exception(exc))
    assert "raises_custom" in text                     # the remote frame, rebuilt by tblib
    assert "graphwren: raised in call 0 of map(" in text and "'abc'" in text
    assert "raises_custom" in exc.remote_traceback
    with pytest.raises(Custom):
        gw.get_all_results([f])


def test_map_reduce_reports_a_failed_map_item(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    with pytest.raises(ValueError, match="boom 3") as info:
        ex.map_reduce(_fail_on_three, range(8), sum).result(timeout=60)
    assert any("call 3 of map(_fail_on_three)" in n for n in info.value.__notes__)


def _fails_once(arg):
    marker, x = arg
    if x == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first call fails")
    return x + 100


def test_user_exceptions_not_retried_by_default(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    marker = str(tmp_path / "failed-once")
    futures = ex.map(_fails_once, [(marker, x) for x in range(4)])
    with pytest.raises(RuntimeError, match="first call fails"):
        futures[2].result(timeout=30)
    assert os.path.exists(marker)
    assert [futures[i].result() for i in (0, 1, 3)] == [100, 101, 103]


def test_user_exceptions_retried_with_retries(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False, retries=1)
    marker = str(tmp_path / "failed-once")
    futures = ex.map(_fails_once, [(marker, x) for x in range(4)])
    assert gw.get_all_results(futures) == [100, 101, 102, 103]
    assert os.path.exists(marker)   # it did fail once


def test_unpicklable_function_is_a_type_error_at_submit(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    lock = threading.Lock()

    def uses_lock(x):
        with lock:
            return x

    with pytest.raises(TypeError, match="cannot pickle the function .*uses_lock"):
        ex.map(uses_lock, range(3))
    with pytest.raises(TypeError, match="reduce function .*uses_lock"):
        ex.map_reduce(_square, range(3), uses_lock)


def test_unpicklable_item_is_a_type_error_naming_it(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    with pytest.raises(TypeError, match="input item 2"):
        ex.map(_square, [1, 2, threading.Lock(), 4])
    with pytest.raises(TypeError, match="input item 0"):
        ex.call_async(_square, threading.Lock())


def test_unknown_scheme_fails_at_creation():
    with pytest.raises(StorageError, match="unsupported store URL scheme 'ftp'"):
        gw.Executor(storage="ftp://host/dir")


def test_unreachable_redis_fails_at_creation():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StorageError, match="unreachable"):
        gw.Executor(storage=f"redis://127.0.0.1:{port}/0")


def test_missing_bucket_fails_at_creation(s3_url):
    with pytest.raises(StorageError, match="no-such-bucket-gw"):
        gw.Executor(storage="s3://no-such-bucket-gw/prefix")


def test_unknown_setting_fails_at_creation():
    with pytest.raises(TypeError, match="unknown graphwren setting"):
        gw.Executor(storrage="file:///tmp/x")


# -- timeouts -----------------------------------------------------------------------------------
def _sleep_then(arg):
    seconds, value = arg
    time.sleep(seconds)
    return value


def test_result_and_wait_honour_timeouts(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    slow = ex.call_async(_sleep_then, (2.0, "slow"))
    with pytest.raises(concurrent.futures.TimeoutError):
        slow.result(timeout=0.1)
    assert not slow.done()
    done, pending = gw.wait([slow], return_when=gw.ALL_COMPLETED, timeout=0.1)
    assert done == [] and pending == [slow]
    assert slow.result(timeout=60) == "slow"


def test_wait_any_and_all(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    # one task per item, so the fast items do not wait behind the slow one
    futures = ex.map(_sleep_then, [(0.0, 1), (0.0, 2), (1.5, 3)], chunksize=1)
    done, pending = gw.wait(futures, return_when=gw.ANY_COMPLETED, timeout=30)
    assert done and all(f.done() for f in done)
    assert set(done) | set(pending) == set(futures)
    done, pending = gw.wait(futures, return_when=gw.ALL_COMPLETED, timeout=60)
    assert done == futures and pending == []
    assert gw.get_all_results(done) == [1, 2, 3]


# -- a worker process killed mid-task -----------------------------------------------------------
def _kill_self_once(arg):
    marker, x = arg
    if x == 5:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return x * 3


def test_sigkilled_worker_task_is_retried(store_url, tmp_path):
    ex = gw.Executor(storage=store_url, progress=False)
    marker = str(tmp_path / "killed-once")
    pids = set(ex.driver.backend.worker_pids())
    futures = ex.map(_kill_self_once, [(marker, x) for x in range(20)], chunksize=2)
    assert gw.get_all_results(futures) == [x * 3 for x in range(20)]
    assert os.path.exists(marker)                                  # it really died once
    assert set(ex.driver.backend.worker_pids()) != pids            # and was replaced
    ex.wait_all()
    assert _job_keys(store_url) == []


def _sleep_long(x):
    time.sleep(x)
    return os.getpid()


def test_worker_killed_from_outside(tmp_path):
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress=False)
    marker = tmp_path / "started"

    def note_and_sleep(x):
        if x == 0 and not os.path.exists(marker):
            marker.write_text(str(os.getpid()))
            time.sleep(60)   # killed long before this ends
        return x

    f = ex.map(note_and_sleep, range(4), chunksize=1)
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    pid = int(marker.read_text())
    assert pid in ex.driver.backend.worker_pids()
    os.kill(pid, signal.SIGKILL)
    assert gw.get_all_results(f) == [0, 1, 2, 3]


# -- settings -----------------------------------------------------------------------------------
def test_executor_uses_config_set_storage(tmp_path):
    url = f"file://{tmp_path}/via-config"
    with config.set(storage=url, keep=True, progress=False):
        ex = gw.Executor()
        assert ex.settings["storage"] == url
        assert gw.get_all_results(ex.map(_square, range(3))) == [0, 1, 4]
        ex.wait_all()
    assert _job_keys(url)   # keep=True came from config.set too
    assert gw.Executor(progress=False).settings["storage"] != url


def test_default_executor_needs_no_setup():
    ex = gw.Executor(progress=False)
    assert ex.settings["backend"] == "local" and ex.settings["storage"].startswith("file://")
    assert ex.call_async(_square, 7).result(timeout=30) == 49


# -- the graphwren command ------------------------------------------------------------------------
def test_cli_clean_removes_only_old_jobs(store_url, capsys):
    from graphwren.cli import main
    store = open_store(store_url)
    old = "20000101T000000-0123456789"
    fresh = records.new_job_id()
    for job in (old, fresh):
        store.put(records.data_key(job, "items"), b"x")
        store.put(records.done_key(job, "map", 0), b"y")
    store.put("not-a-job/thing", b"z")

    assert main(["clean", "--storage", store_url, "--dry-run"]) == 0
    assert "would delete job " + old in capsys.readouterr().out
    assert len(store.list(f"{old}/")) == 2

    assert main(["clean", "--storage", store_url]) == 0   # default: older than 24h
    out = capsys.readouterr().out
    assert f"deleted job {old} (2 keys)" in out and fresh not in out
    assert store.list(f"{old}/") == []
    assert len(store.list(f"{fresh}/")) == 2 and store.exists("not-a-job/thing")

    assert main(["clean", "--storage", store_url, "--older-than", "1h"]) == 0
    assert len(store.list(f"{fresh}/")) == 2
    time.sleep(1.1)   # job ids have one-second resolution
    assert main(["clean", "--storage", store_url, "--older-than", "0.5s"]) == 0
    assert store.list("") == ["not-a-job/thing"]


def test_cli_clean_uses_configured_storage(tmp_path, monkeypatch, capsys):
    from graphwren.cli import main
    url = f"file://{tmp_path}/configured"
    monkeypatch.setenv("GRAPHWREN_STORAGE", url)
    open_store(url).put("19990101T000000-aaaaaaaaaa/x", b"1")
    assert main(["clean"]) == 0
    assert open_store(url).list("") == []
    assert url in capsys.readouterr().out


def test_cli_bad_input(capsys):
    from graphwren.cli import main, parse_age
    assert parse_age("24h") == 86400 and parse_age("30m") == 1800 and parse_age("7d") == 7 * 86400
    assert parse_age("90") == 90
    with pytest.raises(SystemExit):
        main(["clean", "--older-than", "yesterday"])
    assert "not an age" in capsys.readouterr().err
    assert main(["clean", "--storage", "ftp://nowhere/x"]) == 1
    assert "unsupported store URL scheme" in capsys.readouterr().err
    assert main([]) == 2


def test_cli_version_and_demo(tmp_path, capsys):
    from graphwren.cli import main
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"graphwren {gw.__version__}"
    assert main(["demo", "--chunks", "14", "--storage", f"file://{tmp_path}/demo"]) == 0
    out = capsys.readouterr().out
    assert "word count over 14 chunks" in out and "the=" in out and "job ran in" in out
    assert "into 8 ordered partitions" in out  # the demo checks its sort against sorted() itself
    assert open_store(f"file://{tmp_path}/demo").list("") == []


def test_script_exiting_right_after_results_leaves_no_keys(tmp_path):
    import subprocess
    import sys
    url = f"file://{tmp_path}/s"
    script = ("import graphwren as gw\n"
              "if __name__ == '__main__':\n"
              f"    ex = gw.Executor(storage={url!r}, progress=False)\n"
              "    print(ex.map_reduce(abs, range(-5, 5), sum).result(timeout=60))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHWREN_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**env, "GRAPHWREN_CONFIG": os.devnull})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "25"
    assert open_store(url).list("") == []

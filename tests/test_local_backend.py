"""The local pool's own promises: fresh interpreters, start failures, kills, memory, BaseException."""
from __future__ import annotations

import os
import re
import sys
import time

import numpy as np
import pytest
from processes import alive

import graphwren as gw
from graphwren import config
from graphwren.errors import TaskLost, TaskMemoryError, WorkerStartError
from graphwren.runtime.backends import local


@pytest.fixture
def url(tmp_path, isolated_config):
    return f"file://{tmp_path}/store"


def test_workers_are_fresh_interpreters_that_never_import_main(url):
    def main_module_file(_):
        import __main__
        return getattr(__main__, "__file__", None), sys.argv[0]

    got = gw.get_all_results(gw.Executor(storage=url, workers=2, progress=False).map(main_module_file, [0]))
    assert got == [(None, "-c")]


def test_workers_that_cannot_start_fail_the_job_in_seconds_with_their_stderr(tmp_path, url, monkeypatch):
    broken = tmp_path / "broken-site"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text("raise SystemExit('this interpreter is misconfigured: kaboom')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken))
    old = local._pools.pop(3, None)   # a pool of this size from another test would hide the fault
    if old is not None:
        old.close()
    start = time.monotonic()
    with pytest.raises(WorkerStartError, match="kaboom") as info:
        gw.Executor(storage=url, workers=3, progress=False).map(abs, [-1]).pop().result(timeout=60)
    assert time.monotonic() - start < 30
    assert re.search(r"\d+ in a row died before taking a task", str(info.value))
    monkeypatch.delenv("PYTHONPATH")
    # The next job gets a fresh pool, which starts fine now.
    assert gw.get_all_results(gw.Executor(storage=url, workers=3, progress=False).map(abs, [-1, -2])) == [1, 2]


def test_system_exit_in_user_code_reaches_the_user_as_itself(url):
    def leave(x):
        sys.exit(f"leaving on {x}")

    fut = gw.Executor(storage=url, workers=2, progress=False).map(leave, [7]).pop()
    with pytest.raises(SystemExit, match="leaving on 7"):
        fut.result(timeout=60)


def test_keyboard_interrupt_in_user_code_reaches_the_user_as_itself(url):
    def interrupt(x):
        raise KeyboardInterrupt(f"stop at {x}")

    with pytest.raises(KeyboardInterrupt, match="stop at 3"):
        gw.bag.from_sequence([3], npartitions=1).map(interrupt).compute(storage=url, progress=False)


def test_os_exit_in_user_code_is_a_lost_task_naming_the_exit_code(url):
    def die(x):
        os._exit(17)

    with pytest.raises(TaskLost, match="exit code 17"):
        gw.bag.from_sequence([1], npartitions=1).map(die).compute(storage=url, progress=False, task_retries=1)


def test_a_task_over_max_task_memory_is_killed_with_a_clear_error(url):
    def hog(x):
        block = np.ones(400 * 2**20 // 8)   # 400 MiB, touched
        time.sleep(3)                        # held long enough for the watchdog to see it
        return [float(block[0])]

    start = time.monotonic()
    with pytest.raises(TaskMemoryError, match=r"over max_task_memory=200 MiB") as info:
        gw.bag.from_sequence([1], npartitions=1).map_partitions(hog).compute(
            storage=url, progress=False, max_task_memory=200 * 2**20)
    assert time.monotonic() - start < 30
    assert "stage" in str(info.value)
    # the pool is whole afterwards
    assert gw.bag.from_sequence([1, 2], npartitions=2).sum().compute(storage=url, progress=False) == 3


def test_a_task_that_never_returns_is_killed_and_the_pool_serves_the_next_job(url):
    def forever(x):
        time.sleep(3600)

    ex = gw.Executor(storage=url, workers=2, progress=False, task_timeout=2, task_retries=0)
    start = time.monotonic()
    with pytest.raises(TaskLost, match="task_timeout"):
        ex.map(forever, [1]).pop().result(timeout=60)
    assert time.monotonic() - start < 30
    assert gw.get_all_results(ex.map(abs, [-1, -2, -3], chunksize=1)) == [1, 2, 3]


def test_workers_die_with_their_driver(tmp_path):
    import subprocess
    import textwrap
    script = textwrap.dedent(f"""
        import time, graphwren as gw
        ex = gw.Executor(storage="file://{tmp_path}/s", workers=2, progress=False)
        futures = ex.map(time.sleep, [60, 60], chunksize=1)
        time.sleep(2)
        print(*ex.driver.backend.worker_pids(), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def test_blas_threads_are_shared_out_unless_the_user_chose(url, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pool = local.LocalBackend(2)
    try:
        ex = gw.Executor(storage=url, progress=False)
        ex.driver.backend = pool
        got = gw.get_all_results(ex.map(lambda _: os.environ.get("OMP_NUM_THREADS"), [0]))
        assert got == [str(max(1, (os.cpu_count() or 1) // 2))]
    finally:
        pool.close()
    config.reset()

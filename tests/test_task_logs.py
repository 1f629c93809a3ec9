"""What tasks print and log is kept per attempt, capped, shown by logs() and `graphwren logs`,
and attached to the exception of a task that fails."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren import cli, config
from graphwren.runtime import logs, worker
from graphwren.runtime.driver import Driver
from graphwren.runtime.plan import Plan, Stage

pytestmark = pytest.mark.usefixtures("isolated_config")


def chatty(ctx):
    for i in range(3):
        print(f"task {ctx.task} line {i}")
    logging.getLogger("user.code").warning("task %d warns", ctx.task)
    return [ctx.task]


def expected_log(task: int) -> str:
    return "".join(f"task {task} line {i}\n" for i in range(3)) + f"WARNING:user.code:task {task} warns\n"


@pytest.mark.parametrize("where", ["file", "s3"])
def test_each_task_keeps_its_own_prints_and_log_records(where, tmp_path, request):
    url = f"file://{tmp_path}/s" if where == "file" else request.getfixturevalue("s3_url")
    # no backup copies: a cold worker's first task would look like a straggler on a busy machine
    driver = Driver(config.resolve({"storage": url, "progress": False, "workers": 2, "speculation": False}))
    driver.run(Plan([Stage("talk", 6, chatty, label="chatty")], ["talk"]), lambda *a: None)
    job = gw.last_job()
    for a in job.record.winners("talk"):
        assert job.logs(stage=0, task=a["task"]) == (
            f"== stage 0 task {a['task']} attempt {a['attempt']} (committed) ==\n" + expected_log(a["task"]))
    everything = job.logs()
    assert all(expected_log(t) in everything for t in range(6))


def shout(ctx):
    print("head-" + "x" * 5000 + "-tail", end="")
    return []


def test_a_long_log_keeps_its_head_and_tail(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False, "task_log_limit": 1000}))
    driver.run(Plan([Stage("s", 1, shout)], ["s"]), lambda *a: None)
    (a,) = driver.record.winners("s")
    total = len("head-" + "x" * 5000 + "-tail")
    assert a["log_truncated"] == total - 1000
    assert a["log"].startswith("head-" + "x" * 495) and a["log"].endswith("x" * 495 + "-tail")
    assert f"cut {total - 1000:,} characters" in a["log"]


def test_no_capture_with_a_zero_limit(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False, "task_log_limit": 0}))
    driver.run(Plan([Stage("s", 2, chatty)], ["s"]), lambda *a: None)
    assert all("log" not in a for a in driver.record.attempts)


def fails_after_printing(ctx):
    print(f"task {ctx.task} starting")
    if ctx.task == 2:
        for i in range(30):
            print(f"step {i}")
        raise ValueError("task two broke")
    return [ctx.task]


def test_a_failing_tasks_output_rides_on_its_exception(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False}))
    with pytest.raises(ValueError, match="task two broke") as info:
        driver.run(Plan([Stage("s", 3, fails_after_printing)], ["s"]), lambda *a: None)
    exc = info.value
    assert exc.task_log == "task 2 starting\n" + "".join(f"step {i}\n" for i in range(30))
    note = next(n for n in exc.__notes__ if "printed" in n)
    assert "(last 20 of 31 lines)" in note and "    step 29" in note and "step 9\n" not in note
    failed = [a for a in driver.record.attempts if a["outcome"] == "failed"]
    assert [a["task"] for a in failed] == [2] and failed[0]["log"] == exc.task_log
    assert "step 29" in gw.last_job().logs(stage=0, task=2)


class ConcurrentThreads:
    """Runs every event of a call at once, each on its own thread of this process."""

    parallelism = 4

    def invoke(self, events):
        threads = [threading.Thread(target=worker.handle, args=(e,)) for e in events]
        for t in threads:
            t.start()


def interleaved(ctx):
    for i in range(20):
        print(f"<{ctx.task}:{i}>")
        time.sleep(0.001)
    return [ctx.task]


def test_concurrent_attempts_in_one_process_keep_their_output_apart(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False}),
                    backend=ConcurrentThreads())
    driver.run(Plan([Stage("s", 4, interleaved)], ["s"]), lambda *a: None)
    for a in driver.record.winners("s"):
        assert a["log"] == "".join(f"<{a['task']}:{i}>\n" for i in range(20))


@settings(max_examples=60, deadline=None)
@given(writes=st.lists(st.text(max_size=50), max_size=30), limit=st.integers(1, 200))
def test_a_capture_is_the_head_and_tail_of_what_was_written(writes, limit):
    cap = logs.Capture(limit)
    for w in writes:
        cap.write(w)
    full = "".join(writes)
    if len(full) <= limit:
        assert cap.text() == full and cap.cut == 0
    else:
        head, tail = full[:limit // 2], full[len(full) - (limit - limit // 2):]
        assert cap.cut == len(full) - limit
        assert cap.text() == head + f"\n[... graphwren cut {cap.cut:,} characters here: task_log_limit={limit:,} ...]\n" + tail


def test_graphwren_logs_prints_a_kept_jobs_task_output(tmp_path, capsys):
    url = f"file://{tmp_path}/s"
    driver = Driver(config.resolve({"storage": url, "progress": False, "speculation": False}))
    job = driver.run(Plan([Stage("talk", 3, chatty)], ["talk"]), lambda *a: None, keep=True)
    capsys.readouterr()
    assert cli.main(["logs", job, "--storage", url, "--stage", "0", "--task", "1"]) == 0
    assert capsys.readouterr().out == "== stage 0 task 1 attempt 0 (committed) ==\n" + expected_log(1)
    assert cli.main(["logs", job, "--storage", url]) == 0
    out = capsys.readouterr().out
    assert all(expected_log(t) in out for t in range(3))
    assert cli.main(["logs", "20200101T000000-0000000000", "--storage", url]) == 1
    assert "keep=True" in capsys.readouterr().err
    assert cli.main(["logs", job, "--storage", url, "--stage", "7"]) == 1
    assert "has no stage 7" in capsys.readouterr().err


class LambdaContext:
    """What Lambda hands its handler: a request id and the time left."""

    def __init__(self, request_id: str):
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class InProcessLambda:
    """Calls the Lambda entry point itself on a thread per event, as the Lambda service would."""

    parallelism = 2

    def invoke(self, events):
        from graphwren.runtime import lambda_handler
        for e in events:
            ctx = LambdaContext(f"req-{e['stage']}-{e['task']}-{e['attempt']}")
            threading.Thread(target=lambda_handler.handler, args=(e, ctx)).start()


def test_a_lambda_attempt_names_its_cloudwatch_request(tmp_path):
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s", "progress": False}), backend=InProcessLambda())
    driver.run(Plan([Stage("s", 3, chatty)], ["s"]), lambda *a: None)
    for a in driver.record.winners("s"):
        assert a["stats"]["request_id"] == f"req-s-{a['task']}-0"
        assert a["log"] == expected_log(a["task"])

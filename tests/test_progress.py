"""Progress: which display a job gets, what the bar and the log lines say, and the driver's reports."""
from __future__ import annotations

import io
import logging
import sys
import time

import pytest

import graphwren as gw
from graphwren.runtime import progress
from graphwren.runtime.plan import GATHER, Edge, Plan, Stage

pytestmark = pytest.mark.usefixtures("isolated_config")


class TTY(io.StringIO):
    """A stream that says it is a terminal, as stderr does in a shell."""

    def isatty(self):
        return True


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _noop(ctx):
    return []


def two_stage_plan() -> Plan:
    return Plan([Stage("0-stage", 4, _noop, label="map(parse)"),
                 Stage("1-stage", 2, _noop, [Edge("0-stage", GATHER)], label="reduce(sum)")], ["1-stage"])


def _square(x):
    return x * x


def _slow_square(x):
    time.sleep(0.003)   # 100 records per task: each map task lasts past a few of the driver's polls
    return x * x


def _square_for_a_while(x):
    time.sleep(0.05)    # 5 records per task: the map stage outlasts the driver's first progress report
    return x * x


def _total(xs):
    return sum(xs)


# -- which display ------------------------------------------------------------------------------
def test_a_terminal_gets_a_bar_and_a_pipe_gets_log_lines():
    assert progress.choose_mode(True, False, TTY()) == progress.BAR
    assert progress.choose_mode(True, False, io.StringIO()) == progress.LOG
    assert progress.choose_mode(False, False, TTY()) == progress.SILENT


def test_a_background_job_draws_nothing_in_a_repl_but_does_in_a_script(monkeypatch):
    assert progress.choose_mode(True, True, TTY()) == progress.BAR          # a script: nothing to cover
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)                 # what the REPL sets
    assert progress.choose_mode(True, True, TTY()) == progress.SILENT
    assert progress.choose_mode(True, False, TTY()) == progress.BAR         # compute() blocks the prompt


def test_a_closed_or_odd_stream_is_not_a_terminal():
    closed = io.StringIO()
    closed.close()
    assert progress.choose_mode(True, False, closed) == progress.LOG
    assert progress.choose_mode(True, False, object()) == progress.LOG


# -- the bar ------------------------------------------------------------------------------------
def test_the_bar_counts_every_task_of_every_stage_on_the_stream():
    stream = TTY()
    bar = progress.JobProgress(two_stage_plan(), "J", "compute", progress.BAR, delay=0, stream=stream)
    bar.update(4, "0-stage")
    bar.update(2, "1-stage")
    bar.close()
    text = stream.getvalue()
    assert "compute" in text and "6/6" in text, text


def test_a_terminal_that_reports_no_size_still_gets_a_bar():
    import os
    import pty
    master, slave = pty.openpty()          # a new pseudo-terminal is 0x0 until its size is set
    try:
        with os.fdopen(slave, "w") as stream:
            bar = progress.JobProgress(two_stage_plan(), "J", "compute", progress.BAR, delay=0, stream=stream)
            bar.update(4, "0-stage")
            bar.update(2, "1-stage")
            bar.close()
            stream.flush()
            out = os.read(master, 65536)
    finally:
        os.close(master)
    # the bar was drawn (how many of its updates show depends on tqdm's refresh interval)
    assert b"compute" in out and b"/6 [" in out, out


def test_a_silent_job_writes_nothing(monkeypatch):
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    stream = TTY()
    settings = {"progress": True, "progress_delay": 0.0}
    bar = progress.job_progress(two_stage_plan(), "J", "map(f)", settings, background=True, stream=stream)
    bar.update(4, "0-stage")
    bar.close()
    assert bar.mode == progress.SILENT and stream.getvalue() == ""


# -- log lines ------------------------------------------------------------------------------------
def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "graphwren"]


def test_log_lines_name_the_running_stage_its_counts_and_the_time(caplog):
    caplog.set_level(logging.INFO, logger="graphwren")
    clock = Clock()
    job = progress.JobProgress(two_stage_plan(), "J1", "compute", progress.LOG, delay=0, clock=clock,
                               log_every=5.0)
    job.update(1, "0-stage")
    clock.t = 1.0
    assert not job.tick() and messages(caplog) == []            # a short job logs nothing
    job.update(1, "0-stage")
    clock.t = 6.5
    job.tick()
    assert messages(caplog) == ["job J1 stage 1/2 map(parse): 2/4 tasks, 6.5 s"]
    job.update(2, "0-stage")                                      # stage 1 done: stage 2 runs
    clock.t = 12.0
    job.tick()
    assert messages(caplog)[-1] == "job J1 stage 2/2 reduce(sum): 0/2 tasks, 12.0 s"
    job.update(2, "1-stage")
    job.close()
    assert messages(caplog)[-1] == "job J1 done: 6 tasks in 12.0 s"
    assert len(messages(caplog)) == 3


def test_an_interrupted_job_says_how_far_it_got(caplog):
    caplog.set_level(logging.INFO, logger="graphwren")
    clock = Clock()
    job = progress.JobProgress(two_stage_plan(), "J2", "", progress.LOG, delay=0, clock=clock, log_every=5.0)
    job.update(3, "0-stage")
    clock.t = 7.0
    job.tick()
    job.close()
    assert messages(caplog) == ["job J2 stage 1/2 map(parse): 3/4 tasks, 7.0 s",
                                "job J2 stopped: 3/6 tasks after 7.0 s"]


def test_progress_delay_holds_back_the_first_line(caplog):
    caplog.set_level(logging.INFO, logger="graphwren")
    clock = Clock()
    job = progress.JobProgress(two_stage_plan(), "J3", "", progress.LOG, delay=30.0, clock=clock, log_every=5.0)
    clock.t = 29.0
    assert not job.tick()
    clock.t = 30.0
    assert job.tick()
    job.close()
    assert messages(caplog)[0].startswith("job J3 stage 1/2")


def test_a_long_stage_logs_even_while_no_task_finishes(caplog):
    caplog.set_level(logging.INFO, logger="graphwren")
    job = progress.JobProgress(two_stage_plan(), "J4", "", progress.LOG, delay=0, log_every=0.05)
    deadline = time.monotonic() + 10
    while not messages(caplog) and time.monotonic() < deadline:
        time.sleep(0.02)
    job.close()
    assert messages(caplog) and messages(caplog)[0].startswith("job J4 stage 1/2 map(parse): 0/4 tasks")


def test_long_labels_are_cut_in_log_lines():
    plan = Plan([Stage("0-stage", 1, _noop, label="map(" + "x" * 200 + ")")], ["0-stage"])
    job = progress.JobProgress(plan, "J", "", progress.SILENT)
    (line,) = job.lines()
    assert len(line) < 120 and "..." in line


# -- through the driver -------------------------------------------------------------------------------
def test_the_driver_reports_each_stage_of_a_real_job(tmp_path, monkeypatch, caplog):
    """map_reduce off a terminal: the log names both stages, with counts that add up."""
    caplog.set_level(logging.INFO, logger="graphwren")
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)     # a line at every report, not every 5 s
    monkeypatch.setattr(sys, "stderr", io.StringIO())   # not a terminal, whatever runs pytest
    ex = gw.Executor(storage=f"file://{tmp_path}/s", progress_delay=0.0)
    got = ex.map_reduce(_square_for_a_while, range(40), _total, chunksize=5).result(timeout=120)
    assert got == sum(x * x for x in range(40))
    ex.wait_all()
    lines = messages(caplog)
    assert any(" stage 1/2 map(_square_for_a_while): " in line for line in lines), lines
    assert lines[-1].endswith("done: 9 tasks in " + lines[-1].rsplit(" in ", 1)[1]), lines
    assert sys.stderr.getvalue() == ""                   # no bar drawn into the pipe


def test_the_driver_draws_a_bar_on_a_terminal(tmp_path, monkeypatch):
    stream = TTY()
    monkeypatch.setattr(sys, "stderr", stream)
    got = gw.bag.range(100, npartitions=5).map(_square).sum().compute(storage=f"file://{tmp_path}/s",
                                                                      progress_delay=0.0)
    assert got == sum(x * x for x in range(100))
    assert "6/6" in stream.getvalue(), stream.getvalue()


def test_the_driver_says_a_job_on_another_thread_is_in_the_background(tmp_path, monkeypatch):
    import threading
    from graphwren import config
    from graphwren.runtime.driver import Driver
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    monkeypatch.setattr(sys, "stderr", TTY())
    driver = Driver(config.resolve({"storage": f"file://{tmp_path}/s"}), backend=object())
    modes = {}

    def open_bar(where):
        bar = driver._progress_bar(two_stage_plan(), "J", "job")
        modes[where] = bar.mode
        bar.close()

    open_bar("main")
    thread = threading.Thread(target=open_bar, args=("thread",))
    thread.start()
    thread.join()
    assert modes == {"main": progress.BAR, "thread": progress.SILENT}


# -- a real REPL on a pseudo-terminal -------------------------------------------------------------------
REPL_SESSION = """\
import time, graphwren as gw
def slow(x):
    time.sleep(0.05)
    return x

gw.bag.range(20, npartitions=4).map(slow).sum().compute(progress_delay=0)
print("END" + "-FG")
ex = gw.Executor(progress_delay=0); fs = ex.map(slow, range(8), chunksize=1)
print(sum(gw.get_all_results(fs)), "END" + "-BG")
exit()
"""


def test_in_a_real_repl_compute_draws_a_bar_and_a_background_map_draws_none(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHWREN_")}
    env.update(PYTHONPATH=root, GRAPHWREN_STORAGE=f"file://{tmp_path}/s", GRAPHWREN_WORKERS="2", TERM="dumb")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))   # a terminal's size
    proc = subprocess.Popen([sys.executable, "-q", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=tmp_path, close_fds=True)
    os.close(slave)
    os.write(master, REPL_SESSION.encode())
    out = b""
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the REPL exited and closed its side
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(master)
    text = out.decode(errors="replace")
    assert "END-FG" in text and "28 END-BG" in text, text
    foreground, background = text.split("END-FG", 1)
    assert "5/5" in foreground and "task/s" in foreground, foreground       # compute() blocks: its bar shows
    assert "map(slow):" not in background and "task/s" not in background, background  # nothing over the prompt


# -- per-stage progress: tasks and bytes of each running stage ----------------------------------
def test_the_bar_shows_each_running_stage_with_its_tasks_and_bytes():
    stream = TTY()
    bar = progress.JobProgress(two_stage_plan(), "J", "compute", progress.BAR, delay=0, stream=stream)
    bar.update(3, "0-stage", 3 * 2048)
    assert bar._bar.postfix == "stage 1/2: 3/4 tasks, 6.0 KiB"   # tqdm draws it at its next refresh
    bar.update(1, "0-stage", 1024)
    assert bar._bar.postfix == "stage 2/2: 0/2 tasks"             # stage 1 finished: stage 2 runs
    bar._bar.refresh()
    assert "stage 2/2: 0/2 tasks" in stream.getvalue(), stream.getvalue()
    bar.update(2, "1-stage", 10)
    bar.close()


def test_log_lines_carry_each_stages_bytes(caplog):
    caplog.set_level(logging.INFO, logger="graphwren")
    clock = Clock()
    job = progress.JobProgress(two_stage_plan(), "J5", "", progress.LOG, delay=0, clock=clock, log_every=5.0)
    job.update(2, "0-stage", 3 * 2**20)
    clock.t = 5.0
    job.tick()
    assert messages(caplog) == ["job J5 stage 1/2 map(parse): 2/4 tasks, 3.0 MiB, 5.0 s"]
    job.close()


def test_the_driver_reports_the_bytes_its_commit_records_count(tmp_path, monkeypatch, caplog):
    """A real job off a terminal: each stage's line says what its committed tasks read and wrote."""
    caplog.set_level(logging.INFO, logger="graphwren")
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    got = gw.bag.range(400, npartitions=4).map(_slow_square).sum().compute(storage=f"file://{tmp_path}/s",
                                                                           progress_delay=0.0)
    assert got == sum(x * x for x in range(400))
    summary = gw.last_job().summary().stages
    moved = {s.index: s.bytes_read + s.bytes_written for s in summary}
    lines = [m for m in messages(caplog) if "tasks," in m]
    # the last line of each stage before it finished shows the bytes of the tasks committed by then
    assert any(f"stage 1/2" in line for line in lines), lines
    seen = [int(float(line.split(" tasks, ")[1].split(" ")[0])) for line in lines if " B, " in line]
    assert all(0 < b <= max(moved.values()) for b in seen), (lines, moved)

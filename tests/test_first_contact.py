"""graphwren run the ways people run Python: each form in a real interpreter of its own.

Every test starts ``python`` in a subprocess (a script without a main guard,
stdin, ``-c``, the REPL on a pseudo-terminal) with its own store and checks
the answer, the exit, what was printed, and that nothing was left behind:
no job keys, no trash folders, no worker processes.
"""
from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from processes import alive, children_of

RUN_S = 120  # bound on any one interpreter in these tests

SQUARES = textwrap.dedent("""
    import graphwren as gw
    ex = gw.Executor(workers=2)
    print("result", gw.get_all_results(ex.map(lambda x: x * x, range(10))))
    print("bag", gw.bag.range(10, npartitions=2).sum().compute())
""")
EXPECTED = ["result [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]", "bag 45"]


@pytest.fixture
def env(tmp_path):
    """A clean environment whose default store is a fresh folder."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHWREN_")}
    e["GRAPHWREN_STORAGE"] = f"file://{tmp_path}/store"
    e["GRAPHWREN_CONFIG"] = ""  # no user config file
    e["GRAPHWREN_PROGRESS"] = "0"
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run(args, env, cwd, **kw):
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=RUN_S, **kw)


def store_left(tmp_path) -> list[str]:
    root = tmp_path / "store"
    return sorted(os.listdir(root)) if root.exists() else []


def assert_clean_exit(proc, tmp_path):
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:len(EXPECTED)] == EXPECTED, proc.stdout
    assert proc.stderr == "", proc.stderr          # nothing printed on an ordinary run
    assert store_left(tmp_path) == []              # job keys deleted, no trash left


def test_script_without_main_guard(tmp_path, env):
    script = tmp_path / "plain.py"
    script.write_text(SQUARES)
    assert_clean_exit(run([str(script)], env, tmp_path), tmp_path)


def test_script_from_stdin(tmp_path, env):
    assert_clean_exit(run(["-"], env, tmp_path, input=SQUARES), tmp_path)


def test_dash_c(tmp_path, env):
    assert_clean_exit(run(["-c", SQUARES], env, tmp_path), tmp_path)


def test_a_long_script_body_without_a_guard_runs_once(tmp_path, env):
    # Before, every worker re-ran the user's __main__: side effects ran once per worker.
    script = tmp_path / "side_effects.py"
    script.write_text("open('ran.txt', 'a').write('x')\n" + SQUARES)
    assert_clean_exit(run([str(script)], env, tmp_path), tmp_path)
    assert (tmp_path / "ran.txt").read_text() == "x"


def test_users_own_module_next_to_the_script(tmp_path, env):
    (tmp_path / "mylib.py").write_text("def triple(x):\n    return 3 * x\n")
    (tmp_path / "job.py").write_text(textwrap.dedent("""
        import graphwren as gw
        from mylib import triple
        print(gw.get_all_results(gw.Executor(workers=2).map(triple, range(5))))
    """))
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    proc = run([str(tmp_path / "job.py")], env, sub)   # run from another folder: sys.path[0] is the script's
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 3, 6, 9, 12]"


def test_fire_and_forget_runs_every_task_before_exit(tmp_path, env):
    out = tmp_path / "out"
    out.mkdir()
    script = textwrap.dedent(f"""
        import graphwren as gw, time
        def touch(x):
            time.sleep(0.01)
            open(f"{out}/{{x}}", "w").close()
        gw.Executor(workers=2).map(touch, range(100), chunksize=1)
    """)
    proc = run(["-c", script], env, tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert len(os.listdir(out)) == 100
    assert store_left(tmp_path) == []


def test_shutdown_cancel_futures_stops_the_job(tmp_path, env):
    script = textwrap.dedent("""
        import time, graphwren as gw
        ex = gw.Executor(workers=2)
        futures = ex.map(time.sleep, [30] * 4, chunksize=1)
        time.sleep(1)
        t = time.monotonic()
        ex.shutdown(wait=True, cancel_futures=True)
        print("stopped in", round(time.monotonic() - t))
        try:
            futures[0].result()
        except Exception as exc:
            print(type(exc).__name__)
    """)
    proc = run(["-c", script], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "JobCancelled" in proc.stdout and "stopped in 0" in proc.stdout, proc.stdout
    assert store_left(tmp_path) == []


def _sigint_default():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.own_process   # see the Makefile: after the full suite in one process it timed out
@pytest.mark.parametrize("where", ["compute", "background"])
def test_ctrl_c_cancels_removes_keys_and_leaves_no_worker(tmp_path, env, where):
    body = {
        "compute": "gw.bag.from_sequence(range(8), npartitions=8).map(slow).compute()",
        "background": "gw.get_all_results(gw.Executor(workers=2).map(slow, range(8), chunksize=1))",
    }[where]
    marks = tmp_path / "running"
    marks.mkdir()
    script = textwrap.dedent(f"""
        import time, graphwren as gw
        def slow(x):
            open({str(marks)!r} + f"/{{x}}", "w").close()   # this task is running
            time.sleep(60)
            return x
        print("started", flush=True)
        {body}
    """)
    # a script run from a terminal has SIGINT at its default; a test run started in the background by a
    # shell without job control inherits it ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-c", script], env={**env, "GRAPHWREN_WORKERS": "2"}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)
    try:
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        workers: list[int] = []
        while time.monotonic() < deadline and not (tmp_path / "store").exists() or len(workers) < 2:
            workers = children_of(proc.pid)
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        while len(list(marks.iterdir())) < 2:   # both workers are inside a task, not still starting
            assert time.monotonic() < deadline + 30, "no task started running"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)   # what a terminal's Ctrl-C does: the whole process group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert err.count("KeyboardInterrupt") == 1, err       # one, not one per worker
    assert "Traceback" in err and err.count("Traceback") == 1, err
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(w) for w in workers)
    assert store_left(tmp_path) == []


def test_repl_runs_jobs_and_draws_nothing_over_the_prompt(tmp_path, env):
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive interpreter on a terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-q", "-i"], {**env, "GRAPHWREN_PROGRESS": "1",
                                                                 "GRAPHWREN_PROGRESS_DELAY": "0"})
    screen = []

    def read_until(token: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096).decode("utf-8", "replace")
                except OSError:
                    break
                screen.append(chunk)
                if token in "".join(screen):
                    return "".join(screen)
        raise AssertionError(f"{token!r} never appeared; the screen was:\n{''.join(screen)}")

    try:
        read_until(">>> ")
        os.write(fd, b"import graphwren as gw\n")
        read_until(">>> ")
        os.write(fd, b"fs = gw.Executor(workers=2).map(lambda x: x + 1, range(20), chunksize=1)\n")
        read_until(">>> ")
        os.write(fd, b"print('got', sum(gw.get_all_results(fs)))\n")
        text = read_until("got 210")
        os.write(fd, b"print('bag', gw.bag.range(10, npartitions=2).sum().compute())\n")
        text = read_until("bag 45")
        background = text.split("fs = gw.Executor")[1].split("got 210")[0]
        assert "task/s" not in background and "%|" not in background, text   # no bar from the background job
        os.write(fd, b"exit()\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                select.select([fd], [], [], 0.2)
                os.read(fd, 4096)
            except OSError:
                pass
        else:
            raise AssertionError("the REPL did not exit")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
    assert "Traceback" not in "".join(screen)
    assert store_left(tmp_path) == []


def test_python_dash_m_graphwren_and_version(tmp_path, env):
    import graphwren
    for args in (["-m", "graphwren", "--version"], ["-m", "graphwren", "version"]):
        proc = run(args, env, tmp_path)
        assert proc.returncode == 0 and proc.stdout.strip() == f"graphwren {graphwren.__version__}", proc
    proc = run(["-m", "graphwren", "--help"], env, tmp_path)
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_dask_style_imports(tmp_path, env):
    proc = run(["-c", "import graphwren.bag as db, graphwren.array as da, numpy as np\n"
                      "print(db.from_sequence([1, 2, 3]).sum().compute(), "
                      "float((da.from_numpy(np.ones(4), chunks=2) * 2).sum().compute()))"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["6", "8.0"]


def test_a_worker_import_does_not_load_the_driver_stack():
    # what a worker loads: its entry points, and every tasks/ module a pickled stage may name
    code = ("import sys, pkgutil, importlib, graphwren.tasks\n"
            "import graphwren.runtime.worker, graphwren.runtime.backends.local_worker, graphwren.runtime.lambda_handler\n"
            "for m in pkgutil.iter_modules(graphwren.tasks.__path__): importlib.import_module('graphwren.tasks.' + m.name)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('graphwren.logical', 'graphwren.planner',"
            " 'graphwren.collections', 'graphwren.aws', 'graphwren.executor', 'graphwren.config', 'networkx'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_S)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

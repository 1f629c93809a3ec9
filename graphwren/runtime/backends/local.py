"""A pool of warm worker processes on this machine: the default backend.

Each worker is a fresh interpreter (``local_worker``) that runs
``worker.handle`` on the small events it is sent, exactly as a Lambda would:
it never imports the user's ``__main__``. The pool only *invokes*: results
go through storage and the driver learns of them from the commit records.
The pool does report what a cloud backend cannot: that a task finished (a
hint that lets the driver poll at once), that a worker died or could not
record its outcome (so the driver retries without waiting for a timeout),
that a task went over ``max_task_memory`` (it is killed), and that workers
cannot start at all (the job fails in seconds with the worker's stderr).
"""
from __future__ import annotations

import atexit
import collections
import multiprocessing.connection
import os
import socket
import subprocess
import sys
import threading
import time

from ...errors import WorkerStartError
from .local_worker import FORWARDED_ENV, bootstrap_command

MAX_START_FAILURES = 3     # workers dying before they are ready, in a row, before the pool gives up
MEMORY_CHECK_S = 0.2       # how often busy workers' memory is measured
STDERR_TAIL_LINES = 30     # what a start failure or death quotes of the worker's stderr
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _env_snapshot() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}


def _place_snapshot() -> dict:
    return {"cwd": os.getcwd(), "sys_path": [p for p in sys.path if isinstance(p, str)]}


def _rss(pid: int) -> int | None:
    """Resident bytes of process ``pid`` (Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _same_attempt(a: dict | None, b: dict) -> bool:
    return a is not None and all(a.get(k) == b.get(k) for k in ("job", "stage", "task", "attempt"))


class _Worker:
    """One worker process, the pipe to it, and the tail of what it wrote to stderr."""

    def __init__(self, blas_threads: int):
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # Each worker gets its share of the cores for BLAS, unless the user chose:
        # N workers x all-cores BLAS threads would oversubscribe the machine.
        for k in _BLAS_THREADS:
            env.setdefault(k, str(blas_threads))
        try:
            self.process = subprocess.Popen(bootstrap_command(theirs.fileno()), pass_fds=(theirs.fileno(),),
                                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        finally:
            theirs.close()
        self.conn = multiprocessing.connection.Connection(ours.detach())
        self.ready = False
        self.event: dict | None = None   # the event it is running, if any
        self.sent: tuple | None = None   # the (env, place) it was last sent
        # Killed on purpose, while running this event: that event's loss is already known
        # (cancelled, timed out, or over memory), and no new event goes to a doomed worker.
        self.doomed = False
        self.killed_for: dict | None = None
        self.over_memory: int | None = None
        self.tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._reader = threading.Thread(target=self._forward_stderr, name="graphwren-worker-stderr", daemon=True)
        self._reader.start()

    def _forward_stderr(self) -> None:
        # What tasks write to stderr reaches the driver's stderr (a terminal, or a
        # notebook cell), and the last lines are kept to explain a worker's death.
        for raw in iter(self.process.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.tail.append(line)
            stream = sys.stderr
            if stream is not None:
                try:
                    stream.write(line)
                    stream.flush()
                except (OSError, ValueError):
                    pass

    def kill(self) -> None:
        try:
            self.process.kill()
        except OSError:
            pass

    def doom(self) -> None:
        """Kill it on purpose: whatever it runs now is not reported lost when it dies."""
        self.doomed, self.killed_for = True, self.event
        self.kill()

    def reap(self) -> str:
        """Wait for the dead process; its exit status and stderr tail, as one phrase."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait(timeout=5)
        self._reader.join(timeout=1)
        self.conn.close()
        status = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        tail = "".join(self.tail).strip()
        return status + (f"; its stderr ended with:\n{tail}" if tail else "; it wrote nothing to stderr")


class LocalBackend:
    """Runs tasks on ``workers`` local processes, started once and kept warm."""

    name = "local"

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.parallelism = workers
        self._blas_threads = max(1, (os.cpu_count() or 1) // workers)
        self._pending: collections.deque = collections.deque()
        self._lost: dict[str, list[dict]] = collections.defaultdict(list)
        self._cond = threading.Condition()
        self._progress = 0          # bumped on every finished task or lost worker
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._closed = False
        self._start_failures = 0
        self.broken: WorkerStartError | None = None
        self._workers = [_Worker(self._blas_threads) for _ in range(workers)]
        self._thread = threading.Thread(target=self._dispatch, name="graphwren-dispatch", daemon=True)
        self._thread.start()

    # -- the driver's side -------------------------------------------------
    def invoke(self, events: list[dict]) -> None:
        with self._cond:
            self.raise_if_broken()
            if self._closed:
                raise RuntimeError("the local backend is closed")
            self._pending.extend(events)
        self._wake()

    def raise_if_broken(self) -> None:
        """Raise the reason the pool cannot run tasks, if it cannot."""
        if self.broken is not None:
            raise self.broken

    def cancel(self, job: str) -> None:
        """Drop the job's queued invocations and kill the workers running its tasks."""
        with self._cond:
            self._pending = collections.deque(e for e in self._pending if e["job"] != job)
            self._lost.pop(job, None)
            for w in self._workers:
                if w.event is not None and w.event["job"] == job:
                    w.doom()

    def abandon(self, event: dict) -> None:
        """Kill the worker running this attempt (it timed out); a fresh one replaces it."""
        with self._cond:
            for w in self._workers:
                if _same_attempt(w.event, event):
                    w.doom()

    def waiting(self, job: str, stage: str) -> set[tuple[int, int]]:
        """(task, attempt) of every attempt of one stage still waiting for a worker: one pass over the queue."""
        with self._cond:
            return {(e["task"], e["attempt"]) for e in self._pending if e["job"] == job and e["stage"] == stage}

    def lost(self, job: str) -> list[dict]:
        """Events of ``job`` that will not record an outcome, each with ``lost_because``."""
        with self._cond:
            return self._lost.pop(job, [])

    def wait(self, seen: int, timeout: float) -> int:
        """Block until something finished after ``seen`` (or timeout); returns the new count."""
        with self._cond:
            if self._progress == seen:
                self._cond.wait(timeout)
            return self._progress

    @property
    def progress_count(self) -> int:
        return self._progress

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        for w in self._workers:
            try:
                w.conn.send(("stop", None))
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for w in self._workers:
            try:
                w.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.process.wait(timeout=5)
            w.conn.close()

    # -- the dispatcher thread ---------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"x")
        except OSError:
            pass

    def _dispatch(self) -> None:
        last_memory_check = 0.0
        while True:
            with self._cond:
                if self._closed:
                    return
            self._assign()
            busy = any(w.event is not None for w in self._workers)
            waitables = [self._wake_r] + [w.conn for w in self._workers if not w.conn.closed]
            for ready in multiprocessing.connection.wait(waitables, MEMORY_CHECK_S if busy else None):
                if ready is self._wake_r:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                    continue
                for i, w in enumerate(self._workers):
                    if ready is w.conn:
                        self._on_message(i, w)
            if busy and time.monotonic() - last_memory_check >= MEMORY_CHECK_S:
                last_memory_check = time.monotonic()
                self._check_memory()

    def _on_message(self, i: int, w: _Worker) -> None:
        try:
            kind, payload = w.conn.recv()
        except (EOFError, OSError):
            self._on_death(i, w)
            return
        if kind == "ready":
            w.ready = True
            with self._cond:
                self._start_failures = 0
            return
        with self._cond:  # w.event changes under the lock: cancel() and abandon() read it
            event, w.event = w.event, None
        if event is not None and isinstance(payload, dict) and payload.get("recorded") is False:
            # The task could write neither its commit nor its error record (storage
            # failing): only this reply tells the driver, which retries at once.
            self._report_lost(event, f"it could not record its outcome: {payload.get('error')}")
        self._bump()

    def _on_death(self, i: int, w: _Worker) -> None:
        why = w.reap()
        with self._cond:
            event = w.event
            if event is not None and event is not w.killed_for:
                if w.over_memory is not None:
                    self._lost[event["job"]].append({**event, "over_memory": w.over_memory})
                else:
                    self._lost[event["job"]].append({**event, "lost_because": f"its worker process died ({why})"})
            if not w.ready and not w.doomed:
                self._start_failures += 1
                if self._start_failures >= MAX_START_FAILURES:
                    self.broken = WorkerStartError(
                        f"graphwren's local workers could not start: {self._start_failures} in a row died "
                        f"before taking a task ({why})")
            if not self._closed and self.broken is None:
                self._workers[i] = _Worker(self._blas_threads)
            else:
                self._workers[i] = w  # keeps the pool's size; its closed pipe is never waited on again
            self._progress += 1
            self._cond.notify_all()

    def _report_lost(self, event: dict, why: str) -> None:
        with self._cond:
            self._lost[event["job"]].append({**event, "lost_because": why})

    def _check_memory(self) -> None:
        for w in self._workers:
            event = w.event
            limit = event.get("max_memory") if event is not None else None
            if not limit or w.doomed:
                continue
            rss = _rss(w.process.pid)
            if rss is not None and rss > limit:
                with self._cond:
                    w.over_memory = rss
                    w.doomed = True  # its event is reported (over memory) when it dies
                    w.kill()

    def _bump(self) -> None:
        with self._cond:
            self._progress += 1
            self._cond.notify_all()

    def _assign(self) -> None:
        sent = None
        for w in self._workers:
            with self._cond:
                if w.event is not None or not w.ready or w.doomed or w.conn.closed:
                    continue
                if not self._pending:
                    return
                event = w.event = self._pending.popleft()
            sent = sent or (_env_snapshot(), _place_snapshot())
            try:
                if w.sent != sent:
                    w.conn.send(("env", sent[0]))
                    w.conn.send(("place", sent[1]))
                    w.sent = sent
                w.conn.send(("run", event))
            except OSError:  # it died: the dispatcher sees its pipe close next
                with self._cond:
                    self._pending.appendleft(event)
                    w.event = None


_pools: dict[int, LocalBackend] = {}
_pools_lock = threading.Lock()


def get_pool(workers: int) -> LocalBackend:
    """The process-wide warm pool of this size (started on first use, restarted if it broke)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None or pool._closed or pool.broken is not None:
            if pool is not None:
                pool.close()
            pool = _pools[workers] = LocalBackend(workers)
        return pool


@atexit.register
def _shutdown() -> None:
    for pool in list(_pools.values()):
        pool.close()

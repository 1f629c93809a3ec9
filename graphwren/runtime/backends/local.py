"""A pool of warm worker processes on this machine: the default backend.

Each worker runs ``worker.handle`` on the small events it is sent, exactly
as a Lambda would. The pool only *invokes*: results go through storage and
the driver learns of them from the commit records. The pool does report
two things a cloud backend cannot: that a task finished (a hint that lets
the driver poll at once) and that a worker died (so the driver retries its
task without waiting for a timeout).
"""
from __future__ import annotations

import atexit
import collections
import multiprocessing
import multiprocessing.connection
import os
import threading

# Workers see the driver's view of these variables even when they change
# after the pool started (S3 endpoints and credentials set by a test or notebook).
_FORWARDED_ENV = ("AWS_", "GRAPHWREN_", "REDIS")


def _env_snapshot() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}


def _worker_main(conn) -> None:
    from .. import storage, worker
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == "env":
            for key in [k for k in os.environ if k.startswith(_FORWARDED_ENV)]:
                del os.environ[key]
            os.environ.update(payload)
            storage.clear_cache()
            continue
        if kind == "stop":
            return
        try:
            result = worker.handle(payload)
        except Exception as exc:  # noqa: BLE001 - a warm worker outlives any one task
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            conn.send(("finished", result))
        except (BrokenPipeError, OSError):
            return


_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _Worker:
    def __init__(self, ctx, blas_threads: int):
        parent, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="graphwren-worker")
        # Each worker gets its share of the cores for BLAS, unless the user chose:
        # N workers x all-cores BLAS threads would oversubscribe the machine.
        unset = [k for k in _BLAS_THREADS if k not in os.environ]
        os.environ.update({k: str(blas_threads) for k in unset})
        try:
            self.process.start()
        finally:
            for k in unset:
                del os.environ[k]
        child.close()
        self.conn = parent
        self.event = None   # the event it is running, if any
        self.env = None     # the env snapshot it was last sent


class LocalBackend:
    """Runs tasks on ``workers`` local processes, started once and kept warm."""

    name = "local"

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.parallelism = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._blas_threads = max(1, (os.cpu_count() or 1) // workers)
        self._workers = [_Worker(self._ctx, self._blas_threads) for _ in range(workers)]
        self._pending: collections.deque = collections.deque()
        self._lost: dict[str, list[dict]] = collections.defaultdict(list)
        self._cond = threading.Condition()
        self._progress = 0          # bumped on every finished task or lost worker
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="graphwren-dispatch", daemon=True)
        self._thread.start()

    # -- the driver's side -------------------------------------------------
    def invoke(self, events: list[dict]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the local backend is closed")
            self._pending.extend(events)
        self._wake_w.send_bytes(b"x")

    def cancel(self, job: str) -> None:
        """Drop the job's queued invocations (after a failure)."""
        with self._cond:
            self._pending = collections.deque(e for e in self._pending if e["job"] != job)
            self._lost.pop(job, None)

    def lost(self, job: str) -> list[dict]:
        """Events of ``job`` whose worker died while running them."""
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

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._wake_w.send_bytes(b"x")
        self._thread.join(timeout=5)
        for w in self._workers:
            try:
                w.conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.process.join(timeout=2)
            if w.process.is_alive():
                w.process.kill()

    # -- the dispatcher thread ---------------------------------------------
    def _dispatch(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
            self._assign()
            waitables = [self._wake_r] + [w.conn for w in self._workers] + [w.process.sentinel for w in self._workers]
            for ready in multiprocessing.connection.wait(waitables):
                if ready is self._wake_r:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                    continue
                for i, w in enumerate(self._workers):
                    if ready is w.conn:
                        self._on_message(w)
                    elif ready == w.process.sentinel and not w.process.is_alive():
                        self._on_death(i, w)

    def _on_message(self, w: _Worker) -> None:
        try:
            w.conn.recv()
        except (EOFError, OSError):
            return  # the sentinel will report the death
        w.event = None
        self._bump()

    def _on_death(self, i: int, w: _Worker) -> None:
        if self._workers[i] is not w:
            return
        with self._cond:
            if w.event is not None:
                self._lost[w.event["job"]].append(w.event)
        w.conn.close()
        if not self._closed:
            self._workers[i] = _Worker(self._ctx, self._blas_threads)
        self._bump()

    def _bump(self) -> None:
        with self._cond:
            self._progress += 1
            self._cond.notify_all()

    def _assign(self) -> None:
        env = _env_snapshot()
        for w in self._workers:
            if w.event is not None or not w.process.is_alive():
                continue
            with self._cond:
                if not self._pending:
                    return
                event = self._pending.popleft()
            try:
                if w.env != env:
                    w.conn.send(("env", env))
                    w.env = env
                w.event = event
                w.conn.send(("run", event))
            except (BrokenPipeError, OSError):
                with self._cond:
                    self._pending.appendleft(event)
                w.event = None

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]


_pools: dict[int, LocalBackend] = {}
_pools_lock = threading.Lock()


def get_pool(workers: int) -> LocalBackend:
    """The process-wide warm pool of this size (started on first use)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None or pool._closed:
            pool = _pools[workers] = LocalBackend(workers)
        return pool


@atexit.register
def _shutdown() -> None:
    for pool in list(_pools.values()):
        pool.close()

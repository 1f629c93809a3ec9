"""The jobs running in this process, and what becomes of them when it exits.

Exit works like ``concurrent.futures``: a script that ends while a job still
runs in the background (``ex.map(f, xs)`` and nothing else) waits for it,
and every job has deleted its keys before the worker pools go down. The
hook runs in ``threading``'s exit phase, before ``atexit`` handlers (the
pools' own shutdown) and before concurrent.futures stops its threads.
A script that died of Ctrl-C, or a Ctrl-C during that wait, cancels the
jobs instead: their tasks are killed and their keys removed, with one line
of warning rather than a traceback per thread.
"""
from __future__ import annotations

import atexit
import logging
import sys
import threading

from ..errors import JobCancelled

log = logging.getLogger("graphwren")

EXIT_CLEANUP_S = 15.0   # how long exit waits for cancelled jobs to delete their keys


class RunningJob:
    """One driver run in progress: its id, who runs it, and a flag to cancel it."""

    def __init__(self, job: str, description: str, thread: threading.Thread | None = None):
        self.job = job
        self.description = description
        self.thread = thread or threading.current_thread()
        self.cancelled = threading.Event()
        self.reason = ""
        self.finished = threading.Event()

    def cancel(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.cancelled.set()

    def check(self) -> None:
        """Raise JobCancelled if someone cancelled this job."""
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job} ({self.description or 'graphwren job'}) was cancelled: {self.reason}")


_running: dict[str, RunningJob] = {}
_lock = threading.Lock()


def started(job: str, description: str, thread: threading.Thread | None = None) -> RunningJob:
    """Track a job from now until ``ended``; ``thread`` is the one that will run it (default: this one)."""
    run = RunningJob(job, description, thread)
    with _lock:
        _running[job] = run
    return run


def ended(run: RunningJob) -> None:
    with _lock:
        _running.pop(run.job, None)
    run.finished.set()


def running() -> list[RunningJob]:
    with _lock:
        return list(_running.values())


def cancel(jobs: list[RunningJob], reason: str) -> None:
    for run in jobs:
        run.cancel(reason)


def _died_of_ctrl_c() -> bool:
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt)


def _wait(jobs: list[RunningJob], timeout: float | None) -> None:
    for run in jobs:
        run.finished.wait(timeout)


def _at_exit() -> None:
    jobs = [run for run in running() if run.thread is not threading.current_thread()]
    if not jobs:
        return
    if _died_of_ctrl_c():
        _cancel_at_exit(jobs, "the program was interrupted")
        return
    try:
        _wait(jobs, None)
    except KeyboardInterrupt:
        _cancel_at_exit(jobs, "interrupted while the program waited for it at exit")


def _cancel_at_exit(jobs: list[RunningJob], reason: str) -> None:
    cancel(jobs, reason)
    names = ", ".join(run.job for run in jobs)
    log.warning("graphwren: %s: cancelled %d running job(s) (%s) and removed their keys", reason, len(jobs), names)
    try:
        _wait(jobs, EXIT_CLEANUP_S)
    except KeyboardInterrupt:
        pass


def _install_hook() -> None:
    # threading's exit hooks run before non-daemon threads are joined and before
    # atexit; registered after concurrent.futures' own (imported above us), ours
    # runs first (they run last-in, first-out). Installed at import, while the
    # interpreter is surely not shutting down yet.
    import concurrent.futures.thread  # noqa: F401 - so its hook is registered before ours
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(_at_exit)
    else:
        register(_at_exit)


_install_hook()

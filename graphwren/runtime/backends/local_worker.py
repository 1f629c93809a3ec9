"""The body of one local worker process: a fresh interpreter, like a Lambda.

The pool starts ``python -c <bootstrap>`` with one end of a socket pair; the
interpreter never imports the user's ``__main__`` (the stage function comes
by value, pickled by cloudpickle), so scripts without a main guard, stdin,
``-c``, the REPL and notebooks all work. It takes the driver's ``sys.path``
and working directory from the first message, so the user's own modules
import as they do in the driver, then runs ``worker.handle`` on each event
it is sent until told to stop, its pipe closes, or its parent dies.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

# Environment variables whose driver-side values the worker follows (S3
# endpoints and credentials a test or notebook sets after the pool started).
FORWARDED_ENV = ("AWS_", "GRAPHWREN_", "REDIS")

PARENT_CHECK_S = 0.2   # how often a worker checks that its driver is still alive


def bootstrap_command(fd: int) -> list[str]:
    """The argv that starts a worker on inherited file descriptor ``fd``, watching this process."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    code = (f"import sys; sys.path.insert(0, {root!r}); "
            f"from graphwren.runtime.backends.local_worker import main; main({fd}, {os.getpid()})")
    return [sys.executable, "-c", code]


def _watch_parent(parent: int) -> None:
    # Workers die with their driver, whatever killed it: a SIGKILLed driver's
    # workers must not live on and write into a job nobody is watching.
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(70)


def _apply_env(env: dict) -> None:
    from .. import storage
    for key in [k for k in os.environ if k.startswith(FORWARDED_ENV)]:
        del os.environ[key]
    os.environ.update(env)
    storage.clear_cache()


def _apply_place(place: dict) -> None:
    """The driver's working directory and import path, so user modules resolve alike."""
    try:
        os.chdir(place["cwd"])
    except OSError:
        pass
    ours = [p for p in sys.path if p not in place["sys_path"]]
    sys.path[:] = list(place["sys_path"]) + ours


def main(fd: int, parent: int) -> None:
    """Serve events on the connection at ``fd`` until stopped or ``parent`` dies."""
    # Ctrl-C in a terminal signals the whole process group: the driver handles
    # it (cancelling the job and killing the workers it needs to), so workers
    # must not each print a KeyboardInterrupt traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="graphwren-parent-watch", daemon=True).start()
    conn = Connection(fd)
    from .. import worker  # after the watch is up: imports take a few hundred ms
    conn.send(("ready", os.getpid()))

    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "env":
            _apply_env(payload)
            continue
        if kind == "place":
            _apply_place(payload)
            continue
        if kind == "stop":
            return
        result = worker.handle(payload)
        try:
            conn.send(("finished", result))
        except OSError:
            return

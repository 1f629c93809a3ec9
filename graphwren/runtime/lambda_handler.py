"""The AWS Lambda entry point: ``graphwren.runtime.lambda_handler.handler``.

It runs the same ``worker.handle(event)`` every backend runs. Lambda kills a
function at its timeout without a word to storage, so a watchdog fires a
little before ``context.get_remaining_time_in_millis()`` runs out and writes
an error record (``LambdaTimeout``) for the attempt: the driver then reports
a clear error instead of waiting for ``task_timeout``. The commit rule makes
a late commit by the same attempt harmless.

A small ``{"graphwren": "ping"}`` event returns the worker's graphwren and
Python versions: the Lambda backend checks them before a job starts.
"""
from __future__ import annotations

import os
import platform
import threading

from ..errors import LambdaTimeout, StorageError
from . import integrity, remote_errors, worker
from .storage import open_store

# Seconds before Lambda's deadline at which the attempt is failed (at least
# MIN, at most MAX, otherwise FRACTION of the time the invocation had).
MARGIN_MIN, MARGIN_MAX, MARGIN_FRACTION = 0.25, 5.0, 0.05


def _margin(remaining_s: float) -> float:
    env = os.environ.get("GRAPHWREN_LAMBDA_TIMEOUT_MARGIN")
    if env:
        return float(env)
    return min(MARGIN_MAX, max(MARGIN_MIN, remaining_s * MARGIN_FRACTION))


def ping() -> dict:
    """Versions, and the top-level modules this image can import (the driver ships the rest by value)."""
    import pkgutil
    import sys

    from ..version import __version__
    modules = sorted({m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names))
    return {"graphwren": __version__, "python": platform.python_version(),
            "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "memory": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), "modules": modules}


def handler(event, context):
    """Lambda's handler: one task attempt per invocation."""
    if isinstance(event, dict) and event.get("graphwren") == "ping":
        return ping()
    request_id = getattr(context, "aws_request_id", None)
    if request_id and isinstance(event, dict):   # the task's statistics name its CloudWatch request
        event = dict(event, request_id=request_id)
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
    if remaining_ms is None:
        return _reply(worker.handle(event))
    remaining = remaining_ms / 1000.0
    fire_in = remaining - _margin(remaining)
    finished = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(event, fire_in, remaining, finished),
                                name="graphwren-lambda-watchdog", daemon=True)
    watchdog.start()
    try:
        return _reply(worker.handle(event))
    finally:
        finished.set()


def _reply(result: dict) -> dict:
    """The handler's answer; an outcome that storage did not take fails the invocation.

    Failing it is how Lambda learns the attempt was lost: an asynchronous
    invocation is then retried by Lambda itself, and a synchronous caller
    sees the error, instead of the driver waiting for ``task_timeout``.
    """
    if result.get("recorded") is False:
        raise StorageError(f"{result.get('where', 'the task')}: its outcome could not be recorded: "
                           f"{result.get('error')}")
    return result


def _watch(event: dict, fire_in: float, budget: float, finished: threading.Event) -> None:
    if finished.wait(max(0.0, fire_in)):
        return
    limit = os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT")
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "the Lambda function")
    limit_text = f"{float(limit):g} s" if limit else f"about {budget:.1f} s"
    exc = LambdaTimeout(
        f"the task was still running {fire_in:.1f} s into its invocation and {name} times out "
        f"after {limit_text}; Lambda would kill it. Deploy with a longer timeout "
        f"(graphwren lambda deploy --timeout SECONDS, at most 900) or split the work into "
        f"more, smaller tasks (more partitions / smaller chunks).")
    where = f"stage {event.get('stage')} task {event.get('task')} (attempt {event.get('attempt')})"
    try:
        remote_errors.record(open_store(event["store"]), integrity.from_event(event.get("key")), event["job"],
                             event["stage"], int(event["task"]), int(event["attempt"]), exc, where)
    except Exception:  # noqa: BLE001 - nothing more can be done before the kill
        pass
    # Stay out of the task's way: Lambda (or the emulator) ends the process at the deadline.

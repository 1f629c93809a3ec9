"""Carry an exception from a worker back to the caller, traceback and all.

tblib makes tracebacks picklable, so the driver re-raises the user's own
exception type with the remote frames attached; a note names where it ran.
An exception that cannot be pickled becomes a ``RemoteError`` with its text.
"""
from __future__ import annotations

import traceback

import cloudpickle
from tblib import pickling_support

from ..errors import RemoteError


def capture(exc: BaseException, where: str) -> bytes:
    """Bytes that ``restore`` turns back into ``exc`` with its traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickling_support.install(exc)
        body = cloudpickle.dumps(exc)
        cloudpickle.loads(body)  # an exception that pickles but cannot unpickle is no use
    except Exception:
        body = None
    return cloudpickle.dumps({
        "exc": body, "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc), "traceback": text, "where": where,
    })


def restore(blob: bytes) -> BaseException:
    """The original exception, with a note saying where it was raised."""
    record = cloudpickle.loads(blob)
    exc = None
    if record["exc"] is not None:
        try:
            exc = cloudpickle.loads(record["exc"])
        except Exception:
            exc = None
    if exc is None:
        exc = RemoteError(record["type"], record["message"], record["traceback"])
    note = f"graphwren: raised in {record['where']}"
    if hasattr(exc, "add_note"):
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
    exc.graphwren_where = record["where"]
    exc.remote_traceback = record["traceback"]
    return exc

"""Carry an exception from a worker back to the caller, traceback and all.

tblib makes tracebacks picklable, so the driver re-raises the user's own
exception type with the remote frames attached; a note names where it ran.
An exception that cannot be pickled becomes a ``RemoteError`` with its text.
Error records in storage are signed with the job's key (``record`` / ``load``):
the driver unpickles only what one of its own workers wrote.
"""
from __future__ import annotations

import traceback

import cloudpickle
from tblib import pickling_support

from ..errors import RemoteError
from . import integrity, records


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


def record(store, key: bytes, job: str, stage: str, task: int, attempt: int,
           exc: BaseException, where: str) -> str:
    """Write a signed error record under a key no other execution writes; returns the key."""
    name = records.err_key(job, stage, task, attempt, records.new_nonce())
    store.put(name, integrity.seal(key, name, capture(exc, where)))
    return name


def load(store, name: str, key: bytes) -> BaseException:
    """The exception in error record ``name``, once its tag checks out (IntegrityError if not)."""
    body = integrity.unseal(key, name, store.get(name), store.url, "error record")
    return restore(bytes(body))

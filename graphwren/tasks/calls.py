"""What an Executor stage runs inside a worker: a user function over its chunk of calls, and the reduce.

They live in tasks/ so a worker running ``Executor.map`` imports only this
module, its helpers in tasks/ and the runtime, never the executor and its driver.

Each call's outcome is one entry ``(ok, value or pickled exception, stats)``;
the stats are Lithops' per-call timestamps (``worker_func_start_tstamp`` ...)
that ``Executor.plot`` and ``job_summary`` read.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import reprlib
import resource
import signal
import socket
import threading
import time

from ..runtime.remote_errors import capture, restore
from .call_args import Bound, call_arguments, signature_of
from .cloud_objects import CloudObject, attach_stream
from .shipped import Shipped


def describe(fn) -> str:
    """A function's name in messages and stage labels."""
    return getattr(fn, "__qualname__", None) or repr(fn)


class Failed:
    """A user exception standing in for one item's result (kept for readers of older outputs)."""

    def __init__(self, blob: bytes):
        self.blob = blob


class CallTimeout(TimeoutError):
    """A call ran longer than its ``timeout`` and was stopped."""


class _Alarm(BaseException):
    """Raised into a call at its deadline; a BaseException so the user's ``except Exception`` lets it pass."""


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Raise ``_Alarm`` in this thread if the block outlives ``seconds``.

    In the main thread (local workers, Lambda) SIGALRM interrupts even a
    ``time.sleep``; elsewhere the exception is set asynchronously and lands at
    the next bytecode. Neither can stop C code that never returns to Python:
    the driver's task timeout, set from ``timeout`` for the job, is the backstop.
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread():
        def ring(_signum, _frame):
            raise _Alarm()
        previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    tid, lock, state = threading.get_ident(), threading.Lock(), {"running": True}

    def ring():
        with lock:
            if state["running"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(_Alarm))
    timer = threading.Timer(seconds, ring)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["running"] = False
        timer.cancel()


@contextlib.contextmanager
def _environment(extra: dict | None):
    """``extra`` in ``os.environ`` for the block (Lithops' ``extra_env``); the warm worker gets its own back."""
    if not extra:
        yield
        return
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update({k: str(v) for k, v in extra.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _open_objects(args: tuple, kwargs: dict) -> list[CloudObject]:
    """Give every CloudObject argument a fresh ``data_stream``; returns them, to close after the call."""
    found = [a for a in (*args, *kwargs.values()) if isinstance(a, CloudObject)]
    for obj in found:
        attach_stream(obj)
    return found


def _describe_input(bound: Bound) -> str:
    if bound.arguments is None:
        values = bound.args if not bound.kwargs else (*bound.args, bound.kwargs)
        return reprlib.repr(values[0] if len(values) == 1 else values)
    values = list(bound.arguments.values())
    if len(values) == 1:
        return str(values[0]) if isinstance(values[0], CloudObject) else reprlib.repr(values[0])
    return reprlib.repr(bound.arguments)


class MapChunk:
    """The stage function of ``map``: run ``fn`` over this task's slice of the calls."""

    def __init__(self, fn, items: Shipped, first_index: list[int], retries: int, timeout: float | None = None,
                 extra_env: dict | None = None, reserved: frozenset = frozenset()):
        self.fn, self.items, self.first_index, self.retries = fn, items, first_index, retries
        self.timeout, self.extra_env, self.reserved = timeout, extra_env, frozenset(reserved)

    def __call__(self, ctx) -> list:
        calls = self.items(ctx)
        sig = signature_of(self.fn) if self.reserved or any(b.arguments is not None for b in calls) else None
        task_start = time.time()
        host, pid = socket.gethostname(), os.getpid()
        memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        out = []
        with _environment(self.extra_env):
            for k, bound in enumerate(calls):
                index = self.first_index[ctx.task] + k
                ctx.where = f"call {index}"
                for attempt in range(self.retries + 1):
                    reserved = {"id": index} if "id" in self.reserved else {}
                    args, kwargs = call_arguments(sig, bound, reserved)
                    start = time.time()
                    opened: list = []
                    try:
                        opened = _open_objects(args, kwargs)
                        with _deadline(self.timeout):
                            value = self.fn(*args, **kwargs)
                        entry = (True, value)
                    except (Exception, _Alarm) as exc:  # noqa: BLE001 - reaches the item's future
                        if isinstance(exc, _Alarm):
                            exc = CallTimeout(f"call {index} of map({describe(self.fn)}) ran longer than "
                                              f"timeout={self.timeout:g}s and was stopped")
                        entry = None
                        if attempt == self.retries:
                            where = f"call {index} of map({describe(self.fn)}) on input {_describe_input(bound)}"
                            entry = (False, capture(exc, where))
                    finally:
                        for obj in opened:
                            obj.data_stream.close()
                    if entry is not None:
                        end = time.time()
                        stats = {"call_id": index, "worker_start_tstamp": task_start,
                                 "worker_func_start_tstamp": start, "worker_func_end_tstamp": end,
                                 "worker_func_exec_time": end - start, "worker_end_tstamp": end,
                                 "worker_exec_time": end - start, "worker_host": host, "worker_pid": pid,
                                 "worker_peak_memory": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                                 "runtime_memory": int(memory) if memory else None,
                                 "task": ctx.task, "task_attempt": ctx.attempt, "call_attempts": attempt + 1}
                        out.append((*entry, stats))
                        break
        ctx.where = ""
        return out


def outcome(entry):
    """(ok, value or exception, stats) of one map entry, whatever its form."""
    if isinstance(entry, Failed):
        return False, restore(entry.blob), {}
    if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[2], dict):
        ok, value, stats = entry
        return ok, (value if ok else restore(value)), stats
    return True, entry, {}


class Reduce:
    """The stage function of ``map_reduce``'s single reduce task: ``fn(results in input order, *extra)``."""

    def __init__(self, fn, extra_args=None, extra_kwargs=None, groups: list | None = None):
        self.fn, self.extra_args, self.extra_kwargs = fn, tuple(extra_args or ()), dict(extra_kwargs or {})
        self.groups = groups   # obj_reduce_by_key: reducer i takes calls [lo, hi) of groups[i]

    def __call__(self, ctx) -> list:
        lo, hi = self.groups[ctx.task] if self.groups is not None else (0, None)
        results = []
        for part in ctx.input(0):
            for entry in part:
                ok, value, stats = outcome(entry)
                if self.groups is not None and not lo <= stats.get("call_id", -1) < hi:
                    continue   # another object's call, in a map task this object shares
                if not ok:
                    raise value
                results.append(value)
        start = time.time()
        value = self.fn(results, *self.extra_args, **self.extra_kwargs)
        end = time.time()
        return [(True, value, {"call_id": 0, "worker_start_tstamp": start, "worker_func_start_tstamp": start,
                               "worker_func_end_tstamp": end, "worker_func_exec_time": end - start,
                               "worker_end_tstamp": end, "worker_exec_time": end - start,
                               "worker_host": socket.gethostname(), "worker_pid": os.getpid()})]

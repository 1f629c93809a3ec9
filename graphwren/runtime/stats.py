"""What a task attempt did, measured where it ran, and the job record the driver gathers from them.

A ``TaskMeter`` is active (in a context variable) while a worker runs one
attempt: every store operation made in that context, or in a prefetch
thread working for it, adds a request and its bytes (``count``, called by
``storage/base.py``); the worker adds the records it decoded and returned.
``TaskMeter.stats()`` is the small dict a commit record carries (key ``s``).

The driver feeds a ``JobRecorder`` at the few points where it learns
something (an attempt launched, committed, failed or was lost; a stage
started or finished) and gets a ``JobRecord``: plain JSON-able data, kept in
``{job}/job.json`` when the job's keys are kept, and read by
``graphwren.observe`` for ``summary()``, the timeline and the report.
"""
from __future__ import annotations

import contextvars
import dataclasses
import json
import os
import resource
import socket
import sys
import threading
import time

_current: contextvars.ContextVar["TaskMeter | None"] = contextvars.ContextVar("graphwren_meter", default=None)

#: Store operations and how a price table names them (S3 bills HEAD as a GET, LIST as a PUT-class request).
OPS = ("get", "put", "put_if_absent", "exists", "size", "list", "list_sized", "delete")



def count(url: str, op: str, nread: int = 0, nwritten: int = 0) -> None:
    """One store request (and its bytes) for whichever meter is active here; nothing otherwise."""
    meter = _current.get()
    if meter is not None:
        meter.request(url, op, nread, nwritten)


def current() -> "TaskMeter | None":
    return _current.get()


def records_of(part) -> int | None:
    """How many records a partition holds: a list's or tuple's length, an Arrow table's rows; None for
    anything else (an array block is not a collection of records)."""
    if isinstance(part, (list, tuple)):
        return len(part)
    rows = getattr(part, "num_rows", None)
    return rows if isinstance(rows, int) else None


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def _usage() -> tuple[float, int]:
    """(CPU seconds, peak RSS in bytes) of this process, from one getrusage call (a few microseconds:
    resetting and reading /proc's peak costs a hundred times that, on every task)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss if sys.platform == "darwin" else r.ru_maxrss * 1024


_host: tuple[int, str] | None = None


def worker_id() -> str:
    """Which worker ran a task: the Lambda log stream (one per execution environment) or host:pid."""
    global _host
    stream = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
    if stream:
        return stream
    if _host is None or _host[0] != os.getpid():   # a forked child is another worker
        _host = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}")
    return _host[1]


class TaskMeter:
    """Counts one task attempt's requests, bytes and records while it runs, and times it."""

    def __init__(self):
        self._lock = threading.Lock()   # prefetch threads count for the same attempt at once
        self.requests: dict[str, dict[str, int]] = {}   # store scheme -> op -> count
        self.bytes_read = 0
        self.bytes_written = 0
        self.records_in: int | None = None
        self.records_out: int | None = None
        self.pieces_in = 0
        self.cached_manifests = 0   # upstream manifests this process had read already
        self.manifests: set = set()  # the manifests this attempt used
        self._token = None
        self.start = self.end = 0.0
        self._cpu0 = 0.0
        self.cpu = 0.0
        self._rss0 = 0
        self.rss = 0

    def __enter__(self) -> "TaskMeter":
        self.start = time.time()
        self._cpu0, self._rss0 = _usage()
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """End the measurement (idempotent): later requests are no longer this attempt's."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
            self.end = time.time()
            cpu, self.rss = _usage()
            self.cpu = cpu - self._cpu0

    def request(self, url: str, op: str, nread: int, nwritten: int) -> None:
        scheme = _scheme(url)
        with self._lock:
            ops = self.requests.setdefault(scheme, {})
            ops[op] = ops.get(op, 0) + 1
            self.bytes_read += nread
            self.bytes_written += nwritten

    def read_records(self, part) -> None:
        """One decoded input piece."""
        n = records_of(part)
        with self._lock:
            self.pieces_in += 1
            if n is not None:
                self.records_in = (self.records_in or 0) + n

    def stats(self, attempt: int, cold: bool, cached_fn: bool, request_id: str | None = None) -> dict:
        """The dict a commit record carries. ``rss`` is the process's peak resident set when the attempt
        ended; ``rss_task`` says the attempt raised it (so the peak is its own, not an earlier task's)."""
        out = {"start": round(self.start, 6), "end": round(self.end or time.time(), 6),
               "cpu": round(self.cpu, 6), "rss": self.rss, "rss_task": self.rss > self._rss0,
               "records_in": self.records_in, "records_out": self.records_out, "pieces_in": self.pieces_in,
               "cached_manifests": self.cached_manifests,
               "bytes_read": self.bytes_read, "bytes_written": self.bytes_written,
               "requests": {k: dict(v) for k, v in self.requests.items()},
               "attempt": attempt, "worker": worker_id(), "cold": cold, "cached_fn": cached_fn}
        if request_id:
            out["request_id"] = request_id
        return out


def output_records(out, buckets: bool) -> int | None:
    """Records in a task's output: the sum over its buckets for a shuffle stage."""
    if not buckets:
        return records_of(out)
    counts = [records_of(b) for b in out]
    return None if any(c is None for c in counts) else sum(counts)


def total_requests(requests: dict) -> int:
    return sum(n for ops in requests.values() for n in ops.values())


def add_requests(into: dict, more: dict) -> dict:
    for scheme, ops in (more or {}).items():
        mine = into.setdefault(scheme, {})
        for op, n in ops.items():
            mine[op] = mine.get(op, 0) + n
    return into


# -- the driver's side: the record of one job ------------------------------------------------------
FIRST, RETRY, BACKUP = "first", "retry", "backup"
COMMITTED, FAILED, LOST, SUPERSEDED = "committed", "failed", "lost", "superseded"


@dataclasses.dataclass
class JobRecord:
    """Everything graphwren learnt about one job: its stages, every task attempt, the driver's requests."""

    job: str
    description: str = ""
    state: str = "running"
    started: float = 0.0
    finished: float | None = None
    settings: dict = dataclasses.field(default_factory=dict)   # backend, storage, memory, prices
    stages: list = dataclasses.field(default_factory=list)     # dicts: name, label, index, ntasks, ...
    attempts: list = dataclasses.field(default_factory=list)   # dicts: stage, task, attempt, kind, outcome, ...
    driver_requests: dict = dataclasses.field(default_factory=dict)
    events: list = dataclasses.field(default_factory=list)     # the driver's timeline: (time, stage, what)
    error: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def stage(self, key) -> dict:
        """A stage by its number in the run order, its name, or its label."""
        for s in self.stages:
            if key in (s["index"], s["name"]) or (isinstance(key, str) and key == s["label"]):
                return s
        names = ", ".join(f"{s['index']} ({s['name']})" for s in self.stages)
        raise KeyError(f"job {self.job} has no stage {key!r}; its stages are {names}")

    def attempts_of(self, stage: str, task: int | None = None) -> list[dict]:
        return [a for a in self.attempts if a["stage"] == stage and (task is None or a["task"] == task)]

    def winners(self, stage: str) -> list[dict]:
        """The committed attempt of each task of ``stage`` (those the driver saw), by task."""
        return sorted((a for a in self.attempts if a["stage"] == stage and a["outcome"] == COMMITTED),
                      key=lambda a: a["task"])

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), default=str).encode()

    @classmethod
    def from_json(cls, blob: bytes | str) -> "JobRecord":
        data = json.loads(blob)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class JobRecorder:
    """Builds a ``JobRecord`` from what the driver sees; every method is cheap and never raises into it."""

    def __init__(self, job: str, description: str, settings: dict, clock=time.time):
        self._now = clock   # the driver's clock: a simulated job's record is in its virtual time
        self.record = JobRecord(job, description, started=clock(), settings=settings)
        self._open: dict[tuple, dict] = {}   # (stage, task, attempt) -> its attempt dict
        self._stage: dict[str, dict] = {}
        self.planned: dict[str, int] = {}   # stage -> task count as planned (adaptive stages may run fewer)
        self.index: dict[str, int] = {}     # stage -> its number in the run order (explain()'s)

    def stage_started(self, name: str, label: str, index: int, ntasks: int, planned: int,
                      inputs: list[str], nbuckets: int | None, store: str) -> None:
        entry = {"name": name, "label": label, "index": index, "ntasks": ntasks, "planned_tasks": planned,
                 "inputs": inputs, "nbuckets": nbuckets, "store": store, "started": self._now(), "finished": None}
        self._stage[name] = entry
        self.record.stages.append(entry)

    def stage_finished(self, name: str) -> None:
        self._stage[name]["finished"] = self._now()
        for key in [k for k in self._open if k[0] == name]:   # still running when the task committed
            self._close(key, SUPERSEDED)

    def launched(self, stage: str, task: int, attempt: int, kind: str) -> None:
        entry = {"stage": stage, "task": task, "attempt": attempt, "kind": kind, "outcome": None,
                 "launched": self._now(), "ended": None, "stats": None}
        self._open[(stage, task, attempt)] = entry
        self.record.attempts.append(entry)

    def committed(self, stage: str, task: int, header: dict) -> None:
        key = (stage, task, header.get("a"))
        entry = self._open.get(key)
        if entry is None:   # an attempt the driver had given up on (lost, timed out) committed after all
            entry = next((a for a in self.record.attempts if (a["stage"], a["task"], a["attempt"]) == key), None)
        if entry is None:   # one the driver never launched (a duplicate delivery under another number)
            entry = {"stage": stage, "task": task, "attempt": header.get("a"), "kind": RETRY,
                     "outcome": None, "launched": None, "ended": None, "stats": None}
            self.record.attempts.append(entry)
        entry["stats"] = header.get("s")
        if header.get("log"):
            entry["log"] = header["log"]
            entry["log_truncated"] = header.get("log_cut", 0)
        self._close(key, COMMITTED, entry)

    def failed(self, stage: str, task: int, attempt: int, error: str | None = None) -> None:
        self._close((stage, task, attempt), FAILED, why=error)

    def lost(self, stage: str, task: int, attempt: int, why: str) -> None:
        self._close((stage, task, attempt), LOST, why=why)

    def _close(self, key: tuple, outcome: str, entry: dict | None = None, why: str | None = None) -> None:
        entry = self._open.pop(key, None) or entry
        if entry is None:
            return
        entry["outcome"] = outcome
        entry["ended"] = self._now()
        if why:
            entry["why"] = why

    def attach_log(self, stage: str, task: int, attempt: int, log: str | None) -> None:
        """A failed attempt's output, from the exception its error record held."""
        if not log:
            return
        for entry in self.record.attempts:
            if (entry["stage"], entry["task"], entry["attempt"]) == (stage, task, attempt):
                entry["log"] = log

    def finish(self, state: str, events: list, driver_requests: dict, error: str | None = None) -> JobRecord:
        for key in list(self._open):
            self._close(key, SUPERSEDED if state == "finished" else LOST, why=None if state == "finished" else state)
        r = self.record
        r.state, r.finished, r.error = state, self._now(), error
        r.events = [list(e) for e in events]
        r.driver_requests = driver_requests
        return r


_last: list[JobRecord] = []     # the most recent jobs of this process, newest last
_KEEP_LAST = 20
_listeners: list = []           # callables given each finished JobRecord (graphwren.observe.report)
_listen_lock = threading.Lock()


def finished(record: JobRecord) -> None:
    """A job ended: remember its record and hand it to whoever listens (a report being written)."""
    with _listen_lock:
        _last.append(record)
        del _last[:-_KEEP_LAST]
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(record)
        except Exception as exc:  # noqa: BLE001 - a report must not fail the job it reports
            import logging
            logging.getLogger("graphwren").warning("graphwren: could not report job %s: %s", record.job, exc)


def last(n: int = 1) -> list[JobRecord]:
    with _listen_lock:
        return list(_last[-n:])


def listen(listener) -> None:
    with _listen_lock:
        _listeners.append(listener)


def unlisten(listener) -> None:
    with _listen_lock:
        if listener in _listeners:
            _listeners.remove(listener)

"""A running job's heartbeat: the ``{job}/lease`` record in every store the job uses.

The driver writes the lease into a store before any other key of the job lands
there, a daemon thread renews it every RENEW seconds, and the end of the run
marks it finished, failed or cancelled (when the job's keys stay; otherwise
they are deleted with it). A lease still ``running`` but not renewed for its
``ttl`` belongs to a driver that died: the job is abandoned. ``graphwren clean``
never removes a job whose lease is live, and ``graphwren jobs`` shows the states.

Times are wall-clock (``time.time()``), since the driver and whoever cleans
may be different hosts; a ttl six times the renewal period leaves room for
clock skew, a slow store and a busy driver.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import CancelledError

from ..errors import MissingKey
from . import records

RENEW = 10.0   # seconds between two renewals
TTL = 60.0     # seconds after the last renewal that a running lease stops protecting its job
ENDED = ("finished", "failed", "cancelled")

log = logging.getLogger("graphwren")


def ending(exc: BaseException | None) -> str:
    """The state a run that ended with ``exc`` (None: success) leaves in its lease."""
    if exc is None:
        return "finished"
    if isinstance(exc, (KeyboardInterrupt, CancelledError, SystemExit)):
        return "cancelled"
    return "failed"


class Lease:
    """The heartbeat of one job, written to each store the job uses."""

    def __init__(self, job: str, description: str = "", renew: float | None = None, ttl: float | None = None):
        self.job = job
        self.renew = RENEW if renew is None else renew
        now = time.time()
        self.record = {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
                       "description": description, "started": now, "renewed": now,
                       "ttl": TTL if ttl is None else ttl}
        self._stores: dict[str, object] = {}
        self._lock = threading.Lock()      # held while writing, so an end is never overwritten
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _blob(self) -> bytes:
        return json.dumps(self.record, separators=(",", ":")).encode()

    def add(self, store) -> None:
        """Write the lease into ``store`` now and renew it there from now on."""
        with self._lock:
            if store.url in self._stores or self._stop.is_set():
                return
            store.put(records.lease_key(self.job), self._blob())
            self._stores[store.url] = store
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"gw-lease-{self.job}", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.renew):
            with self._lock:
                if self._stop.is_set():
                    return
                self.record["renewed"] = time.time()
                blob = self._blob()
                for store in self._stores.values():
                    try:
                        store.put(records.lease_key(self.job), blob)
                    except Exception as exc:  # noqa: BLE001 - a blip; the next renewal tries again
                        log.warning("graphwren: could not renew the lease of job %s in %s: %s",
                                    self.job, store.url, exc)

    def end(self, state: str, record: bool = True) -> None:
        """Stop renewing; with ``record``, leave ``state`` in every store (for keys that stay)."""
        if state not in ENDED:
            raise ValueError(f"a lease ends {'/'.join(ENDED)}, not {state!r}")
        self._stop.set()
        with self._lock:  # waits out a renewal in progress
            if not record:
                return
            self.record.update(state=state, renewed=time.time())
            blob = self._blob()
            for store in self._stores.values():
                try:
                    store.put(records.lease_key(self.job), blob)
                except Exception as exc:  # noqa: BLE001 - must not mask the job's own outcome
                    log.warning("graphwren: could not record job %s as %s in %s: %s",
                                self.job, state, store.url, exc)


class LeasedStores(dict):
    """A job's stores by URL; a store that joins gets the job's lease before anything else."""

    def __init__(self, lease: Lease):
        super().__init__()
        self.lease = lease

    def __setitem__(self, url, store):
        self.lease.add(store)
        super().__setitem__(url, store)

    def setdefault(self, url, store=None):
        if url not in self:
            self[url] = store
        return self[url]


def read(store, job: str) -> dict | None:
    """The lease of ``job`` in ``store``; None if it has none, state 'unreadable' if garbled."""
    try:
        record = json.loads(store.get(records.lease_key(job)))
        record["renewed"], record["ttl"] = float(record["renewed"]), float(record["ttl"])
    except MissingKey:
        return None
    except (ValueError, TypeError, KeyError, IndexError):  # not JSON, not an object, no times
        return {"state": "unreadable"}
    return record


def state(record: dict | None, now: float | None = None) -> str:
    """running, finished, failed, cancelled, abandoned (a running lease ran out) or 'no lease'."""
    if record is None:
        return "no lease"
    st = record.get("state")
    if st == "running":
        try:
            fresh = (time.time() if now is None else now) - float(record["renewed"]) <= float(record["ttl"])
        except (KeyError, TypeError, ValueError):
            return "unreadable"
        return "running" if fresh else "abandoned"
    return st if st in ENDED else "unreadable"


@dataclasses.dataclass
class JobInfo:
    """One job found in a store: its id, key count, creation time and lease."""

    job: str
    keys: int
    created: float
    lease: dict | None

    def state(self, now: float | None = None) -> str:
        return state(self.lease, now)


def jobs_in(store) -> list[JobInfo]:
    """Every job with keys in ``store`` (keys not under a job id are not jobs), oldest first."""
    counts: dict[str, int] = {}
    for key in store.list(""):
        job = key.split("/", 1)[0]
        if job in counts:
            counts[job] += 1
        elif records.job_time(job) is not None:
            counts[job] = 1
    return [JobInfo(job, n, records.job_time(job), read(store, job)) for job, n in sorted(counts.items())]

"""A running job's heartbeat: the ``{job}/lease`` record in every store the job uses.

The driver writes the lease into a store before any other key of the job lands
there, one daemon thread per process renews every live lease each RENEW
seconds, and the end of the run
marks it finished, failed or cancelled (when the job's keys stay; otherwise
they are deleted with it). A lease still ``running`` but not renewed for its
``ttl`` belongs to a driver that died: the job is abandoned. ``graphwren clean``
never removes a job whose lease is live, and ``graphwren jobs`` shows the states.

Times are wall-clock (``time.time()``), since the driver and whoever cleans
may be different hosts; a ttl six times the renewal period leaves room for
clock skew, a slow store and a busy driver. A driver stalled past the ttl (a
suspended laptop) can lose its job to a clean: that is the contract.
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
    from .lifecycle import JobCancelled
    if isinstance(exc, (KeyboardInterrupt, CancelledError, SystemExit, JobCancelled)):
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
        self.due = time.monotonic() + self.renew   # when the renewer writes it next
        self._stores: dict[str, object] = {}
        self._lock = threading.Lock()      # held while writing, so an end is never overwritten
        self._ended = False

    def _put_all(self, what: str) -> None:
        blob = json.dumps(self.record, separators=(",", ":")).encode()
        for store in self._stores.values():
            try:
                store.put(records.lease_key(self.job), blob)
            except Exception as exc:  # noqa: BLE001 - a blip must not fail the job; the next write retries
                log.warning("graphwren: could not %s of job %s in %s: %s", what, self.job, store.url, exc)

    def add(self, store) -> None:
        """Write the lease into ``store`` now and renew it there from now on."""
        with self._lock:
            if store.url in self._stores or self._ended:
                return
            store.put(records.lease_key(self.job), json.dumps(self.record, separators=(",", ":")).encode())
            first = not self._stores
            self._stores[store.url] = store
        if first:
            _renewer.add(self)

    def renew_now(self) -> None:
        """Write a fresh renewal time into every store (the renewer calls this when due)."""
        with self._lock:
            if self._ended:
                return
            self.record["renewed"] = time.time()
            self._put_all("renew the lease")
            self.due = time.monotonic() + self.renew

    def end(self, state: str, record: bool = True) -> None:
        """Stop renewing; with ``record``, leave ``state`` in every store (for keys that stay)."""
        if state not in ENDED:
            raise ValueError(f"a lease ends {'/'.join(ENDED)}, not {state!r}")
        _renewer.remove(self)
        with self._lock:  # waits out a renewal in progress; none starts after this
            self._ended = True
            if record:
                self.record.update(state=state, renewed=time.time())
                self._put_all(f"record as {state} the lease")


class _Renewer:
    """One daemon thread that renews every live lease of the process when it falls due."""

    def __init__(self):
        self._cond = threading.Condition()
        self._leases: set[Lease] = set()
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self._cond:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():  # none yet, or we are a forked child
                self._thread = threading.Thread(target=self._loop, name="gw-lease", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, lease: Lease) -> None:
        with self._cond:
            self._leases.discard(lease)

    def _loop(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [lease for lease in self._leases if lease.due <= now]
                if not due:
                    nxt = min((lease.due for lease in self._leases), default=None)
                    self._cond.wait(None if nxt is None else nxt - now)
                    continue
            for lease in due:  # outside the condition: a slow store must not block add/remove
                lease.renew_now()


_renewer = _Renewer()


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

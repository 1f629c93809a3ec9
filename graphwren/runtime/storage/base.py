"""The one storage interface every part of the runtime talks to.

Keys are '/'-separated strings relative to the store's root (its URL's
prefix). Values are bytes. Every implementation must pass
tests/test_storage.py, which runs the same contract against all of them.
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import math
import random
import time
from typing import Callable, TypeVar

from ...errors import MissingKey, StorageError
from .. import stats

T = TypeVar("T")


class Store(abc.ABC):
    """A flat key -> bytes store with the few operations the runtime needs."""

    url: str  # the URL this store was opened from; workers reopen it from this

    def __init_subclass__(cls, **kwargs):
        # Every request a store serves counts for the task attempt (or driver) metering it (stats.py):
        # wrapped here once, so no store implementation can forget to count.
        super().__init_subclass__(**kwargs)
        for op in stats.OPS + ("view",):
            method = cls.__dict__.get(op)
            if method is not None and not getattr(method, "_gw_counted", False):
                setattr(cls, op, _counted(op, method))

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) a whole value. Readers never see a partial value."""

    @abc.abstractmethod
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Read a value, or its byte range [start, end). Raises MissingKey."""

    def view(self, key: str, start: int | None = None, end: int | None = None):
        """``get``, as a read-only buffer: the bytes themselves here; a file store maps a large value
        instead of copying it. For readers that decode in place (array blocks, Arrow partitions)."""
        return self.get(key, start, end)

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create key only if it does not exist; True if this call created it.

        This is the commit primitive: of racing writers exactly one wins.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True if the key holds a value."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Length in bytes of a value. Raises MissingKey."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys starting with prefix (recursively, like S3), sorted."""

    def list_sized(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size in bytes) of every key starting with prefix, sorted; stores whose listing
        carries sizes (S3) answer in the listing's requests alone."""
        return [(key, self.size(key)) for key in self.list(prefix)]

    @abc.abstractmethod
    def delete(self, prefix: str) -> int:
        """Delete every key starting with prefix; returns how many went."""

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""

    def __repr__(self):
        return f"{type(self).__name__}({self.url!r})"


def _counted(op: str, method):
    """``method``, counting one request of ``op`` (with its bytes) for the active meter, if any."""
    reads, writes = op in ("get", "view"), op in ("put", "put_if_absent")
    billed = "get" if op == "view" else op   # a mapped read is one GET too

    @functools.wraps(method)
    def counted(self, key, *args, **kwargs):
        if stats.current() is None:   # the common case outside a metered task: one context lookup
            return method(self, key, *args, **kwargs)
        out = None
        try:
            out = method(self, key, *args, **kwargs)
            return out
        finally:   # a failed request (a missing key) is still a request the store bills
            nread = len(out) if reads and out is not None else 0
            nwritten = len(args[0]) if writes and args else len(kwargs.get("data", b"")) if writes else 0
            stats.count(self.url, billed, nread, nwritten)

    counted._gw_counted = True
    return counted


# -- timeouts and retries, shared by the remote stores ----------------------------------
@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long one storage request may wait and how often a failed one is tried again.

    Set per store in its URL (``?timeout=2&connect_timeout=1&retries=8``), so a worker
    that reopens the store from its URL gets the driver's policy.
    """

    connect_timeout: float
    timeout: float  # read / socket timeout of one request
    retries: int    # attempts after the first
    backoff_base: float = 0.05
    backoff_cap: float = 1.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before retry number ``failures`` (1-based): exponential with jitter.

        Equal jitter (half fixed, half random) rather than full jitter: full jitter can
        draw near-zero waits several times running and give up inside a one-second blip.
        """
        step = min(self.backoff_cap, self.backoff_base * 2 ** failures)
        return step / 2 + random.uniform(0, step / 2)

    @classmethod
    def from_query(cls, url: str, query: dict[str, list[str]], default: "RetryPolicy") -> "RetryPolicy":
        """The policy the URL's query asks for; pops graphwren's own options from ``query``."""
        values = {}
        for name, kind in (("connect_timeout", float), ("timeout", float), ("retries", int)):
            raw = query.pop(name, None)
            if raw is None:
                continue
            try:
                value = kind(raw[-1])
            except ValueError:
                value = None
            if value is None or value < 0 or (kind is float and not 0 < value < math.inf):
                want = "a whole number >= 0" if kind is int else "a number of seconds > 0"
                raise StorageError(f"bad {name}={raw[-1]!r} in store URL {url!r}: want {want}", url=url)
            values[name] = value
        return dataclasses.replace(default, **values)


def retry(call: Callable[[], T], policy: RetryPolicy, transient: Callable[[BaseException], bool]) -> T:
    """call(), tried again after transient failures, at most ``policy.retries`` more times."""
    failures = 0
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - transient() decides; the rest re-raise as they are
            failures += 1
            if failures > policy.retries or not transient(exc):
                raise
            time.sleep(policy.delay(failures))


def guarded(op: str):
    """Make a store method raise StorageError (naming store, key and op) for library errors.

    The store's ``_storage_error(op, key, exc)`` builds the error, or returns None for
    exceptions that are not storage failures (MissingKey, bad arguments), which pass as
    they are.
    """
    def wrap(method):
        @functools.wraps(method)
        def guarded_method(self, key, *args, **kwargs):
            try:
                return method(self, key, *args, **kwargs)
            except (StorageError, MissingKey, ValueError):
                raise
            except Exception as exc:  # noqa: BLE001 - _storage_error picks the library's errors
                err = self._storage_error(op, key, exc)
                if err is None:
                    raise
                raise err from exc
        return guarded_method
    return wrap

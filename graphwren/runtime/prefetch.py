"""Compute results a few ahead of whoever consumes them, in one small shared pool of threads.

Reading task inputs, fetching outputs on the driver and computing array
blocks all wait on storage for most of their time: a few requests in
flight hide that latency, and a bound on them keeps memory in check (each
result waits, decoded, until its consumer takes it).
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextvars
import itertools
import threading
from typing import Any, Callable, Iterable, Iterator

_local = threading.local()   # .owner: the Prefetcher whose pool runs this thread


def _mark(owner: "Prefetcher") -> None:
    _local.owner = owner


class Prefetcher:
    """A pool of ``threads`` threads (started on first use) that computes thunks ahead of their consumer."""

    def __init__(self, threads: int, name: str):
        if threads < 1:
            raise ValueError(f"a Prefetcher needs at least one thread, got {threads}")
        self.threads, self.name = threads, name
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _inline(self, n: int) -> bool:
        # From inside one of our own threads, waiting on the pool could wait on itself: run in place.
        return n <= 1 or getattr(_local, "owner", None) is self

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.threads, thread_name_prefix=self.name, initializer=_mark, initargs=(self,))
            return self._pool

    def iter(self, thunks: Iterable[Callable[[], Any]], ahead: int | None = None) -> Iterator[Any]:
        """The thunks' results in order, at most ``ahead`` (default: the pool's size) computed but not
        yet taken; each is computed while the ones before it are in use."""
        thunks = list(thunks)
        ahead = self.threads if ahead is None else ahead
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1, got {ahead}")
        if self._inline(len(thunks)):
            for thunk in thunks:
                yield thunk()
            return
        pool = self._executor()
        rest = iter(thunks)
        # each thunk runs in its submitter's context: a task attempt's meter (stats.py) counts its reads
        window = collections.deque(pool.submit(contextvars.copy_context().run, t)
                                   for t in itertools.islice(rest, ahead))
        try:
            while window:
                value = window.popleft().result()
                nxt = next(rest, None)
                if nxt is not None:
                    window.append(pool.submit(contextvars.copy_context().run, nxt))
                yield value
                del value   # the consumer is done with it: do not hold it while the next one waits
        finally:
            for future in window:   # the consumer stopped early (or failed): start nothing more
                future.cancel()

    def map(self, fn: Callable[[Any], Any], items: list) -> list:
        """``[fn(x) for x in items]``, computed up to the pool's size at once."""
        if self._inline(len(items)):
            return [fn(x) for x in items]
        context = contextvars.copy_context()
        return list(self._executor().map(lambda x: context.copy().run(fn, x), items))

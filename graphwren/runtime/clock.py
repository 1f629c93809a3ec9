"""The driver's clock: real time, unless the backend brings its own (a simulator's virtual clock).

The driver reads the time and sleeps only through a ``Clock``: ``monotonic()``
for timeouts and durations, ``time()`` for its timeline, ``sleep()`` between
polls, ``acting()`` around a run, which tells a virtual clock that the
driver is busy (it must not skip time while the driver works), and
``parallel()`` for its reads in threads (a virtual clock must know that the
driver waits for them, and that they work for it).
"""
from __future__ import annotations

import contextlib
import time as _time


class RealClock:
    """The wall clock: what every backend but a simulator runs on."""

    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    sleep = staticmethod(_time.sleep)

    def acting(self):
        return contextlib.nullcontext()

    def parallel(self, fetcher, fn, items: list) -> list:
        """``[fn(i) for i in items]``, on ``fetcher``'s threads (a ``prefetch.Prefetcher``)."""
        return fetcher.map(fn, items)


REAL = RealClock()


def of(backend) -> RealClock:
    """The clock ``backend`` runs on: its own ``clock``, else real time."""
    return getattr(backend, "clock", None) or REAL

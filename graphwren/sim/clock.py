"""A virtual clock: time moves only from one timer to the next, when nothing it knows of is working.

Everything that waits in a simulation sleeps on this clock (a modelled
transfer, a cold start, the driver's pause between polls). Time jumps to
the earliest timer the moment every *actor* sleeps (the driver inside
``acting()``, a simulated function while it runs), so waiting costs no wall
time and the simulator's own CPU never shows as simulated time. Real work
(the driver's bookkeeping, a task body run for real) is instantaneous in
virtual time, with one exception that keeps the clock from stopping: an
actor that neither sleeps nor wakes anyone for ``STALL`` of wall time (it is
blocked outside the clock, e.g. on a thread pool whose threads sleep on the
clock) lets the clock move on to the next timer. ``STALL`` is a safety net,
long on purpose: at 2 ms, a driver starved of the GIL or of a core on a
loaded machine (or starting a thread) let a 100 s task finish inside its
30 s timeout, and the simulated answers moved with the machine's load.
A thread that is no actor may sleep on the clock too (a driver's prefetch
thread): it wakes with the clock but never holds it back.

The rule that makes this safe: whoever wakes an actor counts it busy again
before it runs, so the count never touches zero while an actor is about to work.
"""
from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import threading
import time

STALL = 1.0   # wall seconds without any clock activity after which a busy actor no longer holds time back
              # (no workload of bench/scale.py or the tests needs it: their stall count is 0)


class VirtualClock:
    """Virtual time that skips to the next timer whenever every actor sleeps (or stalls)."""

    def __init__(self):
        self._cond = threading.Condition()   # re-entrant: timer callbacks may set more timers
        self.lock = self._cond               # the one lock of a simulation (one lock: no lock order to get wrong)
        self._now = 0.0
        self._activity = 0               # bumped by every sleep, wake and actor change: a stall is none for STALL
        self._timers: list = []          # heap of [when, seq, callback, wakes_actor, live]
        self._seq = itertools.count()
        self._busy = 0                   # actors working now
        self._local = threading.local()
        self._epoch = time.time()
        self._closed = False
        self.stalls = 0                  # jumps made while an actor was busy (blocked or computing)
        self._thread = threading.Thread(target=self._loop, name="gw-sim-clock", daemon=True)
        self._thread.start()

    # -- reading ---------------------------------------------------------------------------------------
    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self.monotonic()

    # -- actors ---------------------------------------------------------------------------------------------
    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @contextlib.contextmanager
    def acting(self, counted: bool = False):
        """The calling thread works for the simulation: time waits for it. ``counted``: its busy count
        was taken already (by the timer that handed it work)."""
        with self._cond:
            if not counted:
                self._busy += 1
            self._activity += 1
            self._local.depth = self._depth() + 1
        try:
            yield
        finally:
            with self._cond:
                self._local.depth = self._depth() - 1
                self._busy -= 1
                self._activity += 1
                self._cond.notify_all()

    def busy_for(self) -> None:
        """Count one actor busy now, for work that starts on another thread (``acting(counted=True)``)."""
        with self._cond:
            self._busy += 1

    # -- timers and sleeping --------------------------------------------------------------------------------------
    def call_at(self, when: float, callback, wakes_actor: bool = False) -> list:
        """Run ``callback()`` (quick, under the clock's lock) at virtual time ``when``; ``wakes_actor``:
        it hands work to an actor, counted busy as it fires. Returns a handle for ``cancel``."""
        entry = [when, next(self._seq), callback, wakes_actor, True]
        with self._cond:
            heapq.heappush(self._timers, entry)
            self._activity += 1
            self._cond.notify_all()
        return entry

    def call_later(self, delay: float, callback, wakes_actor: bool = False) -> list:
        return self.call_at(self.monotonic() + max(0.0, delay), callback, wakes_actor)

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Sleep until ``event`` is set by ``wake`` or ``timeout`` virtual seconds pass (None: only ``wake``);
        True if woken."""
        actor = self._depth() > 0
        with self._cond:
            if event.is_set():
                return True
            if self._closed:   # the simulation is over: nothing will move time again
                return False
            entry = [self.monotonic() + max(0.0, timeout or 0.0), next(self._seq), event.set, actor, True]
            if timeout is not None:
                heapq.heappush(self._timers, entry)
            event._gw_timer = entry
            if actor:
                self._busy -= 1
            self._activity += 1
            self._cond.notify_all()
        event.wait()
        return entry[4] is None   # the timer did not fire: someone woke us

    def wake(self, event: threading.Event) -> None:
        """Wake a ``wait`` on ``event`` now (counting its thread busy if it is an actor)."""
        with self._cond:
            entry = getattr(event, "_gw_timer", None)
            if event.is_set():
                return
            if entry is not None and entry[4]:
                entry[4] = None          # cancelled: woken early
                if entry[3]:
                    self._busy += 1
            self._activity += 1
            event.set()

    def parallel(self, fetcher, fn, items: list) -> list:
        """``[fn(i) for i in items]`` on as many threads as ``fetcher`` has, each an actor while items remain.

        The caller sleeps on the clock until the last helper wakes it; the helpers' busy counts
        are taken before it sleeps: the clock never sees a moment when nobody works on the items.
        """
        items = list(items)
        n = min(getattr(fetcher, "threads", 16), len(items))
        if n <= 1:
            return [fn(i) for i in items]
        results: list = [None] * len(items)
        errors: list[BaseException] = []
        queue = iter(enumerate(items))
        take = threading.Lock()
        done = threading.Event()
        left = [n]

        def helper():
            with self.acting(counted=True):
                while not errors:
                    with take:
                        nxt = next(queue, None)
                    if nxt is None:
                        break
                    try:
                        results[nxt[0]] = fn(nxt[1])
                    except BaseException as exc:  # noqa: BLE001 - raised in the caller, as map would
                        errors.append(exc)
                with self._cond:
                    left[0] -= 1
                    if left[0] == 0:
                        self.wake(done)

        with self._cond:
            self._busy += n
        for _ in range(n):   # each helper in a copy of the caller's context (its meter counts their requests)
            threading.Thread(target=contextvars.copy_context().run, args=(helper,), daemon=True,
                             name=f"{getattr(fetcher, 'name', 'gw-fetch')}-sim").start()
        self.wait(done, None)
        if errors:
            raise errors[0]
        return results

    def cancel(self, entry: list) -> None:
        with self._cond:
            entry[4] = False

    def close(self) -> None:
        """End the simulation: whoever still sleeps wakes now (time stops moving)."""
        with self._cond:
            self._closed = True
            for entry in self._timers:
                if entry[4] and entry[2].__name__ == "set":
                    entry[2]()
            self._timers.clear()
            self._cond.notify_all()

    # -- the one thread that fires timers -------------------------------------------------------------
    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                while self._timers and not self._timers[0][4]:
                    heapq.heappop(self._timers)
                if not self._timers:
                    self._cond.wait()
                    continue
                when = self._timers[0][0]
                now = self._now
                if when > now:
                    if self._busy > 0:
                        seen = self._activity
                        self._cond.wait(STALL)
                        if self._activity != seen or self._busy <= 0 or self._closed:
                            continue
                        self.stalls += 1        # busy, but silent for STALL: move on
                    now = self._now = when      # nobody works: skip to the next timer
                while self._timers and self._timers[0][0] <= now:
                    entry = heapq.heappop(self._timers)
                    if not entry[4]:
                        continue
                    entry[4] = False
                    if entry[3]:
                        self._busy += 1
                    entry[2]()

"""SimBackend: simulated AWS Lambda, in this process, on the simulation's virtual clock.

It plays both sides of ``backends/lambda_.py``: the client (at most
``lambda_max_workers`` invocations in flight, ``invoke_streams`` Invoke
calls at once, each taking ``invoke_latency``, back-off after a 429) and the
service (``concurrency`` executions at once, a 429 beyond; a cold or warm
start drawn from the model; a duplicate delivery at ``duplicate_rate``; a
slow invocation at ``straggler_rate``). An invocation runs on a thread: the
real ``worker.handle`` (small data, task bodies for real), or the stage's
``StageCost`` (``graphwren.sim.tasks``) when the simulation models it.

Unlike the real client, which learns that a task ended by listing its
commit records, this one is told by the function itself: its token comes
back as the function returns. Like Lambda, it gives the driver no hint that
a task ended (no ``wait``): the driver polls storage as it would on AWS.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextvars
import itertools

from ..runtime import worker
from . import tasks
from .store import function


class SimBackend:
    """Simulated Lambda: invocations run on threads, timed by the cloud model on a virtual clock."""

    name = "lambda"

    def __init__(self, sim, settings: dict):
        self.sim = sim
        self.clock = sim.clock
        self.settings = settings
        self.parallelism = int(settings.get("lambda_max_workers") or 1000)
        self._pending: collections.deque = collections.deque()   # events waiting for a token
        self._inflight: set[tuple] = set()      # tokens held: (job, stage, task, attempt)
        self._queued: set[tuple] = set()        # taken a token, not running yet
        self._senders = 0                      # Invoke calls in flight
        self._lost: dict[str, list[dict]] = collections.defaultdict(list)
        self._cancelled: set[str] = set()
        self._envs = 0                          # execution environments made (cold starts)
        self._idle: list[float] = []            # when each idle environment was last used
        self._ids = itertools.count()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, sim.cloud.concurrency + 64), thread_name_prefix="gw-sim-fn")

    # -- the driver's side --------------------------------------------------------------------------
    def invoke(self, events: list[dict]) -> None:
        with self.sim.lock:
            for event in events:
                self._cancelled.discard(event["job"])
            self._pending.extend(events)
            self.sim.counts["invocations"] += len(events)
            self._pump()

    def cancel(self, job: str) -> None:
        with self.sim.lock:
            self._cancelled.add(job)
            self._pending = collections.deque(e for e in self._pending if e["job"] != job)
            self._lost.pop(job, None)

    def lost(self, job: str) -> list[dict]:
        with self.sim.lock:
            return self._lost.pop(job, [])

    def waiting(self, job: str, stage: str) -> set[tuple[int, int]]:
        """(task, attempt) of the stage's events not yet running: waiting for a token or a delivery."""
        with self.sim.lock:
            return {(k[2], k[3]) for k in self._queued if k[0] == job and k[1] == stage} | \
                   {(e["task"], e["attempt"]) for e in self._pending if e["job"] == job and e["stage"] == stage}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the client: tokens and Invoke calls (called under sim.lock) ---------------------------------------------
    def _pump(self) -> None:
        cloud = self.sim.cloud
        while self._pending and len(self._inflight) < self.parallelism and self._senders < cloud.invoke_streams:
            event = self._pending.popleft()
            self._inflight.add(_key(event))
            self._queued.add(_key(event))
            self._senders += 1
            self._send(event, 0)

    def _send(self, event: dict, tries: int) -> None:
        self.clock.call_later(self.sim.cloud.invoke_latency, lambda: self._arrive(event, tries))

    def _arrive(self, event: dict, tries: int) -> None:
        """An Invoke call reaches the service (under the clock's lock: quick)."""
        cloud = self.sim.cloud
        with self.sim.lock:
            if event["job"] in self._cancelled:
                self._senders -= 1
                self._release(event)
                return
            if self.sim.running >= cloud.concurrency:   # 429 TooManyRequestsException: back off, same sender
                self.sim.counts["throttled"] += 1
                step = min(cloud.throttle_backoff_max, cloud.throttle_backoff * 2 ** tries)
                delay = step * (0.5 + self.sim.uniform(0, 1))
                self.clock.call_later(delay, lambda: self._send(event, tries + 1))
                return
            self._senders -= 1
            self.sim.deliveries.append((event["stage"], self.clock.monotonic()))
            self._deliver(event, original=True)
            if self.sim.uniform(0, 1) < cloud.duplicate_rate:   # at-least-once: the same event again, later
                self.sim.counts["duplicates"] += 1
                later = self.sim.uniform(0, cloud.duplicate_delay)
                self.clock.call_later(later, lambda: self._deliver_locked(event, original=False))
            self._pump()

    def _deliver_locked(self, event: dict, original: bool) -> None:
        """A duplicate's delivery: it waits for a free execution too (Lambda's async queue holds it)."""
        with self.sim.lock:
            if event["job"] in self._cancelled:
                return
            if self.sim.running >= self.sim.cloud.concurrency:
                self.clock.call_later(self.sim.cloud.throttle_backoff * (1 + self.sim.uniform(0, 1)),
                                      lambda: self._deliver_locked(event, original))
                return
            self._deliver(event, original)

    def _deliver(self, event: dict, original: bool) -> None:
        """Start an execution: warm if an environment idles, else a cold one."""
        cloud = self.sim.cloud
        now = self.clock.monotonic()
        self._idle = [t for t in self._idle if now - t <= cloud.keep_warm]
        cold = not self._idle
        if cold:
            self._envs += 1
            self.sim.counts["cold_starts"] += 1
        else:
            self._idle.pop()
        self.sim.running += 1
        self.sim.peak_running = max(self.sim.peak_running, self.sim.running)
        delay = cloud.start_delay(self.sim.rng, cold)
        slowdown = cloud.slowdown(self.sim.rng)
        if slowdown > 1:
            self.sim.counts["stragglers"] += 1
        fn = f"sim-fn-{next(self._ids)}"
        self.clock.call_later(delay, lambda: self._start(event, fn, cold, slowdown, original), wakes_actor=True)

    def _start(self, event: dict, fn: str, cold: bool, slowdown: float, original: bool) -> None:
        self._queued.discard(_key(event))
        context = contextvars.copy_context()
        self._pool.submit(context.run, self._run, event, fn, cold, slowdown, original)

    # -- the function ---------------------------------------------------------------------------------------
    def _run(self, event: dict, fn: str, cold: bool, slowdown: float, original: bool) -> None:
        reply = None
        with self.clock.acting(counted=True):
            function.set(fn)
            try:
                cost = self.sim.model_of(event["stage"])
                if cost is not None:
                    reply = tasks.run(self.sim, event, cost, fn, cold, slowdown)
                else:
                    if slowdown > 1:   # a slow host, for a body that runs for real: it starts late
                        self.clock.sleep(slowdown - 1.0)
                    reply = worker.handle(event)
            except BaseException as exc:  # noqa: BLE001 - a simulator bug must not hang the driver
                reply = {"ok": False, "recorded": False, "error": f"simulator: {type(exc).__name__}: {exc}"}
            finally:
                with self.sim.lock:
                    self.sim.running -= 1
                    self._idle.append(self.clock.monotonic())
                    if isinstance(reply, dict) and reply.get("recorded") is False and event["job"] not in self._cancelled:
                        self._lost[event["job"]].append({**event, "lost_because": f"it could not record its "
                                                         f"outcome: {reply.get('error')}"})
                    if original:
                        self._release(event)
                    self._pump()

    def _release(self, event: dict) -> None:
        self._inflight.discard(_key(event))
        self._queued.discard(_key(event))


def _key(event: dict) -> tuple:
    return (event["job"], event["stage"], int(event["task"]), int(event["attempt"]))

"""The driver: advances a plan's stages by watching commit records in storage.

It uploads each stage function once, invokes one task per partition through
the backend, and learns what finished only from storage: one LIST of the
stage's prefix per poll. A stage starts when every stage it reads has
committed all its tasks (BSP). Attempts whose worker died or timed out are
re-invoked; stragglers get one backup copy; the commit rule makes every
duplicate harmless. Output partitions stream to the caller as they commit.

Each job has its own signing key (``integrity``), made here and sent to the
workers only inside the events: the driver signs what it uploads and checks
every record, error and output it reads back before decoding it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import statistics
import threading
from typing import Callable

import networkx as nx
import numpy as np

from ..errors import TaskLost, TaskMemoryError
from . import (adaptive, clock, codec, integrity, lifecycle, logs, offset_table, records, remote_errors, shipping,
               stats)
from .lease import Lease, LeasedStores, ending
from .plan import HASH_SHUFFLE, Plan, Stage
from .prefetch import Prefetcher
from .storage import open_store
from .worker import InputSpec, StageSpec, read_piece

MANIFEST_INLINE_LIMIT = 1 << 20   # inline results copied into a manifest, in total
MIN_POLL = 0.002                  # shortest pause between two LISTs of one stage
SPLIT_LIST = 500                  # from this many tasks, a poll lists done/ and err/ alone, not the outputs too
FETCH_THREADS = 64                # commit records read at once (S3Store keeps 64 connections)

log = logging.getLogger("graphwren")


@dataclasses.dataclass
class _Task:
    """The driver's view of one task: its winning commit, attempts in flight, failures and losses."""
    done: dict | None = None               # the winning commit record's header
    payload: bytes | None = None           # its inline result, if any
    next_attempt: int = 0
    in_flight: dict = dataclasses.field(default_factory=dict)  # attempt -> launch time
    user_failures: int = 0
    losses: int = 0
    backup: bool = False


class _StageRun:
    """One running stage: its spec, store, signing key and the state of each of its tasks."""

    def __init__(self, stage: Stage, store, spec: StageSpec, key: bytes):
        self.stage = stage
        self.store = store
        self.spec = spec
        self.key = key
        self.input_keys: dict[str, str] = {}   # persisted jobs this stage reads -> their keys (hex)
        self.fn_hash = None
        self.recorder: stats.JobRecorder | None = None   # the job record this stage's attempts go to
        self.tasks = [_Task() for _ in range(stage.ntasks)]
        self.ndone = 0
        self.bytes_done = 0   # read and written by its committed tasks (their statistics): for progress
        self.durations: list[float] = []
        self.seen_errors: set[str] = set()
        self.known: set[str] = set()              # done keys already read: skipped without parsing
        self.open: set[int] = set(range(stage.ntasks))   # tasks not committed: what timeouts look at
        self._median = (0, 0.0)                   # (durations it was taken over, median): see median()
        self.prefix = records.stage_prefix(spec.job, stage.name)
        self.started = 0.0

    @property
    def complete(self) -> bool:
        return self.ndone == self.stage.ntasks

    def median(self) -> float:
        """The median duration of the committed tasks, taken again only after 5% more committed
        (a poll of a 10,000-task stage must not sort 10,000 floats)."""
        n, value = self._median
        if not n or len(self.durations) >= n * 1.05 + 1:
            self._median = (len(self.durations), statistics.median(self.durations))
        return self._median[1]

    def status_keys(self) -> list[str]:
        """The stage's commit and error records, in one LIST of its prefix, or, for a wide stage, two
        (done/ and err/): its outputs, as many keys again, are not listed on every poll."""
        if self.stage.ntasks < SPLIT_LIST:
            return self.store.list(self.prefix)
        return self.store.list(self.prefix + "done/") + self.store.list(self.prefix + "err/")


class Driver:
    """Runs physical plans on one backend, with one default store."""

    def __init__(self, settings: dict, backend=None):
        from .backends import get_backend
        self.settings = settings
        self.store = open_store(settings["storage"])
        self.backend = backend if backend is not None else get_backend(settings)
        self.clock = clock.of(self.backend)   # every sleep and timeout of the driver: a simulator's is virtual
        self._fetcher = Prefetcher(FETCH_THREADS, "gw-fetch")   # commit records and outputs read at once
        self.timeline: list[tuple] = []   # (time, stage, event) of the last job
        self.adaptive: list[adaptive.Decision] = []   # what the last job re-planned at stage boundaries
        self.record: stats.JobRecord | None = None     # the last job's stages, attempts and statistics

    # -- public --------------------------------------------------------------
    def run(self, plan: Plan, on_output: Callable[[str, int, object], None] | None = None,
            job: str | None = None, keep: bool | None = None, description: str = "",
            handle: lifecycle.RunningJob | None = None) -> str:
        """Run ``plan`` to completion; ``on_output(stage, task, partition)`` gets each output.

        Returns the job id. Raises the first task failure (the user's own exception).
        """
        job = job or (handle.job if handle is not None else records.new_job_id())
        keep = self.settings["keep"] if keep is None else keep
        self.timeline = []
        self.adaptive = []
        this_job = handle or lifecycle.started(job, description)
        lease = Lease(job, description)
        stores = LeasedStores(lease)  # every store the job opens gets its heartbeat first
        key = integrity.new_key()
        integrity.remember(job, key)   # a kept job's partitions may be read by later jobs of this process
        recorder = stats.JobRecorder(job, description, self._record_settings(), self.clock.time)   # per job: an Executor runs several
        meter = stats.TaskMeter()   # the driver's own requests: uploads, LISTs, records read
        try:
            try:
                with meter, self.clock.acting():
                    stores[self.store.url] = self.store
                    for name, blob in plan.data.items():
                        data = records.data_key(job, name)
                        self.store.put(data, integrity.seal_blocks(key, data, blob))
                    self._run(plan, job, key, on_output or (lambda *a: None), stores, description, this_job,
                              recorder)
            except BaseException as exc:
                self._finish_record(recorder, ending(exc), meter, keep, f"{type(exc).__name__}: {exc}")
                lease.end(ending(exc), record=keep)
                self._stop_attempts(job)
                if not keep:
                    self._cleanup(job, stores)
                raise
            self._finish_record(recorder, "finished", meter, keep)
            lease.end("finished", record=keep)
            self._stop_attempts(job)  # backups and duplicates still running must not write after cleanup
            if not keep:
                self._cleanup(job, stores)
        finally:
            lifecycle.ended(this_job)
        return job

    def _record_settings(self) -> dict:
        """The settings a job record keeps: what ran it, and what its cost is reckoned from."""
        names = ("backend", "storage", "workers", "lambda_memory", "lambda_architecture", "prices")
        return {n: self.settings.get(n) for n in names if n in self.settings}

    def _finish_record(self, recorder: stats.JobRecorder, state: str, meter: stats.TaskMeter, keep: bool,
                       error: str | None = None) -> None:
        """Close the job record, keep it beside the job's kept keys, and tell whoever listens."""
        meter.stop()
        record = self.record = recorder.finish(state, self.timeline, meter.requests, error)
        if keep:
            try:
                self.store.put(records.job_record_key(record.job), record.to_json())
            except Exception as exc:  # noqa: BLE001 - the record is a view of the job, not its outcome
                log.warning("graphwren: could not keep the record of job %s: %s", record.job, exc)
        stats.finished(record)

    def _stop_attempts(self, job: str) -> None:
        cancel = getattr(self.backend, "cancel", None)
        if cancel is not None:
            cancel(job)

    # -- the loop --------------------------------------------------------------
    def _run(self, plan: Plan, job: str, key: bytes, on_output, stores: dict, description: str,
             this_job: lifecycle.RunningJob, recorder: stats.JobRecorder) -> None:
        graph = plan.graph()
        order = list(nx.topological_sort(graph))
        locations: dict[str, tuple[str, str]] = {}   # stage -> (store url, job) of its outputs
        finished: set[str] = set()
        running: dict[str, _StageRun] = {}
        buckets: dict[str, list[int]] = {}   # shuffle stage -> measured bytes of each bucket (its commit records)
        outputs = set(plan.outputs)
        recorder.planned = {s.name: s.ntasks for s in plan.stages}   # before adaptive stages change them
        recorder.index = {name: i for i, name in enumerate(order)}   # explain()'s stage numbers
        bar = self._progress_bar(plan, job, description)
        try:
            for name in order:
                stage = plan.stage(name)
                if stage.external is not None:
                    locations[name] = (stage.external["store"], stage.external["job"], stage.ntasks)
                    finished.add(name)
                    if name in outputs:
                        self._deliver_external(stage, on_output)
            seen = getattr(self.backend, "progress_count", 0)
            pause = MIN_POLL
            while len(finished) < len(order):
                this_job.check()
                broken = getattr(self.backend, "raise_if_broken", None)
                if broken is not None:
                    broken()
                for name in order:
                    if name in finished or name in running:
                        continue
                    if all(p in finished for p in graph.predecessors(name)):
                        stage = plan.stage(name)
                        if stage.adaptive is not None:
                            self._adapt(stage, buckets, locations, bar)
                        running[name] = self._start(stage, job, key, locations, stores, recorder)
                progressed = False
                lost = self._lost_events(job)
                for name, run in list(running.items()):
                    n_before, bytes_before = run.ndone, run.bytes_done
                    self._poll(run, name in outputs, on_output)
                    self._check_lost_and_late(run, lost.get(name, ()))
                    if run.ndone != n_before:
                        progressed = True
                        bar.update(run.ndone - n_before, name, run.bytes_done - bytes_before)
                    if run.complete:
                        recorder.stage_finished(name)
                        self._write_manifest(run)
                        if run.stage.nbuckets is not None:
                            buckets[name] = adaptive.task_bucket_sizes([s.done["o"] for s in run.tasks])
                        locations[name] = (run.store.url, job, run.stage.ntasks)
                        finished.add(name)
                        del running[name]
                        self.timeline.append((self.clock.time(), name, "finished"))
                if len(finished) == len(order):
                    break
                pause = MIN_POLL if progressed else min(pause * 2, self.settings["poll_interval"])
                waiter = getattr(self.backend, "wait", None)
                if waiter is not None:
                    seen = waiter(seen, pause)
                    self.clock.sleep(MIN_POLL)  # let a burst of commits land: fewer, fuller LISTs
                else:
                    self.clock.sleep(pause)
        finally:
            bar.close()

    def _adapt(self, stage: Stage, buckets: dict, locations: dict, bar) -> None:
        """Re-plan an adaptive stage from its inputs' measured buckets, in place, before it starts."""
        sources = [e.source for e in stage.inputs if e.kind == HASH_SHUFFLE]
        if any(src not in buckets for src in sources):   # a persisted input: no commit records were read
            self.timeline.append((self.clock.time(), stage.name, "adaptive: kept as planned (bucket sizes unknown)"))
            return
        planned = stage.ntasks
        decision = adaptive.replan(stage, {src: buckets[src] for src in sources})
        self.adaptive.append(decision)
        self.timeline.append((self.clock.time(), stage.name, f"adaptive: {decision.describe()}"))
        if stage.ntasks != planned:
            bar.retotal()

    def _start(self, stage: Stage, job: str, key: bytes, locations: dict, stores: dict,
               recorder: stats.JobRecorder | None = None) -> _StageRun:
        url = stage.storage or self.store.url
        store = stores.get(url) or stores.setdefault(url, open_store(url))
        inputs = [InputSpec(*locations[edge.source][:2], edge.source, locations[edge.source][2],
                            edge.kind, edge.table) for edge in stage.inputs]
        spec = StageSpec(name=stage.name, label=stage.label or stage.name, fn=stage.fn,
                         ntasks=stage.ntasks, nbuckets=stage.nbuckets, inputs=inputs, job=job,
                         data_store=self.store.url, inline_limit=self.settings["inline_limit"],
                         log_limit=self.settings.get("task_log_limit", logs.DEFAULT_LIMIT),
                         prefixes=stage.prefixes)
        blob, fn_hash = spec.dumps()
        available = getattr(self.backend, "available_modules", None)
        image = available() if available is not None else None
        if image is not None:  # the workers' image may lack the user's own modules: ship them by value
            blob = shipping.fit_to_image(spec, blob, image, f"stage {spec.label}")
            fn_hash = hashlib.sha256(blob).hexdigest()
        name = records.func_key(job, stage.name)
        store.put(name, integrity.seal(key, name, blob))
        run = _StageRun(stage, store, spec, key)
        run.started = self.clock.monotonic()
        run.fn_hash = fn_hash
        run.recorder = recorder or stats.JobRecorder(job, "", {})
        run.input_keys = {i.job: integrity.to_event(integrity.job_key(i.job)) for i in inputs if i.job != job}
        self.timeline.append((self.clock.time(), stage.name, "started"))
        run.recorder.stage_started(stage.name, spec.label, run.recorder.index.get(stage.name, -1), stage.ntasks,
                                   run.recorder.planned.get(stage.name, stage.ntasks),
                                   [e.source for e in stage.inputs], stage.nbuckets, store.url)
        self._invoke(run, range(stage.ntasks))
        return run

    def _invoke(self, run: _StageRun, tasks, kind: str | None = None) -> None:
        now = self.clock.monotonic()
        events = []
        for t in tasks:
            state = run.tasks[t]
            attempt = state.next_attempt
            state.next_attempt += 1
            state.in_flight[attempt] = now
            run.recorder.launched(run.stage.name, t, attempt, kind or (stats.FIRST if attempt == 0 else stats.RETRY))
            event = {"store": run.store.url, "job": run.spec.job, "stage": run.stage.name,
                     "task": t, "attempt": attempt, "fn": run.fn_hash, "key": integrity.to_event(run.key),
                     "max_memory": self.settings["max_task_memory"]}
            if run.input_keys:
                event["keys"] = run.input_keys
            events.append(event)
        self.backend.invoke(events)

    def _poll(self, run: _StageRun, is_output: bool, on_output) -> None:
        done, errors = [], []
        for key in run.status_keys():
            if key in run.known:
                continue
            parsed = records.parse_status_key(key, run.prefix)
            if parsed is None:
                continue
            kind, task, _ = parsed
            if kind == "done" and run.tasks[task].done is None:
                done.append(task)
            elif kind == "err" and key not in run.seen_errors and run.tasks[task].done is None:
                errors.append(key)
        if done:
            for task, (header, payload) in zip(done, self._map(lambda t: self._read_done(run, t), done)):
                state = run.tasks[task]
                if header.get("o") is not None:   # 8 bytes an offset, not a Python int's 36: M x R of them
                    header["o"] = np.asarray(header["o"], dtype=np.int64)
                state.done, state.payload = header, payload
                run.known.add(records.done_key(run.spec.job, run.stage.name, task))
                run.open.discard(task)
                run.recorder.committed(run.stage.name, task, header)
                moved = header.get("s") or {}
                run.bytes_done += moved.get("bytes_read", 0) + moved.get("bytes_written", 0)
                started = state.in_flight.get(header["a"])
                if started is not None:
                    run.durations.append(self.clock.monotonic() - started)
                state.in_flight.clear()
                run.ndone += 1
            if is_output:
                parts = self._map(lambda t: self._fetch_output(run, t), done)
                for task, part in zip(done, parts):
                    on_output(run.stage.name, task, part)
        for key in errors:
            run.seen_errors.add(key)
            _, task, attempt = records.parse_status_key(key, run.prefix)
            state = run.tasks[task]
            state.in_flight.pop(attempt, None)
            if state.done is not None:
                continue
            run.recorder.failed(run.stage.name, task, attempt)
            if state.user_failures < self.settings["retries"]:
                state.user_failures += 1
                self._invoke(run, [task])
                continue
            exc = remote_errors.load(run.store, key, run.key)
            run.recorder.attach_log(run.stage.name, task, attempt, getattr(exc, "task_log", None))
            raise exc

    def _lost_events(self, job: str) -> dict[str, list[dict]]:
        """Events whose worker died (backends that can tell), by stage."""
        by_stage: dict[str, list[dict]] = {}
        lost = getattr(self.backend, "lost", None)
        for event in (lost(job) if lost is not None else ()):
            by_stage.setdefault(event["stage"], []).append(event)
        return by_stage

    def _check_lost_and_late(self, run: _StageRun, lost_events) -> None:
        for event in lost_events:
            if event.get("over_memory") is not None and run.tasks[event["task"]].done is None:
                raise TaskMemoryError(
                    f"task {event['task']} of stage {run.spec.label} used {event['over_memory'] / 2**20:,.0f} MiB, "
                    f"over max_task_memory={self.settings['max_task_memory'] / 2**20:,.0f} MiB, and was killed; "
                    f"use more, smaller partitions, or raise max_task_memory if the machine has the memory")
            self._lose(run, event["task"], event["attempt"], event.get("lost_because", "its worker process died"))
        now = self.clock.monotonic()
        timeout = self.settings["task_timeout"]
        abandon = getattr(self.backend, "abandon", None)
        waiting = getattr(self.backend, "waiting", None)
        # An attempt still waiting for a worker (or for a Lambda token) is neither late nor slow: its
        # clock starts when it leaves the queue. Else a task queued behind others times out unrun, and
        # on 2 workers the last tasks of a 16-task stage look like stragglers, so their backups both
        # waste a worker and get it killed when the job ends.
        for t, attempt in waiting(run.spec.job, run.stage.name) if waiting is not None else ():
            if attempt in run.tasks[t].in_flight:
                run.tasks[t].in_flight[attempt] = now
        # every attempt started after its stage did: until the stage is task_timeout old, none is late
        late = sorted(run.open) if now - run.started > timeout else ()
        for t in late:
            state = run.tasks[t]
            for attempt, started in list(state.in_flight.items()):
                if now - started > timeout:
                    if abandon is not None:  # free its worker: a task that never returns must not hold it
                        abandon({"job": run.spec.job, "stage": run.stage.name, "task": t, "attempt": attempt})
                    self._lose(run, t, attempt, f"it ran longer than task_timeout={timeout:g}s", timed_out=True)
        self._speculate(run, now)

    def _lose(self, run: _StageRun, task: int, attempt: int, why: str, timed_out: bool = False) -> None:
        state = run.tasks[task]
        if state.done is not None or attempt not in state.in_flight:
            return
        del state.in_flight[attempt]
        run.recorder.lost(run.stage.name, task, attempt, why)
        if state.in_flight:
            return  # another attempt (a backup) is still running
        if state.losses >= self.settings["task_retries"]:
            advice = ("Raise task_timeout if tasks this long are expected." if timed_out else
                      "Raise task_retries if such losses are expected.")
            raise TaskLost(f"task {task} of stage {run.spec.label} was lost {state.losses + 1} times; "
                           f"last because {why}. {advice}")
        state.losses += 1
        self.timeline.append((self.clock.time(), run.stage.name, f"retry task {task}: {why}"))
        self._invoke(run, [task])

    def _speculate(self, run: _StageRun, now: float) -> None:
        """One backup copy of a task far slower than its finished peers."""
        if not self.settings["speculation"] or run.stage.ntasks < 4 or len(run.durations) < 0.75 * run.stage.ntasks:
            return
        limit = max(3 * run.median(), 2.0)
        late = [t for t in sorted(run.open) for s in (run.tasks[t],)
                if not s.backup and s.in_flight and now - min(s.in_flight.values()) > limit]
        for t in late:
            run.tasks[t].backup = True
            self.timeline.append((self.clock.time(), run.stage.name, f"backup copy of task {t}"))
        if late:
            self._invoke(run, late, stats.BACKUP)

    # -- records -----------------------------------------------------------------
    def _read_done(self, run: _StageRun, task: int):
        return read_commit(run.store, run.spec.job, run.stage.name, task, run.key)

    def _fetch_output(self, run: _StageRun, task: int):
        state = run.tasks[task]
        return fetch_output(run.store, run.spec.job, run.stage.name, task, state.done, state.payload, run.key)

    def _write_manifest(self, run: _StageRun) -> None:
        job, stage = run.spec.job, run.stage.name
        columns = None
        if records.offsets_in_columns(len(run.tasks), run.stage.nbuckets):
            columns = records.new_nonce()   # the signed manifest names the one table it goes with
            table = records.offsets_key(job, stage, columns)
            run.store.put(table, offset_table.encode(run.key, table, np.stack([s.done["o"] for s in run.tasks])))
        name = records.manifest_key(job, stage)
        run.store.put(name, manifest_record(run.key, name, [(s.done, s.payload) for s in run.tasks], columns))
        for s in run.tasks:
            s.payload = None  # the manifest holds it now; keep driver memory bounded

    def _deliver_external(self, stage: Stage, on_output) -> None:
        spec = InputSpec(stage.external["store"], stage.external["job"], stage.name, stage.ntasks, "gather")
        key = integrity.job_key(spec.job)
        for t in range(stage.ntasks):
            on_output(stage.name, t, read_piece(spec, (t, None), key))   # the same reader the workers use

    # -- helpers -------------------------------------------------------------------
    def _map(self, fn, items):
        if len(items) <= 1 or self.store.url.startswith("file://"):
            return [fn(i) for i in items]
        return self.clock.parallel(self._fetcher, fn, items)

    def _cleanup(self, job: str, stores: dict) -> None:
        integrity.forget(job)
        for store in stores.values():
            try:
                store.delete(f"{job}/")
            except Exception as exc:  # noqa: BLE001 - cleanup must not mask the real outcome
                log.warning("graphwren: could not delete job %s keys in %s: %s", job, store.url, exc)

    def _progress_bar(self, plan: Plan, job: str, description: str):
        from .progress import job_progress
        # A job on another thread (Executor.map's) runs behind the caller's back: in a REPL
        # the prompt is already showing, and progress must not be drawn over it.
        return job_progress(plan, job, description, self.settings,
                            background=threading.current_thread() is not threading.main_thread())


# -- the commit records and outputs a driver reads, checked against the job's key ---------------
def read_commit(store, job: str, stage: str, task: int, key: bytes):
    """(header, inline payload or None) of a task's signed commit record."""
    name = records.done_key(job, stage, task)
    header, payload = records.unpack(integrity.unseal(key, name, store.get(name), store.url, "commit record"))
    return header, (bytes(payload) if header.get("inline") else None)


def fetch_output(store, job: str, stage: str, task: int, header: dict, payload, key: bytes):
    """The partition the commit record names: its inline bytes (checked with the record), or its exact output object."""
    if header.get("inline"):
        return codec.decode(payload)
    name = records.out_key(job, stage, task, header["a"], header["x"], header.get("p"))
    return codec.decode(integrity.open_segment(key, name, None, store.get(name), store.url))


def manifest_record(key: bytes, name: str, tasks: list[tuple[dict, bytes | None]], columns: str | None = None) -> bytes:
    """A stage's signed manifest: each task's winning execution, inline results copied in when small.

    With ``columns`` (the nonce of the stage's offset table) the bucket
    offsets are in that table, not here: each entry is then a few dozen
    bytes, so a reader's GET grows with the map tasks, not with map tasks x buckets.
    """
    entries, blobs, size = [], [], 0
    total_inline = sum(len(p) for _, p in tasks if p is not None)
    for done, payload in tasks:
        entry = {"a": done["a"], "x": done["x"]}
        if columns is None:
            entry["o"] = None if done["o"] is None else [int(o) for o in done["o"]]
        if done.get("inline"):
            entry["inline"] = True
        if done.get("p"):   # the output lies under one of its stage's spread prefixes
            entry["p"] = done["p"]
        if payload is not None and total_inline <= MANIFEST_INLINE_LIMIT:
            entry["i"] = [size, size + len(payload)]
            blobs.append(payload)
            size += len(payload)
        entries.append(entry)
    header = {"tasks": entries}
    if columns is not None:
        # the table's nonce, its buckets and its rows (map tasks)
        header["columns"] = {"x": columns, "r": len(tasks[0][0]["o"]) - 1, "m": len(tasks)}
    return integrity.seal(key, name, records.pack(header, b"".join(blobs)))

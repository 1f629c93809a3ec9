"""The PyWren core API on graphwren's runtime: map, call_async, map_reduce, wait.

``Executor.map`` ships the items through storage in one object (one byte
range per task), runs one stateless task per chunk of items, and hands back
one ``concurrent.futures.Future`` per item. A user exception fails only its
own item's future, carrying the original type and the remote traceback.
"""
from __future__ import annotations

import concurrent.futures
import math
import reprlib
import threading
from typing import Any, Callable, Iterable

import cloudpickle

from . import config
from .runtime import lifecycle, records, shipping
from .runtime.driver import Driver
from .runtime.plan import GATHER, Edge, Plan, Stage
from .runtime.remote_errors import restore
from .tasks import calls, shipped

ANY_COMPLETED = concurrent.futures.FIRST_COMPLETED
FIRST_COMPLETED = concurrent.futures.FIRST_COMPLETED
ALL_COMPLETED = concurrent.futures.ALL_COMPLETED
FIRST_EXCEPTION = concurrent.futures.FIRST_EXCEPTION


class Executor:
    """Runs Python functions as stateless tasks; settings as in ``graphwren.config``."""

    def __init__(self, storage: str | None = None, backend: str | None = None,
                 workers: int | None = None, retries: int | None = None, **settings):
        self.settings = config.resolve(dict(storage=storage, backend=backend, workers=workers,
                                            retries=retries, **settings))
        self.driver = Driver(self.settings)  # opens the store now: a bad URL fails here
        self._jobs: list[lifecycle.RunningJob] = []

    # -- PyWren API -----------------------------------------------------------
    def call_async(self, fn: Callable, data: Any) -> concurrent.futures.Future:
        return self.map(fn, [data])[0]

    def map(self, fn: Callable, iterdata: Iterable, chunksize: int | None = None) -> list[concurrent.futures.Future]:
        """One future per item; items are grouped ``chunksize`` to a task (auto by default)."""
        stage, data, futures = self._map_stage(fn, iterdata, chunksize)
        if not futures:
            return []

        def on_output(_stage, task, part):
            for k, value in enumerate(part):
                fut = futures[stage.fn.first_index[task] + k]
                if isinstance(value, calls.Failed):
                    fut.set_exception(restore(value.blob))
                else:
                    fut.set_result(value)

        self._launch(Plan([stage], [stage.name], data), on_output, futures, f"map({calls.describe(fn)})")
        return list(futures)  # the caller's own list: popping from it must not hide futures from the job

    def map_reduce(self, map_fn: Callable, iterdata: Iterable, reduce_fn: Callable,
                   chunksize: int | None = None) -> concurrent.futures.Future:
        """``reduce_fn(list of map results, in input order)`` in one more task."""
        _check_picklable(reduce_fn, "reduce function")
        stage, data, futures = self._map_stage(map_fn, iterdata, chunksize)
        result = concurrent.futures.Future()
        result.set_running_or_notify_cancel()
        if not futures:
            result.set_result(reduce_fn([]))
            return result
        reduce = Stage("reduce", 1, calls.Reduce(reduce_fn), [Edge(stage.name, GATHER)], label=f"reduce({calls.describe(reduce_fn)})")
        self._launch(Plan([stage, reduce], ["reduce"], data),
                     lambda _s, _t, part: result.set_result(part[0]), [result],
                     f"map_reduce({calls.describe(map_fn)})")
        return result

    def wait_all(self) -> None:
        """Block until every job this executor started has finished (and deleted its keys)."""
        for job in list(self._jobs):
            job.finished.wait()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """As ``concurrent.futures.Executor.shutdown``: optionally cancel running jobs, then wait.

        Cancelled jobs' tasks are stopped, their keys removed, and their unfinished
        futures raise ``JobCancelled``.
        """
        if cancel_futures:
            lifecycle.cancel([j for j in self._jobs if not j.finished.is_set()], "Executor.shutdown(cancel_futures=True)")
        if wait:
            self.wait_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.wait_all()
        return False

    # -- internals --------------------------------------------------------------
    def _map_stage(self, fn, iterdata, chunksize):
        _check_picklable(fn, "function")
        items = list(iterdata)
        if not items:
            return None, {}, []
        if chunksize is None:
            chunksize = max(1, math.ceil(len(items) / (self.driver.backend.parallelism * 4)))
        if chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize}")
        available = getattr(self.driver.backend, "available_modules", None)
        image = available() if available is not None else None   # Lambda: what its image can import
        first = list(range(0, len(items), chunksize))

        def pickled(start):
            chunk = items[start:start + chunksize]
            blob = _pickle_items(chunk, start)
            if image is not None:  # objects of the user's own classes travel by value too
                blob = shipping.fit_to_image(chunk, blob, image, f"input items {start}-{start + len(chunk) - 1}")
            return blob

        data, offsets = shipped.pack(first, encode=pickled)
        stage = Stage("map", len(first), calls.MapChunk(fn, shipped.Shipped("items", offsets, "pickle"), first,
                                                        self.settings["retries"]),
                      label=f"map({calls.describe(fn)})")
        futures = [concurrent.futures.Future() for _ in items]
        for f in futures:
            f.set_running_or_notify_cancel()
        return stage, {"items": data}, futures

    def _launch(self, plan: Plan, on_output, futures, description: str) -> None:
        def run():
            try:
                self.driver.run(plan, on_output, description=description, handle=handle)
            except BaseException as exc:  # noqa: BLE001 - every unfinished future learns of it
                for f in futures:
                    if not f.done():
                        f.set_exception(exc)
            else:
                lost = [f for f in futures if not f.done()]
                for f in lost:  # cannot happen unless a stage returned too few results
                    f.set_exception(RuntimeError("graphwren: the job finished without this result"))

        thread = threading.Thread(target=run, name=f"graphwren-{description}", daemon=True)
        # Tracked before it starts: a script that ends right after map() must still
        # find the job at exit, and wait for it (lifecycle's exit hook).
        handle = lifecycle.started(records.new_job_id(), description, thread)
        self._jobs = [j for j in self._jobs if not j.finished.is_set()] + [handle]
        thread.start()


def _check_picklable(obj, what: str) -> None:
    try:
        cloudpickle.dumps(obj)
    except Exception as exc:
        raise TypeError(f"graphwren cannot pickle the {what} {calls.describe(obj)!r}: {exc}") from exc


def _pickle_items(chunk: list, start: int) -> bytes:
    try:
        return cloudpickle.dumps(chunk)
    except Exception:
        for k, item in enumerate(chunk):
            try:
                cloudpickle.dumps(item)
            except Exception as exc:
                raise TypeError(f"graphwren cannot pickle input item {start + k} ({reprlib.repr(item)}): {exc}") from exc
        raise


def wait(futures, return_when=ALL_COMPLETED, timeout: float | None = None):
    """(done, pending) lists, in the order given, as PyWren's ``wait``."""
    futures = list(futures)
    done, _ = concurrent.futures.wait(futures, timeout=timeout, return_when=return_when)
    return [f for f in futures if f in done], [f for f in futures if f not in done]


def get_all_results(futures) -> list:
    """Every result in order; the first failure raises its original exception."""
    return [f.result() for f in futures]

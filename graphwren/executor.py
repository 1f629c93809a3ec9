"""The PyWren and Lithops executor API on graphwren's runtime.

``Executor.map`` binds every input item to the function's arguments
(``tasks/call_args``: tuples as ``*args``, dicts as ``**kwargs``, as Lithops;
a whole item as the one argument, as PyWren, where only that fits), ships
the calls through storage in one object (one byte range per task), runs one
stateless task per chunk of calls, and hands back one future per call. A
user exception fails only its own call's future, carrying the original type
and the remote traceback.

A function with Lithops' reserved ``obj`` parameter gets one call per chunk
of each stored object its items name (``executor_objects``), with a
line-aligned ``obj.data_stream`` (``tasks/cloud_objects``); one with ``id``
gets its call index. Per call: ``timeout``, ``extra_env``, ``runtime_memory``.
Lithops' ``FunctionExecutor`` methods (``get_result``, ``wait``, ``plot``,
``clean``, ``job_summary``) sit next to PyWren's (``call_async``, ``map``,
``map_reduce``, ``get_all_results``, module-level ``wait``).
"""
from __future__ import annotations

import concurrent.futures
import datetime
import math
import os
import re
import reprlib
import threading
import time
from typing import Any, Callable, Iterable

import cloudpickle

from . import config
from . import executor_objects as objects
from . import executor_report as report
from .runtime import lifecycle, records, shipping
from .runtime.driver import Driver
from .runtime.plan import CUSTOM, GATHER, Edge, Plan, Stage
from .tasks import call_args, calls, shipped

ANY_COMPLETED = concurrent.futures.FIRST_COMPLETED
FIRST_COMPLETED = concurrent.futures.FIRST_COMPLETED
ALL_COMPLETED = concurrent.futures.ALL_COMPLETED
FIRST_EXCEPTION = concurrent.futures.FIRST_EXCEPTION
#: Lithops' "return at once" (0 % of the calls); any int from -1 to 100 is Lithops' percentage form,
#: -1 its ANY_COMPLETED and 100 its ALL_COMPLETED.
ALWAYS = 0

# Lithops' storage and compute backend names, and what they are here.
_LITHOPS_STORAGE = {"aws_s3": "s3://BUCKET/PREFIX", "redis": "redis://HOST:PORT/DB"}
_BACKENDS = {"localhost": "local", "local": "local", "aws_lambda": "lambda", "lambda": "lambda"}
_MODES = {"localhost": "local", "serverless": "lambda"}
_TIMEOUT_SLACK_S = 30.0   # added to a job's task timeout beyond its calls' own timeouts


class _Flag:
    """A bool that can also be called: Lithops reads ``future.done`` as a property, PyWren calls ``done()``."""

    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = bool(value)

    def __bool__(self) -> bool:
        return self.value

    def __call__(self) -> bool:
        return self.value

    def __eq__(self, other) -> bool:
        return self.value == bool(other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


class ResponseFuture(concurrent.futures.Future):
    """One call's future: a ``concurrent.futures.Future`` with Lithops' ids, stats and status flags."""

    def __init__(self, executor_id: str, job_id: str, call_id: int, function_name: str, produce_output=True):
        super().__init__()
        self.executor_id, self.job_id, self.call_id = executor_id, job_id, call_id
        self.function_name = function_name
        self.stats: dict = {}
        self._produce_output = produce_output   # False for map_reduce's maps: get_result() skips them
        self._read = False

    @property
    def done(self) -> _Flag:   # type: ignore[override]
        return _Flag(concurrent.futures.Future.done(self))

    @property
    def success(self) -> bool:
        return bool(self.done) and not self.cancelled() and self.exception() is None

    @property
    def error(self) -> bool:
        return bool(self.done) and not self.cancelled() and self.exception() is not None

    @property
    def ready(self) -> bool:
        return bool(self.done)

    def result(self, timeout: float | None = None, throw_except: bool = True):
        """The call's value; its original exception is raised (or None returned, ``throw_except=False``)."""
        if not throw_except and self.exception(timeout) is not None:   # waits as result() would
            return None
        return super().result(timeout)

    def __repr__(self):
        state = "done" if self.done else "pending"
        return f"<ResponseFuture {self.executor_id}/{self.job_id}/{self.call_id:05d} {state}>"


class FuturesList(list):
    """A list of futures, with Lithops' shortcuts (``get_result``, ``wait``, ``plot``) and ``result()``."""

    def __init__(self, futures=(), executor: "Executor | None" = None, reducers: int = 0):
        super().__init__(futures)
        self.executor = executor
        self._reducers = reducers   # map_reduce: the last ones are the reduce futures

    def result(self, timeout: float | None = None):
        """map_reduce's answer (PyWren's ``.result()``): the reduce value, or the list of them per object."""
        if not self._reducers:
            return [f.result(timeout) for f in self]
        values = [f.result(timeout) for f in self[len(self) - self._reducers:]]
        return values[0] if self._reducers == 1 and not getattr(self, "_by_key", False) else values

    def _answer(self) -> list:
        return self[len(self) - self._reducers:] if self._reducers else list(self)

    def done(self) -> bool:
        """True once map_reduce's reducers (or every future here) are done, as PyWren's single future."""
        return all(concurrent.futures.Future.done(f) for f in self._answer())

    def exception(self, timeout: float | None = None):
        """The first exception of the reducers (or of any future here), or None."""
        for f in self._answer():
            exc = f.exception(timeout)
            if exc is not None:
                return exc
        return None

    def add_done_callback(self, fn) -> None:
        """``fn(self)`` once ``done()``, as on a single future."""
        pending = {"n": len(self._answer())}
        lock = threading.Lock()

        def one(_f):
            with lock:
                pending["n"] -= 1
                last = pending["n"] == 0
            if last:
                fn(self)
        if not pending["n"]:
            fn(self)
        for f in self._answer():
            f.add_done_callback(one)

    def get_result(self, **kwargs):
        return self.executor.get_result(fs=self, **kwargs)

    def wait(self, **kwargs):
        return self.executor.wait(fs=self, **kwargs)

    def plot(self, **kwargs):
        return self.executor.plot(fs=self, **kwargs)


class Executor:
    """Runs Python functions as stateless tasks: PyWren's API and Lithops' ``FunctionExecutor``.

    ``storage`` is a store URL or path, or Lithops' ``'localhost'`` (a folder
    under graphwren's cache); ``backend`` is ``'local'``/``'lambda'`` or Lithops'
    ``'localhost'``/``'aws_lambda'``; ``mode`` Lithops' ``'localhost'`` or
    ``'serverless'``. Other keywords are graphwren settings (``graphwren.config``).
    """

    def __init__(self, storage: str | None = None, backend: str | None = None,
                 workers: int | None = None, retries: int | None = None, mode: str | None = None,
                 config: dict | None = None, log_level=False, monitoring: str | None = None,
                 runtime_memory: int | None = None, **settings):
        lithops = dict((config or {}).get("lithops", {})) if isinstance(config, dict) else {}
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict (Lithops' {{'lithops': {{...}}}}), got {type(config).__name__}")
        storage = _storage_url(storage if storage is not None else lithops.get("storage"), config or {})
        backend = _backend_name(backend if backend is not None else lithops.get("backend"),
                                mode if mode is not None else lithops.get("mode"))
        if monitoring not in (None, "storage"):
            raise ValueError(f"monitoring={monitoring!r}: graphwren watches its tasks through storage only")
        if runtime_memory is not None:
            settings.update(_memory_settings(runtime_memory, backend or _config_get("backend")))
        self.settings = _resolve(dict(storage=storage, backend=backend, workers=workers, retries=retries,
                                      **settings))
        self.driver = Driver(self.settings)  # opens the store now: a bad URL fails here
        self.executor_id = records.new_job_id()
        self.futures: list[ResponseFuture] = []
        self.last_call: str | None = None
        self._jobs: list[lifecycle.RunningJob] = []
        self._job_ids: dict[str, str] = {}   # Lithops job id (M000) -> graphwren job id, for clean()
        self._counter = 0
        self._backends: dict[int, Any] = {}  # lambda memory (MB) -> backend for that function
        self._lock = threading.Lock()

    # -- PyWren and Lithops API ---------------------------------------------------
    def call_async(self, func: Callable, data: Any, extra_env: dict | None = None,
                   runtime_memory: int | None = None, timeout: float | None = None,
                   include_modules=(), exclude_modules=()) -> ResponseFuture:
        """One call; ``data`` binds as one map item does (a tuple: the arguments, a dict: keyword arguments)."""
        futures = self._map("A", "call_async", func, [data], None, None, extra_env, runtime_memory,
                            None, None, "\n", timeout, include_modules, exclude_modules)
        return futures[0]

    def map(self, map_function: Callable, map_iterdata: Iterable, chunksize: int | None = None,
            extra_args=None, extra_env: dict | None = None, runtime_memory: int | None = None,
            obj_chunk_size: int | None = None, obj_chunk_number: int | None = None,
            obj_newline: str | None = "\n", timeout: float | None = None,
            include_modules=(), exclude_modules=()) -> FuturesList:
        """One future per call; calls are grouped ``chunksize`` to a task (auto by default).

        ``include_modules``/``exclude_modules`` are accepted for Lithops code and change
        nothing: functions travel by cloudpickle, the user's own modules by value to Lambda.
        """
        return self._map("M", "map", map_function, map_iterdata, chunksize, extra_args, extra_env,
                         runtime_memory, obj_chunk_size, obj_chunk_number, obj_newline, timeout,
                         include_modules, exclude_modules)

    def map_reduce(self, map_function: Callable, map_iterdata: Iterable, reduce_function: Callable,
                   chunksize: int | None = None, extra_args=None, extra_args_reduce=None,
                   extra_env: dict | None = None, map_runtime_memory: int | None = None,
                   reduce_runtime_memory: int | None = None, timeout: float | None = None,
                   obj_chunk_size: int | None = None, obj_chunk_number: int | None = None,
                   obj_newline: str | None = "\n", obj_reduce_by_key: bool = False,
                   spawn_reducer: int = 20, include_modules=(), exclude_modules=()) -> FuturesList:
        """The map futures then the reduce future(s); ``.result()`` is the reduce value.

        ``reduce_function(results in input order, *extra_args_reduce)`` runs in one more
        task of the same job, or one per object with ``obj_reduce_by_key``. graphwren's
        driver starts a stage when every stage it reads has committed, so the reducer
        starts as soon as the last map commits, not at Lithops' ``spawn_reducer`` share
        (accepted and checked, 0-100 or -1): Lithops' early reducer only waits for the
        maps' results, which graphwren's reducer reads from storage at once instead.
        """
        _check_picklable(reduce_function, "reduce function")
        if isinstance(spawn_reducer, bool) or not isinstance(spawn_reducer, int) or not -1 <= spawn_reducer <= 100:
            raise ValueError(f"spawn_reducer must be a percentage 0-100 (or -1, Lithops' ANY_COMPLETED), "
                             f"got {spawn_reducer!r}")
        if reduce_runtime_memory is not None and map_runtime_memory is None:
            map_runtime_memory = reduce_runtime_memory
        elif reduce_runtime_memory not in (None, map_runtime_memory):
            raise ValueError("graphwren runs the map and reduce stages of one job on one backend function: "
                             "give map_runtime_memory and reduce_runtime_memory the same value (or one of them)")
        extra_r_args, extra_r_kwargs = (), {}
        if isinstance(extra_args_reduce, dict):
            extra_r_kwargs = extra_args_reduce
        elif isinstance(extra_args_reduce, (tuple, list)):
            extra_r_args = tuple(extra_args_reduce)
        elif extra_args_reduce is not None:
            raise TypeError(f"extra_args_reduce must be a tuple, list or dict, got {type(extra_args_reduce).__name__}")
        return self._map("M", "map_reduce", map_function, map_iterdata, chunksize, extra_args, extra_env,
                         map_runtime_memory, obj_chunk_size, obj_chunk_number, obj_newline, timeout,
                         include_modules, exclude_modules,
                         reduce=(reduce_function, extra_r_args, extra_r_kwargs, bool(obj_reduce_by_key)))

    def wait(self, fs=None, throw_except: bool = True, return_when=ALL_COMPLETED, download_results: bool = False,
             timeout: float | None = None, threadpool_size: int = 64, wait_dur_sec: float | None = None,
             show_progressbar: bool = True) -> tuple[FuturesList, FuturesList]:
        """(done, not done), as Lithops: ``return_when`` is ALWAYS, ANY_COMPLETED, ALL_COMPLETED or a percentage.

        A failed call raises its exception (``throw_except``); a ``timeout`` that
        runs out raises ``TimeoutError``, as Lithops' wait does.
        """
        futures = self._futures_of(fs)
        need = _needed(return_when, len(futures))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [f for f in futures if f.done]
            if throw_except:
                for f in done:
                    if not f.cancelled() and f.exception() is not None:
                        raise f.exception()
            if len(done) >= need or len(done) == len(futures):
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"Timeout of {timeout:g} seconds exceeded waiting for function activations "
                                   f"to finish: {len(futures) - len(done)} of {len(futures)} not done")
            pending = [f for f in futures if not f.done]
            concurrent.futures.wait(pending, timeout=left, return_when=concurrent.futures.FIRST_COMPLETED)
        return (FuturesList([f for f in futures if f.done], self),
                FuturesList([f for f in futures if not f.done], self))

    def get_result(self, fs=None, throw_except: bool = True, timeout: float | None = None,
                   threadpool_size: int = 64, wait_dur_sec: float | None = None, show_progressbar: bool = True):
        """Every result, in order (Lithops): of ``fs``, or of this executor's calls not read yet.

        map_reduce's maps give none (their reducer's value is the result); a single
        result comes alone unless the last call was ``map``.
        """
        if fs is None:
            futures = [f for f in self.futures if not f._read]
        else:
            futures = self._futures_of(fs)
        self.wait(futures, throw_except=throw_except, timeout=timeout)
        out = []
        for f in futures:
            if not f._produce_output:
                continue
            out.append(f.result(throw_except=throw_except))
            if fs is None:
                f._read = True
        if len(out) == 1 and self.last_call != "map":
            return out[0]
        return out

    def plot(self, fs=None, dst: str | None = None, figsize=(10, 6)):
        """Lithops' plots of the finished calls: '{dst}_timeline.png' and '{dst}_histogram.png'; their paths."""
        return report.plot(self._futures_of(fs), dst, figsize)

    def job_summary(self, cloud_objects_n: int = 0, path: str | None = None) -> list[dict]:
        """Per job: calls, memory, mean run time, cost (Lambda's list prices; 0 on the local backend).

        Returns the rows and writes them as CSV to ``path`` (default: a timestamped
        file under graphwren's cache, ``logs/``), as Lithops' job_summary logs them.
        """
        memory = self.settings.get("lambda_memory") if self.settings["backend"] == "lambda" else \
            self.settings["max_task_memory"] // 2**20
        rows = report.summary_rows(self.futures, self.settings["backend"], memory, cloud_objects_n)
        if path is None:
            cache = config._default_storage()[len("file://"):]
            path = os.path.join(cache, "logs", datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S.csv"))
        self.log_path = report.write_csv(rows, path)
        return rows

    def clean(self, fs=None, cs=None, clean_cloudobjects: bool = True, clean_fn: bool = False,
              force: bool = False, on_exit: bool = False) -> int:
        """Delete the storage keys of this executor's finished jobs (of ``fs``' jobs); ``force`` cancels running ones.

        graphwren deletes a job's keys when it ends unless ``keep=True``, so this
        matters for kept jobs and after a crash. Returns how many keys went.
        """
        if cs:
            raise ValueError("clean(cs=...): graphwren makes no cloudobjects of its own (Lithops' "
                             "storage.put_cloudobject); delete your objects with your storage's client")
        wanted = None if fs is None else {f.job_id for f in self._futures_of(fs)}
        with self._lock:
            jobs = [(lid, gid) for lid, gid in self._job_ids.items() if wanted is None or lid in wanted]
        running = {j.job: j for j in self._jobs if not j.finished.is_set()}
        if force:
            lifecycle.cancel([running[g] for _, g in jobs if g in running], "Executor.clean(force=True)")
            for _, g in jobs:
                if g in running:
                    running[g].finished.wait()
            running = {}
        removed = 0
        for _, gid in jobs:
            if gid not in running:
                removed += self.driver.store.delete(f"{gid}/")
        return removed

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
    def _futures_of(self, fs) -> list[ResponseFuture]:
        if fs is None:
            return list(self.futures)
        if isinstance(fs, concurrent.futures.Future):
            return [fs]
        return list(fs)

    def _map(self, prefix, kind, fn, iterdata, chunksize, extra_args, extra_env, runtime_memory,
             obj_chunk_size, obj_chunk_number, obj_newline, timeout, include_modules, exclude_modules,
             reduce=None) -> FuturesList:
        _check_picklable(fn, "function")
        _check_call_options(extra_env, timeout, include_modules, exclude_modules)
        objects.check_options(obj_chunk_size, obj_chunk_number, obj_newline)
        sig = call_args.signature_of(fn)
        items = call_args.normalize_iterdata(iterdata)
        if items and all(isinstance(i, concurrent.futures.Future) for i in items):
            # Lithops' chaining, map(g, futures): each call takes one future's result (waited for here;
            # Lithops waits in the worker). A failed future raises now, before anything is submitted.
            items = [f.result() for f in items]
        bound = [call_args.bind_item(fn, sig, item, extra_args, i) for i, item in enumerate(items)]
        groups = None
        if call_args.takes_obj(sig):
            bound, groups = self._split_objects(bound, obj_chunk_size, obj_chunk_number, obj_newline)
        elif obj_chunk_size is not None or obj_chunk_number is not None:
            raise TypeError(f"obj_chunk_size/obj_chunk_number split stored objects for a function taking the "
                            f"reserved 'obj' parameter; {calls.describe(fn)} takes no 'obj'")
        with self._lock:
            lithops_job = f"{prefix}{self._counter:03d}"
            self._counter += 1
            self.last_call = kind
        futures = [ResponseFuture(self.executor_id, lithops_job, i, calls.describe(fn), produce_output=reduce is None)
                   for i in range(len(bound))]
        for f in futures:
            f.set_running_or_notify_cancel()
        self.futures.extend(futures)
        if reduce is not None:
            return self._map_reduce(fn, bound, futures, groups, chunksize, extra_env, runtime_memory, timeout,
                                    lithops_job, reduce)
        if not bound:
            return FuturesList([], self)
        stage, data = self._map_stage(fn, sig, bound, chunksize, extra_env, timeout)
        submitted = time.time()
        for f in futures:
            f.stats["host_submit_tstamp"] = submitted

        def on_output(_stage, task, part):
            self._deliver(futures, stage.fn.first_index[task], part)

        self._launch(Plan([stage], [stage.name], data), on_output, futures, f"{kind}({calls.describe(fn)})",
                     lithops_job, runtime_memory, timeout, stage)
        return FuturesList(futures, self)

    def _map_reduce(self, fn, bound, futures, groups, chunksize, extra_env, runtime_memory, timeout,
                    lithops_job, reduce) -> FuturesList:
        reduce_fn, r_args, r_kwargs, by_key = reduce
        n_reducers = len(groups) if by_key and groups is not None else 1
        reducers = [ResponseFuture(self.executor_id, lithops_job.replace("M", "R", 1), i, calls.describe(reduce_fn))
                    for i in range(n_reducers)]
        for r in reducers:
            r.set_running_or_notify_cancel()
        self.futures.extend(reducers)
        out = FuturesList(futures + reducers, self, reducers=n_reducers)
        out._by_key = by_key and groups is not None
        if not bound:
            try:
                value = reduce_fn([], *r_args, **r_kwargs)
            except Exception as exc:  # noqa: BLE001 - the future carries it
                reducers[0].set_exception(exc)
            else:
                reducers[0].set_result(value)
            return out
        stage, data = self._map_stage(fn, call_args.signature_of(fn), bound, chunksize, extra_env, timeout)
        first = stage.fn.first_index
        if n_reducers == 1:
            edge = Edge(stage.name, GATHER)
            reduce_op = calls.Reduce(reduce_fn, r_args, r_kwargs)
        else:   # one reducer per object: the map tasks holding its calls, filtered by call index
            table = []
            for lo, hi in groups:
                table.append([(t, None) for t in range(len(first))
                              if first[t] < hi and (first[t + 1] if t + 1 < len(first) else len(bound)) > lo])
            edge = Edge(stage.name, CUSTOM, table)
            reduce_op = calls.Reduce(reduce_fn, r_args, r_kwargs, groups)
        red = Stage("reduce", n_reducers, reduce_op, [edge], label=f"reduce({calls.describe(reduce_fn)})")
        submitted = time.time()
        for f in futures + reducers:
            f.stats["host_submit_tstamp"] = submitted

        def on_output(stage_name, task, part):
            if stage_name == stage.name:
                self._deliver(futures, first[task], part)
            else:
                self._deliver(reducers, task, part)

        self._launch(Plan([stage, red], [stage.name, "reduce"], data), on_output, futures + reducers,
                     f"map_reduce({calls.describe(fn)})", lithops_job, runtime_memory, timeout, stage)
        return out

    @staticmethod
    def _deliver(futures, first: int, part) -> None:
        now = time.time()
        for k, entry in enumerate(part):
            fut = futures[first + k]
            ok, value, stats = calls.outcome(entry)
            fut.stats.update(stats)
            fut.stats["host_result_done_tstamp"] = now
            if fut.done:
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _split_objects(self, bound, chunk_size, chunk_number, newline):
        """One call per chunk of every object each call's ``obj`` names; (calls, call range per object)."""
        out, groups = [], []
        for i, b in enumerate(bound):
            spec = b.arguments.get("obj") if b.arguments is not None else None
            if isinstance(spec, calls.CloudObject):
                groups.append((len(out), len(out) + 1))
                out.append(b)
                continue
            for location, size in objects.objects(spec, self.settings["storage"], f"input item {i}"):
                lo = len(out)
                for chunk in objects.chunks(location, size, chunk_size, chunk_number, newline):
                    out.append(call_args.Bound(arguments={**b.arguments, "obj": chunk}))
                if len(out) > lo:
                    groups.append((lo, len(out)))
        return out, groups

    def _map_stage(self, fn, sig, bound, chunksize, extra_env, timeout):
        if chunksize is None:
            chunksize = max(1, math.ceil(len(bound) / (self.driver.backend.parallelism * 4)))
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize}")
        available = getattr(self.driver.backend, "available_modules", None)
        image = available() if available is not None else None   # Lambda: what its image can import
        first = list(range(0, len(bound), chunksize))

        def pickled(start):
            chunk = bound[start:start + chunksize]
            blob = _pickle_items(chunk, start)
            if image is not None:  # objects of the user's own classes travel by value too
                blob = shipping.fit_to_image(chunk, blob, image, f"input items {start}-{start + len(chunk) - 1}")
            return blob

        data, offsets = shipped.pack(first, encode=pickled)
        op = calls.MapChunk(fn, shipped.Shipped("items", offsets, "pickle"), first, self.settings["retries"],
                            timeout=timeout, extra_env=dict(extra_env) if extra_env else None,
                            reserved=frozenset(call_args.reserved_params(sig)))
        op.chunksize = chunksize   # calls per task: the job's task timeout covers them all
        return Stage("map", len(first), op, label=f"map({calls.describe(fn)})"), {"items": data}

    def _driver_for(self, runtime_memory, timeout, calls_per_task: int) -> Driver:
        """The executor's driver, or one with this job's memory and timeout (sharing the worker pool)."""
        if runtime_memory is None and timeout is None:
            return self.driver
        settings = config.Settings(self.settings)
        backend = self.driver.backend
        if runtime_memory is not None:
            settings.update(_memory_settings(runtime_memory, settings["backend"]))
            if settings["backend"] == "lambda":
                backend = self._lambda_backend(settings)
        if timeout is not None:   # the backstop for a call stuck where the per-call alarm cannot reach
            settings["task_timeout"] = max(settings["task_timeout"], timeout * calls_per_task + _TIMEOUT_SLACK_S)
        return Driver(settings, backend=backend)

    def _lambda_backend(self, settings):
        from .runtime.backends import get_backend
        with self._lock:
            memory = settings["lambda_memory"]
            if memory not in self._backends:
                self._backends[memory] = get_backend(settings)   # checks that function now: a clear error
            return self._backends[memory]

    def _launch(self, plan: Plan, on_output, futures, description: str, lithops_job: str,
                runtime_memory=None, timeout=None, map_stage=None) -> None:
        try:
            driver = self._driver_for(runtime_memory, timeout, getattr(map_stage.fn, "chunksize", 1))
        except BaseException as exc:   # e.g. no Lambda function of that memory: the futures must not hang
            for f in futures:
                f.set_exception(exc)
            raise

        def run():
            try:
                driver.run(plan, on_output, description=description, handle=handle)
            except BaseException as exc:  # noqa: BLE001 - every unfinished future learns of it
                for f in futures:
                    if not f.done:
                        f.set_exception(exc)
            else:
                lost = [f for f in futures if not f.done]
                for f in lost:  # cannot happen unless a stage returned too few results
                    f.set_exception(RuntimeError("graphwren: the job finished without this result"))

        thread = threading.Thread(target=run, name=f"graphwren-{description}", daemon=True)
        # Tracked before it starts: a script that ends right after map() must still
        # find the job at exit, and wait for it (lifecycle's exit hook).
        handle = lifecycle.started(records.new_job_id(), description, thread)
        with self._lock:
            self._job_ids[lithops_job] = handle.job
            self._jobs = [j for j in self._jobs if not j.finished.is_set()] + [handle]
        thread.start()


#: Lithops' names for the same executor.
FunctionExecutor = Executor


class LocalhostExecutor(Executor):
    """Lithops' LocalhostExecutor: local worker processes, Lithops' 'localhost' storage unless told."""

    def __init__(self, storage: str | None = None, **kwargs):
        super().__init__(storage=storage or "localhost", backend="local", **kwargs)


class ServerlessExecutor(Executor):
    """Lithops' ServerlessExecutor: the AWS Lambda backend."""

    def __init__(self, backend: str | None = None, **kwargs):
        super().__init__(backend=backend or "lambda", **kwargs)


def default_executor(**kwargs) -> Executor:
    """PyWren's ``pywren.default_executor()``: an Executor on the configured settings."""
    return Executor(**kwargs)


# Executor.__init__ takes Lithops' ``config`` dict, which hides the module there: it calls these.
def _config_get(name: str):
    return config.get(name)


def _resolve(settings: dict) -> config.Settings:
    return config.resolve(settings)


def _storage_url(storage, lithops_config: dict):
    """A store URL for ``storage``: Lithops' 'localhost' is a folder in the cache; other bare names are errors."""
    if storage is None or not isinstance(storage, str):
        return storage
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", storage):
        return storage   # a URL or a path (or a mistyped URL, 's3:bucket'): graphwren.config checks it
    if storage == "localhost":
        return config._default_storage() + "/localhost"   # Lithops' localhost storage: a local folder, not ./localhost
    bucket = (lithops_config.get(storage) or {}).get("storage_bucket") if isinstance(lithops_config, dict) else None
    if storage == "aws_s3" and bucket:
        return f"s3://{bucket}"
    if storage in _LITHOPS_STORAGE:
        raise ValueError(f"storage={storage!r}: graphwren names stores by URL; write storage="
                         f"'{_LITHOPS_STORAGE[storage]}'")
    raise ValueError(f"unknown storage name {storage!r}: give 'localhost' (Lithops' local storage, a folder under "
                     f"graphwren's cache), a store URL (s3://bucket/prefix, redis://host:port/db, file:///path) "
                     f"or a path (for a local folder named {storage!r} write './{storage}')")


def _backend_name(backend, mode):
    if mode is not None and mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}; graphwren runs {sorted(_MODES)} (standalone VMs are not supported)")
    if backend is None:
        return _MODES.get(mode) if mode is not None else None
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(_BACKENDS)}")
    return _BACKENDS[backend]


def _memory_settings(runtime_memory, backend) -> dict:
    """runtime_memory (MB, Lithops'): the Lambda function's memory, or a local task's memory cap."""
    if isinstance(runtime_memory, bool) or not isinstance(runtime_memory, int) or runtime_memory < 1:
        raise ValueError(f"runtime_memory must be a whole number of MB >= 1, got {runtime_memory!r}")
    if backend == "lambda":
        return {"lambda_memory": runtime_memory}
    return {"max_task_memory": runtime_memory * 2**20}


def _check_call_options(extra_env, timeout, include_modules, exclude_modules) -> None:
    if extra_env is not None:
        if not isinstance(extra_env, dict) or not all(isinstance(k, str) and k for k in extra_env):
            raise TypeError(f"extra_env must be a dict of environment variable names to values, got {extra_env!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    for name, value in (("include_modules", include_modules), ("exclude_modules", exclude_modules)):
        if value is not None and not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list of module names, got {type(value).__name__}")


def _needed(return_when, n: int) -> int:
    """How many of n futures must be done for ``return_when`` (concurrent.futures' names or Lithops' percentage)."""
    if return_when in (ALL_COMPLETED,):
        return n
    if return_when in (FIRST_COMPLETED, FIRST_EXCEPTION):
        return min(1, n)
    if isinstance(return_when, bool) or not isinstance(return_when, int) or not -1 <= return_when <= 100:
        raise ValueError(f"return_when must be ALWAYS, ANY_COMPLETED, ALL_COMPLETED or a percentage 0-100, "
                         f"got {return_when!r}")
    if return_when == -1:
        return min(1, n)
    return math.ceil(return_when * n / 100)


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
                shown = item.arguments if item.arguments is not None else item.args
                raise TypeError(f"graphwren cannot pickle input item {start + k} ({reprlib.repr(shown)}): {exc}") from exc
        raise


def wait(futures, return_when=ALL_COMPLETED, timeout: float | None = None, throw_except: bool = False):
    """(done, pending) lists, in the order given, as PyWren's ``wait``: a timeout returns what is done.

    ``return_when`` also takes Lithops' forms (ALWAYS, a percentage); unlike
    ``Executor.wait`` it raises no call's exception unless ``throw_except``.
    """
    futures = list(futures)
    need = _needed(return_when, len(futures))
    if return_when in (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION):
        concurrent.futures.wait(futures, timeout=timeout, return_when=return_when)
    else:
        deadline = None if timeout is None else time.monotonic() + timeout
        while sum(1 for f in futures if f.done()) < need:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            concurrent.futures.wait([f for f in futures if not f.done()], timeout=left,
                                    return_when=concurrent.futures.FIRST_COMPLETED)
    done = [f for f in futures if f.done()]
    if throw_except:
        for f in done:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()
    return done, [f for f in futures if not f.done()]


def get_all_results(futures) -> list:
    """Every result in order; the first failure raises its original exception."""
    return [f.result() for f in futures]


def get_result(futures, throw_except: bool = True, timeout: float | None = None) -> list:
    """Lithops' module-level ``get_result``: every result of ``futures``, in order."""
    futures = [futures] if isinstance(futures, concurrent.futures.Future) else list(futures)
    done, pending = wait(futures, timeout=timeout)
    if pending:
        raise TimeoutError(f"Timeout of {timeout:g} seconds exceeded: {len(pending)} of {len(futures)} not done")
    return [f.result(throw_except=throw_except) if isinstance(f, ResponseFuture) else f.result() for f in futures]

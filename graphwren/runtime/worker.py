"""The one task handler every backend runs: ``handle(event)``.

An event is a tiny dict (store URL, job, stage, task, attempt, function
hash). The handler loads the stage function (cached by hash in a warm
process), reads its inputs from storage, runs, writes its output under its
attempt id, and commits with ``put_if_absent`` on the ``done`` record: the
first attempt to commit wins. On error it writes an ``err`` record holding
the pickled exception and its remote traceback.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import itertools
import threading
from typing import Any, Callable, Iterator

import cloudpickle

from . import codec, records
from .remote_errors import capture
from .storage import open_store

_CACHE_SIZE = 64
_funcs: "collections.OrderedDict[str, StageSpec]" = collections.OrderedDict()
_manifests: "collections.OrderedDict[tuple, tuple[dict, memoryview]]" = collections.OrderedDict()
_cache_lock = threading.Lock()
_readers = None


@dataclasses.dataclass
class InputSpec:
    """Where one upstream stage's committed outputs are, and which pieces to read."""

    store: str
    job: str
    stage: str
    ntasks: int
    kind: str
    deps: Callable[[int], list] | None = None

    def pieces(self, task: int) -> list[tuple[int, int | None]]:
        from .plan import Edge
        return Edge(self.stage, self.kind, self.deps).pieces(task, self.ntasks)


@dataclasses.dataclass
class StageSpec:
    """What the driver uploads once per stage: everything a task needs but its index."""

    name: str
    label: str
    fn: Callable[["TaskContext"], Any]
    ntasks: int
    nbuckets: int | None
    inputs: list[InputSpec]
    job: str
    data_store: str     # where {job}/data/* lives
    inline_limit: int

    def dumps(self) -> tuple[bytes, str]:
        blob = cloudpickle.dumps(self)
        return blob, hashlib.sha256(blob).hexdigest()[:24]


class TaskContext:
    """What a stage function sees: its index, its inputs, and the job's data."""

    def __init__(self, spec: StageSpec, task: int, attempt: int, store):
        self.spec = spec
        self.task = task
        self.attempt = attempt
        self.ntasks = spec.ntasks
        self.nbuckets = spec.nbuckets
        self.job = spec.job
        self.store = store
        self.where = ""  # a stage function may name the record or item it is on

    def input(self, k: int = 0) -> Iterator[Any]:
        """The partitions of input edge ``k``, in order, read lazily with prefetch."""
        spec = self.spec.inputs[k]
        pieces = spec.pieces(self.task)
        return _read_pieces(spec, pieces)

    def input_pieces(self, k: int, pieces: list[tuple[int, int | None]]) -> Iterator[Any]:
        """Chosen pieces (upstream task, bucket) of input edge ``k``."""
        return _read_pieces(self.spec.inputs[k], pieces)

    def read_data(self, name: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes of ``{job}/data/{name}`` (a range of them) that the driver uploaded."""
        return open_store(self.spec.data_store).get(records.data_key(self.job, name), start, end)


def handle(event: dict) -> dict:
    """Run one task attempt. Never raises for task failures: it records them."""
    job, stage, task, attempt = event["job"], event["stage"], int(event["task"]), int(event["attempt"])
    store = open_store(event["store"])
    where = f"stage {stage} task {task} (attempt {attempt})"
    ctx = None
    try:
        spec = _load_spec(store, job, stage, event["fn"])
        where = f"stage {spec.label or stage} task {task} (attempt {attempt})"
        ctx = TaskContext(spec, task, attempt, store)
        out = spec.fn(ctx)
        committed = _commit(store, spec, task, attempt, out)
        return {"ok": True, "committed": committed}
    except Exception as exc:  # noqa: BLE001 - every failure becomes an err record
        if ctx is not None and ctx.where:
            where += f" on {ctx.where}"
        try:
            store.put(records.err_key(job, stage, task, attempt, records.new_nonce()), capture(exc, where))
        except Exception:  # noqa: BLE001 - the job is gone (failed and cleaned up): nobody is listening
            pass
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "where": where}


def _commit(store, spec: StageSpec, task: int, attempt: int, out) -> bool:
    """Write this execution's output under its own nonce, then race for the commit record."""
    if spec.nbuckets is not None:
        if not isinstance(out, (list, tuple)) or len(out) != spec.nbuckets:
            raise TypeError(f"a shuffle stage must return {spec.nbuckets} buckets, "
                            f"got {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}")
        blob, offsets = codec.encode_buckets(list(out))
    else:
        blob, offsets = codec.encode(out), None
    nonce = records.new_nonce()
    header = {"a": attempt, "x": nonce, "o": offsets, "n": len(blob)}
    if len(blob) <= spec.inline_limit:
        return store.put_if_absent(records.done_key(spec.job, spec.name, task),
                                   records.pack({**header, "inline": True}, blob))
    key = records.out_key(spec.job, spec.name, task, attempt, nonce)
    store.put(key, blob)
    won = store.put_if_absent(records.done_key(spec.job, spec.name, task), records.pack(header))
    if not won:
        try:
            store.delete(key)   # nobody will ever read a losing execution's output
        except Exception:  # noqa: BLE001 - the job's cleanup deletes it anyway
            pass
    return won


def _load_spec(store, job: str, stage: str, fn_hash: str) -> StageSpec:
    with _cache_lock:
        spec = _funcs.get(fn_hash)
        if spec is not None:
            _funcs.move_to_end(fn_hash)
            return spec
    blob = store.get(records.func_key(job, stage))
    try:
        spec = cloudpickle.loads(blob)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"the stage function needs module {exc.name!r}, which this worker cannot import; "
            f"install it on the workers, or ship it by value with "
            f"cloudpickle.register_pickle_by_value({exc.name})", name=exc.name) from exc
    with _cache_lock:
        _funcs[fn_hash] = spec
        while len(_funcs) > _CACHE_SIZE:
            _funcs.popitem(last=False)
    return spec


def _manifest(spec: InputSpec) -> tuple[dict, memoryview]:
    key = (spec.store, spec.job, spec.stage)
    with _cache_lock:
        hit = _manifests.get(key)
        if hit is not None:
            return hit
    blob = open_store(spec.store).get(records.manifest_key(spec.job, spec.stage))
    hit = records.unpack(blob)
    with _cache_lock:
        _manifests[key] = hit
        while len(_manifests) > _CACHE_SIZE:
            _manifests.popitem(last=False)
    return hit


def _read_piece(spec: InputSpec, piece: tuple[int, int | None]):
    up_task, bucket = piece
    header, payload = _manifest(spec)
    rec = header["tasks"][up_task]
    offsets = rec["o"]
    lo, hi = (offsets[bucket], offsets[bucket + 1]) if bucket is not None else (None, None)
    if rec.get("inline"):
        if rec.get("i") is not None:
            s, e = rec["i"]
            blob = payload[s:e]
        else:
            done = open_store(spec.store).get(records.done_key(spec.job, spec.stage, up_task))
            blob = memoryview(done)[records.header_size(done):]
        blob = blob[lo:hi] if bucket is not None else blob
    else:
        key = records.out_key(spec.job, spec.stage, up_task, rec["a"], rec["x"])
        blob = open_store(spec.store).get(key, lo, hi)
    return codec.decode(blob)


def _read_pieces(spec: InputSpec, pieces: list) -> Iterator[Any]:
    """Decode pieces in order; remote stores prefetch a few ahead in threads."""
    if spec.store.startswith("file://") or len(pieces) <= 1:
        for piece in pieces:
            yield _read_piece(spec, piece)
        return
    global _readers
    if _readers is None:
        _readers = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="gw-read")
    window = collections.deque()
    it = iter(pieces)
    for piece in itertools.islice(it, 8):
        window.append(_readers.submit(_read_piece, spec, piece))
    while window:
        part = window.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            window.append(_readers.submit(_read_piece, spec, nxt))
        yield part

"""The one task handler every backend runs: ``handle(event)``.

An event is a tiny dict (store URL, job, stage, task, attempt, function
hash, the job's signing key). The handler loads the stage function (checked
against its tag and its hash, then cached in a warm process), reads its
inputs from storage (every piece checked against its tag), runs, writes its
output under a fresh nonce, and commits with ``put_if_absent`` on the
``done`` record: the first execution to commit wins, and the record names its
exact output object. On error it writes a signed ``err`` record holding the
pickled exception and its remote traceback. See ``integrity`` for the keys.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import hmac
import re
import threading
from typing import Any, Callable, Iterator

import cloudpickle
import numpy as np

from ..errors import IntegrityError, StorageError
from . import codec, current, integrity, logs, offset_table, records, remote_errors, stats
from .prefetch import Prefetcher
from .storage import open_store

_CACHE_SIZE = 64
_funcs: "collections.OrderedDict[tuple, StageSpec]" = collections.OrderedDict()
_manifests: "collections.OrderedDict[tuple, tuple[dict, memoryview]]" = collections.OrderedDict()
_columns: "collections.OrderedDict[tuple, np.ndarray]" = collections.OrderedDict()   # of offset tables
_cache_lock = threading.Lock()
_readers = Prefetcher(8, "gw-read")   # input pieces in flight per task
_served = 0   # attempts this process has started: the first is a cold start


@dataclasses.dataclass
class InputSpec:
    """Where one upstream stage's committed outputs are, and which pieces to read."""

    store: str
    job: str
    stage: str
    ntasks: int
    kind: str
    table: list | tuple | None = None   # the pieces of a CUSTOM edge, per task

    def pieces(self, task: int) -> list[tuple[int, int | None]]:
        from .plan import Edge
        return Edge(self.stage, self.kind, self.table).pieces(task, self.ntasks)


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
    log_limit: int = logs.DEFAULT_LIMIT   # characters of what a task prints that its record keeps
    prefixes: int = 1   # key prefixes the outputs spread over (records.out_key): S3's rate is per prefix

    def dumps(self) -> tuple[bytes, str]:
        blob = cloudpickle.dumps(self)
        return blob, hashlib.sha256(blob).hexdigest()


class TaskContext:
    """What a stage function sees: its index, its inputs, and the job's data."""

    def __init__(self, spec: StageSpec, task: int, attempt: int, store, keys: dict[str, bytes]):
        self.spec = spec
        self._keys = keys   # {job: signing key}: this job's, and any persisted job's it reads
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
        return _read_pieces(spec, pieces, self._key_of(spec))

    def input_pieces(self, k: int, pieces: list[tuple[int, int | None]]) -> Iterator[Any]:
        """Chosen pieces (upstream task, bucket) of input edge ``k``."""
        spec = self.spec.inputs[k]
        return _read_pieces(spec, pieces, self._key_of(spec))

    def read_data(self, name: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes of ``{job}/data/{name}`` (a range of them) that the driver uploaded, checked."""
        return integrity.read_blocks(open_store(self.spec.data_store), records.data_key(self.job, name),
                                     self._keys[self.job], start, end)

    def _key_of(self, spec: InputSpec) -> bytes:
        key = self._keys.get(spec.job)
        if key is None:
            raise IntegrityError(f"the event carries no signing key for job {spec.job!r}, whose stage "
                                 f"{spec.stage!r} this task reads")
        return key


def handle(event: dict) -> dict:
    """Run one task attempt. Never raises: every outcome is recorded or reported.

    The reply says whether the outcome reached storage (``recorded``): a task
    that could write neither its commit nor its error record, or that failed
    because storage did (a ``StorageError``, not the user's fault), replies
    ``recorded: False`` and the backend reports the attempt lost, so the
    driver retries it at once instead of waiting for ``task_timeout``.
    """
    job, stage, task, attempt = event["job"], event["stage"], int(event["task"]), int(event["attempt"])
    try:
        # No valid key: the event is not from this job's driver, and nothing it could record would be trusted.
        keys = integrity.event_keys(event)
        key = keys[job]
    except Exception as exc:  # noqa: BLE001 - reported, never recorded
        return {"ok": False, "recorded": False, "error": f"{type(exc).__name__}: {exc}",
                "where": f"stage {stage} task {task} (attempt {attempt})"}
    where = f"stage {stage} task {task} (attempt {attempt})"
    global _served
    cold, _served = _served == 0, _served + 1
    meter = stats.TaskMeter().__enter__()   # stopped before the commit, whose record carries its stats
    ctx = store = captured = None
    try:
        store = open_store(event["store"])
        spec, cached = _load_spec(store, job, stage, event["fn"], key)
        where = f"stage {spec.label or stage} task {task} (attempt {attempt})"
        ctx = TaskContext(spec, task, attempt, store, keys)
        captured = logs.start(spec.log_limit) if spec.log_limit > 0 else None
        with current.running(job, stage, task):   # lets side effects repeat ids across re-executions
            out = spec.fn(ctx)
        about = _About(meter, attempt, cold, cached, event.get("request_id"), captured)
        committed = _commit(store, spec, task, attempt, out, key, about)
        return {"ok": True, "committed": committed, "recorded": True}
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt in user code are outcomes too
        meter.stop()
        if ctx is not None and ctx.where:
            where += f" on {ctx.where}"
        if captured is not None:
            captured.stop()
            logs.attach(exc, captured.text(), where)
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StorageError):
            return {"ok": False, "recorded": False, "error": error, "where": where}
        try:
            remote_errors.record(store, key, job, stage, task, attempt, exc, where)
        except Exception as put_exc:  # noqa: BLE001 - the backend reports it instead
            return {"ok": False, "recorded": False, "where": where,
                    "error": f"{error}; writing its error record failed: {type(put_exc).__name__}: {put_exc}"}
        return {"ok": False, "recorded": True, "error": error, "where": where}


@dataclasses.dataclass
class _About:
    """What an attempt's commit record says about the attempt itself: its meter and how it started."""

    meter: stats.TaskMeter
    attempt: int
    cold: bool          # the first attempt this process ran
    cached_fn: bool     # the stage function came from this process's cache (a warm start)
    request_id: str | None = None   # Lambda's, when the handler passes it
    captured: logs.Capture | None = None   # what the task printed and logged

    def log(self, header: dict) -> dict:
        """Put the attempt's captured output (if any) in its commit ``header``."""
        if self.captured is not None:
            self.captured.stop()
            text = self.captured.text()
            if text:
                header["log"] = text
                if self.captured.cut:
                    header["log_cut"] = self.captured.cut
        return header

    def header(self, out, buckets: bool, store_url: str, inline: int = 0) -> dict:
        """The commit header's ``s``: taken now, so the commit's own PUT is counted but not timed.

        ``inline``: bytes of output riding in the commit record, counted as written; the record's
        own header (these statistics among them) is not.
        """
        self.meter.records_out = stats.output_records(out, buckets)
        self.meter.stop()
        self.meter.request(store_url, "put_if_absent", 0, inline)   # the commit this record rides in
        return self.meter.stats(self.attempt, self.cold, self.cached_fn, self.request_id)


def _commit(store, spec: StageSpec, task: int, attempt: int, out, key: bytes, about: _About) -> bool:
    """Write this execution's output under its own nonce, then race for the commit record.

    An attempt that outlived its job (a backup, a duplicate Lambda delivery, a
    task of a job that failed) finds the job's lease gone and writes nothing:
    otherwise its keys would land after the cleanup and stay for good.
    """
    if not store.exists(records.lease_key(spec.job)):
        about.meter.stop()
        return False
    return _publish(store, spec, task, _write_output(store, spec, task, attempt, out, key, about))


@dataclasses.dataclass
class _Written:
    """One execution's output, in storage (or inline), and the signed commit record naming it."""

    record: bytes
    out_key: str | None    # None when the output rides inline in the record


def _write_output(store, spec: StageSpec, task: int, attempt: int, out, key: bytes,
                  about: _About | None = None) -> _Written:
    """Put the output (or keep it inline) and seal the commit record; ``about`` adds the attempt's statistics."""
    if spec.nbuckets is not None:
        if not isinstance(out, (list, tuple)) or len(out) != spec.nbuckets:
            raise TypeError(f"a shuffle stage must return {spec.nbuckets} buckets, "
                            f"got {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}")
        blob, offsets = codec.encode_buckets(list(out))
    else:
        blob, offsets = codec.encode(out), None
    nonce = records.new_nonce()
    done = records.done_key(spec.job, spec.name, task)
    if len(blob) <= spec.inline_limit:
        # the signed commit record (and later the signed manifest) covers an inline result whole
        header = {"a": attempt, "x": nonce, "o": offsets, "n": len(blob), "inline": True}
        if about is not None:
            header["s"] = about.header(out, offsets is not None, store.url, len(blob))
            about.log(header)
        return _Written(integrity.seal(key, done, records.pack(header, blob)), None)
    prefixes = getattr(spec, "prefixes", 1)   # a spec pickled before the field existed has none
    name = records.out_key(spec.job, spec.name, task, attempt, nonce, prefixes)
    # one tag per bucket, bound to the output's own name: ranged reads check their bucket alone,
    # and the bytes of one execution never pass for another's
    blob, offsets = integrity.seal_output(key, name, blob, offsets)
    store.put(name, blob)
    header = {"a": attempt, "x": nonce, "o": offsets, "n": len(blob)}
    if prefixes > 1:   # readers name the object from the record: they need not know the stage's spread
        header["p"] = prefixes
    if about is not None:
        header["s"] = about.header(out, offsets is not None, store.url)
        about.log(header)
    return _Written(integrity.seal(key, done, records.pack(header)), name)


def _publish(store, spec: StageSpec, task: int, written: _Written) -> bool:
    won = store.put_if_absent(records.done_key(spec.job, spec.name, task), written.record)
    if not won and written.out_key is not None:
        try:
            store.delete(written.out_key)   # nobody will ever read a losing execution's output
        except Exception:  # noqa: BLE001 - the job's cleanup deletes it anyway
            pass
    return won


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _load_spec(store, job: str, stage: str, fn_hash, key: bytes) -> tuple[StageSpec, bool]:
    """The stage function, checked, and whether it came from this process's cache."""
    if not isinstance(fn_hash, str) or not _SHA256_HEX.fullmatch(fn_hash):
        raise IntegrityError(f"the event's function hash {fn_hash!r} for stage {stage!r} of job {job!r} "
                             f"is not a SHA-256 hex digest")
    # Keyed by everything the entry was verified for: an event cannot pick another job's function.
    cache_key = (store.url, job, stage, fn_hash, key)
    with _cache_lock:
        spec = _funcs.get(cache_key)
        if spec is not None:
            _funcs.move_to_end(cache_key)
            return spec, True
    name = records.func_key(job, stage)
    blob = integrity.unseal(key, name, store.get(name), store.url, "stage function")
    actual = hashlib.sha256(blob).hexdigest()
    if not hmac.compare_digest(actual, fn_hash):
        raise IntegrityError(f"stage function {name!r} in {store.url} hashes to {actual}, but the event "
                             f"names {fn_hash}; refusing to unpickle it")
    try:
        spec = cloudpickle.loads(blob)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"the stage function needs module {exc.name!r}, which this worker cannot import; "
            f"install it on the workers, or ship it by value with "
            f"cloudpickle.register_pickle_by_value({exc.name})", name=exc.name) from exc
    with _cache_lock:
        _funcs[cache_key] = spec
        while len(_funcs) > _CACHE_SIZE:
            _funcs.popitem(last=False)
    return spec, False


def _manifest(spec: InputSpec, key: bytes) -> tuple[dict, memoryview]:
    cache_key = (spec.store, spec.job, spec.stage, key)
    with _cache_lock:
        hit = _manifests.get(cache_key)
    meter = stats.current()
    if hit is not None:
        if meter is not None and cache_key not in meter.manifests:
            meter.manifests.add(cache_key)
            meter.cached_manifests += 1   # read by an earlier task of this process: no request now
        return hit
    store = open_store(spec.store)
    name = records.manifest_key(spec.job, spec.stage)
    hit = records.unpack(integrity.unseal(key, name, store.get(name), store.url, "manifest"))
    if meter is not None:
        meter.manifests.add(cache_key)
    with _cache_lock:
        _manifests[cache_key] = hit
        while len(_manifests) > _CACHE_SIZE:
            _manifests.popitem(last=False)
    return hit


def _offsets(spec: InputSpec, key: bytes, header: dict, up_task: int, lo: int, hi: int):
    """Offsets of buckets lo..hi (inclusive ends) of upstream task ``up_task``'s output.

    From its manifest entry, or from columns lo..hi of the stage's offset
    table (one ranged GET, cached in this process: a reducer's pieces all
    read the same two columns).
    """
    table = header.get("columns")
    nbuckets = table["r"] if table else None if header["tasks"][up_task]["o"] is None \
        else len(header["tasks"][up_task]["o"]) - 1
    if nbuckets is None or not 0 <= lo <= hi <= nbuckets:
        asked = f"bucket {lo} was" if hi == lo + 1 else f"buckets {lo}..{hi - 1} were"
        raise ValueError(f"stage {spec.stage!r} task {up_task} has {nbuckets or 'no'} buckets, but {asked} asked for")
    if not table:
        return header["tasks"][up_task]["o"][lo:hi + 1]
    return _table_columns(spec, key, table, lo, hi)[:, up_task].tolist()


def _table_columns(spec: InputSpec, key: bytes, table: dict, lo: int, hi: int) -> np.ndarray:
    """Columns lo..hi of a stage's offset table, (hi - lo + 1, M): from this process's cache when it holds them."""
    nonce, ntasks = table["x"], table["m"]
    ident = (spec.store, spec.job, spec.stage, key, nonce)
    with _cache_lock:
        columns = _columns.get((ident, lo, hi))   # a reducer's every piece asks for the span prefetched
        if columns is not None:
            return columns
        for (cached, c_lo, c_hi), columns in _columns.items():
            if cached == ident and c_lo <= lo and hi <= c_hi:
                return columns[lo - c_lo:hi - c_lo + 1]
    store = open_store(spec.store)
    name = records.offsets_key(spec.job, spec.stage, nonce)
    start, end = offset_table.byte_range(ntasks, lo, hi)
    columns = offset_table.decode(key, name, store.get(name, start, end), ntasks, lo, hi, store.url)
    with _cache_lock:
        _columns[(ident, lo, hi)] = columns
        while len(_columns) > _CACHE_SIZE:
            _columns.popitem(last=False)
    return columns


def read_piece(spec: InputSpec, piece: tuple, key: bytes):
    """Decode one piece (upstream task, bucket) of a committed stage, following its manifest to the
    winning execution's exact bytes and checking them with the job's signing ``key``.

    The bucket may be a run ``(lo, hi)`` of adjacent buckets: one ranged read
    of all of them (a two-level exchange's merge reads so), decoded into the
    list of their partitions.
    """
    up_task, bucket = piece
    if isinstance(bucket, (tuple, list)):
        return _read_run(spec, up_task, *bucket, key)
    header, payload = _manifest(spec, key)
    rec = header["tasks"][up_task]
    if bucket is None and (header.get("columns") or rec["o"] is not None):
        raise ValueError(f"stage {spec.stage!r} task {up_task} wrote "
                         f"{header['columns']['r'] if header.get('columns') else len(rec['o']) - 1} buckets: "
                         f"a reader must name the bucket it wants")
    lo, hi = _offsets(spec, key, header, up_task, bucket, bucket + 1) if bucket is not None else (None, None)
    store = open_store(spec.store)
    if rec.get("inline"):   # checked with the signed manifest or commit record it rides in
        if rec.get("i") is not None:
            s, e = rec["i"]
            blob = payload[s:e]
        else:
            done = records.done_key(spec.job, spec.stage, up_task)
            header, blob = records.unpack(integrity.unseal(key, done, store.get(done), store.url, "commit record"))
            if header.get("x") != rec["x"]:   # re-created after the manifest named another execution
                raise IntegrityError(f"commit record {done!r} in {store.url} names execution {header.get('x')}, "
                                     f"but the stage's manifest names {rec['x']}")
        return codec.decode(blob[lo:hi] if bucket is not None else blob)
    name = records.out_key(spec.job, spec.stage, up_task, rec["a"], rec["x"], rec.get("p"))
    blob = store.view(name, lo, hi)   # decoded in place: a file store maps a large piece, no copy
    return codec.decode(integrity.open_segment(key, name, bucket, blob, store.url))


def _read_run(spec: InputSpec, up_task: int, lo: int, hi: int, key: bytes) -> list:
    """Buckets lo..hi-1 of one upstream task, fetched with one read and checked bucket by bucket."""
    header, payload = _manifest(spec, key)
    rec = header["tasks"][up_task]
    offsets = _offsets(spec, key, header, up_task, lo, hi)
    if rec.get("inline") or hi - lo <= 1:   # nothing to save: read them one by one
        return [read_piece(spec, (up_task, b), key) for b in range(lo, hi)]
    store = open_store(spec.store)
    name = records.out_key(spec.job, spec.stage, up_task, rec["a"], rec["x"], rec.get("p"))
    blob = memoryview(store.view(name, offsets[0], offsets[-1]))
    base = offsets[0]
    return [codec.decode(integrity.open_segment(key, name, b, blob[offsets[b - lo] - base:offsets[b - lo + 1] - base],
                                                store.url)) for b in range(lo, hi)]


def bucket_span(pieces: list) -> tuple[int, int] | None:
    """The first and last offset column the pieces' buckets need, or None when they name none."""
    ends = [end for _, b in pieces if b is not None
            for end in ((b[0], b[1]) if isinstance(b, (tuple, list)) else (b, b + 1))]
    return (min(ends), max(ends)) if ends else None


def _read_pieces(spec: InputSpec, pieces: list, key: bytes) -> Iterator[Any]:
    """Decode pieces in order; remote stores prefetch a few ahead in threads."""
    if pieces:
        # one GET of the manifest (and of the offset columns the pieces need) before any thread starts:
        # each would miss the cache and fetch it again (10 manifest GETs for 3 reducers of 5 pieces)
        header, _ = _manifest(spec, key)
        span = bucket_span(pieces) if header.get("columns") else None
        if span is not None:
            _table_columns(spec, key, header["columns"], *span)
    if spec.store.startswith("file://"):   # a local read costs less than a thread hand-off
        parts = (read_piece(spec, piece, key) for piece in pieces)
    else:
        parts = _readers.iter(functools.partial(read_piece, spec, piece, key) for piece in pieces)
    meter = stats.current()
    return parts if meter is None else _counting(parts, meter)


def _counting(parts: Iterator[Any], meter: stats.TaskMeter) -> Iterator[Any]:
    for part in parts:
        meter.read_records(part)
        yield part

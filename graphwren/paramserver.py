"""The PyWren paper's parameter server: named dense tensors in Redis that stateless tasks read and update.

Workers run Hogwild!-style SGD: each reads the parameters (perhaps stale)
and adds its update; the server applies every add atomically, so no update
is lost however many tasks add at once. A tensor is stored flat, cut into
pieces of ``piece_bytes`` spread over the Redis URLs given; an add is one
Lua script per piece that adds element-wise on the server (Redis runs a
script atomically), so a task ships only its delta and never holds a lock.

Exactly once under retries: each add names itself (an id per call and
piece, remembered by the server for an hour), so an add retried after a
dropped connection whose first attempt did land is not applied twice. In a
task the id is (job, stage, task, how many adds the execution made before):
the same for every execution of the task, so when Lambda delivers an event
twice, or a task is retried, the adds the first execution made are skipped
and each of a task's adds applies once. Outside a task the id is random.
Connection errors are retried for ``retry_seconds`` (a Redis restart with
persistence is ridden out); then, or when a piece is gone (a restart that
lost the data) or its version went backwards (a restart from an older
snapshot), the call raises ``ParameterServerError`` naming the tensor and
the server: lost updates are never reported as success.

The object pickles to a small handle (URLs, name, options): tasks connect
lazily, once per process. Optional bounded staleness (SSP): with
``staleness=s``, ``clock(worker)`` makes a worker wait while it is more than
``s`` clocks ahead of the slowest unfinished worker.
"""
from __future__ import annotations

import io
import json
import math
import threading
import time
import uuid
import weakref
import zlib
from typing import Iterable, Mapping

import numpy as np

from .errors import ParameterServerError
from .runtime import current

#: Bytes of one piece: small enough that a script holds Redis for a few ms, big enough to batch.
PIECE_BYTES = 256 * 1024
#: How long the server remembers an applied add's id: a retry arrives long before.
APPLIED_TTL_S = 3600
#: dtypes a tensor may have, with the Lua struct format of one element.
_FORMATS = {np.dtype("float64"): "d", np.dtype("float32"): "f"}
#: Elements a script unpacks per struct call (Lua's C stack allows a few thousand values).
_BATCH = 64

# KEYS: piece, piece version, applied-marker; ARGV: delta bytes, element format, element size, marker TTL.
# Returns {applied (1) or already applied (0), the piece's version}.
_ADD = """
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, v} end
local cur = redis.call('GET', KEYS[1])
if not cur then return redis.error_reply('GWPS_MISSING') end
local d = ARGV[1]
if #cur ~= #d then return redis.error_reply('GWPS_SIZE ' .. #cur .. ' ' .. #d) end
local f, size = ARGV[2], tonumber(ARGV[3])
local n = #cur / size
local out = {}
local i = 0
while i < n do
  local k = math.min(%d, n - i)
  local fmt = '<' .. string.rep(f, k)
  local a = {struct.unpack(fmt, cur, i * size + 1)}
  local b = {struct.unpack(fmt, d, i * size + 1)}
  for j = 1, k do a[j] = a[j] + b[j] end
  out[#out + 1] = struct.pack(fmt, unpack(a, 1, k))
  i = i + k
end
redis.call('SET', KEYS[1], table.concat(out))
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
return {1, redis.call('INCR', KEYS[2])}
""" % _BATCH


class _Tensor:
    """A tensor's layout: shape, dtype and how its flat elements are cut into pieces."""

    def __init__(self, shape: tuple, dtype: np.dtype, piece_elems: int):
        self.shape, self.dtype, self.piece_elems = tuple(shape), np.dtype(dtype), int(piece_elems)
        self.size = math.prod(self.shape)
        self.npieces = max(1, -(-self.size // self.piece_elems))

    def to_meta(self) -> dict:
        return {"shape": json.dumps(list(self.shape)), "dtype": self.dtype.str, "piece_elems": self.piece_elems}

    @classmethod
    def from_meta(cls, meta: dict) -> "_Tensor":
        return cls(tuple(json.loads(meta[b"shape"])), np.dtype(meta[b"dtype"].decode()), int(meta[b"piece_elems"]))

    def pieces(self, lo: int, hi: int) -> Iterable[tuple[int, int, int]]:
        """(piece, first element in it, end element in it) covering flat elements [lo, hi)."""
        for p in range(lo // self.piece_elems, -(-hi // self.piece_elems) if hi > lo else lo // self.piece_elems):
            start = p * self.piece_elems
            yield p, max(lo, start) - start, min(hi, start + self.piece_elems) - start


class ParameterServer:
    """Named dense tensors (float32/float64) in Redis, read and added to concurrently by stateless tasks."""

    def __init__(self, urls: str | list[str], name: str, init: Mapping[str, object] | None = None,
                 piece_bytes: int = PIECE_BYTES, retry_seconds: float = 30.0, staleness: int | None = None):
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls or any(not u.startswith(("redis://", "rediss://")) for u in self.urls):
            raise ParameterServerError(f"a ParameterServer needs redis:// URLs, got {urls!r}")
        if not name or not isinstance(name, str) or any(c in name for c in " :{}"):
            raise ParameterServerError(f"a ParameterServer name is a plain word, got {name!r}")
        if piece_bytes < 4 * _BATCH:
            raise ParameterServerError(f"piece_bytes={piece_bytes} is too small: at least {4 * _BATCH}")
        if staleness is not None and staleness < 0:
            raise ParameterServerError(f"staleness={staleness} must be 0 or more clocks")
        self.name, self.piece_bytes, self.retry_seconds, self.staleness = name, piece_bytes, retry_seconds, staleness
        self._clients = None
        self._layouts: dict[str, _Tensor] = {}
        self._seen: dict[tuple[str, int], int] = {}   # last version of each piece this process saw
        for i, _ in enumerate(self.urls):             # an unreachable server is an error now, not mid-training
            self._call(i, "connect", lambda c: c.ping(), retry=False)
        for tensor, value in (init or {}).items():
            self.set(tensor, value)

    # -- pickling: a small handle; tasks connect lazily ----------------------------------------
    def __getstate__(self):
        return {"urls": self.urls, "name": self.name, "piece_bytes": self.piece_bytes,
                "retry_seconds": self.retry_seconds, "staleness": self.staleness}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._clients, self._layouts, self._seen = None, {}, {}

    def __repr__(self):
        return f"ParameterServer({self.name!r} on {', '.join(self.urls)})"

    # -- tensors -------------------------------------------------------------------------------
    def set(self, tensor: str, value) -> None:
        """Create or overwrite ``tensor`` with ``value`` (its shape and dtype become the tensor's)."""
        arr = np.array(value, dtype=_dtype_of(tensor, np.asarray(value).dtype), order="C")  # 0-d stays 0-d
        layout = _Tensor(arr.shape, arr.dtype, max(_BATCH, self.piece_bytes // arr.dtype.itemsize))
        flat = arr.reshape(-1)
        by_server: dict[int, dict] = {}
        for p in range(layout.npieces):
            chunk = flat[p * layout.piece_elems:(p + 1) * layout.piece_elems]
            by_server.setdefault(self._server(tensor, p), {})[self._piece(tensor, p)] = chunk.tobytes()
        for i, mapping in by_server.items():
            self._call(i, f"set({tensor!r})", lambda c, m=mapping: c.mset(m))
        self._call(0, f"set({tensor!r})", lambda c: c.hset(self._meta(tensor), mapping=layout.to_meta()))
        self._layouts[tensor] = layout

    def get(self, tensor: str, rows: slice | None = None) -> np.ndarray:
        """The tensor's current values (a copy; may be stale by the time it returns), or rows of its first axis."""
        layout = self._layout(tensor)
        lo, hi, shape = self._span(tensor, layout, rows)
        out = np.empty(hi - lo, dtype=layout.dtype)
        item = layout.dtype.itemsize
        filled = 0
        for p, a, b in layout.pieces(lo, hi):
            blob = self._call(self._server(tensor, p), f"get({tensor!r})",
                              lambda c, p=p, a=a, b=b: c.getrange(self._piece(tensor, p), a * item, b * item - 1))
            if len(blob) != (b - a) * item:
                raise self._lost(tensor, p, "is gone" if not blob else f"holds {len(blob)} bytes, not {(b - a) * item}")
            out[filled:filled + b - a] = np.frombuffer(blob, dtype=layout.dtype)
            filled += b - a
        return out.reshape(shape) if shape else out.reshape(())[()]

    def add(self, tensor: str, delta, rows: slice | None = None) -> None:
        """Add ``delta`` element-wise to the tensor (or to rows of its first axis), atomically on the server."""
        layout = self._layout(tensor)
        lo, hi, shape = self._span(tensor, layout, rows)
        d = np.asarray(delta)
        if d.shape != shape and d.shape != ():
            raise ParameterServerError(f"add to tensor {tensor!r}: delta has shape {d.shape}, "
                                       f"the tensor{'' if rows is None else f' rows {rows}'} {shape}")
        if not np.can_cast(d.dtype, layout.dtype, "same_kind"):
            raise ParameterServerError(f"add to tensor {tensor!r}: delta of dtype {d.dtype} cannot be added "
                                       f"to a {layout.dtype} tensor")
        flat = np.ascontiguousarray(np.broadcast_to(d, shape), dtype=layout.dtype).reshape(-1)
        call = self._call_id()
        fmt, item = _FORMATS[layout.dtype], layout.dtype.itemsize
        filled = 0
        for p, a, b in layout.pieces(lo, hi):
            piece = self._piece(tensor, p)
            if a or b < min(layout.piece_elems, layout.size - p * layout.piece_elems):
                # a partial piece: pad the delta with zeros to the whole piece
                whole = np.zeros(min(layout.piece_elems, layout.size - p * layout.piece_elems), layout.dtype)
                whole[a:b] = flat[filled:filled + b - a]
                part = whole
            else:
                part = flat[filled:filled + b - a]
            filled += b - a
            keys = [piece, piece + ":v", f"gwps:{self.name}:applied:{call}:{tensor}:{p}"]
            args = [part.tobytes(), fmt, item, APPLIED_TTL_S]
            before = self._seen.get((tensor, p), 0)   # what a reply must not fall behind (see _check_version)
            try:
                _, version = self._call(self._server(tensor, p), f"add({tensor!r})",
                                        lambda c, k=keys, v=args: self._script(c)(keys=k, args=v))
            except ParameterServerError as exc:
                if "GWPS_MISSING" in str(exc.__cause__ or ""):
                    raise self._lost(tensor, p, "is gone") from None
                raise
            self._check_version(tensor, p, before, int(version))

    def version(self, tensor: str) -> int:
        """How many adds reached the tensor's first piece: a clock of its updates."""
        self._layout(tensor)
        raw = self._call(self._server(tensor, 0), f"version({tensor!r})",
                         lambda c: c.get(self._piece(tensor, 0) + ":v"))
        return int(raw or 0)

    def tensors(self) -> list[str]:
        """The names of the tensors this server holds."""
        prefix = f"gwps:{self.name}:meta:"
        keys = self._call(0, "tensors()", lambda c: list(c.scan_iter(match=prefix + "*", count=1000)))
        return sorted(k.decode()[len(prefix):] for k in keys)

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot(self, url: str | None = None) -> dict[str, np.ndarray]:
        """Every tensor's values; with ``url`` (a file in any store: ``/tmp/ckpt/logreg.npz``,
        ``s3://bucket/ckpt/logreg.npz``), also written there as an .npz file numpy can load."""
        values = {t: np.asarray(self.get(t)) for t in self.tensors()}
        if url is not None:
            buf = io.BytesIO()
            np.savez(buf, **values)
            store, key = _store_and_key(url)
            store.put(key, buf.getvalue())
        return values

    def restore(self, source: str | Mapping[str, object]) -> None:
        """Set every tensor from a snapshot: the dict ``snapshot()`` returned, or the URL it wrote."""
        if isinstance(source, str):
            store, key = _store_and_key(source)
            with np.load(io.BytesIO(store.get(key))) as data:
                source = {k: data[k] for k in data.files}
        for tensor, value in source.items():
            self.set(tensor, value)

    def delete(self) -> None:
        """Remove every key of this parameter server from every Redis."""
        pattern = f"gwps:{self.name}:*"
        for i, _ in enumerate(self.urls):
            self._call(i, "delete()", lambda c: [c.delete(*batch) for batch in _batches(c.scan_iter(match=pattern))])
        self._layouts.clear()

    # -- bounded staleness (SSP) -----------------------------------------------------------------
    def clock(self, worker, timeout: float = 300.0) -> int:
        """Advance ``worker``'s clock; with ``staleness``, wait while it is more than that ahead of the slowest."""
        key = f"gwps:{self.name}:clocks"
        mine = int(self._call(0, "clock()", lambda c: c.hincrby(key, str(worker), 1)))
        if self.staleness is None:
            return mine
        deadline, pause = time.monotonic() + timeout, 0.001
        while True:
            clocks = self._call(0, "clock()", lambda c: c.hvals(key))
            slowest = min(int(v) for v in clocks)
            if mine - slowest <= self.staleness:
                return mine
            if time.monotonic() > deadline:
                raise ParameterServerError(f"worker {worker!r} waited {timeout:.0f} s at clock {mine} for the "
                                           f"slowest worker (clock {slowest}, staleness {self.staleness})")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def start_clocks(self, workers: Iterable) -> None:
        """Register every worker at clock 0 before they start, so the first to run waits for the others."""
        mapping = {str(w): 0 for w in workers}
        if mapping:
            self._call(0, "start_clocks()", lambda c: c.hset(f"gwps:{self.name}:clocks", mapping=mapping))

    def finish(self, worker) -> None:
        """``worker`` is done: it no longer holds the others back."""
        self._call(0, "finish()", lambda c: c.hdel(f"gwps:{self.name}:clocks", str(worker)))

    # -- plumbing --------------------------------------------------------------------------------
    def _call_id(self) -> str:
        """An add's id: the same in every execution of the task making it (see the module docstring)."""
        execution = current.current()
        if execution is None:
            return uuid.uuid4().hex
        n = _adds_made.get(execution, 0)
        _adds_made[execution] = n + 1
        return f"{execution.job}/{execution.stage}/{execution.task}/{n}"

    def _meta(self, tensor: str) -> str:
        return f"gwps:{self.name}:meta:{tensor}"

    def _piece(self, tensor: str, p: int) -> str:
        return f"gwps:{self.name}:t:{tensor}:{p}"

    def _server(self, tensor: str, p: int) -> int:
        return zlib.crc32(f"{tensor}:{p}".encode()) % len(self.urls)

    def _layout(self, tensor: str) -> _Tensor:
        layout = self._layouts.get(tensor)
        if layout is None:
            meta = self._call(0, f"tensor {tensor!r}", lambda c: c.hgetall(self._meta(tensor)))
            if not meta:
                raise ParameterServerError(f"parameter server {self.name!r} on {self.urls[0]} has no tensor "
                                           f"{tensor!r}; it has {self.tensors()}")
            layout = self._layouts[tensor] = _Tensor.from_meta(meta)
        return layout

    @staticmethod
    def _span(tensor: str, layout: _Tensor, rows: slice | None) -> tuple[int, int, tuple]:
        """(first flat element, end flat element, shape) of the whole tensor or of rows of its first axis."""
        if rows is None:
            return 0, layout.size, layout.shape
        if not layout.shape:
            raise ParameterServerError(f"tensor {tensor!r} is a scalar: it has no rows to slice")
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise ParameterServerError(f"tensor {tensor!r}: rows must be a slice with step 1, got {rows!r}")
        start, stop, _ = rows.indices(layout.shape[0])
        stop = max(start, stop)
        row = math.prod(layout.shape[1:])
        return start * row, stop * row, (stop - start, *layout.shape[1:])

    def _lost(self, tensor: str, p: int, what: str) -> ParameterServerError:
        url = self.urls[self._server(tensor, p)]
        return ParameterServerError(f"tensor {tensor!r} piece {p} {what} on {url}: the server lost data "
                                    f"(a restart without persistence?); updates since the last snapshot are lost")

    def _check_version(self, tensor: str, p: int, before: int, version: int) -> None:
        """A piece's version only grows: a reply older than what this process saw before sending the
        call means the server lost adds it had acknowledged. Replies of concurrent calls may arrive
        in any order, hence ``before`` (taken when the call was sent), not the latest seen."""
        if version < before:
            url = self.urls[self._server(tensor, p)]
            raise ParameterServerError(f"tensor {tensor!r} piece {p} on {url} went back from version {before} to "
                                       f"{version}: the server restarted from older data and updates are lost")
        with _seen_lock:
            self._seen[(tensor, p)] = max(self._seen.get((tensor, p), 0), version)

    def _script(self, client):
        scripts = self.__dict__.setdefault("_scripts", {})
        if id(client) not in scripts:
            scripts[id(client)] = client.register_script(_ADD)
        return scripts[id(client)]

    def _client(self, i: int):
        if self._clients is None:
            import redis
            self._clients = [redis.Redis.from_url(u, socket_timeout=10, socket_connect_timeout=5) for u in self.urls]
        return self._clients[i]

    def _call(self, i: int, what: str, fn, retry: bool = True):
        """fn(client of server i), retrying connection errors for ``retry_seconds``; errors named."""
        import redis
        deadline, pause = time.monotonic() + (self.retry_seconds if retry else 0), 0.05
        while True:
            try:
                return fn(self._client(i))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    raise ParameterServerError(
                        f"parameter server {self.name!r}: {what} could not reach {self.urls[i]}"
                        f"{f' for {self.retry_seconds:.0f} s' if retry else ''}: {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            except redis.ResponseError as exc:
                raise ParameterServerError(f"parameter server {self.name!r}: {what} on {self.urls[i]} "
                                           f"failed: {exc}") from exc


_seen_lock = threading.Lock()
#: Adds each running execution has made: the counter behind repeatable add ids.
_adds_made: "weakref.WeakKeyDictionary[current.Execution, int]" = weakref.WeakKeyDictionary()


def _dtype_of(tensor: str, dtype: np.dtype) -> np.dtype:
    """float32 and float64 stay; integers and bools become float64; anything else is refused."""
    if dtype in _FORMATS:
        return dtype
    if dtype.kind in "biu":
        return np.dtype("float64")
    raise ParameterServerError(f"tensor {tensor!r}: dtype {dtype} is not supported (float32 or float64)")


def _store_and_key(url: str):
    """The store and key of a snapshot's URL (a local path, file://, s3:// or redis://)."""
    from .runtime.storage import open_store
    from .runtime.storage.paths import split_url
    store_url, key = split_url(url)
    if not key:
        raise ParameterServerError(f"a snapshot URL names a file, like file:///tmp/ckpt/ps.npz; got {url!r}")
    return open_store(store_url), key


def _batches(it, n: int = 500):
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch

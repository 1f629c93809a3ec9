"""RedisStore: keys in one Redis database, values split into ~1 MiB chunks.

URL: redis://[:password@]host:port/db[?prefix=name][&connect_timeout=S][&timeout=S][&retries=N]
     (prefix defaults to 'graphwren'; other query options go to redis-py)

Layout (P = prefix):

    P:v:<key>                     the head; its first byte is a tag:
                                    b'\\x00' + value          (value fits in one chunk: inline)
                                    b'\\x01' + b'<ver> <size> <chunk> <n>'   (chunked)
    P:c:<key>:<ver>:<i>           chunk i of a chunked value written as version <ver>
    P:t:<key>                     the token of the put_if_absent call that created the head

An inline value costs exactly one round trip to put (a small Lua script that
SETs the head and reports whether it replaced a chunked value) and one to get
(GET). A chunked value is written chunks first, head last, so readers only
ever see complete values; overwriting a chunked value deletes the old version's
chunks after the new head is in place (a reader caught in between re-reads the
head). put_if_absent is SET NX on the head, in a script that also stores the
caller's random token, so a retried call whose first reply was lost still
learns that it won. list() SCANs heads only (MATCH with the prefix
glob-escaped), so chunk and token keys never show up.

Every command has bounded connect and socket timeouts and is retried by
redis-py on connection errors and timeouts, with exponential backoff and
jitter: a Redis restart of a second or a pause of a few seconds goes
unnoticed. Every command here is safe to repeat (see put and put_if_absent).
Whatever still fails escapes as StorageError naming the store and the key,
TransientStorageError when the connection was the problem.
"""
from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from ...errors import MissingKey, StorageError, TransientStorageError
from .base import RetryPolicy, Store, guarded

CHUNK = 1 << 20  # 1 MiB
# 6 retries wait 1.75-3.5 s in all (equal jitter, 50 ms doubling to a 1 s cap): a restart
# of up to ~1.7 s is always ridden out, and a dead endpoint is reported within ~4 s.
DEFAULT_POLICY = RetryPolicy(connect_timeout=2.0, timeout=5.0, retries=6)
SCAN_COUNT = 1000
BATCH_BYTES = 32 * CHUNK  # pipeline at most this many chunk bytes per round trip

INLINE = b"\x00"
CHUNKED = b"\x01"
META_PEEK = 63  # head bytes to read to learn the layout (chunked heads are shorter)

# SET the head and return its previous content if that was a chunked header
# (so the caller can drop the old chunks), else nil. One round trip.
_PUT_LUA = """
local old = redis.call('GETRANGE', KEYS[1], 0, 63)
redis.call('SET', KEYS[1], ARGV[1])
if string.sub(old, 1, 1) == '\\1' then return old end
return false
"""

# Create the head only if absent, remembering the caller's token; report success also
# to a repeat of the call that created it (its first reply was lost). One round trip.
_PUT_IF_ABSENT_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[2] then return 1 end
return 0
"""

_GLOB_SPECIAL = set("*?[]\\")


def glob_escape(s: str) -> str:
    """Escape Redis MATCH metacharacters so s matches literally."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in s)


class _Meta:
    """The head of a chunked value: its version, size, chunk length and number of chunks."""

    __slots__ = ("ver", "size", "chunk", "n")

    def __init__(self, raw: bytes):
        ver, size, chunk, n = raw[1:].split(b" ")
        self.ver = ver.decode()
        self.size, self.chunk, self.n = int(size), int(chunk), int(n)

    @staticmethod
    def encode(ver: str, size: int, chunk: int, n: int) -> bytes:
        return CHUNKED + f"{ver} {size} {chunk} {n}".encode()


def _split_url(url: str) -> tuple[str, str, RetryPolicy]:
    """(redis-py URL without our own query args, key prefix, retry policy)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = (query.pop("prefix", None) or ["graphwren"])[0] or "graphwren"
    policy = RetryPolicy.from_query(url, query, DEFAULT_POLICY)
    rest = urlencode({k: v[-1] for k, v in query.items()})
    return urlunsplit(parts._replace(query=rest)), prefix, policy


class RedisStore(Store):
    """A store in one Redis database under a key prefix."""

    def __init__(self, url: str, chunk_size: int = CHUNK):
        self.url = url
        conn_url, self.prefix, self.policy = _split_url(url)
        self.chunk = int(chunk_size)
        p = self.policy
        try:
            self._r = redis.Redis.from_url(
                conn_url,
                socket_connect_timeout=p.connect_timeout,
                socket_timeout=p.timeout,
                socket_keepalive=True,
                retry=Retry(EqualJitterBackoff(cap=p.backoff_cap, base=p.backoff_base), p.retries,
                            (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                             socket.timeout)),
                health_check_interval=30,
            )
        except (ValueError, TypeError, redis.exceptions.RedisError) as e:
            raise StorageError(f"bad Redis URL {url!r}: {e}", url=url) from e
        kw = self._r.connection_pool.connection_kwargs
        self._where = kw.get("path") or f"{kw.get('host')}:{kw.get('port')}/{kw.get('db', 0)}"
        try:
            self._r.ping()
            # Script objects reload themselves after NOSCRIPT (a restarted Redis forgets scripts).
            self._put_script = self._r.register_script(_PUT_LUA)
            self._put_if_absent_script = self._r.register_script(_PUT_IF_ABSENT_LUA)
            self._r.script_load(_PUT_LUA)
            self._r.script_load(_PUT_IF_ABSENT_LUA)
        except redis.exceptions.AuthenticationError as e:
            self._r.close()
            raise StorageError(f"Redis at {self._where} refused the credentials: {e}", url=url) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
            self._r.close()
            raise TransientStorageError(f"Redis at {self._where} is unreachable: {e}", url=url) from None
        except redis.exceptions.RedisError as e:
            self._r.close()
            raise StorageError(f"cannot open Redis store {url!r}: {e}", url=url) from None
        self._hp = f"{self.prefix}:v:"  # head prefix
        self._cp = f"{self.prefix}:c:"  # chunk prefix
        self._tp = f"{self.prefix}:t:"  # token prefix
        self._lock = threading.Lock()
        self._seq = 0
        self.closed = False

    # -- helpers -------------------------------------------------------------

    def _head(self, key: str) -> str:
        if not key:
            raise ValueError("empty storage key")
        return self._hp + key

    def _chunk_key(self, key: str, ver: str, i: int) -> str:
        return f"{self._cp}{key}:{ver}:{i}"

    def _new_version(self) -> str:
        with self._lock:
            self._seq += 1
            seq = self._seq
        return f"{os.getpid():x}.{threading.get_ident() % 65536:x}.{time.time_ns():x}.{seq:x}"

    def _missing(self, key: str) -> MissingKey:
        return MissingKey(f"missing key {key!r} in {self.url}")

    def _storage_error(self, op: str, key: str, exc: BaseException) -> StorageError | None:
        """The StorageError for a failed command, or None if exc is not a storage failure."""
        if not isinstance(exc, (redis.exceptions.RedisError, OSError)):
            return None
        transient = isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                                     OSError)) and not isinstance(exc, redis.exceptions.AuthenticationError)
        after = f" after {self.policy.retries + 1} attempts" if transient else ""
        cls = TransientStorageError if transient else StorageError
        return cls(f"Redis {op} of key {key!r} in {self.url} (at {self._where}) failed{after}: "
                   f"{type(exc).__name__}: {exc}", url=self.url, key=key, op=op)

    def _write_chunks(self, key: str, data, ver: str) -> int:
        view = memoryview(data)
        n = (len(view) + self.chunk - 1) // self.chunk
        per_batch = max(1, BATCH_BYTES // self.chunk)
        for b0 in range(0, n, per_batch):
            pipe = self._r.pipeline(transaction=False)
            for i in range(b0, min(n, b0 + per_batch)):
                pipe.set(self._chunk_key(key, ver, i), bytes(view[i * self.chunk : (i + 1) * self.chunk]))
            pipe.execute()
        return n

    def _drop_chunks(self, key: str, meta: _Meta) -> None:
        names = [self._chunk_key(key, meta.ver, i) for i in range(meta.n)]
        for i in range(0, len(names), 1000):
            self._r.unlink(*names[i : i + 1000])

    # -- Store ---------------------------------------------------------------

    @guarded("put")
    def put(self, key: str, data: bytes) -> None:
        head = self._head(key)
        ver = None
        if len(data) <= self.chunk:
            old = self._put_script(keys=[head], args=[INLINE + bytes(data)])
        else:
            ver = self._new_version()
            n = self._write_chunks(key, data, ver)
            old = self._put_script(keys=[head], args=[_Meta.encode(ver, len(data), self.chunk, n)])
        # A retried script whose first run landed reports our own head as the old one.
        if old and _Meta(old).ver != ver:
            self._drop_chunks(key, _Meta(old))

    @guarded("put_if_absent")
    def put_if_absent(self, key: str, data: bytes) -> bool:
        head = self._head(key)
        token = secrets.token_hex(16)
        keys = [head, self._tp + key]
        if len(data) <= self.chunk:
            return self._put_if_absent_script(keys=keys, args=[INLINE + bytes(data), token]) == 1
        if self._r.exists(head):
            return False  # cheap early exit; the script below is what decides
        ver = self._new_version()
        n = self._write_chunks(key, data, ver)
        meta = _Meta.encode(ver, len(data), self.chunk, n)
        if self._put_if_absent_script(keys=keys, args=[meta, token]) == 1:
            return True
        self._drop_chunks(key, _Meta(meta))
        return False

    @guarded("get")
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None and end is not None and end <= start:
            return b""  # empty range: no round trip
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ValueError(f"negative byte range [{start}, {end}) for {key!r}")
        head = self._head(key)
        for _ in range(5):
            if start is None and end is None:
                raw = self._r.get(head)
                if raw is None:
                    raise self._missing(key)
                if raw[:1] == INLINE:
                    return raw[1:]
                meta = _Meta(raw)
                lo, hi = 0, meta.size
            else:
                # One round trip: the layout tag and, if inline, the answer itself.
                pipe = self._r.pipeline(transaction=False)
                pipe.getrange(head, 0, META_PEEK)
                s = start or 0
                pipe.getrange(head, s + 1, (end if end is not None else -1))  # inclusive end
                peek, inline_part = pipe.execute()
                if not peek:
                    raise self._missing(key)
                if peek[:1] == INLINE:
                    return inline_part  # GETRANGE clamps at the end of the value
                meta = _Meta(peek)
                lo = min(s, meta.size)
                hi = meta.size if end is None else min(end, meta.size)
                if hi <= lo:
                    return b""
            out = self._read_chunks(key, meta, lo, hi)
            if out is not None:
                return out
            # A chunk vanished: the value was overwritten or deleted under us. Re-read the head.
        raise StorageError(f"value {key!r} in {self.url} keeps changing or is corrupt (missing chunks)",
                           url=self.url, key=key, op="get")

    def _read_chunks(self, key: str, meta: _Meta, lo: int, hi: int) -> bytes | None:
        c = meta.chunk
        first, last = lo // c, (hi - 1) // c
        parts = []
        per_batch = max(1, BATCH_BYTES // c)
        for b0 in range(first, last + 1, per_batch):
            pipe = self._r.pipeline(transaction=False)
            expect = []
            for i in range(b0, min(last + 1, b0 + per_batch)):
                a = max(lo, i * c) - i * c
                b = min(hi, (i + 1) * c) - i * c  # exclusive, within chunk i
                name = self._chunk_key(key, meta.ver, i)
                if a == 0 and b == min(c, meta.size - i * c):
                    pipe.get(name)
                else:
                    pipe.getrange(name, a, b - 1)
                expect.append(b - a)
            for got, want in zip(pipe.execute(), expect):
                if got is None or len(got) != want:
                    return None
                parts.append(got)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @guarded("exists")
    def exists(self, key: str) -> bool:
        return bool(self._r.exists(self._head(key)))

    @guarded("size")
    def size(self, key: str) -> int:
        head = self._head(key)
        pipe = self._r.pipeline(transaction=False)
        pipe.strlen(head)
        pipe.getrange(head, 0, META_PEEK)
        n, peek = pipe.execute()
        if not peek:
            raise self._missing(key)
        if peek[:1] == INLINE:
            return n - 1
        return _Meta(peek).size

    def _scan(self, pattern: str):
        seen = set()
        for name in self._r.scan_iter(match=pattern, count=SCAN_COUNT):
            if name not in seen:  # SCAN may return an element more than once
                seen.add(name)
                yield name

    @guarded("list")
    def list(self, prefix: str) -> list[str]:
        n = len(self._hp.encode())
        pattern = glob_escape(self._hp + prefix) + "*"
        return sorted(name[n:].decode() for name in self._scan(pattern))

    @guarded("delete")
    def delete(self, prefix: str) -> int:
        # Heads, chunks and tokens in one SCAN: P:[vct]:<prefix>*  (all embed the logical key).
        pattern = glob_escape(self.prefix) + ":[vct]:" + glob_escape(prefix) + "*"
        hp = self._hp.encode()
        heads, chunks = [], []
        for name in self._scan(pattern):
            (heads if name.startswith(hp) else chunks).append(name)
        count = 0
        for i in range(0, len(heads), 1000):
            count += self._r.unlink(*heads[i : i + 1000])
        for i in range(0, len(chunks), 1000):
            self._r.unlink(*chunks[i : i + 1000])
        return count

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._r.close()

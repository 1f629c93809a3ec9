"""SimStore: an in-memory S3 or Redis that charges the cloud model's time for every request.

It keeps the Store contract (the real driver and workers use it through
``open_store`` while a simulation runs) and adds what the cloud would do:

* S3: each request waits its first-byte latency, then moves its bytes
  through the calling function's share of bandwidth (``s3_mb_s``, one
  stream after another through the function's network); GETs and PUTs are
  limited per prefix (the key's directory) by token buckets of a second's
  burst at ``s3_get_per_s`` / ``s3_put_per_s``: a request over the rate
  gets a 503 SlowDown and retries after a jittered back-off, as botocore
  does, failing after ``s3_retries``; a LIST takes one page latency per
  1,000 keys.
* Redis: a round trip, the function's bandwidth to the cluster, and the
  cluster's shared bandwidth and request rate (``redis_shards`` of each).

Values may be *virtual*: a size without bytes, which modelled tasks write
and read (``charge``) so a terabyte costs no memory. A virtual value may
carry a small stand-in that a real read gets (paying for the full size):
a modelled task's result, which the driver fetches as an empty partition;
a real read of one without is an error naming the key.
"""
from __future__ import annotations

import bisect
import contextvars
import math
import threading

from ..errors import MissingKey, StorageError, TransientStorageError
from ..runtime import stats
from ..runtime.storage import Store

# Which simulated function the running code belongs to: whose network a request uses.
function = contextvars.ContextVar("gw_sim_function", default="driver")


class _Bucket:
    """One bucket's keys (sorted) and values, shared by every store URL that names it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict[str, bytes | _Virtual] = {}
        self.keys: list[str] = []


class _Virtual:
    """A value of ``size`` bytes that holds none of them, or only a small ``stand_in`` for real readers."""

    __slots__ = ("size", "stand_in")

    def __init__(self, size: int, stand_in: bytes | None = None):
        self.size, self.stand_in = size, stand_in


def _size(value) -> int:
    return value.size if isinstance(value, _Virtual) else len(value)


class _TokenBucket:
    """A request rate with a second's burst: ``take`` says whether a request may pass now."""

    def __init__(self, rate: float, now: float):
        self.rate, self.tokens, self.at = rate, rate, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SimStore(Store):
    """A simulated S3 bucket prefix or Redis database (``kind``), timed by the simulation's cloud."""

    def __init__(self, url: str, sim, kind: str, bucket: _Bucket, root: str = ""):
        self.url = url
        self.sim = sim
        self.kind = kind              # "s3" or "redis"
        self._bucket = bucket
        self.root = root

    # -- time ---------------------------------------------------------------------------------
    def _admit(self, op: str, key: str) -> None:
        """Wait until the request rate lets ``op`` on ``key`` through (SlowDown and back-off on S3)."""
        sim, cloud = self.sim, self.sim.cloud
        if self.kind == "redis":
            return
        cls = "get" if op in ("get", "exists", "size") else "put" if op in ("put", "put_if_absent") else None
        if cls is None:
            return
        prefix = (self.root + key).rpartition("/")[0]
        failures = 0
        while True:
            with sim.lock:
                limit = sim.limiter(self.url.split("/")[2], prefix, cls)
                if limit.take(sim.clock.monotonic()):
                    return
                sim.counts["slowdown"] += 1
            failures += 1
            if failures > cloud.s3_retries:
                raise TransientStorageError(
                    f"S3 (simulated) {op} of key {key!r} in {self.url} failed after {failures} attempts: "
                    f"503 SlowDown (over {cloud.s3_get_per_s if cls == 'get' else cloud.s3_put_per_s:,.0f} "
                    f"{cls.upper()}/s on prefix {prefix!r})", url=self.url, key=key, op=op)
            step = min(cloud.s3_backoff_max, cloud.s3_backoff * 2 ** failures)
            sim.clock.sleep(step / 2 + sim.uniform(0, step / 2))

    def _transfer_time(self, nbytes: int, latency: float) -> float:
        """Virtual seconds from now until ``nbytes`` moved through the caller's network (and the cluster's)."""
        sim, cloud = self.sim, self.sim.cloud
        who = function.get()
        if self.kind == "s3":
            mb_s = cloud.driver_mb_s if who == "driver" else cloud.s3_mb_s
        else:
            mb_s = cloud.driver_mb_s if who == "driver" else cloud.fn_redis_mb_s
        with sim.lock:
            now = sim.clock.monotonic()
            start = max(now + latency, sim.nic_free.get(who, 0.0))
            end = sim.nic_free[who] = start + nbytes / (mb_s * 1e6)
            if self.kind == "redis":   # the cluster's shared bandwidth and request rate
                c_start = max(now + latency, sim.cluster_free)
                per_s_bytes = cloud.redis_shards * cloud.redis_shard_mb_s * 1e6
                sim.cluster_free = c_start + nbytes / per_s_bytes + 1.0 / (cloud.redis_shards * cloud.redis_ops_per_s)
                end = max(end, sim.cluster_free)
        return end - now

    def _latency(self, op: str) -> float:
        cloud = self.sim.cloud
        if self.kind == "redis":
            return cloud.redis_latency
        return cloud.s3_put_latency if op in ("put", "put_if_absent", "delete") else cloud.s3_get_latency

    def _request(self, op: str, key: str, nbytes: int = 0) -> None:
        self._admit(op, key)
        with self.sim.lock:
            self._note(op, key, nbytes)
            self.sim.counts[f"{self.kind}_bytes"] += nbytes
            if function.get() == "driver":
                self.sim.counts["driver_requests"] += 1
        self.sim.clock.sleep(self._transfer_time(nbytes, self._latency(op)))

    def _note(self, op: str, key: str, nbytes: int) -> None:
        """Count one request (under ``sim.lock``); the manifests' and offset tables' sizes, and what readers GET of them."""
        sim = self.sim
        sim.counts[f"{self.kind}_{op}"] += 1
        manifest, table = key.endswith("/manifest"), "/offsets." in key
        if op == "put" and manifest:
            sim.manifest_sizes.append(nbytes)
        elif op == "put" and table:
            sim.table_sizes.append(nbytes)
        elif op == "get" and (manifest or table):
            sim.counts["manifest_gets"] += manifest
            sim.counts["manifest_get_bytes"] += nbytes   # with the offset columns: bytes a reader's lookups cost

    def charge(self, requests: list[tuple[str, str, int]]) -> None:
        """Requests (op, key, bytes) made at once by a modelled task: admitted one by one, moved together.

        Each is counted for the running attempt's meter like a real request; the keys of
        ``get`` requests must hold a (virtual) value.
        """
        if not requests:
            return
        for op, key, _ in requests:
            self._admit(op, key)
        total = sum(n for _, _, n in requests)
        with self.sim.lock:
            for op, key, n in requests:
                self._note(op, key, n)
            self.sim.counts[f"{self.kind}_bytes"] += total
        for op, _, n in requests:
            stats.count(self.url, op, n if op == "get" else 0, n if op == "put" else 0)
        latency = max(self._latency(op) for op, _, _ in requests)
        self.sim.clock.sleep(self._transfer_time(total, latency))

    # -- values -----------------------------------------------------------------------------------
    def _k(self, key: str) -> str:
        if not key:
            raise ValueError("empty storage key")
        return self.root + key

    def _set(self, k: str, value) -> None:
        b = self._bucket
        if k not in b.values:
            bisect.insort(b.keys, k)
        b.values[k] = value

    def put_virtual(self, key: str, nbytes: int, stand_in: bytes | None = None) -> None:
        """Write a value of ``nbytes`` that holds no bytes (a modelled task's output); charges nothing."""
        with self._bucket.lock:
            self._set(self._k(key), _Virtual(int(nbytes), stand_in))

    def virtual_size(self, key: str) -> int | None:
        """The size of a value, without a request (None: no such key)."""
        value = self._bucket.values.get(self._k(key))
        return None if value is None else _size(value)

    # -- Store ---------------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        k = self._k(key)
        self._request("put", key, len(data))
        with self._bucket.lock:
            self._set(k, bytes(data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        k = self._k(key)
        self._request("put_if_absent", key, len(data))
        with self._bucket.lock:
            if k in self._bucket.values:
                return False
            self._set(k, bytes(data))
            return True

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        k = self._k(key)
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ValueError(f"negative byte range [{start}, {end}) for {key!r}")
        value = self._bucket.values.get(k)
        if value is None:
            self._request("get", key)
            raise MissingKey(f"missing key {self.url.rstrip('/')}/{key}")
        if isinstance(value, _Virtual):
            if value.stand_in is None or start or end is not None:
                raise StorageError(f"key {key!r} in {self.url} holds a modelled (virtual) value of {value.size:,} "
                                   f"bytes: only modelled tasks read it", url=self.url, key=key, op="get")
            self._request("get", key, value.size)
            return value.stand_in
        out = value[start or 0:end] if (start or end is not None) else value
        self._request("get", key, len(out))
        return out

    def exists(self, key: str) -> bool:
        self._request("exists", key)
        return self._k(key) in self._bucket.values

    def size(self, key: str) -> int:
        self._request("size", key)
        n = self.virtual_size(key)
        if n is None:
            raise MissingKey(f"missing key {self.url.rstrip('/')}/{key}")
        return n

    def list(self, prefix: str) -> list[str]:
        return [k for k, _ in self._list(prefix)]

    def list_sized(self, prefix: str) -> list[tuple[str, int]]:
        return self._list(prefix)

    def _list(self, prefix: str) -> list[tuple[str, int]]:
        p = self.root + prefix
        b = self._bucket
        with b.lock:
            lo = bisect.bisect_left(b.keys, p)
            hi = bisect.bisect_left(b.keys, p + "\U0010ffff")
            keys = b.keys[lo:hi]
            out = [(k[len(self.root):], _size(b.values[k])) for k in keys]
        pages = max(1, math.ceil(len(out) / self.sim.cloud.s3_list_page)) if self.kind == "s3" else 1
        with self.sim.lock:
            self.sim.counts[f"{self.kind}_list"] += 1
            self.sim.counts[f"{self.kind}_list_pages"] += pages
            self.sim.counts[f"{self.kind}_list_keys"] += len(out)
            if function.get() == "driver":
                self.sim.counts["driver_requests"] += pages
                self.sim.counts["driver_lists"] += 1
                self.sim.counts["driver_list_pages"] += pages
        latency = self.sim.cloud.s3_list_latency if self.kind == "s3" else self.sim.cloud.redis_latency
        self.sim.clock.sleep(pages * latency)   # S3 pages one after another: each names where the next starts
        return out

    def delete(self, prefix: str) -> int:
        p = self.root + prefix
        b = self._bucket
        with b.lock:
            lo = bisect.bisect_left(b.keys, p)
            hi = bisect.bisect_left(b.keys, p + "\U0010ffff")
            gone = b.keys[lo:hi]
            del b.keys[lo:hi]
            for k in gone:
                del b.values[k]
        self._request("delete", prefix)
        return len(gone)

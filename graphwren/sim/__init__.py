"""A simulated cloud to rehearse a job on: Lambda, S3 and Redis in this process, on a virtual clock.

    import graphwren as gw
    from graphwren import sim

    with sim.Simulation(sim.Cloud(concurrency=100, duplicate_rate=0.01)) as cloud:
        with gw.config.set(cloud.settings()):
            counts = gw.bag.from_sequence(words, npartitions=200).frequencies().compute()
        print(cloud.report())

Inside the ``with``, every ``s3://`` and ``redis://`` URL opens a
``SimStore`` and every driver gets a ``SimBackend``: the settings stay the
Lambda ones (``backend="lambda"``), so the planner, the driver, the commit
rule and the cost of the job are exactly what the cloud would get. Task
bodies run for real, or, for the stages ``models`` names, as their modelled
cost (``StageCost``): then a terabyte costs seconds. Every figure the
simulator applies is a field of ``Cloud`` (``model.py``), in one place.
"""
from __future__ import annotations

import collections
import random
import threading
from urllib.parse import urlsplit

from ..runtime import backends, integrity, offset_table, records
from ..runtime import storage as _storage
from .backend import SimBackend
from .clock import VirtualClock
from .model import Cloud, StageCost
from .store import SimStore, _Bucket, _TokenBucket

__all__ = ["Simulation", "Cloud", "StageCost", "SimStore", "SimBackend", "VirtualClock"]


class Simulation:
    """One simulated cloud: its figures, clock, stores, Lambda, and what happened in it."""

    def __init__(self, cloud: Cloud | None = None, models: dict | None = None):
        self.cloud = cloud or Cloud()
        self.models = models          # stage name or kind ("2-partition" or "partition") or "*" -> StageCost
        self.clock = VirtualClock()
        self.lock = self.clock.lock
        self.rng = random.Random(self.cloud.seed)
        self.counts: collections.Counter = collections.Counter()
        self.running = 0
        self.peak_running = 0
        self.nic_free: dict[str, float] = {}   # function -> when its network is free (virtual)
        self.cluster_free = 0.0                # when the Redis cluster's bandwidth is free
        self._limiters: dict[tuple, _TokenBucket] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._manifests: dict[tuple, dict] = {}
        # one decode of a stage's manifest and offset table at a time: a thousand readers starting together
        # would otherwise each decode the whole table (at 10,000 x 10,000, 800 MB apiece)
        self._decoding = threading.Lock()
        self._backend: SimBackend | None = None
        self.manifest_sizes: list[int] = []    # bytes of every manifest the driver wrote
        self.table_sizes: list[int] = []       # bytes of every offset table it wrote (runtime/offset_table.py)
        self.deliveries: list[float] = []      # when each first delivery of an event reached Lambda

    # -- plugging in -------------------------------------------------------------------------------
    def __enter__(self) -> "Simulation":
        _storage.set_opener(self.open)
        backends.set_factory(self.backend)
        return self

    def __exit__(self, *exc) -> None:
        backends.set_factory(None)
        _storage.set_opener(None)
        if self._backend is not None:
            self._backend.close()
        self.clock.close()

    def settings(self, **more) -> dict:
        """Lambda settings for a job in this simulation (storage in a simulated bucket)."""
        return {"backend": "lambda", "storage": "s3://gw-sim/jobs", "lambda_max_workers": self.cloud.concurrency,
                "progress": False, **more}

    def open(self, url: str) -> SimStore | None:
        """The simulated store for an s3:// or redis:// URL (None for any other: the real one)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "s3":
            bucket, root = parts.netloc, parts.path.strip("/")
            kind = "s3"
        elif scheme in ("redis", "rediss"):
            bucket, root, kind = f"{scheme}://{parts.netloc}{parts.path}", "", "redis"
        else:
            return None
        with self.lock:
            data = self._buckets.setdefault(bucket, _Bucket())
        return SimStore(url, self, kind, data, f"{root}/" if root else "")

    def backend(self, settings: dict) -> SimBackend:
        with self.lock:
            if self._backend is None:
                self._backend = SimBackend(self, settings)
            self._backend.parallelism = int(settings.get("lambda_max_workers") or self.cloud.concurrency)
            self._backend.settings = settings
            return self._backend

    # -- what the parts share ---------------------------------------------------------------------------
    def uniform(self, a: float, b: float) -> float:
        with self.lock:
            return self.rng.uniform(a, b)

    def limiter(self, bucket: str, prefix: str, cls: str) -> _TokenBucket:
        """The request-rate bucket of one S3 prefix and request class (under ``lock``)."""
        key = (bucket, prefix, cls)
        limit = self._limiters.get(key)
        if limit is None:
            rate = self.cloud.s3_get_per_s if cls == "get" else self.cloud.s3_put_per_s
            limit = self._limiters[key] = _TokenBucket(rate, self.clock.monotonic())
        return limit

    def model_of(self, stage: str) -> StageCost | None:
        """The modelled cost of a stage's tasks, or None: they run for real."""
        if self.models is None:
            return None
        kind = stage.split("-", 1)[-1]
        for name in (stage, kind, "*"):
            if name in self.models:
                return self.models[name]
        return StageCost()

    def manifest(self, store: SimStore, job: str, stage: str, key: bytes) -> dict:
        """A stage's manifest, decoded once for every modelled reader (each still pays its GETs)."""
        cache = (store.url, job, stage)
        with self._decoding:
            hit = self._manifests.get(cache)
            if hit is None:
                name = records.manifest_key(job, stage)
                blob = store._bucket.values[store._k(name)]
                header, _ = records.unpack(integrity.unseal(key, name, blob, store.url, "manifest"))
                hit = {"tasks": header["tasks"], "size": len(blob), "columns": header.get("columns")}
                table = header.get("columns")
                if table:   # the offsets, (M, R + 1), as each reader's ranged GET of its columns would give them
                    m, name = table["m"], records.offsets_key(job, stage, table["x"])
                    columns = offset_table.decode(key, name, store._bucket.values[store._k(name)], m, 0,
                                                  table["r"], store.url)
                    hit["offsets"], hit["table"] = columns.T, name
                self._manifests[cache] = hit
        return hit

    # -- what happened ---------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def report(self) -> str:
        c = self.counts
        return (f"simulated: {c['invocations']:,} invocations ({c['cold_starts']:,} cold, {c['throttled']:,} "
                f"throttled, {c['duplicates']:,} duplicated, {c['stragglers']:,} slow), peak {self.peak_running:,} "
                f"running; S3 {c['s3_get']:,} GET, {c['s3_put'] + c['s3_put_if_absent']:,} PUT, "
                f"{c['s3_list']:,} LIST ({c['s3_list_pages']:,} pages), {c['slowdown']:,} SlowDown; "
                f"Redis {c['redis_get']:,} GET, {c['redis_put'] + c['redis_put_if_absent']:,} SET")

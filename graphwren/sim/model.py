"""The simulated cloud's figures, in one place: every latency, bandwidth and limit the simulator applies.

Each field says where its number comes from: a published figure (with its
source) or an assumption (marked so). Override any of them by
``Cloud(**{name: value})``; ``bench/scale.py --set name=value`` does.
"""
from __future__ import annotations

import dataclasses
import math
import random


@dataclasses.dataclass(frozen=True)
class Cloud:
    """Latency, bandwidth and limits of simulated AWS Lambda, S3 and Redis (all times in seconds)."""

    # -- Lambda ------------------------------------------------------------------------------------
    concurrency: int = 1000           # the account's concurrent executions (AWS default limit: 1,000)
    invoke_latency: float = 0.03      # one async Invoke call, client to 202 (assumed: tens of ms)
    invoke_streams: int = 32          # Invoke calls the driver keeps in flight (lambda_.SEND_THREADS)
    throttle_backoff: float = 0.02    # first back-off after a 429 (lambda_.BACKOFF_BASE), doubling, jittered
    throttle_backoff_max: float = 5.0  # (lambda_.BACKOFF_MAX)
    cold_start: float = 0.5           # median cold start with graphwren's imports (assumed; Wang et al.,
    cold_sigma: float = 0.4           #   ATC'18, measured ~0.2-0.3 s for a bare Python function), lognormal
    warm_start: float = 0.02          # median warm start (assumed: a few tens of ms), lognormal
    warm_sigma: float = 0.3
    keep_warm: float = 600.0          # an idle execution environment stays warm this long (assumed)
    duplicate_rate: float = 0.0       # share of async events delivered twice (at-least-once; AWS: "rarely")
    duplicate_delay: float = 1.0      # the second copy arrives up to this much later (uniform)
    straggler_rate: float = 0.0       # share of invocations that run slow (a noisy neighbour, a slow host)
    straggler_slowdown: tuple = (2.0, 5.0)   # how much slower (uniform); Lambada and Starling report such tails
    cpu_scale: float = 1.0            # a function's core against the cost model's (assumed 1: 1 vCPU ~ 1,769 MB)
    # -- S3 ------------------------------------------------------------------------------------------
    s3_mb_s: float = 35.0             # per-function S3 bandwidth (the PyWren paper measured 30-40 MB/s)
    s3_get_latency: float = 0.02      # first byte of a GET (assumed; AWS: "100-200 ms" tail, tens of ms typical)
    s3_put_latency: float = 0.03      # a PUT's round trip (assumed)
    s3_list_latency: float = 0.05     # one LIST page of up to 1,000 keys (assumed)
    s3_list_page: int = 1000          # keys per LIST page (S3's MaxKeys)
    s3_get_per_s: float = 5500.0      # GET/HEAD per second per prefix (AWS S3 performance guidelines)
    s3_put_per_s: float = 3500.0      # PUT/COPY/POST/DELETE per second per prefix (same source); beyond: 503 SlowDown
    s3_retries: int = 8               # retries of a throttled request before it fails (s3.DEFAULT_POLICY)
    s3_backoff: float = 0.05          # first back-off after a SlowDown (RetryPolicy.backoff_base), doubling
    s3_backoff_max: float = 1.0
    driver_mb_s: float = 1250.0       # the driver's own network (assumed: 10 Gb/s)
    # -- Redis ---------------------------------------------------------------------------------------
    redis_shards: int = 30            # a cluster's shards (the paper does not say; assumed, as in bench/sort_model)
    redis_shard_mb_s: float = 1000.0  # per shard: a ~10 Gb/s node (assumed)
    redis_ops_per_s: float = 50000.0  # requests per shard per second (assumed, generous for MB values)
    redis_latency: float = 0.0005     # one round trip inside the VPC (assumed)
    fn_redis_mb_s: float = 100.0      # per-function bandwidth to Redis (assumed)
    # -- the clock -------------------------------------------------------------------------------------
    seed: int = 0                     # every random draw (starts, duplicates, stragglers) comes from it

    def replace(self, **changes) -> "Cloud":
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown simulator figure(s) {unknown}; known: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def start_delay(self, rng: random.Random, cold: bool) -> float:
        median, sigma = (self.cold_start, self.cold_sigma) if cold else (self.warm_start, self.warm_sigma)
        return median * math.exp(rng.gauss(0.0, sigma))

    def slowdown(self, rng: random.Random) -> float:
        if self.straggler_rate and rng.random() < self.straggler_rate:
            return rng.uniform(*self.straggler_slowdown)
        return 1.0


@dataclasses.dataclass(frozen=True)
class StageCost:
    """A modelled stage: what each of its tasks reads from outside the job, computes and writes.

    ``source_bytes`` are read from the input prefix (a stage reading the job's
    own stages reads the bytes their manifests name instead); CPU is
    ``cpu_s_per_mb`` per MB read; the output is ``out_ratio`` times the bytes
    read, cut into the stage's buckets evenly; ``sink`` writes it to the
    output prefix and commits an empty partition (a job writing its result).
    """

    source_bytes: float = 0.0
    cpu_s_per_mb: float = 0.0
    out_ratio: float = 1.0
    sink: bool = False
    cpu_fixed: float = 0.0            # seconds per task whatever it reads (a boundaries task)

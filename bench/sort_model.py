"""A back-of-envelope model of the 1 TB / 1000-worker sort on AWS Lambda.

The PyWren paper (Jonas et al., "Occupy the Cloud", SoCC 2017) sorted 1 TB
with 1000 Lambda workers and Redis as the shuffle medium in 3.4 minutes.
This script predicts that run for graphwren's sort (sample -> boundaries ->
range-partition map -> sort reduce) from two kinds of figures:

* CPU seconds per MB of each phase, measured here on a small sample with the
  operations the columnar sort runs (parquet decode, numpy's stable sort of
  the keys + Arrow take, Arrow IPC encode/decode, parquet encode; the reduce
  side's sort is timed on unsorted keys, though it gets sorted runs), on one core, scaled to a
  task's share of the data (n log n for the sort kernels, linear otherwise);
* published or stated limits, the ``Assumptions`` below (override any of them
  with ``--set name=value``).

Every phase of a task runs its steps one after another (read, compute,
write), all tasks of a phase at once; a phase takes as long as its task, and
its "binding" resource is the largest term. Printed: a per-phase breakdown,
the total and its ratio to 3.4 minutes, for Redis as the shuffle medium and
for S3 (with the request counts that would make a direct S3 shuffle on one prefix slow, the
prefixes the planner spreads it over instead, and the two-level exchange). The request counts
are the planner's own (``planner/requests.py`` over the plan graphwren makes for the sort), the
numbers explain() prints for the job, so the model and explain() cannot disagree: the shuffle's
PUTs and GETs, the prefixes the planner spreads its outputs over (``Stage.prefixes``), and the
source reads (``planner/sizing.source_gets``: one GET per input file or block, made by the sample
and again by the map stage).

    python bench/sort_model.py [--sample-records 1e6] [--set s3_mb_s=30 --set redis_shards=20]
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import table  # noqa: E402

from graphwren.planner import requests  # noqa: E402 - the request count explain() prints
from graphwren.tasks.sort import numpy_keys  # noqa: E402 - the kernel the columnar sort runs

PAPER_SECONDS = 3.4 * 60


@dataclasses.dataclass
class Assumptions:
    data_mb: float = 1e6            # 1 TB of 100-byte records (10-byte key), as in the paper
    workers: int = 1000             # concurrent Lambda functions; one map and one reduce task each
    s3_mb_s: float = 35.0           # per-function S3 bandwidth, read or write: the paper measured 30-40 MB/s
    s3_latency_s: float = 0.03      # first-byte latency of one S3 GET/PUT (assumed; tens of ms)
    s3_streams: int = 8             # S3 requests a function keeps in flight (assumed)
    s3_put_per_s: float = 3500.0    # S3 request limit per prefix per second (AWS docs: 3,500 PUT ...
    s3_get_per_s: float = 5500.0    # ... and 5,500 GET per second per prefix)
    s3_prefixes: int = 0            # prefixes the shuffle keys spread over (0: as the planner spreads them)
    source_prefixes: int = 1        # prefixes the 1,000 input objects lie under (assumed: one directory)
    invoke_per_s: float = 500.0     # invocations the driver starts per second (assumed; "hundreds per second")
    invoke_start_s: float = 1.0     # from invocation to the task running, warm containers (assumed)
    redis_shards: int = 30          # Redis cluster shards (the paper used an ElastiCache cluster; count assumed)
    redis_shard_mb_s: float = 1000  # per shard: ~10 Gb/s node network, ~1 GB/s (assumed)
    redis_ops_per_s: float = 50_000  # requests per shard per second for MB-sized values (assumed, generous)
    fn_net_mb_s: float = 100.0      # per-function network bandwidth to Redis inside the VPC (assumed)
    cpu_scale: float = 1.0          # a Lambda core's speed relative to one core of this machine (assumed 1)


def one_core():
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def sample_table(n: int) -> pa.Table:
    rng = np.random.default_rng(0)

    def col(width):
        off = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(off), pa.py_buffer(rng.bytes(n * width))])
    return pa.table({"key": col(10), "value": col(90)})


def measure(n: int, buckets: int = 1000) -> dict:
    """Seconds per MB for each step of each phase, on one core, at n records (n * 100 bytes)."""
    one_core()
    t = sample_table(n)
    mb = n * 100 / 1e6
    sink = io.BytesIO()
    pq.write_table(t, sink)
    data = sink.getvalue()
    timings = {}

    def timed(name, fn, repeat=3):  # best of 3: the machine may be shared
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        timings[name] = best / mb
        return out

    # sample stage: the key column of the partition, and a few keys of it
    timed("sample: decode key column", lambda: pq.read_table(pa.BufferReader(data), columns=["key"]))
    # map: decode, one Arrow sort by (key, place), take, cut into buckets, one IPC object per task
    table_in = timed("map: parquet decode", lambda: pq.read_table(pa.BufferReader(data)))
    keys = table_in["key"].combine_chunks()
    order = timed("map: stable sort of numpy keys (n log n)",
                  lambda: np.argsort(numpy_keys(keys, False), kind="stable"))
    ordered = timed("map: take", lambda: table_in.take(order))

    def encode(tb):  # cut into `buckets` record batches, one IPC stream: one object per task
        out = pa.BufferOutputStream()
        cuts = np.linspace(0, n, buckets + 1).astype(np.int64)
        with pa.ipc.new_stream(out, tb.schema) as w:
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                w.write_table(tb.slice(lo, hi - lo))
        return out.getvalue()
    timed("map: IPC encode", lambda: encode(ordered))
    # reduce: decode the pieces, concatenate, one stable sort, take, parquet encode. A bucket is
    # M sorted runs (one per map task); with M = 1000 runs of ~1 MB the sort sees them as unsorted.
    blob = encode(table_in)
    pieces = timed("reduce: IPC decode + concat",
                   lambda: pa.concat_tables([pa.ipc.open_stream(blob).read_all()]).combine_chunks())
    order2 = timed("reduce: stable sort of numpy keys (n log n)",
                   lambda: np.argsort(numpy_keys(pieces["key"].combine_chunks(), False), kind="stable"))
    result = timed("reduce: take", lambda: pieces.take(order2))
    timed("reduce: parquet encode", lambda: pq.write_table(result, io.BytesIO()))
    return timings


def cpu_seconds(timings: dict, phase: str, task_mb: float, sample_mb: float, scale: float) -> float:
    """A task's CPU seconds for ``phase``: linear in MB, n log n for the sort kernels."""
    grow = math.log(task_mb * 1e4) / math.log(sample_mb * 1e4)  # records = MB * 1e4
    return sum(per_mb * task_mb * (grow if "n log n" in step else 1.0) * scale
               for step, per_mb in timings.items() if step.startswith(phase))


def shuffle_requests(workers: int, storage: str = "s3://model/sort", levels: str = "1") -> list[requests.Requests]:
    """The sort's range shuffle as graphwren plans it, counted as explain() counts it.

    The planner lays out a sort of ``workers`` partitions into ``workers``
    reducers (from_sequence stands in for the parquet input: the request
    count of the exchange depends on the task counts alone), and
    ``planner/requests.py`` counts the map stage's outputs: M PUTs and M
    commit records, M x R ranged GETs and one manifest GET per reducer.
    The planner spreads the map outputs over prefixes (``Requests.prefixes``),
    which is what it picks on S3 at this size. With ``levels="2"`` the
    list has a second entry, the merge stage of the two-level exchange
    (``planner/exchange.py``): the map side's GETs fall to M x H, the
    merges' to R x G.
    """
    import graphwren as gw
    from graphwren import config, planner
    from graphwren.logical import offline
    job = gw.bag.from_sequence(range(workers), npartitions=workers).sort(npartitions=workers)
    settings = config.resolve({"storage": storage, "shuffle_redis": None, "shuffle_storage": None,
                               "exchange_levels": levels})
    with offline.planning():
        plan = planner.plan(job.expr, settings, explaining=True).plan
    counted = requests.count(plan, settings["storage"])
    return [counted[s.name] for s in plan.stages if s.nbuckets is not None]


def source_gets(a: Assumptions) -> int:
    """GETs one pass over the input makes, as the planner counts them: ``a.workers`` objects of
    ``data_mb / workers`` each, one split per object (the model's one map task per function)."""
    from graphwren.planner import sizing
    size = int(a.data_mb / a.workers * 1e6)
    files = [("s3://input", f"part-{i:04d}", size, None) for i in range(a.workers)]
    return sum(sizing.source_gets(files, sizing.text_splits(files, size, None, {})).values())


def predict(a: Assumptions, timings: dict, sample_mb: float, medium: str,
            shuffle: requests.Requests | None = None) -> list[dict]:
    """Per-phase rows: seconds, the binding resource, and each term; ``shuffle`` is the exchange's
    request count (``shuffle_requests(a.workers)`` unless given)."""
    shuffle = shuffle or shuffle_requests(a.workers)[0]
    m = r = a.workers
    task_mb = a.data_mb / a.workers
    piece_mb = task_mb / r
    ramp = a.workers / a.invoke_per_s + a.invoke_start_s
    rows = []

    def row(phase, terms: dict, note=""):
        seconds = sum(terms.values())
        rows.append({"phase": phase, "seconds": seconds, "binding": max(terms, key=terms.get),
                     "terms": ", ".join(f"{k} {v:.1f}" for k, v in terms.items()), "note": note})

    def s3_transfer(mb, requests):  # per function: bandwidth, plus request latency over its streams
        return mb / a.s3_mb_s + requests * a.s3_latency_s / a.s3_streams

    cpu = {p: cpu_seconds(timings, p, task_mb, sample_mb, a.cpu_scale) for p in ("sample", "map", "reduce")}
    row("invocations, 4 stages", {"3 x ramp": 3 * ramp, "boundaries start": a.invoke_start_s},
        f"sample, map, reduce: {a.workers} functions at {a.invoke_per_s:.0f}/s + {a.invoke_start_s:.1f} s start")
    src = source_gets(a)
    src_rate = a.s3_get_per_s * a.source_prefixes
    read_key = s3_transfer(task_mb * 0.1, 1)
    row("sample + boundaries", {"S3 read key column": read_key,
                                "source GET rate limit": max(0.0, src / src_rate - read_key),
                                "CPU": cpu["sample"], "1-task boundaries": 0.5},
        f"reads the 10% key column ({src:,} source GETs at {src_rate:,.0f}/s); boundaries task assumed 0.5 s")
    read_input = s3_transfer(task_mb, 1)
    source_limit = max(0.0, src / src_rate - read_input)   # the map stage reads the input again
    if medium == "redis":
        cluster = a.redis_shards * a.redis_shard_mb_s
        per_fn = min(a.fn_net_mb_s, cluster / a.workers)
        ops_rate = a.redis_shards * a.redis_ops_per_s   # one value per map task, ranged reads of it
        write_ops, ops = shuffle.all_puts / ops_rate, shuffle.all_gets / ops_rate
        row("map", {"S3 read": read_input, "source GET rate limit": source_limit, "CPU": cpu["map"],
                    "Redis write": task_mb / per_fn + write_ops},
            f"{src:,} source GETs; Redis per function {per_fn:.0f} MB/s = min(function {a.fn_net_mb_s:.0f}, "
            f"{a.redis_shards} shards x {a.redis_shard_mb_s:.0f} / {a.workers})")
        row("reduce", {"Redis read": task_mb / per_fn + ops, "CPU": cpu["reduce"],
                       "S3 write": s3_transfer(task_mb, 1)},
            f"{shuffle.gets:,} pieces of {piece_mb * 1e3:.0f} KB, {ops:.1f} s of Redis requests")
    else:
        # graphwren's layout: M objects (+ M commit records), M x R ranged GETs (+ a manifest per reducer);
        # one object per (map, reduce) pair would PUT every piece instead
        puts = shuffle.gets + shuffle.commits if medium == "s3-pieces" else shuffle.all_puts
        gets = shuffle.all_gets
        # PUTs go to map outputs (spread) and commit records (one prefix): the busier is the outputs' share
        prefixes = a.s3_prefixes or shuffle.prefixes
        put_rate, get_rate = a.s3_put_per_s * prefixes, a.s3_get_per_s * prefixes
        write = s3_transfer(task_mb, puts / m)
        if medium == "s3-two-level":   # the map side's pieces are read by the merges, the merges' by reducers
            first, merged = shuffle_requests(a.workers, levels="2")
            puts, gets = first.all_puts, first.all_gets
            prefixes = a.s3_prefixes or first.prefixes
            put_rate, get_rate = a.s3_put_per_s * prefixes, a.s3_get_per_s * prefixes
            write = s3_transfer(task_mb, puts / m)
        row("map", {"S3 read": read_input, "source GET rate limit": source_limit, "CPU": cpu["map"],
                    "S3 shuffle write": write, "PUT rate limit": max(0.0, puts / put_rate - write)},
            f"{src:,} source GETs; {puts:,} PUTs at {put_rate:,.0f}/s over {prefixes} prefix(es)")
        if medium == "s3-two-level":
            k = merged.puts   # merge tasks; each reads and writes about a map task's share
            mb = a.data_mb / k
            read = s3_transfer(mb, gets / k)
            merged_prefixes = a.s3_prefixes or merged.prefixes
            put_s = merged.all_puts / (a.s3_put_per_s * merged_prefixes)
            row("merge (2nd level)", {"ramp": a.workers / a.invoke_per_s, "S3 shuffle read": read,
                                      "GET rate limit": max(0.0, gets / get_rate - read),
                                      "S3 write": s3_transfer(mb, 1) + max(0.0, put_s - s3_transfer(mb, 1))},
                f"{k:,} merges read {gets:,} runs (one ranged GET each) at {get_rate:,.0f}/s")
            gets = merged.all_gets
            get_rate = a.s3_get_per_s * merged_prefixes
            piece_mb = task_mb / max(1, merged.gets // r)   # a reducer reads G pieces, not M
        read = s3_transfer(task_mb, gets / r)
        row("reduce", {"S3 shuffle read": read, "GET rate limit": max(0.0, gets / get_rate - read),
                       "CPU": cpu["reduce"], "S3 write": s3_transfer(task_mb, 1)},
            f"{gets:,} GETs of {piece_mb * 1e3:.0f} KB at {get_rate:,.0f}/s")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-records", type=lambda s: int(float(s)), default=1_000_000)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an assumption")
    ap.add_argument("--medium", choices=["all", "redis", "s3-pieces", "s3-ranged", "s3-two-level"], default="all")
    args = ap.parse_args(argv)
    a = Assumptions()
    for item in args.set:
        name, _, value = item.partition("=")
        field = {f.name: f for f in dataclasses.fields(a)}.get(name)
        if field is None:
            raise SystemExit(f"unknown assumption {name!r}; known: {[f.name for f in dataclasses.fields(a)]}")
        setattr(a, name, type(getattr(a, name))(float(value)))
    sample_mb = args.sample_records * 100 / 1e6
    timings = measure(args.sample_records)
    print(f"measured on {sample_mb:.0f} MB ({args.sample_records:,} records), one core, CPU s per MB:")
    print(table([{"step": k, "s/MB": f"{v:.4f}", "MB/s": f"{1 / v:.0f}"} for k, v in timings.items()],
                ["step", "s/MB", "MB/s"]))
    print("\nassumptions (override with --set name=value):")
    for f in dataclasses.fields(a):
        print(f"  {f.name:18s} = {getattr(a, f.name)}")
    media = ["redis", "s3-pieces", "s3-ranged", "s3-two-level"] if args.medium == "all" else [args.medium]
    titles = {"redis": "Redis shuffle (the paper's setup)",
              "s3-pieces": "S3 shuffle, one object per (map, reduce) pair: M x R PUTs and GETs",
              "s3-ranged": "S3 shuffle, one object per map task spread over prefixes (graphwren's layout, what "
                           "it plans on S3 at this size): M PUTs, M x R ranged GETs",
              "s3-two-level": "S3 shuffle, two-level exchange (exchange_levels=\"2\"): M x H + R x G ranged GETs"}
    shuffle = shuffle_requests(a.workers)[0]
    print(f"\nthe sort's shuffle as graphwren plans it ({a.workers} map tasks x {a.workers} reducers), "
          f"counted by planner/requests.py as explain() prints it:\n  requests: {shuffle.describe()}"
          f"\n  source reads: {source_gets(a):,} GETs of the input per pass (sample, then map)")
    for medium in media:
        rows = predict(a, timings, sample_mb, medium, shuffle)
        total = sum(r["seconds"] for r in rows)
        print(f"\n## {titles[medium]}: {a.data_mb / 1e6:g} TB, {a.workers} workers, "
              f"{a.data_mb / a.workers:.0f} MB per task")
        print(table([{**r, "seconds": f"{r['seconds']:.1f}"} for r in rows],
                    ["phase", "seconds", "binding", "terms", "note"]))
        print(f"predicted total {total:.0f} s = {total / 60:.1f} min; paper 3.4 min -> "
              f"prediction / paper = {total / PAPER_SECONDS:.2f}")
    need = math.ceil(a.workers * a.fn_net_mb_s / a.redis_shard_mb_s)
    print(f"\nRedis stops binding at {need} shards ({a.workers} functions x {a.fn_net_mb_s:.0f} MB/s / "
          f"{a.redis_shard_mb_s:.0f} MB/s per shard); then S3 at {a.s3_mb_s:.0f} MB/s per function binds.")
    print("Not modelled: stragglers, retries, key skew, Lambda cold starts beyond invoke_start_s, the driver's"
          " polling; so a prediction under the paper's time is expected.")


if __name__ == "__main__":
    main()

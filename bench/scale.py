"""The PyWren paper's figures, and the driver at 1,000 and 10,000 tasks, on the simulated cloud.

Every run here is the real planner and the real driver (its commit rule,
manifests, retries, speculation, adaptive re-planning) over ``graphwren.sim``:
simulated Lambda and S3/Redis on a virtual clock, whose figures are all in
``graphwren/sim/model.py`` (``--set name=value`` overrides one). Task bodies
are modelled (``StageCost``): the bytes each task reads, its CPU per MB
(measured here on one core with the columnar sort's kernels, as
``bench/sort_model.py`` does), the bytes it writes.

Printed: the driver's costs per task at 1,000 and 10,000 tasks per stage,
then for each figure of the paper the simulated result, the paper's, and
their ratio, the assumptions that drive it, and the job's projected dollar
cost from ``runtime/cost.py``'s price table.

    python bench/scale.py [--quick] [--set s3_mb_s=30] [--only driver|wide|sort|bandwidth|wordcount]
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import table  # noqa: E402

import graphwren as gw  # noqa: E402
from graphwren import config, planner, sim  # noqa: E402
from graphwren.runtime import cost as prices  # noqa: E402
from graphwren.runtime import records  # noqa: E402
from graphwren.runtime.driver import Driver  # noqa: E402

GB = 1e9
PAPER = {"sort_redis_s": 3.4 * 60, "read_gb_s": (60.0, 80.0)}


def thread_cpu() -> float:
    """CPU seconds of the driver's threads: the caller's (the driver loop) and its fetch pool's."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for t in threading.enumerate():
        if t is threading.current_thread() or t.name.startswith("gw-fetch"):
            try:
                with open(f"/proc/self/task/{t.native_id}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
    return total


@dataclasses.dataclass
class Run:
    """One simulated job: its virtual duration, the driver's CPU, what the cloud counted, its bill."""
    seconds: float
    wall: float
    driver_cpu: float
    tasks: int
    counts: dict
    polls: int
    manifest_max: int
    table_max: int
    reader_offsets: float     # bytes one reader GETs to find its pieces: the manifest, and its offset columns
    peak_rss_mb: float        # this process's peak RSS after the run: the driver and the whole simulated cloud
    invoke_rate: float
    cost: prices.Cost
    record: object


def simulate(bag, cloud: sim.Cloud, models: dict, **settings) -> Run:
    """Plan ``bag`` as for Lambda, then run the real driver on the simulated cloud."""
    with sim.Simulation(cloud, models) as s:
        resolved = config.resolve(s.settings(**settings))
        plan = planner.plan(bag.expr, resolved).plan
        driver = Driver(resolved)
        w0, v0, c0 = time.time(), s.now, thread_cpu()
        if os.environ.get("GW_SCALE_PROFILE"):
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.runcall(driver.run, plan)
            pstats.Stats(prof).sort_stats("cumtime").print_stats(25)
        else:
            driver.run(plan)
        w1, v1, c1 = time.time(), s.now, thread_cpu()
        print(f"  (clock stalls: {s.clock.stalls:,})", file=sys.stderr)
        record = driver.record
        ntasks = sum(st.ntasks for st in plan.stages)
        rate = invoke_rate(s.deliveries, resolved["lambda_max_workers"])
        reader = s.counts["manifest_get_bytes"] / max(1, s.counts["manifest_gets"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return Run(v1 - v0, w1 - w0, c1 - c0, ntasks, collections.Counter(s.counts), s.counts["driver_lists"],
                   max(s.manifest_sizes or [0]), max(s.table_sizes or [0]), reader, peak, rate,
                   prices.measured(record), record)


def invoke_rate(deliveries: list[tuple[str, float]], cap: int) -> float:
    """Invocations per second while a wide stage's tasks are invoked: the widest stage's first ``cap``
    (the ones that did not wait for a token)."""
    by_stage: dict[str, list[float]] = collections.defaultdict(list)
    for stage, at in deliveries:
        by_stage[stage].append(at)
    times = sorted(max(by_stage.values(), key=len, default=[]))[:cap]
    return (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 and max(times) > min(times) else float("nan")


def sort_models(n: int, data: float, cpu: dict, shuffle: str = "s3") -> dict:
    """The sort's stages, modelled: sample (the key column), boundaries, range partition, [merge], sort + write."""
    per = data / n
    return {"0-stage": sim.StageCost(source_bytes=per * 0.1, cpu_s_per_mb=cpu["sample"], out_ratio=1e-5),
            "1-stage": sim.StageCost(cpu_fixed=0.5, out_ratio=0.0),
            "2-shuffle": sim.StageCost(source_bytes=per, cpu_s_per_mb=cpu["map"]),
            "3-merge": sim.StageCost(cpu_s_per_mb=cpu["merge"]),
            "3-stage": sim.StageCost(cpu_s_per_mb=cpu["reduce"], sink=True),
            "4-stage": sim.StageCost(cpu_s_per_mb=cpu["reduce"], sink=True)}


def sort_bag(n: int):
    return gw.bag.from_sequence(range(n), npartitions=n).sort(npartitions=n)


# -- part 2: the driver at scale ------------------------------------------------------------------------
def scaling_job(n: int):
    """n map tasks (20 MB each) into a hash shuffle of n / 100 buckets, and its reduce: a word count's shape.

    The sort's n x n shuffle is ``wide_shuffles``' table.
    """
    bag = gw.bag.from_sequence(range(n), npartitions=n).map(str).frequencies(npartitions=max(10, n // 100))
    models = {"shuffle": sim.StageCost(source_bytes=20e6, cpu_s_per_mb=0.01, out_ratio=0.05),
              "merge": sim.StageCost(cpu_s_per_mb=0.001), "stage": sim.StageCost(cpu_s_per_mb=0.01, out_ratio=0.1)}
    return bag, models


def driver_scaling(cloud: sim.Cloud, sizes=(1000, 10000)) -> list[dict]:
    """The driver's costs per task; the last row asks whether Lambada-style tree invocation pays: the
    widest size again with 100x the Invoke calls in flight (100 invoker functions of 32 streams each,
    their own cold start left out: a bound in the tree's favour)."""
    rows = []
    runs = [(n, cloud, f"{n:,}") for n in sizes]
    runs.append((sizes[-1], cloud.replace(invoke_streams=cloud.invoke_streams * 100), f"{sizes[-1]:,}, tree invoke"))
    for n, this, label in runs:
        bag, models = scaling_job(n)
        run = simulate(bag, this, models)
        c = run.counts
        rows.append({"map tasks": label, "all tasks": f"{run.tasks:,}",
                     "simulated s": f"{run.seconds:.1f}", "wall s": f"{run.wall:.0f}",
                     "driver CPU ms/task": f"{run.driver_cpu / run.tasks * 1e3:.3f}",
                     "LIST calls": f"{run.polls:,}",
                     "pages/LIST": f"{c['driver_list_pages'] / max(1, run.polls):.2f}",
                     "driver requests": f"{c['driver_requests']:,}",
                     "largest manifest": f"{run.manifest_max / 1024:,.0f} KiB",
                     "a reader GETs": f"{run.reader_offsets / 1024:,.0f} KiB",
                     "invocations/s": f"{run.invoke_rate:,.0f}"})
    return rows


def wide_shuffles(cloud: sim.Cloud, sizes=(1000, 10000)) -> list[dict]:
    """The sort's shape, n map tasks into n buckets (one level: n^2 pieces), 10 MB per map task: what a
    reader GETs to find its pieces, with every offset in the manifest (the layout before offset tables;
    run at 1,000 only: at 10,000 it is 800 MB a reader) and with the offset table. The 10,000 x 10,000 row
    models 100 M piece GETs: about an hour of wall time and 7.5 GB of memory on this 2-core machine."""
    rows = []
    runs = [(sizes[0], "all offsets in the manifest", 2**62)] + [(n, "offset table", None) for n in sizes]
    for n, layout, limit in runs:
        models = {"0-stage": sim.StageCost(source_bytes=1e6, out_ratio=1e-5), "1-stage": sim.StageCost(cpu_fixed=0.5),
                  "2-shuffle": sim.StageCost(source_bytes=10e6, cpu_s_per_mb=0.01),
                  "3-stage": sim.StageCost(cpu_s_per_mb=0.01, sink=True)}
        saved = records.COLUMN_OFFSETS
        records.COLUMN_OFFSETS = limit if limit is not None else saved
        try:
            run = simulate(sort_bag(n), cloud, models, exchange_levels="1", key_prefixes=min(256, n // 16))
        finally:
            records.COLUMN_OFFSETS = saved
        rows.append({"n x n": f"{n:,} x {n:,}", "layout": layout, "simulated s": f"{run.seconds:.1f}",
                     "wall s": f"{run.wall:.0f}",
                     "driver CPU ms/task": f"{run.driver_cpu / run.tasks * 1e3:.3f}",
                     "manifest": f"{run.manifest_max / 2**10:,.0f} KiB",
                     "offset table": f"{run.table_max / 2**20:,.1f} MiB" if run.table_max else "-",
                     "a reader GETs": f"{run.reader_offsets / 2**10:,.0f} KiB",
                     "all readers GET": f"{run.counts['manifest_get_bytes'] / 2**30:,.2f} GiB",
                     "peak RSS (driver + simulated cloud)": f"{run.peak_rss_mb:,.0f} MB"})
    return rows


# -- part 3 and 4: the paper's figures, and what they cost ----------------------------------------------------
VM_GB_HOUR = 0.384 / 32   # an on-demand m5.2xlarge (8 vCPU, 32 GiB), us-east-1 list price: $ per GiB-hour (assumed)
EXOSHUFFLE_PER_TB = 0.97  # Exoshuffle's sort on VMs, $ per TB (published)


def sort_cpu(task_mb: float, sample_records: int = 200_000) -> dict:
    """CPU s per MB of each sort phase at ``task_mb`` per task, measured here on one core (bench/sort_model.py)."""
    import sort_model
    timings = sort_model.measure(sample_records)
    sample_mb = sample_records * 100 / 1e6
    per = {p: sort_model.cpu_seconds(timings, p, task_mb, sample_mb, 1.0) / task_mb for p in ("sample", "map", "reduce")}
    per["merge"] = timings["reduce: IPC decode + concat"] + timings["map: IPC encode"]
    return per


def bill(run: Run) -> str:
    return f"${run.cost.total:,.2f}"


def compute_dollars(run: Run) -> float:
    return sum(line.dollars for line in run.cost.lines if line.item.startswith("Lambda compute"))


def figures(cloud: sim.Cloud, only: str | None) -> tuple[list[dict], list[dict]]:
    rows, costs = [], []
    if only in (None, "sort"):
        cpu = sort_cpu(1000.0)
        print("sort CPU s/MB at 1 GB per task (measured here, one core): "
              + ", ".join(f"{k} {v:.4f}" for k, v in cpu.items()), file=sys.stderr)
        for medium, extra in (("Redis", {"shuffle_storage": "redis://sim-redis:6379/0"}), ("S3", {})):
            run = simulate(sort_bag(1000), cloud, sort_models(1000, 1e12, cpu), **extra)
            paper = PAPER["sort_redis_s"] if medium == "Redis" else None
            rows.append({"figure": f"1 TB sort, 1,000 functions, {medium} shuffle", "simulated": f"{run.seconds:.0f} s",
                         "paper": f"{paper:.0f} s (3.4 min)" if paper else "- (the paper sorted through Redis)",
                         "ratio": f"{run.seconds / paper:.2f}" if paper else "-",
                         "wall": f"{run.wall:.0f} s",
                         "driven by": ("Redis: 30 shards x 1 GB/s shared by 1,000 functions, 100 MB/s each"
                                       if medium == "Redis" else
                                       "S3 35 MB/s per function; 5,500 GET/s per prefix on the exchange")})
            vm = compute_dollars(run) / (1.6667e-5 * 3600) * VM_GB_HOUR
            costs.append({"job": f"1 TB sort, {medium} shuffle", "simulated bill": bill(run),
                          "$ per TB": f"{run.cost.total:.2f}",
                          "vs Exoshuffle $0.97/TB (VMs)": f"{run.cost.total / EXOSHUFFLE_PER_TB:.1f}x",
                          "Lambda compute vs the same GB-hours on m5 VMs": f"{compute_dollars(run) / vm:.1f}x",
                          "requests": f"S3 {run.counts['s3_get']:,} GET, "
                                      f"{run.counts['s3_put'] + run.counts['s3_put_if_absent']:,} PUT"})
    if only in (None, "bandwidth"):
        n = 2800
        bag = gw.bag.from_sequence(range(n), npartitions=n).map(str)
        run = simulate(bag, cloud.replace(concurrency=n), {"*": sim.StageCost(source_bytes=1e9, out_ratio=0.0)},
                       lambda_max_workers=n)
        gb_s = n * 1e9 / run.seconds / 1e9
        lo, hi = PAPER["read_gb_s"]
        rows.append({"figure": "S3 read bandwidth, 2,800 functions x 1 GB", "simulated": f"{gb_s:.0f} GB/s",
                     "paper": "60-80 GB/s", "ratio": f"{gb_s / hi:.2f}-{gb_s / lo:.2f}", "wall": f"{run.wall:.0f} s",
                     "driven by": "35 MB/s per function (no aggregate cap in the model); invocation ramp and cold starts"})
        costs.append({"job": "read 2.8 TB from S3", "simulated bill": bill(run), "$ per TB": f"{run.cost.total / 2.8:.2f}",
                      "vs Exoshuffle $0.97/TB (VMs)": "-",
                      "Lambda compute vs the same GB-hours on m5 VMs": "-",
                      "requests": f"S3 {run.counts['s3_get']:,} GET"})
    if only in (None, "wordcount"):
        n = 1000
        bag = gw.bag.from_sequence(range(n), npartitions=n).map(str).frequencies(npartitions=100)
        # 100 MB of text per function; CPU from this README's word count (2 workers x 0.84 s / 62 MB);
        # each map task's counts of a 50k vocabulary: ~0.75 MB
        models = {"shuffle": sim.StageCost(source_bytes=100e6, cpu_s_per_mb=0.027, out_ratio=0.0075),
                  "merge": sim.StageCost(cpu_s_per_mb=0.002), "stage": sim.StageCost(cpu_s_per_mb=0.05, out_ratio=0.1)}
        run = simulate(bag, cloud, models)
        rows.append({"figure": "word count, 100 GB, 1,000 functions", "simulated": f"{run.seconds:.1f} s",
                     "paper": "- (none published)", "ratio": "-", "wall": f"{run.wall:.0f} s",
                     "driven by": "S3 35 MB/s per function (2.9 s of 100 MB), then CPU (2.7 s)"})
        costs.append({"job": "word count, 100 GB", "simulated bill": bill(run), "$ per TB": f"{run.cost.total * 10:.2f}",
                      "vs Exoshuffle $0.97/TB (VMs)": "-",
                      "Lambda compute vs the same GB-hours on m5 VMs": "-",
                      "requests": f"S3 {run.counts['s3_get']:,} GET"})
    return rows, costs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a figure of sim.Cloud")
    ap.add_argument("--only", choices=["driver", "wide", "sort", "bandwidth", "wordcount"], default=None)
    ap.add_argument("--quick", action="store_true", help="the driver at 1,000 tasks only")
    args = ap.parse_args(argv)
    cloud = sim.Cloud()
    changes = {}
    for item in args.set:
        name, _, value = item.partition("=")
        field = {f.name: f for f in dataclasses.fields(cloud)}.get(name)
        if field is None:
            raise SystemExit(f"unknown figure {name!r}; known: {[f.name for f in dataclasses.fields(cloud)]}")
        changes[name] = type(getattr(cloud, name))(float(value))
    cloud = cloud.replace(**changes)
    if args.only in (None, "driver"):
        rows = driver_scaling(cloud, (1000,) if args.quick else (1000, 10000))
        print("## the driver at scale (map -> hash shuffle into n/100 -> reduce; 20 MB per map task)")
        print(table(rows, list(rows[0])))
    if args.only in (None, "wide"):
        rows = wide_shuffles(cloud, (1000,) if args.quick else (1000, 10000))
        print("\n## n x n shuffles: what a reader GETs to find its pieces (the sort's shape, one level)")
        print(table(rows, list(rows[0])))
    if args.only not in ("driver", "wide"):
        rows, costs = figures(cloud, args.only)
        print("\n## the paper's figures, simulated")
        print(table(rows, ["figure", "simulated", "paper", "ratio", "driven by", "wall"]))
        print("\n## what they cost (runtime/cost.py's price table, 2,048 MB x86_64 functions)")
        print(table(costs, list(costs[0])))


if __name__ == "__main__":
    main()

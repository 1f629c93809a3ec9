"""What a plan will cost, before it runs: explain(cost=True)'s table, an estimate from the plan alone.

Per stage: its tasks; each task's time, projected as a fixed start-up cost
plus the bytes it reads over a throughput; the GB-seconds that makes at
``lambda_memory``; its requests (``requests.py``'s exchange count, plus what
that count leaves out: each task's stage-function GET and lease HEAD, the
driver's read of each commit record and output, its manifest PUT); and
their dollars at the configured prices (``runtime/cost.py``). The throughput
is what the same stage (same operations) measured in a job this process ran,
when there was one, else ``DEFAULT_THROUGHPUT``, a Python record pipeline's
rate on one core (word count: split and count). Every figure is an estimate,
and says so; a stage whose input size is unknown before it runs shows ``?``.
"""
from __future__ import annotations

import dataclasses

from ..logical import offline
from ..runtime import cost, stats
from ..runtime.plan import Plan
from . import requests

DEFAULT_THROUGHPUT = 20 * 2**20   # bytes per second one task processes, Python record ops (an estimate)
TASK_START_S = 0.05               # seconds a task spends before and after its work (invoke, load, commit)


@dataclasses.dataclass
class StageCost:
    """One stage's projected bill."""

    index: int
    name: str
    tasks: int
    seconds_per_task: float | None
    gb_s: float | None
    puts: int
    gets: int
    dollars: float | None
    throughput_from: str


def measured_throughput(label: str) -> tuple[float, str, int] | None:
    """(bytes per second per task, where from, bytes read) of a stage with these operations in this
    process's recent jobs, the newest first."""
    for record in reversed(stats.last(20)):
        for st in record.stages:
            if st["label"] != label:
                continue
            done = [a["stats"] for a in record.winners(st["name"]) if a.get("stats")]
            busy = sum(max(s["end"] - s["start"] - TASK_START_S, 1e-3) for s in done)
            read = sum(s["bytes_read"] for s in done)
            if done and read:
                return read / busy, f"measured in job {record.job}", read
    return None


def project(plan: Plan, settings: dict) -> list[StageCost]:
    prices = cost.price_table(settings)
    memory_gb = (settings.get("lambda_memory") or 2048) / 1024
    gb_s_price = cost.lambda_gb_s_price(settings, prices)
    counted = requests.count(plan, settings["storage"])
    index = {s.name: i for i, s in enumerate(_order(plan))}
    out = []
    for s in _order(plan):
        if s.external is not None:
            continue
        unknown_tasks = offline.is_unknown(s.ntasks)
        read = s.read_bytes
        if read is None and s.inputs and all(plan.stage(e.source).estimated_bytes is not None for e in s.inputs):
            read = sum(plan.stage(e.source).estimated_bytes for e in s.inputs)
        found = measured_throughput(s.label or s.name)
        rate, source = found[:2] if found else (DEFAULT_THROUGHPUT, "default throughput")
        if (read is None or offline.is_unknown(read)) and found:   # known only once run: as it ran last
            read, source = found[2], source + ", and its input size"
        seconds = None
        if read is not None and not offline.is_unknown(read) and not unknown_tasks:
            seconds = TASK_START_S + read / s.ntasks / rate
        r = counted[s.name]
        scheme = (s.storage or settings["storage"]).split("://", 1)[0]
        puts = gets = 0
        if not unknown_tasks and not offline.is_unknown(r.all_puts) and not offline.is_unknown(r.all_gets):
            # beyond the exchange's count: each task's function GET and lease HEAD, the driver's GET of its
            # commit record (and of its output, for a stage that returns to the driver), the manifest PUT
            returned = s.ntasks if s.name in plan.outputs else 0
            puts, gets = r.all_puts + 1, r.all_gets + 3 * s.ntasks + returned
        dollars = None
        gb_s = None
        if seconds is not None:
            gb_s = s.ntasks * cost.billed_seconds(seconds) * memory_gb
            dollars = gb_s * gb_s_price + s.ntasks * prices["lambda_request"]
            if scheme == "s3":
                dollars += puts * prices["s3_put"] + gets * prices["s3_get"]
        out.append(StageCost(index[s.name], s.name, s.ntasks, seconds, gb_s, puts, gets, dollars, source))
    return out


def _order(plan: Plan):
    import networkx as nx
    return [plan.stage(n) for n in nx.topological_sort(plan.graph())]


def table(plan: Plan, settings: dict) -> str:
    """explain(cost=True)'s section: per stage and in total, on the configured backend's prices."""
    rows = project(plan, settings)
    memory = settings.get("lambda_memory") or 2048
    arch = settings.get("lambda_architecture") or "x86_64"
    where = ("on Lambda" if settings.get("backend") == "lambda"
             else "priced as Lambda (the local backend bills nothing; the report shows its CPU-seconds)")
    cells = [["stage", "tasks", "~s/task", "~GB-s", "PUTs", "GETs", "~$", "task time from"]]
    for c in rows:
        cells.append([str(c.index), str(c.tasks),
                      "?" if c.seconds_per_task is None else f"{c.seconds_per_task:.3f}",
                      "?" if c.gb_s is None else f"{c.gb_s:,.3f}", f"{c.puts:,}", f"{c.gets:,}",
                      "?" if c.dollars is None else f"{c.dollars:.6f}", c.throughput_from])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = [f"== Cost (estimate) {where}, {memory} MB {arch} =="]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    known = [c.dollars for c in rows if c.dollars is not None]
    total = f"${sum(known):.6f}" if len(known) == len(rows) else (
        f"at least ${sum(known):.6f} (a stage's size is unknown until it runs)" if known else "?")
    lines.append(f"total: ~{total}; Redis, if a shuffle uses yours, is billed by its hour "
                 f"(prices.redis_hour = ${cost.price_table(settings)['redis_hour']:g})")
    return "\n".join(lines) + "\n"

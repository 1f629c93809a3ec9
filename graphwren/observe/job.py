"""A finished job as the user sees it: ``summary()``, ``logs()``, ``cost()``, ``plot()``, ``report()``."""
from __future__ import annotations

import dataclasses

from ..runtime import records, stats
from ..runtime.stats import JobRecord
from .numbers import HEADERS, human_bytes, percentile, task_seconds


@dataclasses.dataclass
class StageSummary:
    """One stage's numbers in ``Job.summary()``: sums over its committed tasks, spreads of their times."""

    index: int
    name: str
    label: str
    tasks: int
    planned_tasks: int
    records_in: int | None
    records_out: int | None
    bytes_read: int
    bytes_written: int
    requests: int
    p50: float | None
    p95: float | None
    max: float | None
    cpu: float
    peak_rss: int | None
    retries: int
    backups: int
    failed: int
    lost: int
    skew: float | None     # slowest task over the median task
    wall: float | None     # from the stage's start to its last commit

    def row(self) -> list[str]:
        def secs(x):
            return "-" if x is None else f"{x:.3f}s"
        skew = "-" if self.skew is None else f"{self.skew:.1f}x"
        tasks = str(self.tasks) if self.tasks == self.planned_tasks else f"{self.tasks} (of {self.planned_tasks})"
        return [str(self.index), tasks, _num(self.records_in), _num(self.records_out),
                human_bytes(self.bytes_read), human_bytes(self.bytes_written), f"{self.requests:,}",
                secs(self.p50), secs(self.p95), secs(self.max), str(self.retries), str(self.backups), skew,
                _cut(self.label, 40)]


def _num(n) -> str:
    return "-" if n is None else f"{n:,}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


class Summary(str):
    """``Job.summary()``'s table: a string that shows as itself in a REPL, with the numbers in ``.stages``."""

    stages: list[StageSummary]

    def __repr__(self) -> str:
        return str(self)


class Job:
    """One job's record, and what a user asks of it."""

    def __init__(self, record: JobRecord, store=None):
        self.record = record
        self._store = store

    @property
    def id(self) -> str:
        return self.record.job

    def __repr__(self) -> str:
        d = self.record.duration
        return (f"graphwren.Job<{self.id} {self.record.state}, {len(self.record.stages)} stage(s), "
                f"{'?' if d is None else f'{d:.2f} s'}>")

    # -- statistics ------------------------------------------------------------------------------
    def stage_summaries(self) -> list[StageSummary]:
        out = []
        for st in sorted(self.record.stages, key=lambda s: s["index"]):
            attempts = self.record.attempts_of(st["name"])
            winners = self.record.winners(st["name"])
            measured = [a["stats"] for a in winners if a.get("stats")]
            times = [t for t in (task_seconds(a) for a in winners) if t is not None]
            rin = [s["records_in"] for s in measured]
            rout = [s["records_out"] for s in measured]
            median = percentile(times, 50)
            rss = [s["rss"] for s in measured if s.get("rss") is not None]
            ended = [a["ended"] for a in winners if a.get("ended") is not None]
            out.append(StageSummary(
                index=st["index"], name=st["name"], label=st["label"], tasks=st["ntasks"],
                planned_tasks=st.get("planned_tasks", st["ntasks"]),
                records_in=None if not rin or any(r is None for r in rin) else sum(rin),
                records_out=None if not rout or any(r is None for r in rout) else sum(rout),
                bytes_read=sum(s["bytes_read"] for s in measured),
                bytes_written=sum(s["bytes_written"] for s in measured),
                requests=sum(stats.total_requests(s["requests"]) for s in measured),
                p50=median, p95=percentile(times, 95), max=max(times) if times else None,
                cpu=sum(s["cpu"] for s in measured), peak_rss=max(rss) if rss else None,
                retries=sum(a["kind"] == stats.RETRY for a in attempts),
                backups=sum(a["kind"] == stats.BACKUP for a in attempts),
                failed=sum(a["outcome"] == stats.FAILED for a in attempts),
                lost=sum(a["outcome"] == stats.LOST for a in attempts),
                skew=(max(times) / median) if times and median else None,
                wall=(max(ended) - st["started"]) if ended else None))
        return out

    def summary(self) -> Summary:
        """Per stage: tasks, records in/out, bytes read/written, requests, p50/p95/max task time,
        retries, backups and skew; then the job's time and what it cost."""
        stages = self.stage_summaries()
        r = self.record
        head = (f"job {r.job} {r.state}" + (f" in {r.duration:.2f} s" if r.duration is not None else "")
                + (f" ({r.description})" if r.description else "")
                + f" on {r.settings.get('backend', '?')}, storage {r.settings.get('storage', '?')}")
        text = head + "\n" + render_table(HEADERS, [s.row() for s in stages])
        driver = stats.total_requests(r.driver_requests)
        text += f"\ndriver: {driver:,} requests (uploads, commit LISTs and records, manifests)"
        try:
            text += "\n" + self.cost().describe()
        except Exception as exc:  # noqa: BLE001 - a bad price table must not hide the statistics
            text += f"\ncost: not reckoned ({type(exc).__name__}: {exc})"
        if r.error:
            text += f"\nerror: {r.error}"
        out = Summary(text)
        out.stages = stages
        return out

    # -- logs --------------------------------------------------------------------------------------
    def logs(self, stage=None, task: int | None = None, attempt: int | None = None) -> str:
        """What tasks printed and logged: of one task (its committed attempt unless ``attempt``), of a
        stage's tasks, or of the whole job, each headed by where it ran."""
        chosen = self.record.stages if stage is None else [self.record.stage(stage)]
        parts = []
        for st in sorted(chosen, key=lambda s: s["index"]):
            for a in sorted(self.record.attempts_of(st["name"], task), key=lambda a: (a["task"], a["attempt"])):
                if attempt is not None and a["attempt"] != attempt:
                    continue
                if attempt is None and task is not None and a["outcome"] not in (stats.COMMITTED, stats.FAILED):
                    continue
                text = a.get("log")
                if not text:
                    continue
                cut = a.get("log_truncated") or 0
                request = (a.get("stats") or {}).get("request_id")
                on = f", Lambda request {request}" if request else ""
                parts.append(f"== stage {st['index']} task {a['task']} attempt {a['attempt']} ({a['outcome']}{on}) ==\n"
                             + text + ("" if text.endswith("\n") else "\n")
                             + (f"[... {cut:,} more bytes not kept: task_log_limit]\n" if cut else ""))
        return "".join(parts)

    # -- cost, plot, report --------------------------------------------------------------------------
    def cost(self):
        """What the job cost at the configured prices (``runtime/cost.py``): measured, not projected."""
        from ..runtime import cost
        return cost.measured(self.record)

    def plot(self, filename: str = "timeline.png") -> str:
        """A PNG (or any format matplotlib writes, by the name's suffix) of the task timeline."""
        from .plots import save_timeline
        return save_timeline(self.record, filename)

    def report(self, filename: str = "graphwren-report.html") -> str:
        """One self-contained HTML page: stage graph, timeline, histograms, slowest tasks, retries, cost."""
        from .html import write
        return write([self], filename)


def last_job() -> Job:
    """The most recent job this process ran (compute, persist, a write, Executor.map)."""
    found = stats.last(1)
    if not found:
        raise LookupError("no graphwren job has finished in this process yet")
    return Job(found[0])


def recent_jobs(n: int = 20) -> list[Job]:
    return [Job(r) for r in stats.last(n)]


def load_job(job: str, storage: str | None = None) -> Job:
    """A kept job's record (``keep=True``), read from ``storage`` (default: the configured one)."""
    from .. import config
    from ..errors import MissingKey
    from ..runtime.storage import open_store
    store = open_store(config.resolve({"storage": storage})["storage"])
    try:
        blob = store.get(records.job_record_key(job))
    except MissingKey:
        raise LookupError(f"job {job!r} has no record in {store.url}: only jobs run with keep=True "
                          f"(or persisted) keep theirs; `graphwren jobs` lists what is there") from None
    return Job(JobRecord.from_json(blob), store)

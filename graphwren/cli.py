"""The ``graphwren`` command: ``clean``, ``jobs``, ``logs``, ``report``, ``config``, ``demo``, ``version``
(and ``aws ...``)."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

class _CliError(Exception):
    """A mistake on the command line (an unknown job, stage or task): printed, not raised."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``90s``, ``30m``, ``24h``, ``7d``, ``1w`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*", text.lower())
    if m is None:
        raise argparse.ArgumentTypeError(f"not an age: {text!r} (want e.g. 90s, 30m, 24h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _span(seconds: float) -> str:
    """A duration the way a person reads it: 42s, 12m, 3.5h, 2.0d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}" if seconds < 10 * size else f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _live_detail(record: dict, now: float) -> str:
    what = f" ({record['description']})" if record.get("description") else ""
    return (f"lease renewed {_span(now - record['renewed'])} ago by pid {record.get('pid')} "
            f"on {record.get('host')}{what}")


def _why_removable(info, now: float) -> str:
    state, record = info.state(now), info.lease
    if state == "abandoned":
        return f"lease expired {_span(now - record['renewed'] - record['ttl'])} ago (its driver stopped renewing it)"
    if state in ("finished", "failed", "cancelled"):
        return f"{state} {_span(now - record['renewed'])} ago"
    return f"{'unreadable lease' if state == 'unreadable' else state}, created {_span(now - info.created)} ago"


def _last_seen(info) -> float:
    """When the job last showed life: its lease's last write, else its creation."""
    try:
        return max(info.created, float(info.lease["renewed"]))
    except (TypeError, KeyError, ValueError):
        return info.created


def clean(storage: str | None, older_than: float, dry_run: bool = False, out=None,
          trash_older_than: float | None = None) -> list[str]:
    """Delete the keys of jobs no driver is running that last showed life ``older_than`` s ago.

    A job whose lease is live (``runtime/lease.py``) is never touched, whatever ``older_than``.
    Job ids begin with their UTC creation time (``records.new_job_id``), so a job of a version
    without leases is aged by its id. Keys that are not under a job id are never touched. In a
    file store, interrupted deletions untouched for a minute are swept too. Returns the ids removed.
    """
    from . import config
    from .runtime import lease
    from .runtime.storage import open_store
    from .runtime.storage.file import TRASH_AGE

    out = out or sys.stdout
    store = open_store(config.resolve({"storage": storage})["storage"])
    verb = "would delete" if dry_run else "deleted"
    removed, live, young = [], 0, 0
    for info in lease.jobs_in(store):
        now = time.time()
        if info.state(now) == "running":
            live += 1
            print(f"skipped live job {info.job} ({info.keys} keys): {_live_detail(info.lease, now)}", file=out)
            continue
        if now - _last_seen(info) <= older_than:
            young += 1
            continue
        if not dry_run:
            # A driver may have started renewing since the LIST (a lease is written first): look again.
            info.lease = lease.read(store, info.job)
            if info.state(now) == "running":
                live += 1
                print(f"skipped live job {info.job}: {_live_detail(info.lease, now)}", file=out)
                continue
            store.delete(f"{info.job}/")
        removed.append(info.job)
        print(f"{verb} job {info.job} ({info.keys} keys): {_why_removable(info, now)}", file=out)
    swept = []
    if hasattr(store, "sweep_trash"):
        limit = TRASH_AGE if trash_older_than is None else trash_older_than
        swept = store.sweep_trash(limit) if not dry_run else []
        for name, age in swept:
            print(f"swept interrupted deletion {name} (untouched for {_span(age)})", file=out)
    print(f"{len(removed)} job(s) {'found' if dry_run else 'removed'} in {store.url} "
          f"(not live, last active over {_span(older_than)} ago); {live} live job(s) skipped, "
          f"{young} younger kept" + (f", {len(swept)} interrupted deletion(s) swept" if swept else ""),
          file=out)
    return removed


def _record_columns(store, info) -> tuple[str, str, str]:
    """(stages, duration, cost) from a kept job's record, or dashes for a job that kept none."""
    from .errors import MissingKey
    from .runtime import records
    from .runtime.stats import JobRecord
    if info.state() == "running":
        return "-", "-", "-"
    try:
        record = JobRecord.from_json(store.get(records.job_record_key(info.job)))
    except MissingKey:
        return "-", "-", "-"
    except (ValueError, TypeError, KeyError):
        return "?", "?", "?"
    from .runtime.cost import measured
    try:
        dollars = f"${measured(record).total:.6f}"
    except Exception:  # noqa: BLE001 - a record from another version: its cost is unknown, not an error
        dollars = "?"
    duration = "?" if record.duration is None else f"{record.duration:.1f}s"
    return str(len(record.stages)), duration, dollars


def jobs(storage: str | None, out=None) -> list:
    """Print the jobs in a store: id, state, age, keys, stages, duration and cost (of jobs that kept
    their record: keep=True), and who runs the live ones."""
    from . import config
    from .runtime import lease
    from .runtime.storage import open_store

    out = out or sys.stdout
    store = open_store(config.resolve({"storage": storage})["storage"])
    found = lease.jobs_in(store)
    now = time.time()
    rows = [("JOB", "STATE", "AGE", "KEYS", "STAGES", "DURATION", "COST", "DETAIL")]
    for info in found:
        state = info.state(now)
        if state == "running":
            detail = _live_detail(info.lease, now)
        elif state == "no lease":
            detail = "written by a driver without leases (or by late tasks after a cleanup)"
        else:
            detail = _why_removable(info, now)
            if info.lease.get("description"):
                detail += f" ({info.lease['description']})"
        rows.append((info.job, state, _span(now - info.created), str(info.keys), *_record_columns(store, info),
                     detail))
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[7], file=out)
    print(f"{len(found)} job(s) in {store.url}", file=out)
    return found


def logs(job: str, storage: str | None, stage=None, task: int | None = None, out=None) -> str:
    """Print what a kept job's tasks printed and logged (all of them, one stage's, or one task's)."""
    out = out or sys.stdout
    found = _load(job, storage)
    if stage is not None and isinstance(stage, str) and stage.isdigit():
        stage = int(stage)
    if task is not None and stage is None and len(found.record.stages) > 1:
        raise _CliError(f"job {job} has {len(found.record.stages)} stages: name one with --stage "
                        f"({', '.join(str(s['index']) for s in found.record.stages)})")
    try:
        text = found.logs(stage=stage, task=task)
    except KeyError as exc:
        raise _CliError(exc.args[0]) from None
    print(text if text else f"job {job}: no task printed or logged anything"
          + (f" in stage {stage}" if stage is not None else "") + (f" task {task}" if task is not None else ""),
          file=out, end="" if text else "\n")
    return text


def report(job: str, storage: str | None, output: str | None, out=None) -> str:
    """Write a kept job's HTML report (stage graph, timeline, histograms, slowest tasks, cost)."""
    out = out or sys.stdout
    path = output or f"{job}.html"
    _load(job, storage).report(path)
    print(f"wrote the report of job {job} to {path}", file=out)
    return path


def _load(job: str, storage: str | None):
    from .observe import load_job
    try:
        return load_job(job, storage)
    except LookupError as exc:
        raise _CliError(exc.args[0]) from None


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string reads JSON's escapes
    if isinstance(value, dict):   # an inline table: prices
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def show_config(out=None) -> dict:
    """Print every effective setting as a TOML line with where its value came from."""
    from . import config

    out = out or sys.stdout
    src = config.sources()   # first: a bad setting is an error before anything is printed
    path, named = config.config_file()
    where = f"named by {config.CONFIG_ENV}" if named else "the default location"
    print(f"# config file: {path} ({where})" if path else
          f"# config file: none ({config.HOME_CONFIG} does not exist)", file=out)
    lines = [(f"{name} = {_toml(value)}" if value is not None else f"# {name} is unset", where)
             for name, (value, where) in src.items()]
    width = max(len(text) for text, _ in lines)
    for text, where in lines:
        print(f"{text.ljust(width)}  # {where}", file=out)
    return src


_DEMO_TEXT = ("the quick brown fox jumps over the lazy dog while the cat sleeps "
              "and the dog dreams of the fox that jumps over the moon").split()


def _count_words(chunk):
    counts: dict[str, int] = {}
    for word in chunk:
        counts[word] = counts.get(word, 0) + 1
    return counts


def _merge_counts(parts):
    total: dict[str, int] = {}
    for part in parts:
        for word, n in part.items():
            total[word] = total.get(word, 0) + n
    return total


def demo(storage: str | None = None, chunks: int = 100, out=None) -> dict:
    """A word count as ``map_reduce`` over ``chunks`` chunks of text, on the configured defaults."""
    from . import Executor

    out = out or sys.stdout
    data = [_DEMO_TEXT[i % 7:] + _DEMO_TEXT[:i % 7] for i in range(chunks)]
    start = time.perf_counter()
    ex = Executor(storage=storage, progress=False)
    ready = time.perf_counter()
    counts = ex.map_reduce(_count_words, data, _merge_counts).result(timeout=300)
    end = time.perf_counter()
    ex.wait_all()  # the job's keys are deleted once its result is fetched
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    print(f"graphwren demo: word count over {chunks} chunks ({sum(map(len, data))} words) "
          f"on the {ex.settings['backend']} backend, storage {ex.settings['storage']}", file=out)
    print("top words: " + ", ".join(f"{w}={n}" for w, n in top), file=out)
    print(f"executor ready in {ready - start:.2f}s, job ran in {end - ready:.2f}s", file=out)
    _demo_sort(storage, out)
    return counts


def _demo_sort(storage: str | None, out, n: int = 200_000) -> None:
    """A columnar sort of random records in 8 files' worth of partitions, checked against sorted()."""
    import random

    import pyarrow as pa

    from . import bag
    rng = random.Random(0)
    keys = [rng.randbytes(10) for _ in range(n)]
    tables = [pa.table({"key": keys[i::8], "value": list(range(i, n, 8))}) for i in range(8)]
    start = time.perf_counter()
    got = bag.from_arrow(tables).sort(key="key", npartitions=8).pluck("key").compute(storage=storage,
                                                                                      progress=False)
    seconds = time.perf_counter() - start
    if got != sorted(keys):
        raise RuntimeError("graphwren demo: the sort's output is out of order")
    print(f"sorted {n} records by a 10-byte key into 8 ordered partitions in {seconds:.2f}s "
          f"(columnar path; first key {got[0].hex()}, last {got[-1].hex()})", file=out)


def _version(_args) -> None:
    from . import __version__
    print(f"graphwren {__version__}")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="graphwren", description="graphwren: stateless tasks over storage")
    parser.add_argument("--version", action="version", version=f"graphwren {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("clean", help="delete the keys of jobs no driver runs any more (crashed, or kept)")
    p.add_argument("--older-than", type=parse_age, default=parse_age("24h"), metavar="AGE",
                   help="only jobs last active longer ago than this (default 24h; e.g. 30m, 7d, 0); "
                        "a job whose driver still renews its lease is never deleted")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="store to clean (default: the configured storage)")
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    p.set_defaults(func=lambda a: clean(a.storage, a.older_than, a.dry_run) and None)

    p = sub.add_parser("jobs", help="list the jobs in a store: state, age, keys, and for kept ones "
                                    "stages, duration and cost")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="store to list (default: the configured storage)")
    p.set_defaults(func=lambda a: jobs(a.storage) and None)

    p = sub.add_parser("logs", help="print what a kept job's tasks printed and logged")
    p.add_argument("job", metavar="JOB", help="the job id (graphwren jobs lists them)")
    p.add_argument("--stage", default=None, help="only this stage (its number, as explain() numbers it)")
    p.add_argument("--task", type=int, default=None, metavar="N", help="only task N (of --stage)")
    p.add_argument("--storage", default=None, metavar="URL", help="store the job is in (default: configured)")
    p.set_defaults(func=lambda a: logs(a.job, a.storage, a.stage, a.task) and None)

    p = sub.add_parser("report", help="write a kept job's HTML report: stages, timeline, histograms, cost")
    p.add_argument("job", metavar="JOB", help="the job id (graphwren jobs lists them)")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="the HTML file (default: JOB.html)")
    p.add_argument("--storage", default=None, metavar="URL", help="store the job is in (default: configured)")
    p.set_defaults(func=lambda a: report(a.job, a.storage, a.output) and None)

    p = sub.add_parser("config", help="print every effective setting and where it came from")
    p.set_defaults(func=lambda a: show_config() and None)

    p = sub.add_parser("demo", help="run a small word-count map_reduce and print its result and timing")
    p.add_argument("--storage", default=None, metavar="URL", help="store to use (default: the configured one)")
    p.add_argument("--chunks", type=int, default=100, help="number of map tasks' inputs (default 100)")
    p.set_defaults(func=lambda a: demo(a.storage, a.chunks) and None)

    p = sub.add_parser("version", help="print graphwren's version")
    p.set_defaults(func=_version)

    p = sub.add_parser("sandbox", help="a local S3 endpoint and Redis on loopback for the README's snippets",
                       description="Start moto's S3 server and a redis-server on free loopback ports, print "
                                   "the shell exports that point graphwren at them, and stop both on Ctrl-C. "
                                   "With a COMMAND, run it with those exports and stop when it ends.")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="run this, then stop")
    p.set_defaults(func=lambda a: __import__("graphwren.sandbox", fromlist=["run"]).run(a.command))

    try:
        from .aws import cli as aws_cli
    except ImportError:
        aws_cli = None
    if aws_cli is not None:
        aws_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from .errors import GraphwrenError
    try:
        code = args.func(args)
    except (GraphwrenError, _CliError) as exc:
        print(f"graphwren {args.command}: {exc}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())

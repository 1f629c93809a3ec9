"""The ``graphwren`` command: ``clean``, ``demo``, ``version`` (and ``aws ...`` when installed)."""
from __future__ import annotations

import argparse
import re
import sys
import time

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``90s``, ``30m``, ``24h``, ``7d``, ``1w`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*", text.lower())
    if m is None:
        raise argparse.ArgumentTypeError(f"not an age: {text!r} (want e.g. 90s, 30m, 24h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def clean(storage: str | None, older_than: float, dry_run: bool = False, out=None) -> list[str]:
    """Delete the keys of jobs created more than ``older_than`` seconds ago; returns their ids.

    Job ids begin with their UTC creation time (``records.new_job_id``), so a job a crashed
    driver left behind is recognised by its age alone. Keys that are not under a job id are
    never touched.
    """
    from . import config
    from .runtime import records
    from .runtime.storage import open_store

    out = out or sys.stdout
    store = open_store(config.resolve({"storage": storage})["storage"])
    now = time.time()
    jobs: dict[str, int] = {}
    for key in store.list(""):
        job = key.split("/", 1)[0]
        if job in jobs:
            jobs[job] += 1
            continue
        created = records.job_time(job)
        if created is not None and now - created > older_than:
            jobs[job] = 1
    for job, nkeys in sorted(jobs.items()):
        if not dry_run:
            store.delete(f"{job}/")
        print(f"{'would delete' if dry_run else 'deleted'} job {job} ({nkeys} keys)", file=out)
    print(f"{len(jobs)} job(s) older than {older_than:g}s {'found' if dry_run else 'removed'} "
          f"in {store.url}", file=out)
    return sorted(jobs)


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
    parser = argparse.ArgumentParser(prog="graphwren", description="graphwren: stateless tasks over storage")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("clean", help="delete the keys of old jobs that crashed drivers left behind")
    p.add_argument("--older-than", type=parse_age, default=parse_age("24h"), metavar="AGE",
                   help="only jobs created longer ago than this (default 24h; e.g. 30m, 7d, 0)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="store to clean (default: the configured storage)")
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    p.set_defaults(func=lambda a: clean(a.storage, a.older_than, a.dry_run) and None)

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
    except GraphwrenError as exc:
        print(f"graphwren {args.command}: {exc}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())

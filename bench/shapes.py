"""Input shapes: the same word count on the layouts users have, graphwren against dask.bag in one run.

Issue 12's benchmark. Deterministic corpora (Zipf words over a 50k
vocabulary, 12 words per line), written once under the scratch directory:

* ``16 x 5 MB``        the shape of bench/wordcount.py, the per-byte baseline
* ``2,000 x 15 KB``    a directory of small files (also run on redis and S3 storage)
* ``20,000 x 1.5 KB``  tiny files
* ``1 x 1 GB``         one big file: both cores should be busy (CPU utilisation is reported)
* ``skewed``           16 x 5 MB where one word is 30% of all words
* ``gzip``             16 x 5 MB of text, each gzipped (a glob of .txt.gz; MB are uncompressed)
* ``2000x15KB.parquet`` the small-files corpus as parquet: one ``line`` column, row groups of
                       50 lines, read with ``read_parquet(columns=["line"])`` (graphwren only:
                       dask.bag has no read_parquet); MB are the lines' text bytes

Workloads on each: ``frequencies()``, the ``reduceby`` form, and a
``groupby`` of lines by their first word (counted per group, so the result
stays small). graphwren runs on file storage, and on redis and S3 (moto
server) for the small-files shape; dask.bag (processes scheduler) runs the
same workloads when installed. Every answer is checked against
``collections.Counter`` of the files; medians of repeated runs, the ratio
to dask.bag and each shape's per-byte slowdown against the 16-file shape
are printed as a markdown table.

    python bench/shapes.py [--scale 1.0] [--shapes all|16x5MB,...] [--engines all|graphwren,redis,s3,dask] [--repeats 3]
                           [--dask-repeats 1] [--dask-workloads frequencies,...] [--json results.json]
    python bench/shapes.py --report results.json   # the table of every run appended there

``--dask-repeats`` and ``--dask-workloads`` keep dask.bag's slow cells (a
groupby of 2,000 partitions takes minutes) to what the time allows;
``--json`` appends each measurement (with the load average) to a file, so
several invocations in one session make one table (``--report``).

``--scale 0.01`` shrinks every shape (file counts of the many-file shapes,
file sizes of the others) for a smoke run.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import glob
import gzip
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_time, redis_server, s3_server, scratch_dir, table  # noqa: E402
from wordcount import VOCAB, WORDS_PER_LINE, vocabulary  # noqa: E402 - the same words as bench/wordcount.py
from wordcount import _add_pairs, _first, _one  # noqa: E402 - and the same reduceby halves

SKEW_WORD = "THE"      # upper case: never one of the vocabulary's words
SKEW_SHARE = 0.30
BASELINE = "16x5MB"
CHUNK_WORDS = 4_000_000  # words drawn at once: bounds the generator's memory on the 1 GB shape


@dataclasses.dataclass(frozen=True)
class Shape:
    """One input layout: how many files of how many bytes, skewed or gzipped."""

    name: str
    nfiles: int
    file_bytes: int
    skew: bool = False
    gzip: bool = False
    parquet: bool = False

    def scaled(self, scale: float) -> "Shape":
        """Many-file shapes keep their file size and lose files; the others keep their files, smaller."""
        if scale == 1.0:
            return self
        if self.nfiles >= 100:
            return dataclasses.replace(self, nfiles=max(2, round(self.nfiles * scale)))
        return dataclasses.replace(self, file_bytes=max(2_000, round(self.file_bytes * scale)))

    @property
    def pattern(self) -> str:
        return "*.parquet" if self.parquet else "*.txt.gz" if self.gzip else "*.txt"


SHAPES = [
    Shape("16x5MB", 16, 5_000_000),
    Shape("2000x15KB", 2_000, 15_000),
    Shape("20000x1.5KB", 20_000, 1_500),
    Shape("1x1GB", 1, 1_000_000_000),
    Shape("skewed", 16, 5_000_000, skew=True),
    Shape("gzip", 16, 5_000_000, gzip=True),
    Shape("2000x15KB.parquet", 2_000, 15_000, parquet=True),
]
PARQUET_ROW_GROUP = 50    # lines per row group: many row groups per file, for the packing to weigh
SMALL_FILES = "2000x15KB"   # the shape also run on redis and S3


# -- the corpora -----------------------------------------------------------------------------
def _draw(rng, n: int, p: np.ndarray, skew: bool) -> np.ndarray:
    ids = rng.choice(VOCAB, size=n, p=p)
    if skew:   # id VOCAB is SKEW_WORD
        ids[rng.random(n) < SKEW_SHARE] = VOCAB
    return ids


def make_shape(shape: Shape) -> str:
    """The directory holding ``shape``'s files and reference.json (written once, then reused)."""
    root = os.path.join(scratch_dir("shapes"), f"{shape.name}-{shape.nfiles}x{shape.file_bytes}")
    if os.path.exists(os.path.join(root, "reference.json")):
        return root
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, shape.name)))   # one seed per shape: deterministic
    p = 1.0 / np.arange(1, VOCAB + 1)
    p /= p.sum()
    vocab = np.append(vocabulary(), SKEW_WORD)
    mean_word = float(np.dot(p, [len(w) for w in vocab[:VOCAB]])) + 1   # + the separator
    per_file = max(WORDS_PER_LINE, int(shape.file_bytes / mean_word) // WORDS_PER_LINE * WORDS_PER_LINE)
    pending = np.empty(0, dtype=np.int64)   # drawn words not yet written
    for i in range(shape.nfiles):
        path = os.path.join(root, f"part-{i:05d}" + (".parquet" if shape.parquet else ".txt")
                            + (".gz" if shape.gzip else ""))
        with (gzip.open(path, "wt", compresslevel=6) if shape.gzip else
              _ParquetLines(path) if shape.parquet else open(path, "w")) as f:
            left = per_file
            while left:
                if not len(pending):
                    pending = _draw(rng, max(CHUNK_WORDS // WORDS_PER_LINE * WORDS_PER_LINE, WORDS_PER_LINE),
                                    p, shape.skew)
                take, pending = pending[:left], pending[left:]
                lines = vocab[take].reshape(-1, WORDS_PER_LINE)
                f.write("\n".join(" ".join(line) for line in lines))
                f.write("\n")
                left -= len(take)
    words, firsts = reference_counts(root, shape)
    with open(os.path.join(root, "reference.json"), "w") as f:
        json.dump({"words": words, "firsts": firsts}, f)
    return root


class _ParquetLines(io.StringIO):
    """A text file written as parquet on close: one ``line`` column, row groups of PARQUET_ROW_GROUP lines."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self):
        import pyarrow as pa
        import pyarrow.parquet as pq
        if not self.closed:
            pq.write_table(pa.table({"line": self.getvalue().splitlines()}), self.path,
                           row_group_size=PARQUET_ROW_GROUP)
        super().close()


def parquet_lines(path: str) -> list[str]:
    import pyarrow.parquet as pq
    return pq.read_table(path, columns=["line"]).column("line").to_pylist()


def files_of(root: str, shape: Shape) -> list[str]:
    return sorted(glob.glob(os.path.join(root, shape.pattern)))


def reference_counts(root: str, shape: Shape) -> tuple[collections.Counter, collections.Counter]:
    """What plain Python counts: every word, and the first word of every line."""
    words, firsts = collections.Counter(), collections.Counter()
    for path in files_of(root, shape):
        with (gzip.open(path, "rt") if shape.gzip else
              contextlib.nullcontext(parquet_lines(path)) if shape.parquet else open(path)) as f:
            for line in f:
                split = line.split()
                words.update(split)
                if split:
                    firsts[split[0]] += 1
    return words, firsts


def text_bytes(root: str, shape: Shape) -> int:
    """Uncompressed bytes of the shape (for gzip, what the tasks decode; for parquet, the lines' text)."""
    if shape.parquet:
        return sum(len(line.encode()) + 1 for p in files_of(root, shape) for line in parquet_lines(p))
    if not shape.gzip:
        return sum(os.path.getsize(p) for p in files_of(root, shape))
    total = 0
    for path in files_of(root, shape):
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    return total


# -- the workloads (module-level functions: dask's processes scheduler pickles them) ----------
def _first_word(line):
    return line.split(None, 1)[0]


def _group_size(kv):
    return (kv[0], len(kv[1]))


def _nonblank(line):
    return bool(line.strip())


def graphwren_job(workload: str, path: str, storage: str):
    import graphwren as gw
    if path.endswith(".parquet"):
        lines = gw.bag.read_parquet(path, columns=["line"], format="tuple").pluck(0)
    else:
        lines = gw.bag.read_text(path)
    if workload == "frequencies":
        return dict(lines.flat_map(str.split).frequencies().compute(storage=storage))
    if workload == "reduceby":
        pairs = lines.flat_map(str.split).map(_one).reduceby(_first, _add_pairs).compute(storage=storage)
        return {k: v[1] for k, v in pairs}
    return dict(lines.filter(_nonblank).groupby(_first_word).map(_group_size).compute(storage=storage))


def dask_job(workload: str, path: str):
    import dask.bag as db
    lines = db.read_text(path)
    if workload == "frequencies":
        return dict(lines.str.split().flatten().frequencies().compute(scheduler="processes"))
    if workload == "reduceby":
        # dask.bag's reduceby is foldby: the same binop folds within and across partitions
        pairs = lines.str.split().flatten().map(_one).foldby(_first, _add_pairs).compute(scheduler="processes")
        return {k: v[1] for k, v in pairs}
    return dict(lines.filter(_nonblank).groupby(_first_word).map(_group_size).compute(scheduler="processes"))


WORKLOADS = ("frequencies", "reduceby", "groupby")


# -- CPU utilisation ---------------------------------------------------------------------------
def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    return sum(fields) - idle, sum(fields)


def cores_busy(before, after) -> float | None:
    """How many cores were busy on average between two ``cpu_ticks()`` samples."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


# -- the run -----------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="shrink every shape (0.01 for a smoke run)")
    ap.add_argument("--shapes", default="all", help=f"comma-separated, of {[s.name for s in SHAPES]}")
    ap.add_argument("--engines", default="all", help="comma-separated, of graphwren,redis,s3,dask")
    ap.add_argument("--workloads", default="all", help=f"comma-separated, of {list(WORKLOADS)}")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dask-repeats", type=int, default=None, help="dask.bag's repeats (default: --repeats; "
                    "1 runs it once without a warm-up)")
    ap.add_argument("--dask-workloads", default=None, help="the workloads dask.bag runs (default: --workloads)")
    ap.add_argument("--json", default=None, help="append every measurement to this file (JSON lines)")
    ap.add_argument("--report", default=None, help="print the table of the measurements in this file and exit")
    args = ap.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            print(report([json.loads(line) for line in f if line.strip()]))
        return
    if not args.scale > 0:
        raise SystemExit(f"--scale must be positive, got {args.scale}")
    known = {s.name: s for s in SHAPES}
    names = list(known) if args.shapes == "all" else args.shapes.split(",")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown shapes {unknown}; known: {list(known)}")
    engines = {"graphwren", "redis", "s3", "dask"} if args.engines == "all" else set(args.engines.split(","))
    workloads = WORKLOADS if args.workloads == "all" else tuple(args.workloads.split(","))
    dask_workloads = workloads if args.dask_workloads is None else tuple(args.dask_workloads.split(","))
    if set(workloads + dask_workloads) - set(WORKLOADS):
        raise SystemExit(f"unknown workloads {sorted(set(workloads + dask_workloads) - set(WORKLOADS))}; known: {list(WORKLOADS)}")
    if "dask" in engines:
        try:
            import dask.bag  # noqa: F401
        except ImportError:
            print("dask not installed (pip install -e '.[bench]'): dask.bag rows skipped")
            engines.discard("dask")

    import graphwren as gw  # noqa: F401 - start the warm pool before the clock
    stack = []
    stores = {"file": "file://" + scratch_dir("shapes-store")}
    if "redis" in engines:
        cm = redis_server()
        stores["redis"] = cm.__enter__()
        stack.append(cm)
    if "s3" in engines:
        cm = s3_server()
        stores["s3"] = cm.__enter__()
        stack.append(cm)

    results = []   # dicts: shape, MB, workload, engine, seconds, cores
    try:
        for name in names:
            shape = known[name].scaled(args.scale)
            t0 = time.perf_counter()
            root = make_shape(shape)
            mb = text_bytes(root, shape) / 1e6
            with open(os.path.join(root, "reference.json")) as f:
                ref = json.load(f)
            print(f"{shape.name}: {shape.nfiles:,} files, {mb:,.1f} MB (ready in {time.perf_counter() - t0:.1f} s)",
                  flush=True)
            path = os.path.join(root, shape.pattern)
            runs = []
            if "graphwren" in engines:
                runs.append(("graphwren (file)", lambda w: graphwren_job(w, path, stores["file"])))
            if shape.name == SMALL_FILES:
                for store in ("redis", "s3"):
                    if store in stores:
                        runs.append((f"graphwren ({store})",
                                     lambda w, url=stores[store]: graphwren_job(w, path, url)))
            if "dask" in engines and not shape.parquet:   # dask.bag has no read_parquet
                runs.append(("dask.bag processes", lambda w: dask_job(w, path)))
            for workload in sorted(set(workloads + dask_workloads), key=WORKLOADS.index):
                expected = ref["firsts"] if workload == "groupby" else ref["words"]
                for engine, fn in runs:
                    dask = engine.startswith("dask")
                    if workload not in (dask_workloads if dask else workloads):
                        continue
                    repeats = args.dask_repeats if dask and args.dask_repeats else args.repeats
                    load = os.getloadavg()
                    before = cpu_ticks()
                    seconds, answer = median_time(lambda: fn(workload), repeats=repeats,
                                                  warmup=0 if repeats == 1 else 1)
                    cores = cores_busy(before, cpu_ticks())
                    if dict(answer) != expected:
                        raise SystemExit(f"{engine} {workload} on {shape.name} differs from collections.Counter")
                    results.append({"shape": shape.name, "MB": mb, "workload": workload, "engine": engine,
                                    "seconds": seconds, "cores": cores, "repeats": repeats,
                                    "load": [round(x, 1) for x in load]})
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps(results[-1]) + "\n")
                    print(f"  {workload:12s} {engine:20s} {seconds:8.2f} s  {mb / seconds:7.1f} MB/s"
                          + (f"  cores busy {cores:.1f}" if cores is not None else "")
                          + f"  load {' '.join(map(str, results[-1]['load']))}", flush=True)
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)

    print()
    print(report(results))


def report(results: list[dict]) -> str:
    """The markdown table: medians, ratio to dask.bag, per-byte slowdown against the 16-file shape."""
    by = {(r["shape"], r["workload"], r["engine"]): r for r in results}
    rows = []
    for r in results:
        dask = by.get((r["shape"], r["workload"], "dask.bag processes"))
        base = by.get((BASELINE, r["workload"], r["engine"]))
        per_byte = (r["seconds"] / r["MB"]) / (base["seconds"] / base["MB"]) if base else None
        rows.append({
            "shape": r["shape"], "MB": f"{r['MB']:,.1f}", "workload": r["workload"], "engine": r["engine"],
            "median s": f"{r['seconds']:.2f}", "MB/s": f"{r['MB'] / r['seconds']:.1f}",
            "x faster than dask": (f"{dask['seconds'] / r['seconds']:.2f}"
                                   if dask and r["engine"] != dask["engine"] else ""),
            "per byte vs 16x5MB": f"{per_byte:.2f}" if per_byte is not None else "",
            # the whole machine over the timed block (warm-up and repeats): meaningful on a quiet machine
            "cores busy": f"{r['cores']:.1f} of {os.cpu_count()}" if r["cores"] is not None else "",
            "runs": str(r.get("repeats", "")),
            "load avg at start": " ".join(map(str, r.get("load", ()))),
        })
    columns = ["shape", "MB", "workload", "engine", "median s", "MB/s", "x faster than dask",
               "per byte vs 16x5MB", "cores busy", "runs", "load avg at start"]
    return table(rows, columns)


if __name__ == "__main__":
    main()

"""Word counts and JSON records: graphwren against the tools a user would pick instead.

Issue 18's benchmark: two pipelines, every engine in one run, written the
way users write them (lambdas, not module-level functions, where users
would write lambdas).

``words``: a deterministic corpus (Zipf words over a 50k vocabulary, 12
words per line, 16 files) counted by plain Python, a hand-written Pool(2),
graphwren (``frequencies()``, the ``reduceby`` form with module-level
functions, and the headline ``reduceby`` form with lambdas; frequencies on
file, redis and s3 storage), dask.bag (``frequencies()`` and ``foldby``
with the same lambdas; processes scheduler and a 2-worker LocalCluster)
and PySpark RDD local[2] ``reduceByKey(operator.add)``.

``json``: ~1 GB (at ``--scale 1``) of generated JSON lines in 16 files,
records like ``{"user": "u123", "score": 57, "text": "...", "ts": ...}``
with a Zipf-ish user distribution, run as
``read_text -> map(json.loads) -> filter(score > 50) -> map((user, 1)) ->
reduceby`` on graphwren (the headline), dask.bag (``foldby``), PySpark RDD
(``reduceByKey``), plain Python, a Pool(2), and Polars
(``scan_ndjson(...).filter(...).group_by("user").len()``, the
single-machine limit).

Every answer is checked (keys, counts and record types) against a
reference: ``collections.Counter`` of the words for ``words``; for ``json``
the generator's own per-user counts of the records it drew (no JSON
parsing, so it is exact at any scale), which the plain-Python row, when
run, also matches. Medians of repeated runs, ratios to the headline line
and the issue's targets are printed as markdown tables.

    python bench/wordcount.py [--scale 1.0] [--pipelines all|words,json] [--engines all|graphwren,...]
                              [--words 5e6,10e6,20e6] [--repeats 3] [--warmup 1]

``--scale 0.01`` shrinks both pipelines (words and JSON bytes) for a smoke run.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import glob
import json
import multiprocessing
import operator
import os
import shutil
import sys
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_time, redis_server, s3_server, scratch_dir, table  # noqa: E402

VOCAB = 50_000
WORDS_PER_LINE = 12
FILES = 16

JSON_FILES = 16
JSON_BYTES = 1_000_000_000   # at --scale 1.0
USERS = 100_000
USER_SKEW = 1.1              # the user of rank r has weight r**-1.1: a few heavy users, a long tail
SCORE_CUT = 50               # filter(score > 50) keeps 49% of the records (scores are uniform 0..99)
TEXT_WORDS = (3, 16)         # words of text per record, uniform
TS0 = 1_750_000_000.0        # the first record's epoch seconds; ts grows by ~0.25 s a record
RECORD_CHUNK = 200_000       # records drawn at once: bounds the generator's memory

PIPELINES = ("words", "json")
ENGINES = ("python", "pool2", "graphwren", "graphwren-redis", "graphwren-s3", "dask", "dask-distributed",
           "spark", "polars")
PLAIN = {"python"}           # nothing to warm up: timed without the untimed warm-up runs
HEADLINE = {"words": "graphwren reduceby, lambdas (file)", "json": "graphwren (file)"}


# -- the word corpus ----------------------------------------------------------------------
def vocabulary() -> np.ndarray:
    """Short words for frequent ranks, like a real language: rank k -> base-26 spelling."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for k in range(VOCAB):
        w, k2 = "", k
        while True:
            w = letters[k2 % 26] + w
            k2 = k2 // 26 - 1
            if k2 < 0:
                break
        out.append(w)
    return np.array(out, dtype=object)


def _zipf(n: int, skew: float = 1.0) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=float) ** -skew
    return p / p.sum()


def make_corpus(nwords: int) -> str:
    """The corpus directory for ``nwords`` words (written once, then reused)."""
    root = os.path.join(scratch_dir("wordcount"), f"{nwords}")
    if len(glob.glob(os.path.join(root, "*.txt"))) == FILES:
        return root
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    p = _zipf(VOCAB)
    vocab = vocabulary()
    per_file = max(WORDS_PER_LINE, nwords // FILES // WORDS_PER_LINE * WORDS_PER_LINE)
    for i in range(FILES):
        ids = rng.choice(VOCAB, size=per_file, p=p)
        words = vocab[ids].reshape(-1, WORDS_PER_LINE)
        with open(os.path.join(root, f"part-{i:02d}.txt"), "w") as f:
            f.write("\n".join(" ".join(line) for line in words))
            f.write("\n")
    return root


def files_of(root: str, pattern: str = "*.txt") -> list[str]:
    return sorted(glob.glob(os.path.join(root, pattern)))


# -- the JSON records ---------------------------------------------------------------------
def make_records(nbytes: int) -> str:
    """The directory of ~``nbytes`` of JSON lines in JSON_FILES files and reference.json (written once)."""
    root = os.path.join(scratch_dir("wordcount-json"), f"{nbytes}")
    if os.path.exists(os.path.join(root, "reference.json")):   # written last: its presence means complete
        return root
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(18)
    user_p, word_p, vocab = _zipf(USERS, USER_SKEW), _zipf(VOCAB), vocabulary()
    kept = np.zeros(USERS, dtype=np.int64)   # per user id: records with score > SCORE_CUT
    records = 0
    chunk, ends, pos = None, None, 0
    for i in range(JSON_FILES):
        left = max(1, nbytes // JSON_FILES)
        with open(os.path.join(root, f"part-{i:02d}.jsonl"), "w") as f:
            while left > 0:
                if chunk is None or pos == len(chunk[0]):
                    chunk = _draw_records(rng, records, user_p, word_p, vocab)
                    ends = np.cumsum([len(line) + 1 for line in chunk[0]])   # ASCII: chars are bytes
                    pos = 0
                base = int(ends[pos - 1]) if pos else 0
                stop = max(pos + 1, int(np.searchsorted(ends, base + left, side="right")))
                lines, users, scores = (c[pos:stop] for c in chunk)
                f.write("\n".join(lines))
                f.write("\n")
                kept += np.bincount(users[scores > SCORE_CUT], minlength=USERS)
                left -= int(ends[stop - 1]) - base
                records += stop - pos
                pos = stop
    reference = {f"u{u}": int(c) for u, c in enumerate(kept) if c}
    with open(os.path.join(root, "reference.json"), "w") as f:
        json.dump({"records": records, "score_cut": SCORE_CUT, "counts": reference}, f)
    return root


def _draw_records(rng, serial: int, user_p, word_p, vocab) -> tuple[list[str], np.ndarray, np.ndarray]:
    """RECORD_CHUNK JSON lines, with their user ids and scores (for the reference)."""
    n = RECORD_CHUNK
    users = rng.choice(USERS, size=n, p=user_p)
    scores = rng.integers(0, 100, size=n)
    nwords = rng.integers(TEXT_WORDS[0], TEXT_WORDS[1] + 1, size=n)
    words = vocab[rng.choice(VOCAB, size=int(nwords.sum()), p=word_p)].tolist()
    starts = np.concatenate(([0], np.cumsum(nwords)[:-1])).tolist()
    ts = (TS0 + (serial + np.arange(n)) * 0.25 + rng.random(n) * 0.25).tolist()
    # the words are lowercase ASCII letters: no JSON escaping needed, so formatting is safe and fast
    lines = [f'{{"user": "u{u}", "score": {s}, "text": "{" ".join(words[a:a + k])}", "ts": {t:.3f}}}'
             for u, s, a, k, t in zip(users.tolist(), scores.tolist(), starts, nwords.tolist(), ts)]
    return lines, users, scores


# -- words: the engines -------------------------------------------------------------------
def plain_python(root):
    counts = collections.Counter()
    for path in files_of(root):
        with open(path) as f:
            for line in f:
                counts.update(line.split())
    return counts


def _count_file(path):
    c = collections.Counter()
    with open(path) as f:
        for line in f:
            c.update(line.split())
    return c


def pool2(files, pool, count_file=_count_file):
    total = collections.Counter()
    for c in pool.imap_unordered(count_file, files):
        total.update(c)
    return total


def graphwren_frequencies(pattern, storage):
    import graphwren as gw
    return gw.bag.read_text(pattern).flat_map(str.split).frequencies().compute(storage=storage)


def _one(w):
    return (w, 1)


def _first(kv):
    return kv[0]


def _add_pairs(a, b):
    return (a[0], a[1] + b[1])


def graphwren_reduceby(pattern, storage):
    """The reduceby form with module-level functions (what bench/shapes.py runs)."""
    import graphwren as gw
    return (gw.bag.read_text(pattern).flat_map(str.split).map(_one)
            .reduceby(_first, _add_pairs).compute(storage=storage))


def graphwren_reduceby_lambdas(pattern, storage):
    """The reduceby form as users write it: PySpark's reduceByKey shape, with lambdas."""
    import graphwren as gw
    return (gw.bag.read_text(pattern).flat_map(str.split).map(lambda w: (w, 1))
            .reduceby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1])).compute(storage=storage))


def dask_frequencies(pattern, scheduler):
    import dask.bag as db
    return db.read_text(pattern).str.split().flatten().frequencies().compute(scheduler=scheduler)


def dask_foldby_lambdas(pattern, scheduler):
    """dask.bag's reduceby is foldby: the same binop folds within and across partitions."""
    import dask.bag as db
    return (db.read_text(pattern).str.split().flatten().map(lambda w: (w, 1))
            .foldby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1])).compute(scheduler=scheduler))


def spark_reducebykey(pattern, sc):
    return sc.textFile(pattern).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add).collect()


# -- json: the engines --------------------------------------------------------------------
def python_json(files, k=SCORE_CUT):
    counts = collections.Counter()
    for path in files:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r["score"] > k:
                    counts[r["user"]] += 1
    return counts


def _count_json_file(path):
    return python_json([path])


def graphwren_json(pattern, storage, k=SCORE_CUT):
    import graphwren as gw
    return (gw.bag.read_text(pattern).map(json.loads).filter(lambda r: r["score"] > k)
            .map(lambda r: (r["user"], 1)).reduceby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]))
            .compute(storage=storage))


def dask_json(pattern, scheduler, k=SCORE_CUT):
    import dask.bag as db
    return (db.read_text(pattern).map(json.loads).filter(lambda r: r["score"] > k)
            .map(lambda r: (r["user"], 1)).foldby(lambda kv: kv[0], lambda a, b: (a[0], a[1] + b[1]))
            .compute(scheduler=scheduler))


def spark_json(pattern, sc, k=SCORE_CUT):
    return (sc.textFile(pattern).map(json.loads).filter(lambda r: r["score"] > k)
            .map(lambda r: (r["user"], 1)).reduceByKey(operator.add).collect())


def polars_json(pattern, pl, k=SCORE_CUT):
    df = pl.scan_ndjson(pattern).filter(pl.col("score") > k).group_by("user").len().collect()
    return list(zip(df["user"].to_list(), df["len"].to_list()))


# -- the answers --------------------------------------------------------------------------
def counts_of(answer, label: str) -> dict:
    """{key: count} from an engine's answer, refusing what a dict would hide or a user would trip on.

    Answers are a Counter/dict, (key, count) pairs, or reduceby's (key, (key, count))
    pairs. A key twice, a reduced pair whose key is not its group's, or a count that is
    not a Python int (a numpy scalar, a float) is an error naming the engine.
    """
    items = list(answer.items()) if isinstance(answer, dict) else list(answer)
    out = {}
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise SystemExit(f"{label}: a record {item!r} ({type(item).__name__}) is not a (key, value) tuple")
        key, value = item
        if isinstance(value, tuple):   # reduceby/foldby: the reduced (key, count) pair
            if len(value) != 2 or value[0] != key:
                raise SystemExit(f"{label}: the reduced value {value!r} of key {key!r} is not ({key!r}, count)")
            value = value[1]
        if type(key) is not str or type(value) is not int:
            raise SystemExit(f"{label}: record ({key!r}, {value!r}) has types ({type(key).__name__}, "
                             f"{type(value).__name__}), not (str, int) as the Python path gives")
        if key in out:
            raise SystemExit(f"{label}: key {key!r} appears twice in the answer")
        out[key] = value
    return out


def check(label: str, where: str, answer: dict, reference: dict) -> None:
    """Exit naming the engine, the input and an example when ``answer`` differs from ``reference``."""
    if answer == reference:
        return
    missing = sorted(set(reference) - set(answer))
    extra = sorted(set(answer) - set(reference))
    wrong = sorted(k for k in set(answer) & set(reference) if answer[k] != reference[k])
    example = (f"{wrong[0]!r}: {answer[wrong[0]]} instead of {reference[wrong[0]]}" if wrong else
               f"missing {missing[0]!r}" if missing else f"extra {extra[0]!r}")
    raise SystemExit(f"{label} gave a different answer on {where}: {len(missing)} keys missing, {len(extra)} "
                     f"extra, {len(wrong)} counts differ (e.g. {example})")


# -- the resources (pools, servers, contexts), started once -------------------------------
class Unavailable(Exception):
    """An engine that cannot run on this machine; the message says why."""


class Resources(contextlib.ExitStack):
    """The pools, servers and contexts the engines need, each started on first use and closed at exit."""

    def __init__(self):
        super().__init__()
        self._made: dict[str, object] = {}

    def get(self, name: str | None):
        if name is None:
            return None
        if name not in self._made:
            try:
                self._made[name] = getattr(self, "_" + name.replace("-", "_"))()
            except Unavailable as exc:
                self._made[name] = exc
        made = self._made[name]
        if isinstance(made, Unavailable):
            raise made
        return made

    def _file(self):
        return "file://" + scratch_dir("wordcount-store")

    def _pool(self):
        pool = multiprocessing.get_context("spawn").Pool(2)
        self.callback(pool.terminate)
        return pool

    def _redis(self):
        return self.enter_context(redis_server())

    def _s3(self):
        return self.enter_context(s3_server())

    def _dask(self):
        try:
            import dask.bag  # noqa: F401
        except ImportError:
            raise Unavailable("dask not installed (pip install -e '.[bench]')") from None
        return "processes"

    def _dask_distributed(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise Unavailable("distributed not installed (pip install -e '.[bench]')") from None
        cluster = self.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                  host="127.0.0.1", dashboard_address=None))
        return self.enter_context(Client(cluster))

    def _spark(self):
        try:
            from pyspark import SparkConf, SparkContext
        except ImportError:
            raise Unavailable("pyspark not installed (pip install -e '.[bench]')") from None
        if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
            raise Unavailable("no Java on PATH and no JAVA_HOME (PySpark needs Java 17+)")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)   # the workers run this interpreter
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")      # loopback only
        conf = (SparkConf().setMaster("local[2]").setAppName("wordcount")
                .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
                .set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1"))
        try:
            sc = SparkContext(conf=conf)
        except Exception as exc:  # noqa: BLE001 - no JVM, a Java too old: say why in the table
            raise Unavailable(f"PySpark did not start: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}") \
                from None
        sc.setLogLevel("ERROR")
        self.callback(sc.stop)
        return sc

    def _polars(self):
        try:
            import polars
        except ImportError:
            raise Unavailable("polars not installed (pip install -e '.[bench]')") from None
        return polars


# -- the runs -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Input:
    """One pipeline's input: its files, its size and the answer every engine must give."""

    pipeline: str
    name: str            # e.g. "20M words" or "1,000 MB"
    pattern: str         # the glob the engines read
    files: list[str]
    mb: float
    reference: dict


@dataclasses.dataclass(frozen=True)
class Run:
    """One table row's engine: its --engines name, its label, the resource it needs and what it runs."""

    engine: str
    label: str
    needs: str | None
    fn: Callable[[Input, object], object]


RUNS = {
    "words": [
        Run("python", "python Counter (1 process)", None, lambda d, _: plain_python(os.path.dirname(d.pattern))),
        Run("pool2", "multiprocessing.Pool(2)", "pool", lambda d, pool: pool2(d.files, pool)),
        Run("graphwren", "graphwren frequencies() (file)", "file", lambda d, s: graphwren_frequencies(d.pattern, s)),
        Run("graphwren", "graphwren reduceby, module functions (file)", "file",
            lambda d, s: graphwren_reduceby(d.pattern, s)),
        Run("graphwren", HEADLINE["words"], "file", lambda d, s: graphwren_reduceby_lambdas(d.pattern, s)),
        Run("graphwren-redis", "graphwren frequencies() (redis)", "redis",
            lambda d, s: graphwren_frequencies(d.pattern, s)),
        Run("graphwren-s3", "graphwren frequencies() (s3)", "s3", lambda d, s: graphwren_frequencies(d.pattern, s)),
        Run("dask", "dask.bag processes frequencies()", "dask", lambda d, s: dask_frequencies(d.pattern, s)),
        Run("dask", "dask.bag processes foldby, lambdas", "dask", lambda d, s: dask_foldby_lambdas(d.pattern, s)),
        Run("dask-distributed", "dask.distributed LocalCluster(2) frequencies()", "dask-distributed",
            lambda d, client: dask_frequencies(d.pattern, client)),
        Run("dask-distributed", "dask.distributed LocalCluster(2) foldby, lambdas", "dask-distributed",
            lambda d, client: dask_foldby_lambdas(d.pattern, client)),
        Run("spark", "PySpark local[2] reduceByKey, lambdas", "spark", lambda d, sc: spark_reducebykey(d.pattern, sc)),
    ],
    "json": [
        Run("python", "python json.loads + Counter (1 process)", None, lambda d, _: python_json(d.files)),
        Run("pool2", "multiprocessing.Pool(2)", "pool", lambda d, pool: pool2(d.files, pool, _count_json_file)),
        Run("graphwren", HEADLINE["json"], "file", lambda d, s: graphwren_json(d.pattern, s)),
        Run("dask", "dask.bag processes foldby", "dask", lambda d, s: dask_json(d.pattern, s)),
        Run("dask-distributed", "dask.distributed LocalCluster(2) foldby", "dask-distributed",
            lambda d, client: dask_json(d.pattern, client)),
        Run("spark", "PySpark local[2] reduceByKey", "spark", lambda d, sc: spark_json(d.pattern, sc)),
        Run("polars", "Polars scan_ndjson + group_by (all cores)", "polars", lambda d, pl: polars_json(d.pattern, pl)),
    ],
}


def inputs_of(pipeline: str, args) -> list[Input]:
    """The pipeline's inputs at ``--scale``, generated on first use."""
    if pipeline == "words":
        out = []
        for n in (max(FILES * WORDS_PER_LINE, int(w * args.scale)) for w in args.words):
            root = make_corpus(n)
            files = files_of(root)
            name = f"{n / 1e6:g}M words" if n >= 1e6 else f"{n:,} words"
            out.append(Input("words", name, os.path.join(root, "*.txt"), files,
                             sum(map(os.path.getsize, files)) / 1e6, dict(plain_python(root))))
        return out
    root = make_records(max(JSON_FILES * 200, int(JSON_BYTES * args.scale)))
    files = files_of(root, "*.jsonl")
    with open(os.path.join(root, "reference.json")) as f:
        ref = json.load(f)
    mb = sum(map(os.path.getsize, files)) / 1e6
    return [Input("json", f"{ref['records'] / 1e6:.2f}M records", os.path.join(root, "*.jsonl"),
                  files, mb, ref["counts"])]


def _read_once(files: list[str]) -> None:
    """Read the input once before any clock: every engine then starts from a warm page cache."""
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


# -- the report ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    """One of the issue's goals: the headline line against another row of the same input."""

    pipeline: str
    other: str
    goal: str
    faster: float | None = None    # the other row's time / the headline's must be >= this
    within: float | None = None    # the headline's time / the other row's must be <= this


TARGETS = [
    Target("words", "graphwren frequencies() (file)", "reduceby (lambdas) within 1.5x of frequencies()", within=1.5),
    Target("words", "dask.bag processes foldby, lambdas", "reduceby (lambdas) >= 3x faster than dask.bag foldby",
           faster=3.0),
    Target("json", "dask.bag processes foldby", ">= 3x faster than dask.bag foldby", faster=3.0),
    Target("json", "Polars scan_ndjson + group_by (all cores)", "within 2x of Polars", within=2.0),
]


def report(results: list[dict]) -> str:
    """The markdown table of every row: medians, MB/s, and time as a multiple of the headline line's."""
    seconds = {(r["input"], r["engine"]): r["seconds"] for r in results if r["seconds"] is not None}
    rows = []
    for r in results:
        head = seconds.get((r["input"], HEADLINE[r["pipeline"]]))
        s = r["seconds"]
        rows.append({"pipeline": r["pipeline"], "input": r["input"], "MB": f"{r['mb']:,.1f}", "engine": r["engine"],
                     "median s": f"{s:.2f}" if s is not None else r["note"],
                     "MB/s": f"{r['mb'] / s:.1f}" if s else "",
                     "time / headline": f"{s / head:.2f}" if s is not None and head else ""})
    return table(rows, ["pipeline", "input", "MB", "engine", "median s", "MB/s", "time / headline"])


def targets_report(results: list[dict]) -> str:
    """The issue's targets, per input: the ratio measured and whether it is met."""
    seconds = {(r["input"], r["engine"]): r["seconds"] for r in results if r["seconds"] is not None}
    inputs = list(dict.fromkeys((r["pipeline"], r["input"]) for r in results))
    rows = []
    for pipeline, name in inputs:
        for t in TARGETS:
            if pipeline != t.pipeline:
                continue
            head, other = seconds.get((name, HEADLINE[pipeline])), seconds.get((name, t.other))
            if head is None or other is None:
                measured, met = "not run", ""
            elif t.faster is not None:
                measured, met = f"{other / head:.2f}x faster", "yes" if other / head >= t.faster else "no"
            else:
                measured, met = f"{head / other:.2f}x its time", "yes" if head / other <= t.within else "no"
            rows.append({"pipeline": pipeline, "input": name, "target": t.goal, "measured": measured, "met": met})
    return table(rows, ["pipeline", "input", "target", "measured", "met"])


# -- the run ------------------------------------------------------------------------------
def _names(value: str, known: tuple[str, ...], flag: str) -> list[str]:
    names = list(known) if value == "all" else [n for n in value.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"{flag}: unknown {unknown or value!r}; known: {', '.join(known)} (or all)")
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the word counts and the JSON bytes (1 GB at 1.0; 0.01 for a smoke run)")
    ap.add_argument("--words", default="5e6,10e6,20e6", help="word-count corpus sizes at --scale 1")
    ap.add_argument("--pipelines", default="all", help=f"comma-separated, of {','.join(PIPELINES)}")
    ap.add_argument("--engines", default="all", help=f"comma-separated, of {','.join(ENGINES)}")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones (plain Python: none)")
    args = ap.parse_args(argv)
    if not args.scale > 0:
        raise SystemExit(f"--scale must be positive, got {args.scale}")
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    try:
        args.words = [float(w) for w in args.words.split(",")]
    except ValueError:
        raise SystemExit(f"--words must be comma-separated numbers of words (like 5e6,20e6), got {args.words!r}") \
            from None
    pipelines = _names(args.pipelines, PIPELINES, "--pipelines")
    engines = set(_names(args.engines, ENGINES, "--engines"))

    import graphwren as gw  # noqa: F401 - start the warm pool before the clock
    results = []
    with Resources() as res:
        for pipeline in pipelines:
            for inp in inputs_of(pipeline, args):
                print(f"{pipeline}: {inp.name} ({inp.mb:,.1f} MB, {len(inp.files)} files)", flush=True)
                _read_once(inp.files)
                for run in RUNS[pipeline]:
                    if run.engine not in engines:
                        continue
                    row = {"pipeline": pipeline, "input": inp.name, "engine": run.label, "mb": inp.mb,
                           "seconds": None, "note": ""}
                    try:
                        resource = res.get(run.needs)
                    except Unavailable as exc:
                        row["note"] = f"unavailable: {exc}"
                        results.append(row)
                        print(f"  {run.label:50s} {row['note']}", flush=True)
                        continue
                    seconds, answer = median_time(lambda: run.fn(inp, resource), repeats=args.repeats,
                                                  warmup=0 if run.engine in PLAIN else args.warmup)
                    check(run.label, inp.name, counts_of(answer, run.label), inp.reference)
                    row["seconds"] = seconds
                    results.append(row)
                    print(f"  {run.label:50s} {seconds:8.2f} s  {inp.mb / seconds:7.1f} MB/s", flush=True)
    references = {"words": "collections.Counter of the words",
                  "json": "the JSON generator's own per-user counts (no JSON parsing)"}
    print()
    print("Every answer matched its reference: " + "; ".join(f"{p}: {references[p]}" for p in pipelines) + ".")
    print()
    print(report(results))
    print()
    print(targets_report(results))


if __name__ == "__main__":
    main()

"""Word frequencies: graphwren against the tools a user would pick instead.

A deterministic corpus (Zipf words over a 50k vocabulary, 12 words per
line, 16 files) is counted by plain Python, a hand-written Pool(2),
dask.bag (processes and a 2-worker LocalCluster), PySpark local[2] and
graphwren (idiomatic ``frequencies()`` and the ``reduceby`` form, on
file, redis and s3 storage). Every engine's answer is checked against
``collections.Counter``; medians of repeated runs and ratios are printed.

    python bench/wordcount.py [--words 5e6,10e6,20e6] [--engines all|graphwren,...] [--repeats 3]
"""
from __future__ import annotations

import argparse
import collections
import glob
import multiprocessing
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import median_time, redis_server, s3_server, scratch_dir, table  # noqa: E402

VOCAB = 50_000
WORDS_PER_LINE = 12
FILES = 16


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


def make_corpus(nwords: int) -> str:
    """The corpus directory for ``nwords`` words (written once, then reused)."""
    root = os.path.join(scratch_dir("wordcount"), f"{nwords}")
    if len(glob.glob(os.path.join(root, "*.txt"))) == FILES:
        return root
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, VOCAB + 1)
    p /= p.sum()
    vocab = vocabulary()
    per_file = nwords // FILES // WORDS_PER_LINE * WORDS_PER_LINE
    for i in range(FILES):
        ids = rng.choice(VOCAB, size=per_file, p=p)
        words = vocab[ids].reshape(-1, WORDS_PER_LINE)
        with open(os.path.join(root, f"part-{i:02d}.txt"), "w") as f:
            f.write("\n".join(" ".join(line) for line in words))
            f.write("\n")
    return root


def files_of(root: str) -> list[str]:
    return sorted(glob.glob(os.path.join(root, "*.txt")))


# -- engines ---------------------------------------------------------------------------
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


def pool2(root, pool):
    total = collections.Counter()
    for c in pool.imap_unordered(_count_file, files_of(root)):
        total.update(c)
    return total


def graphwren_frequencies(root, storage):
    import graphwren as gw
    return dict(gw.bag.read_text(os.path.join(root, "*.txt")).flat_map(str.split).frequencies()
                .compute(storage=storage))


def _add(a, b):
    return a + b


def _one(w):
    return (w, 1)


def _first(kv):
    return kv[0]


def _add_pairs(a, b):
    return (a[0], a[1] + b[1])


def graphwren_reduceby(root, storage):
    import graphwren as gw
    pairs = (gw.bag.read_text(os.path.join(root, "*.txt")).flat_map(str.split).map(_one)
             .reduceby(_first, _add_pairs).compute(storage=storage))
    return {k: v[1] for k, v in pairs}


def dask_frequencies(root, scheduler):
    import dask.bag as db
    return dict(db.read_text(os.path.join(root, "*.txt")).str.split().flatten().frequencies()
                .compute(scheduler=scheduler))


def spark_reducebykey(root, sc):
    rdd = sc.textFile(os.path.join(root, "*.txt")).flatMap(str.split).map(_one).reduceByKey(_add)
    return dict(rdd.collect())


# -- the run -------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", default="5e6,10e6,20e6")
    ap.add_argument("--engines", default="all")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = [int(float(w)) for w in args.words.split(",")]
    wanted = None if args.engines == "all" else set(args.engines.split(","))

    def on(name):
        return wanted is None or name in wanted or name.split(" ")[0] in wanted

    rows = []
    stack = []
    pool = multiprocessing.get_context("spawn").Pool(2) if on("pool2") else None
    import graphwren as gw  # noqa: F401 - start the warm pool before the clock
    engines = []
    if on("python"):
        engines.append(("python Counter (1 process)", plain_python))
    if pool is not None:
        engines.append(("multiprocessing.Pool(2)", lambda r: pool2(r, pool)))
    file_store = "file://" + scratch_dir("wordcount-store")
    if on("graphwren"):
        engines.append(("graphwren frequencies (file)", lambda r: graphwren_frequencies(r, file_store)))
        engines.append(("graphwren reduceby (file)", lambda r: graphwren_reduceby(r, file_store)))
    if on("graphwren-redis"):
        cm = redis_server()
        redis_url = cm.__enter__()
        stack.append(cm)
        engines.append(("graphwren frequencies (redis)", lambda r: graphwren_frequencies(r, redis_url)))
    if on("graphwren-s3"):
        cm = s3_server()
        s3_url = cm.__enter__()
        stack.append(cm)
        engines.append(("graphwren frequencies (s3)", lambda r: graphwren_frequencies(r, s3_url)))
    if on("dask"):
        try:
            import dask  # noqa: F401
            engines.append(("dask.bag processes", lambda r: dask_frequencies(r, "processes")))
            from distributed import Client, LocalCluster
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            stack.append(client)
            engines.append(("dask.distributed LocalCluster(2)", lambda r: dask_frequencies(r, client)))
        except ImportError:
            print("dask not installed (pip install -e '.[bench]')")
    if on("spark"):
        try:
            from pyspark import SparkConf, SparkContext
            sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("wordcount")
                              .set("spark.ui.enabled", "false"))
            sc.setLogLevel("ERROR")
            stack.append(sc)
            engines.append(("PySpark local[2] reduceByKey", lambda r: spark_reducebykey(r, sc)))
        except Exception as exc:  # noqa: BLE001 - not installed, or no Java
            print(f"PySpark unavailable: {exc}")

    for n in sizes:
        root = make_corpus(n)
        mb = sum(os.path.getsize(p) for p in files_of(root)) / 1e6
        reference = plain_python(root)
        results = {}
        for name, fn in engines:
            seconds, answer = median_time(lambda: fn(root), repeats=args.repeats)
            if dict(answer) != dict(reference):
                raise SystemExit(f"{name} gave a different answer at {n} words")
            results[name] = seconds
            print(f"{n / 1e6:.0f}M words ({mb:.0f} MB)  {name:38s} {seconds:7.2f} s", flush=True)
        base = results.get("graphwren frequencies (file)")
        for name, seconds in results.items():
            rows.append({"words": f"{n / 1e6:.0f}M", "MB": f"{mb:.0f}", "engine": name, "median s": f"{seconds:.2f}",
                         "graphwren is x faster": f"{seconds / base:.2f}" if base else ""})
    print()
    print(table(rows, ["words", "MB", "engine", "median s", "graphwren is x faster"]))
    for item in stack:
        for closer in ("__exit__", "close", "stop"):
            if hasattr(item, closer):
                getattr(item, closer)(*([None] * 3 if closer == "__exit__" else []))
                break
    if pool is not None:
        pool.close()


if __name__ == "__main__":
    main()

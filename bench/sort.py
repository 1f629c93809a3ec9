"""Sort 100-byte records: graphwren against the tools a user would pick instead.

N records (10-byte random binary key, 90-byte binary value; 10M records = 1 GB)
in 16 parquet files are read, sorted by key and written as 16 parquet files
whose concatenation in file-name order is globally sorted. Engines: numpy
lexsort in one process (the machine's limit), pyarrow ``Table.sort_by``,
dask.dataframe ``sort_values`` (threads, and a 2-worker LocalCluster),
PySpark local[2] ``orderBy`` and graphwren ``Bag.sort`` (file shuffle, redis
shuffle, S3 storage on a moto server). The clock covers read, sort and write.
Every run's output is checked outside the clock: record count, keys in order
across the files, and rows equal to the numpy answer (random 80-bit keys are
unique, which the reference checks, so the sorted order is unique).

    python bench/sort.py [--records 10_000_000] [--files 16] [--repeat 3] [--only numpy,graphwren] [--skip-slow]
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import statistics
import sys
import time
import urllib.parse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import redis_server, s3_server, scratch_dir, table  # noqa: E402

KEY, VALUE = 10, 90
KEY_PARTS = np.dtype([("hi", ">u8"), ("lo", ">u2")])  # a 10-byte key as two big-endian ints
ENGINES = ["numpy", "pyarrow", "dask-threads", "dask-cluster", "spark",
           "graphwren-file", "graphwren-redis", "graphwren-s3"]
SLOW = {"dask-cluster", "graphwren-s3"}
NOTES = []  # printed under the table


# -- data --------------------------------------------------------------------------------
def binary_array(mat: np.ndarray) -> pa.Array:
    """A pa.binary array over the rows of a C-contiguous (n, width) uint8 matrix, no copy."""
    n, width = mat.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                 pa.py_buffer(np.ascontiguousarray(mat))])


def fixed(col, width: int) -> np.ndarray:
    """The values of a binary column whose values are all ``width`` bytes, as an (n, width) uint8 matrix."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    mats = []
    for arr in chunks:
        if arr.null_count:
            raise ValueError("null keys or values")
        if pa.types.is_fixed_size_binary(arr.type):
            data = np.frombuffer(arr.buffers()[1], np.uint8)
            mats.append(data[arr.offset * width:(arr.offset + len(arr)) * width].reshape(-1, width))
            continue
        if not pa.types.is_large_binary(arr.type):
            arr = arr.cast(pa.binary())
        otype = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
        off = np.frombuffer(arr.buffers()[1], otype)[arr.offset:arr.offset + len(arr) + 1]
        if len(arr) and not (np.diff(off) == width).all():
            raise ValueError(f"values are not all {width} bytes")
        mats.append(np.frombuffer(arr.buffers()[2], np.uint8)[off[0]:off[-1]].reshape(-1, width))
    return mats[0] if len(mats) == 1 else np.concatenate(mats)


def make_input(records: int, files: int) -> list[str]:
    """``files`` parquet files of random records (written once per size, then reused)."""
    root = os.path.join(scratch_dir("sort"), f"in-{records}-{files}")
    paths = [os.path.join(root, f"part.{i:05d}.parquet") for i in range(files)]
    if os.path.exists(os.path.join(root, "complete")):
        return paths
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(records)
    bounds = np.linspace(0, records, files + 1).astype(np.int64)
    for path, lo, hi in zip(paths, bounds[:-1], bounds[1:]):
        n = int(hi - lo)
        keys = np.frombuffer(rng.bytes(n * KEY), np.uint8).reshape(n, KEY)
        values = np.frombuffer(rng.bytes(n * VALUE), np.uint8).reshape(n, VALUE)
        pq.write_table(pa.table({"key": binary_array(keys), "value": binary_array(values)}), path)
    open(os.path.join(root, "complete"), "w").close()
    return paths


def in_order(keys: np.ndarray, strict: bool = False) -> bool:
    parts = np.ascontiguousarray(keys).view(KEY_PARTS).ravel()
    hi, lo = parts["hi"], parts["lo"]
    later = lo[1:] > lo[:-1] if strict else lo[1:] >= lo[:-1]
    return bool(np.all((hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & later)))


def write_slices(out: str, files: int, columns) -> list[str]:
    """Write ``files`` consecutive slices; ``columns(lo, hi)`` gives each slice as a pa.Table."""
    os.makedirs(out, exist_ok=True)
    nrows = columns(None, None)
    bounds = np.linspace(0, nrows, files + 1).astype(np.int64)
    paths = []
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        paths.append(os.path.join(out, f"part.{i:05d}.parquet"))
        pq.write_table(columns(int(lo), int(hi)), paths[-1])
    return paths


# -- engines: each maps (input paths, output dir) -> output files in order -----------------
def numpy_sorted(paths):
    tables = [pq.read_table(p) for p in paths]
    keys = np.concatenate([fixed(t["key"], KEY) for t in tables])
    values = np.concatenate([fixed(t["value"], VALUE) for t in tables])
    parts = keys.view(KEY_PARTS).ravel()
    order = np.lexsort((parts["lo"], parts["hi"]))
    # gather whole rows as one void item each (twice as fast as fancy-indexing (n, 90) uint8)
    take = lambda m: m.view(f"V{m.shape[1]}").ravel()[order].view(np.uint8).reshape(m.shape)  # noqa: E731
    return take(keys), take(values)


def numpy_engine(paths, out, files):
    keys, values = numpy_sorted(paths)
    return write_slices(out, files, lambda lo, hi: len(keys) if lo is None else pa.table(
        {"key": binary_array(keys[lo:hi]), "value": binary_array(values[lo:hi])}))


def pyarrow_engine(paths, out, files):
    t = pa.concat_tables([pq.read_table(p) for p in paths]).sort_by("key")
    return write_slices(out, files, lambda lo, hi: t.num_rows if lo is None else t.slice(lo, hi - lo))


def _dask_name(i: int) -> str:
    return f"part.{i:05d}.parquet"


def dask_engine(paths, out, files, scheduler):
    import dask
    import dask.dataframe as dd
    # dtype_backend="pyarrow": with the default object dtype, sort_values cannot sort bytes
    # (meta inference fails: '<=' not supported between instances of 'object' and 'object').
    df = dd.read_parquet(paths, dtype_backend="pyarrow")
    # Without a Client dask shuffles through "disk" (partd); the LocalCluster's Client, once it
    # exists, would make p2p the default for the threaded runs too, so name the default here.
    shuffle = {"dataframe.shuffle.method": "disk"} if scheduler == "threads" else {}
    with dask.config.set(scheduler=scheduler, **shuffle):
        df.sort_values("key", npartitions=files).to_parquet(out, write_index=False, name_function=_dask_name)
    return sorted(glob.glob(os.path.join(out, "*.parquet")))


def spark_engine(paths, out, files, spark):
    spark.read.parquet(*paths).orderBy("key").write.mode("overwrite").parquet(out)
    return sorted(glob.glob(os.path.join(out, "part-*.parquet")))


def graphwren_engine(paths, out, files, settings):
    import graphwren as gw
    urls = (gw.bag.read_parquet(paths).sort(key="key", npartitions=files)
            .to_parquet(out, workers=2, progress=False, **settings))
    return [urllib.parse.urlparse(u).path if u.startswith("file://") else u for u in urls]


# -- checking and timing -----------------------------------------------------------------
def verify(files: list[str], ref_keys: np.ndarray, ref_values: np.ndarray) -> str | None:
    """None if the files hold exactly the sorted input, else what is wrong."""
    pos, last = 0, None
    for path in files:
        t = pq.read_table(path, columns=["key", "value"])
        keys, values = fixed(t["key"], KEY), fixed(t["value"], VALUE)
        if len(keys) == 0:
            continue
        if not in_order(keys) or (last is not None and bytes(last) > bytes(keys[0])):
            return f"keys out of order in or before {os.path.basename(path)}"
        if pos + len(keys) > len(ref_keys):
            return f"more than {len(ref_keys)} records"
        if not (np.array_equal(keys, ref_keys[pos:pos + len(keys)])
                and np.array_equal(values, ref_values[pos:pos + len(keys)])):
            return f"records differ from the input in {os.path.basename(path)}"
        pos, last = pos + len(keys), keys[-1]
    return None if pos == len(ref_keys) else f"{pos} records, expected {len(ref_keys)}"


def measure(run, out: str, repeat: int, warmup: int, ref) -> tuple[float, int]:
    """Median seconds of ``run(out)`` and the number of files it wrote; every run verified."""
    times, nfiles = [], 0
    for i in range(warmup + repeat):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        files = run(out)
        seconds = time.perf_counter() - t0
        wrong = verify(files, *ref)
        if wrong:
            raise AssertionError(f"wrong output: {wrong}")
        nfiles = len(files)
        if i >= warmup:
            times.append(seconds)
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times), nfiles


# -- setup of the engines that need a server or a session ---------------------------------
def add_engines(stack: contextlib.ExitStack, wanted: set[str], files: int) -> dict:
    """name -> (label, run(paths, out)); an engine that cannot start maps to the reason."""
    engines = {}
    if "numpy" in wanted:
        engines["numpy"] = ("numpy lexsort, 1 process", lambda p, o: numpy_engine(p, o, files))
    if "pyarrow" in wanted:
        engines["pyarrow"] = ("pyarrow Table.sort_by", lambda p, o: pyarrow_engine(p, o, files))
    if wanted & {"dask-threads", "dask-cluster"}:
        try:
            import dask.dataframe  # noqa: F401
            NOTES.append("dask.dataframe reads with dtype_backend='pyarrow' and sorts the binary key as is: "
                         "with the default object dtype its sort_values fails on bytes (meta inference). "
                         "Shuffle: 'disk' (the default without a Client) on threads, p2p on the LocalCluster.")
            if "dask-threads" in wanted:
                engines["dask-threads"] = ("dask.dataframe sort_values, threads",
                                           lambda p, o: dask_engine(p, o, files, "threads"))
            if "dask-cluster" in wanted:
                from distributed import Client, LocalCluster
                cluster = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                           dashboard_address=None))
                client = stack.enter_context(Client(cluster))
                engines["dask-cluster"] = ("dask.dataframe sort_values, LocalCluster(2)",
                                           lambda p, o: dask_engine(p, o, files, client))
        except Exception as exc:  # noqa: BLE001 - not installed
            engines["dask-threads"] = engines["dask-cluster"] = f"dask unavailable: {exc!r}"
    if "spark" in wanted:
        try:
            from pyspark.sql import SparkSession
            spark = (SparkSession.builder.master("local[2]").appName("bench-sort")
                     .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                     .config("spark.driver.memory", "4g").config("spark.sql.shuffle.partitions", str(files))
                     .config("spark.sql.adaptive.coalescePartitions.enabled", "false").getOrCreate())
            spark.sparkContext.setLogLevel("ERROR")
            stack.callback(spark.stop)
            NOTES.append(f"PySpark {spark.version}: local[2], driver memory 4g, {files} shuffle partitions, "
                         "AQE partition coalescing off (so it writes one file per partition).")
            engines["spark"] = ("PySpark local[2] orderBy", lambda p, o: spark_engine(p, o, files, spark))
        except Exception as exc:  # noqa: BLE001 - not installed, or no Java
            engines["spark"] = f"PySpark unavailable: {str(exc).splitlines()[0] if str(exc) else repr(exc)}"
    gw_wanted = [n for n in ENGINES if n.startswith("graphwren") and n in wanted]
    if gw_wanted:
        try:
            import graphwren as gw  # noqa: F401 - starts the warm pool before any clock
            if not hasattr(gw.bag.Bag, "sort"):
                raise RuntimeError("graphwren has no Bag.sort yet")
        except Exception as exc:  # noqa: BLE001
            return {**engines, **{n: f"graphwren unavailable: {exc}" for n in gw_wanted}}
        store = "file://" + scratch_dir("sort-store")

        def redis_settings():
            return dict(storage=store, shuffle_storage=stack.enter_context(redis_server()))

        def s3_settings():
            url = stack.enter_context(s3_server())
            return dict(storage=url, shuffle_storage=url)

        configs = {"graphwren-file": ("graphwren Bag.sort, file storage + file shuffle",
                                      lambda: dict(storage=store, shuffle_storage=store)),
                   "graphwren-redis": ("graphwren Bag.sort, file storage + redis shuffle", redis_settings),
                   "graphwren-s3": ("graphwren Bag.sort, S3 (moto) storage + shuffle", s3_settings)}
        for name in gw_wanted:
            label, settings_of = configs[name]
            try:
                settings = settings_of()
            except Exception as exc:  # noqa: BLE001 - no redis-server, no moto
                engines[name] = f"cannot start its server: {exc}"
                continue
            engines[name] = (label, lambda p, o, s=settings: graphwren_engine(p, o, files, s))
    return engines


def explain_graphwren(paths, files) -> None:
    try:
        import graphwren as gw
        store = "file://" + scratch_dir("sort-store")
        plan = gw.bag.read_parquet(paths).sort(key="key", npartitions=files).explain(storage=store,
                                                                                    shuffle_storage=store)
    except Exception as exc:  # noqa: BLE001
        print(f"graphwren explain failed: {exc!r}")
        return
    print("graphwren plan:\n  " + "\n  ".join(str(plan).splitlines()))
    if "columnar" not in str(plan).lower():
        NOTES.append("graphwren's plan does not mention 'columnar': the sort ran on the record path.")


# -- the run -------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=lambda s: int(float(s)), default=10_000_000)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per engine; the median is reported")
    ap.add_argument("--warmup", type=int, default=1, help="untimed (but verified) runs before those")
    ap.add_argument("--only", default="all", help=f"comma list from {ENGINES}, or prefixes (dask, graphwren)")
    ap.add_argument("--skip-slow", action="store_true", help=f"skip {sorted(SLOW)}")
    ap.add_argument("--s3-records", type=lambda s: int(float(s)), default=0,
                    help="fewer records for graphwren-s3 if moto (one Python process) is slow; 0: --records")
    args = ap.parse_args(argv)
    chosen = ENGINES if args.only == "all" else [
        n for n in ENGINES if any(n == w or n.split("-")[0] == w for w in args.only.split(","))]
    wanted = {n for n in chosen if not (args.skip_slow and n in SLOW)}
    sizes = {n: args.records for n in wanted}
    if "graphwren-s3" in wanted and args.s3_records:
        sizes["graphwren-s3"] = min(args.records, args.s3_records)

    inputs, refs = {}, {}
    for n in sorted(set(sizes.values())):
        t0 = time.perf_counter()
        inputs[n] = make_input(n, args.files)
        keys, values = numpy_sorted(inputs[n])
        if not in_order(keys, strict=True):
            raise SystemExit(f"duplicate keys in the {n}-record input: choose another seed")
        refs[n] = (keys, values)
        print(f"input: {n:,} records ({n * (KEY + VALUE) / 1e6:,.0f} MB) in {args.files} files "
              f"under {os.path.dirname(inputs[n][0])}, reference ready in {time.perf_counter() - t0:.1f} s",
              flush=True)

    rows, results = [], {}
    with contextlib.ExitStack() as stack:
        engines = add_engines(stack, wanted, args.files)
        gw_ready = [k for k, v in engines.items() if isinstance(v, tuple) and k.startswith("graphwren")]
        if gw_ready:
            explain_graphwren(inputs[sizes[gw_ready[0]]], args.files)
        out_root = os.path.join(scratch_dir("sort"), "out")
        for name in [n for n in ENGINES if n in engines]:
            n = sizes[name]
            if isinstance(engines[name], str):
                print(f"{name:16s} skipped: {engines[name]}", flush=True)
                rows.append({"engine": name, "records": f"{n / 1e6:g}M", "median s": "-",
                             "MB/s": "-", "note": engines[name]})
                continue
            label, run = engines[name]
            try:
                seconds, nfiles = measure(lambda out: run(inputs[n], out), os.path.join(out_root, name),
                                          args.repeat, args.warmup, refs[n])
            except Exception as exc:  # noqa: BLE001 - report and carry on with the other engines
                reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
                print(f"{name:16s} FAILED: {reason}", flush=True)
                rows.append({"engine": label, "records": f"{n / 1e6:g}M", "median s": "-", "MB/s": "-",
                             "note": f"failed: {reason}"[:160]})
                continue
            mbs = n * (KEY + VALUE) / 1e6 / seconds
            results[name] = (seconds, mbs, n)
            print(f"{name:16s} {n / 1e6:g}M records  {seconds:7.2f} s  {mbs:6.1f} MB/s  {nfiles} files, verified",
                  flush=True)
            rows.append({"engine": label, "records": f"{n / 1e6:g}M", "median s": f"{seconds:.2f}",
                         "MB/s": f"{mbs:.1f}", "files": nfiles})
    base = results.get("numpy")
    for row, name in zip(rows, [n for n in ENGINES if n in engines]):
        if base and name in results and results[name][2] == base[2]:
            row["vs numpy"] = f"{results[name][1] / base[1]:.2f}x"
    print()
    print(table(rows, ["engine", "records", "median s", "MB/s", "vs numpy", "files", "note"]))
    gwf = results.get("graphwren-file")
    if gwf:
        print(f"\ngraphwren (file): {gwf[1]:.1f} MB/s (target >= 90 MB/s)")
        for peer, target in (("dask-threads", 1.5), ("dask-cluster", 1.5), ("spark", 2.0)):
            if peer in results and results[peer][2] == gwf[2]:
                print(f"  {results[peer][0] / gwf[0]:.2f}x {peer} (target >= {target}x)")
    for note in NOTES:
        print(f"note: {note}")
    print("note: numpy is the one-process limit: its lexsort and gathers use one core, the engines use two.")
    print("note: the clock covers read + sort + write; parquet files as each engine writes them by "
          "default (snappy); the input sits in the page cache after the first run.")
    if any(r.get("note", "").startswith("failed") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

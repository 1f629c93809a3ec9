"""Blocked matmul C = A @ B (float64): graphwren vs numpy's single call vs dask.array.

    .venv/bin/python bench/matmul.py                       # n=4096/1024 and n=8192/2048, file + redis, dask
    .venv/bin/python bench/matmul.py --sizes 4096:1024 --no-dask
    .venv/bin/python bench/matmul.py --memory 16384:2048   # driver and worker peak RSS with .store()

Inputs are persisted before the clock starts: graphwren's in storage
(``store`` then ``load``), dask's in memory (``persist``). graphwren's result
is stored to storage (and once computed into the driver). GFLOPS = 2 n^3 / s.
Not a timed test: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import redis_server, table  # noqa: E402


def gflops(n, seconds):
    return 2 * n**3 / seconds / 1e9


def rss_peak_mb(pid=None) -> float:
    """VmHWM (peak resident set) of a process, in MB."""
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid=None) -> None:
    try:  # Linux >= 4.0: writing 5 to clear_refs resets VmHWM
        with open(f"/proc/{pid or 'self'}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def worker_pids() -> list[int]:
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == me:
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        cmd = f.read()
                        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
                            out.append(int(d))
            except OSError:
                pass
    return out


def run_graphwren(n, c, storage, rows, repeats, compute_too=True):
    import graphwren.collections.array as ga
    tag = f"gw-{os.getpid()}-{n}"
    base = storage if storage.startswith("redis") else storage.rstrip("/")

    def url(name):
        return f"{base}?prefix={tag}-{name}" if base.startswith("redis") else f"{base}/{tag}/{name}"

    settings = {"storage": storage, "progress": False}
    # raw zarr chunks (no zstd): what the timed store wrote before arrays were zarr, so runs stay comparable
    ga.random((n, n), chunks=c, seed=1).store(url("A"), compressors=None, **settings)
    ga.random((n, n), chunks=c, seed=2).store(url("B"), compressors=None, **settings)
    A, B = ga.load(url("A")), ga.load(url("B"))
    C = A @ B
    kind = storage.split(":", 1)[0]
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        C.store(url("C"), compressors=None, **settings)
        dt = time.perf_counter() - t0
        if r:  # the first run warms the worker pool and the page cache
            times.append(dt)
    best = min(times)
    rows.append({"system": f"graphwren, {kind} storage, .store()", "n": n, "block": c,
                 "seconds": f"{best:.2f}", "GFLOPS": f"{gflops(n, best):.1f}"})
    if compute_too:
        t0 = time.perf_counter()
        out = C.compute(**settings)
        dt = time.perf_counter() - t0
        rows.append({"system": f"graphwren, {kind} storage, .compute()", "n": n, "block": c,
                     "seconds": f"{dt:.2f}", "GFLOPS": f"{gflops(n, dt):.1f}"})
        check = out[:64] if n > 64 else out
        a = A[:64].compute(**settings) if n > 64 else A.compute(**settings)
        np.testing.assert_allclose(check, a @ B.compute(**settings) if n <= 2048 else
                                   a @ ga.load(url("B")).compute(**settings), rtol=1e-8)
        del out
    from graphwren.runtime.storage import open_store
    for name in "ABC":
        open_store(url(name)).delete("")


def run_numpy(n, rows, repeats):
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)), rng.random((n, n))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    rows.append({"system": "numpy (one call, all cores)", "n": n, "block": "-", "seconds": f"{best:.2f}",
                 "GFLOPS": f"{gflops(n, best):.1f}"})


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_dask(n, c, rows, repeats):
    try:
        import dask
        import dask.array as da
    except ImportError:
        print("dask not installed: skipping (pip install 'dask[complete]' distributed)", file=sys.stderr)
        return
    A = da.random.default_rng(1).random((n, n), chunks=c) if hasattr(da.random, "default_rng") else \
        da.random.random((n, n), chunks=c)
    B = da.random.random((n, n), chunks=c)
    for scheduler in ("threads", "processes"):
        with dask.config.set(scheduler=scheduler):
            Ap, Bp = dask.persist(A, B) if scheduler == "threads" else (A.persist(scheduler="threads"),
                                                                       B.persist(scheduler="threads"))
            C = Ap @ Bp
            C.compute()
            best = min(_timed(lambda: C.compute()) for _ in range(repeats))
            rows.append({"system": f"dask.array, {scheduler} scheduler", "n": n, "block": c,
                         "seconds": f"{best:.2f}", "GFLOPS": f"{gflops(n, best):.1f}"})
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        Ap, Bp = client.persist([A, B])
        C = Ap @ Bp
        C.compute()
        best = min(_timed(lambda: C.compute()) for _ in range(repeats))
        rows.append({"system": "dask.distributed LocalCluster(2)", "n": n, "block": c,
                     "seconds": f"{best:.2f}", "GFLOPS": f"{gflops(n, best):.1f}"})


def run_memory(n, c, storage):
    import graphwren.collections.array as ga
    tag = f"gw-mem-{os.getpid()}"
    base = storage.rstrip("/")
    settings = {"storage": storage, "progress": False}
    ga.random((16, 16), chunks=8, seed=0).compute(**settings)  # start the pool
    for pid in worker_pids():
        reset_peak(pid)
    reset_peak()
    t0 = time.perf_counter()
    ga.random((n, n), chunks=c, seed=1).store(f"{base}/{tag}/A", **settings)
    ga.random((n, n), chunks=c, seed=2).store(f"{base}/{tag}/B", **settings)
    t1 = time.perf_counter()
    C = ga.load(f"{base}/{tag}/A") @ ga.load(f"{base}/{tag}/B")
    C.store(f"{base}/{tag}/C", **settings)
    t2 = time.perf_counter()
    peaks = [rss_peak_mb(p) for p in worker_pids()]
    print(f"\nmemory, n={n}, blocks {c}, storage {storage}: inputs stored in {t1 - t0:.1f}s, "
          f"C.store() {t2 - t1:.1f}s ({gflops(n, t2 - t1):.1f} GFLOPS)")
    print(f"  driver peak RSS: {rss_peak_mb():.0f} MB")
    print(f"  worker peak RSS: {', '.join(f'{p:.0f} MB' for p in peaks)}")
    print(f"  projected peak/task (explain): "
          f"{[l for l in C.explain(**settings).splitlines() if 'peak memory/task' in l][0].strip()}")
    from graphwren.runtime.storage import open_store
    open_store(f"{base}/{tag}").delete("")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4096:1024,8192:2048", help="n:block pairs")
    p.add_argument("--storage", default="file,redis", help="file and/or redis")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--memory", default=None, help="n:block for the memory run (e.g. 16384:2048)")
    args = p.parse_args()
    workdir = tempfile.mkdtemp(prefix="gw-bench-matmul-")
    rows = []
    try:
        sizes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",") if s]
        kinds = args.storage.split(",")
        for n, c in sizes:
            run_numpy(n, rows, args.repeats)
            if "file" in kinds:
                run_graphwren(n, c, f"file://{workdir}", rows, args.repeats)
            if "redis" in kinds and shutil.which("redis-server"):
                with redis_server() as rurl:
                    run_graphwren(n, c, rurl, rows, args.repeats, compute_too=False)
            if not args.no_dask:
                run_dask(n, c, rows, args.repeats)
        for r in rows:
            ref = next(x for x in rows if x["n"] == r["n"] and x["system"].startswith("numpy"))
            r["vs numpy"] = f"{float(r['GFLOPS']) / float(ref['GFLOPS']):.2f}x"
        print(f"\nmatmul C = A @ B, float64, {os.cpu_count()} cores, best of {args.repeats}\n")
        print(table(rows, ["system", "n", "block", "seconds", "GFLOPS", "vs numpy"]))
        if args.memory:
            n, c = (int(v) for v in args.memory.split(":"))
            run_memory(n, c, f"file://{workdir}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Per-task overhead: 1000 no-op tasks (``lambda x: x``) through each engine, on this machine.

    .venv/bin/python bench/overhead.py [--tasks 1000] [--repeats 5] [--workers 2]

Engines: graphwren's ``Executor().map`` on the local backend (file, redis and S3
storage; default batching and ``chunksize=1``), ``concurrent.futures.ProcessPoolExecutor``,
dask's processes scheduler (``dask.delayed``), dask bag, dask.distributed
``LocalCluster`` and Lithops' localhost backend when installed. Every engine is
warmed up once (pools started, workers imported) and then timed ``--repeats``
times; the table reports the median. For redis and S3 this starts its own
``redis-server`` and moto server on loopback, and skips them if it cannot.
This is not a test: it prints a markdown table at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import redis_server, s3_server  # noqa: E402


def noop(x):
    return x


# -- engines: each returns (setup, run_once, teardown) ------------------------------------------
def engine_graphwren(storage: str, workers: int, chunksize):
    import graphwren as gw
    state = {}

    def setup():
        state["ex"] = gw.Executor(storage=storage, workers=workers, progress=False)

    def run(n):
        ex = state["ex"]
        out = gw.get_all_results(ex.map(lambda x: x, range(n), chunksize=chunksize))
        ex.wait_all()  # count the job's cleanup too
        return out

    return setup, run, lambda: None


def engine_processpool(workers: int):
    state = {}

    def setup():
        state["pool"] = ProcessPoolExecutor(workers)
        list(state["pool"].map(noop, range(workers * 4)))

    def run(n):
        futures = [state["pool"].submit(noop, i) for i in range(n)]
        return [f.result() for f in futures]

    return setup, run, lambda: state["pool"].shutdown()


def engine_dask_delayed(workers: int):
    import dask
    from concurrent.futures import ProcessPoolExecutor as PPE
    state = {}

    def setup():
        # dask's processes scheduler with a pool kept warm across repeats
        state["pool"] = PPE(workers)
        list(state["pool"].map(noop, range(workers * 4)))

    def run(n):
        tasks = [dask.delayed(noop)(i) for i in range(n)]
        return list(dask.compute(*tasks, scheduler="processes", pool=state["pool"]))

    return setup, run, lambda: state["pool"].shutdown()


def engine_dask_bag(workers: int):
    import dask
    import dask.bag as db
    from concurrent.futures import ProcessPoolExecutor as PPE
    state = {}

    def setup():
        state["pool"] = PPE(workers)
        list(state["pool"].map(noop, range(workers * 4)))

    def run(n):
        bag = db.from_sequence(range(n), npartitions=n).map(noop)
        return bag.compute(scheduler="processes", pool=state["pool"])

    return setup, run, lambda: state["pool"].shutdown()


def engine_distributed(workers: int):
    state = {}

    def setup():
        from distributed import Client, LocalCluster
        state["cluster"] = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=40)
        state["client"] = Client(state["cluster"])

    def run(n):
        client = state["client"]
        return client.gather(client.map(noop, range(n), pure=False))

    def teardown():
        state["client"].close()
        state["cluster"].close()

    return setup, run, teardown


def engine_lithops(workers: int):
    import lithops
    state = {}

    def setup():
        state["ex"] = lithops.LocalhostExecutor(worker_processes=workers, log_level=None)

    def run(n):
        ex = state["ex"]
        return ex.get_result(ex.map(noop, range(n)))

    return setup, run, lambda: None


# -- the harness ---------------------------------------------------------------------------------
def measure(name, factory, n: int, repeats: int):
    try:
        setup, run, teardown = factory()
        setup()
    except ImportError as exc:
        print(f"{name:<40} not installed ({exc.name})", flush=True)
        return None
    except Exception as exc:  # noqa: BLE001 - one engine failing must not stop the others
        print(f"{name:<40} could not start: {type(exc).__name__}: {exc}", flush=True)
        return None
    try:
        expected = list(range(n))
        out = run(n)  # warm-up: workers import, caches fill
        if list(out) != expected:
            raise AssertionError(f"{name} returned wrong results")
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = run(n)
            times.append(time.perf_counter() - t)
            assert list(out) == expected
    except Exception as exc:  # noqa: BLE001
        print(f"{name:<40} failed: {type(exc).__name__}: {exc}", flush=True)
        return None
    finally:
        try:
            teardown()
        except Exception:  # noqa: BLE001
            pass
    med = statistics.median(times)
    print(f"{name:<40} median {med * 1000:8.1f} ms  {n / med:9.0f} tasks/s  "
          f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)", flush=True)
    return n / med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated engine name prefixes to skip")
    args = ap.parse_args(argv)
    n, r, w = args.tasks, args.repeats, args.workers
    skip = [s for s in args.skip.split(",") if s]

    tmp = tempfile.mkdtemp(prefix="gw-bench-")
    servers = contextlib.ExitStack()
    redis_url = s3_url = None
    try:
        try:
            redis_url = servers.enter_context(redis_server())
        except Exception as exc:  # noqa: BLE001
            print(f"redis storage skipped: {exc}")
        try:
            s3_url = servers.enter_context(s3_server())
        except Exception as exc:  # noqa: BLE001
            print(f"S3 storage skipped: {exc}")

        file_url = f"file://{tmp}/store"
        engines = [
            ("graphwren (file, default batching)", lambda: engine_graphwren(file_url, w, None)),
            ("graphwren (file, chunksize=1)", lambda: engine_graphwren(file_url, w, 1)),
        ]
        if redis_url:
            engines += [("graphwren (redis, default batching)", lambda: engine_graphwren(redis_url, w, None)),
                        ("graphwren (redis, chunksize=1)", lambda: engine_graphwren(redis_url, w, 1))]
        if s3_url:
            engines += [("graphwren (S3/moto, default batching)", lambda: engine_graphwren(s3_url, w, None)),
                        ("graphwren (S3/moto, chunksize=1)", lambda: engine_graphwren(s3_url, w, 1))]
        engines += [
            (f"ProcessPoolExecutor({w})", lambda: engine_processpool(w)),
            ("dask.delayed (processes scheduler)", lambda: engine_dask_delayed(w)),
            ("dask.bag (processes scheduler)", lambda: engine_dask_bag(w)),
            (f"dask.distributed LocalCluster({w} workers)", lambda: engine_distributed(w)),
            ("Lithops localhost", lambda: engine_lithops(w)),
        ]
        print(f"{n} no-op tasks, {w} workers, median of {r} runs after a warm-up, "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}\n", flush=True)
        rates = {}
        for name, factory in engines:
            if any(name.startswith(s) for s in skip):
                continue
            rates[name] = measure(name, factory, n, r)
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)

    base = rates.get("graphwren (file, chunksize=1)")
    print(f"\n| engine ({n} no-op tasks, {w} workers) | tasks/s | graphwren (file, chunksize=1) / engine |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        if rate is None:
            print(f"| {name} | not installed / failed | |")
        else:
            ratio = f"{base / rate:.2f}x" if base else ""
            print(f"| {name} | {rate:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

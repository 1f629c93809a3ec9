"""Blocked linear algebra (float64): graphwren vs numpy in one process vs dask.array.linalg.

    .venv/bin/python bench/linalg.py                      # the issue's sizes (needs ~16 GB free RAM)
    .venv/bin/python bench/linalg.py --scale 0.05 --repeats 1   # a quick check of every answer
    .venv/bin/python bench/linalg.py --only cholesky,qr --no-dask

Workloads and the flop counts GFLOPS uses (the usual textbook counts, not what
each library happens to execute):

* ``matmul``: C = A @ B, n = 8192, 2048 blocks: bench/matmul.py's own code
  (imported, not copied), 2 n^3 flops;
* ``xtx``: X.T @ X for X of 4M x 256 (row blocks of m/128): 2 m n^2 flops;
* ``cholesky``: L of an 8192 x 8192 SPD matrix, 2048 blocks: n^3 / 3 flops;
* ``qr``: reduced Q, R of a 4M x 128 matrix (TSQR, row blocks of m/64):
  2 m n^2 - 2 n^3 / 3 flops (Householder's count for R; every system also
  forms Q, which the count leaves out for all of them alike).

``--scale s`` multiplies the large dimension (n of the square ones, m of the
tall ones) by s. graphwren runs on the local backend with 2 workers over file
storage: its inputs are stored (zarr, uncompressed) before the clock starts
and its timed result is stored there too (for QR: Q, whose stages include the
whole TSQR tree; R is then computed untimed for the check). numpy runs one
call in this process on the same input; dask.array runs on the same input
(``da.from_array``) with its threads and processes schedulers and computes
into memory. Every result is checked against numpy's (QR up to the signs of
R's rows). Times are medians of ``--repeats`` runs after one warm-up for
graphwren (the first run starts the worker pool).

Peak memory: "planned" is the planner's projected ``peak_memory`` per task,
the largest over the job's stages (what ``explain()`` prints and the memory
bound checks); "measured" is the largest VmHWM (peak RSS) of graphwren's
worker processes over the timed runs, reset before them (Linux clear_refs):
a worker runs many tasks, so it bounds every task's peak from above. The
runtime's call stats record ru_maxrss for executor calls, not for array
stages, so this benchmark reads /proc instead.
Not a timed test: run it on a quiet machine, and quote ``uptime`` with it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import matmul as matmul_bench  # noqa: E402 - the matmul rows come from bench/matmul.py itself
from common import table  # noqa: E402
from matmul import reset_peak, rss_peak_mb  # noqa: E402


def worker_pids() -> list[int]:
    """The local backend's worker processes: children of this process started by its bootstrap_command."""
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if parent == me and b"local_worker import main" in cmd:
                out.append(int(d))
    return out

WORKLOADS = ("matmul", "xtx", "cholesky", "qr")


def flops(kind: str, m: int, n: int) -> float:
    """The flop count GFLOPS divides by (see the module docstring)."""
    return {"matmul": 2 * n**3, "xtx": 2 * m * n**2, "cholesky": n**3 / 3,
            "qr": 2 * m * n**2 - 2 * n**3 / 3}[kind]


def median_of(fn, repeats: int, warmup: int = 0):
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


class Graphwren:
    """graphwren on file storage, the local backend and 2 workers; inputs stored before the clock."""

    def __init__(self, workdir: str, workers: int):
        self.base = f"file://{workdir}"
        self.settings = {"storage": self.base, "progress": False, "workers": workers, "backend": "local"}

    def url(self, name: str) -> str:
        return f"{self.base}/gw-{os.getpid()}/{name}"

    def put(self, name: str, value: np.ndarray, chunks):
        import graphwren.array as ga
        ga.from_array(value, chunks=chunks).store(self.url(name), compressors=None, **self.settings)
        return ga.load(self.url(name))

    def planned_peak(self, arr) -> tuple[int, int, list]:
        """(largest projected peak/task in bytes, stages, [(label, tasks)]) of the plan computing ``arr``."""
        from graphwren import config, planner
        plan = planner.plan(arr.expr, config.resolve(self.settings), explaining=True).plan
        peaks = [s.peak_memory for s in plan.stages if s.peak_memory is not None]
        return max(peaks), len(plan.stages), [(s.label, s.ntasks) for s in plan.stages]

    def timed_store(self, arr, name: str, repeats: int) -> tuple[float, float]:
        """Median seconds of ``arr.store()`` (after a warm-up) and the workers' peak RSS (MB) over the timed runs."""
        arr.store(self.url(name), compressors=None, **self.settings)   # warm-up: starts the pool, fills the cache
        pids = worker_pids()
        for pid in pids:
            reset_peak(pid)
        seconds, _ = median_of(lambda: arr.store(self.url(name), compressors=None, **self.settings), repeats)
        # a worker the pool killed (a speculative backup's, once the original committed) is a zombie with
        # no VmHWM: measure the live ones, and say when one was replaced
        live = [v for v in (_peak_or_nan(p) for p in worker_pids()) if v == v]
        if set(worker_pids()) != set(pids):
            print(f"{name}: the worker pool replaced a worker during the timed runs", file=sys.stderr)
        return seconds, max(live, default=float("nan"))

    def load(self, name: str):
        import graphwren.array as ga
        return ga.load(self.url(name))

    def clear(self):
        from graphwren.runtime.storage import open_store
        open_store(f"{self.base}/gw-{os.getpid()}").delete("")


def _peak_or_nan(pid: int) -> float:
    try:
        return rss_peak_mb(pid)
    except OSError:
        return float("nan")


DASK_SCHEDULERS = ["threads", "processes"]


def dask_rows(kind, fn, x_np, chunks, check, repeats, m, n, rows):
    """dask.array on ``x_np`` with the threads and processes schedulers; ``fn(dask array)`` -> dask result(s)."""
    import dask
    import dask.array as da
    x = da.from_array(x_np, chunks=chunks)
    for scheduler in DASK_SCHEDULERS:
        out = fn(x)
        seconds, got = median_of(lambda: dask.compute(*out, scheduler=scheduler) if isinstance(out, tuple)
                                 else out.compute(scheduler=scheduler), repeats)
        check(got)
        rows.append(row(kind, f"dask.array, {scheduler} scheduler", m, n, chunks, seconds))
        del got


def row(kind, system, m, n, block, seconds, planned=None, measured=None, stages=None):
    r = {"workload": kind, "system": system, "shape": f"{m} x {n}", "block": block,
         "seconds": f"{seconds:.2f}", "GFLOPS": f"{flops(kind, m, n) / seconds / 1e9:.1f}",
         "_gflops": flops(kind, m, n) / seconds / 1e9}
    if planned is not None:
        r["peak/task planned"] = f"{planned / 2**20:.0f} MB"
    if measured is not None:
        r["worker peak RSS"] = f"{measured:.0f} MB"
    if stages is not None:
        r["stages/tasks"] = stages
    return r


def run_matmul(n, block, workdir, repeats, with_dask, rows):
    """bench/matmul.py's rows (numpy, graphwren file .store() and .compute(), dask), relabelled."""
    got = []
    matmul_bench.run_numpy(n, got, repeats)
    matmul_bench.run_graphwren(n, block, f"file://{workdir}", got, repeats)   # checks C[:64] against numpy
    if with_dask:
        try:   # its threads and processes rows come first; its LocalCluster row needs distributed
            matmul_bench.run_dask(n, block, got, repeats)
        except ImportError as exc:
            print(f"matmul: dask.distributed row skipped ({exc.__class__.__name__}: distributed not installed)",
                  file=sys.stderr)
    for r in got:
        if r["system"].startswith("dask.distributed"):
            continue
        seconds = max(float(r["seconds"]), 0.005)   # matmul.py prints 2 decimals: tiny --scale runs round to 0
        numpy_row = r["system"].startswith("numpy")
        rows.append(row("matmul", "numpy, one call" if numpy_row else r["system"] + " (best of repeats)",
                        n, n, "-" if numpy_row else block, seconds))


def spd(n: int) -> np.ndarray:
    """A symmetric, strictly diagonally dominant (so positive definite) matrix, cheap to make."""
    rng = np.random.default_rng(7)
    a = rng.random((n, n))
    a += a.T
    a[np.diag_indices(n)] += 2 * n
    return a


def run_xtx(m, n, gw: Graphwren, repeats, with_dask, rows):
    import graphwren.array as ga
    # 32k x 256 blocks (64 MB): with 128k-row blocks the planner projects 3.7 GiB per k-split task (2 GiB bound)
    rb = max(n, m // 128)
    ga.random((m, n), chunks=(rb, n), seed=3).store(gw.url("X"), compressors=None, **gw.settings)
    X = gw.load("X")
    G = X.T @ X
    planned, nstages, stages = gw.planned_peak(G)
    seconds, rss = gw.timed_store(G, "XtX", repeats)
    got = gw.load("XtX").compute(**gw.settings)
    x = X.compute(**gw.settings)             # the same X for numpy and dask
    t, ref = median_of(lambda: x.T @ x, repeats)
    rows.append(row("xtx", "numpy, one call", m, n, "-", t))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    rows.append(row("xtx", "graphwren, file storage, .store()", m, n, f"{rb} x {n}", seconds, planned, rss,
                    _stage_summary(stages)))
    if with_dask:
        dask_rows("xtx", lambda d: d.T @ d, x, (rb, n), lambda v: np.testing.assert_allclose(v, ref, rtol=1e-9),
                  repeats, m, n, rows)
    del x, X


def run_cholesky(n, block, gw: Graphwren, repeats, with_dask, rows):
    import graphwren.array as ga
    a = spd(n)
    A = gw.put("A", a, block)
    L = ga.linalg.cholesky(A, lower=True)
    planned, nstages, stages = gw.planned_peak(L)
    seconds, rss = gw.timed_store(L, "L", repeats)
    t, ref = median_of(lambda: np.linalg.cholesky(a), repeats)
    rows.append(row("cholesky", "numpy, one call", n, n, "-", t))
    got = gw.load("L").compute(**gw.settings)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    del got
    rows.append(row("cholesky", "graphwren, file storage, .store()", n, n, block, seconds, planned, rss,
                    _stage_summary(stages)))
    if with_dask:
        import dask.array as da

        def check(v):
            np.testing.assert_allclose(v, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
        dask_rows("cholesky", lambda d: da.linalg.cholesky(d, lower=True), a, block, check, repeats, n, n, rows)


def _signs(r):
    s = np.sign(np.diag(r))
    s[s == 0] = 1
    return s


def run_qr(m, n, gw: Graphwren, repeats, with_dask, rows):
    import graphwren.array as ga
    rb = max(n, m // 64)    # 64k x 128 blocks (64 MB): with 256k-row blocks a QR task projects 2.2 GiB (2 GiB bound)
    ga.random((m, n), chunks=(rb, n), seed=5).store(gw.url("Y"), compressors=None, **gw.settings)
    Y = gw.load("Y")
    q, r = ga.linalg.qr(Y)
    planned, nstages, stages = gw.planned_peak(q)
    seconds, rss = gw.timed_store(q, "Q", repeats)
    r_gw = r.compute(**gw.settings)
    head = min(m, 65536)
    q_head = gw.load("Q")[:head].compute(**gw.settings)
    y = Y.compute(**gw.settings)
    t, (q_ref, r_ref) = median_of(lambda: np.linalg.qr(y), repeats)
    rows.append(row("qr", "numpy, one call", m, n, "-", t))
    q_ref_head, s_ref = np.array(q_ref[:head]), _signs(r_ref)
    del q_ref

    def check(qv, rv, qhead=None):
        # QR is unique up to the signs of R's rows: normalise both to a positive diagonal
        s = _signs(rv)
        np.testing.assert_allclose(rv * s[:, None], r_ref * s_ref[:, None], rtol=1e-8, atol=1e-8 * abs(r_ref).max())
        qh = qv[:head] if qhead is None else qhead
        np.testing.assert_allclose(qh * s, q_ref_head * s_ref, rtol=1e-6, atol=1e-9)
    check(None, r_gw, q_head)
    rows.append(row("qr", "graphwren, file storage, .store() of Q", m, n, f"{rb} x {n}", seconds, planned, rss,
                    _stage_summary(stages)))
    if with_dask:
        import dask.array as da
        dask_rows("qr", lambda d: da.linalg.qr(d), y, (rb, n), lambda v: check(*v), repeats, m, n, rows)
    del y


def _stage_summary(stages):
    return f"{len(stages)} / {sum(t for _, t in stages)}"


def ratios(rows):
    for r in rows:
        ref = next(x for x in rows if x["workload"] == r["workload"] and x["system"].startswith("numpy"))
        r["vs numpy"] = f"{r['_gflops'] / ref['_gflops']:.2f}x"
        if r["system"].startswith("graphwren"):
            peers = [x for x in rows if x["workload"] == r["workload"] and x["system"].startswith("dask.array")]
            if peers:
                best = max(peers, key=lambda x: x["_gflops"])
                r["vs best dask"] = f"{r['_gflops'] / best['_gflops']:.2f}x"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies n (square) and m (tall-skinny)")
    p.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {WORKLOADS}")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--dask-schedulers", default="threads,processes", help="dask.array's schedulers to run")
    args = p.parse_args(argv)
    DASK_SCHEDULERS[:] = [s for s in args.dask_schedulers.split(",") if s]
    only = [w for w in args.only.split(",") if w]
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        raise SystemExit(f"--only: unknown workload(s) {bad}; known: {list(WORKLOADS)}")
    sq = max(256, int(8192 * args.scale) // 256 * 256)      # square n, 4 blocks a side
    tall = max(4096, int(4 * 2**20 * args.scale) // 256 * 256)
    workdir = tempfile.mkdtemp(prefix="gw-bench-linalg-")
    gw = Graphwren(workdir, args.workers)
    rows = []
    try:
        if "matmul" in only:
            run_matmul(sq, sq // 4, workdir, args.repeats, not args.no_dask, rows)
        if "xtx" in only:
            run_xtx(tall, 256, gw, args.repeats, not args.no_dask, rows)
        if "cholesky" in only:
            run_cholesky(sq, sq // 4, gw, args.repeats, not args.no_dask, rows)
        if "qr" in only:
            run_qr(tall, 128, gw, args.repeats, not args.no_dask, rows)
        gw.clear()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratios(rows)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"\nblocked linear algebra, float64, {os.cpu_count()} cores, median of {args.repeats}, "
          f"load average {' '.join(load)}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; all checked "
          "against numpy\n")
    print(table(rows, ["workload", "system", "shape", "block", "seconds", "GFLOPS", "vs numpy", "vs best dask",
                       "peak/task planned", "worker peak RSS", "stages/tasks"]))


if __name__ == "__main__":
    main()

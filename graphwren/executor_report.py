"""Executor.plot and Executor.job_summary: what the calls' stats say, as PNGs (matplotlib) and rows.

Both read only the per-call stats the futures carry (Lithops' names:
``host_submit_tstamp``, ``worker_func_start_tstamp``, ``worker_func_end_tstamp``,
``host_result_done_tstamp``), so they need no storage and no running job.
matplotlib is an optional extra (``pip install graphwren[plot]``), imported
only here and only when ``plot`` is called.
"""
from __future__ import annotations

import csv
import os
import time

# AWS Lambda's x86 list prices (us-east-1): per GB-second of duration, and per request.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1_000_000


def _paths(dst: str | None) -> tuple[str, str]:
    """Lithops' file names: '{dst}_timeline.png' and '{dst}_histogram.png' (dst None: ./plots/{time})."""
    if dst is None:
        base = os.path.join(os.getcwd(), "plots", str(int(time.time())))
    else:
        base = os.path.realpath(os.path.expanduser(dst))
    os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
    return f"{base}_timeline.png", f"{base}_histogram.png"


def plot(futures: list, dst: str | None, figsize=(10, 6)) -> tuple[str, str] | None:
    """Write the timeline and the concurrency histogram of the finished calls; their paths (None: none finished)."""
    stats = [f.stats for f in futures if f.done() and not f.cancelled() and f.exception() is None
             and "worker_func_start_tstamp" in f.stats]
    if not stats:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")   # files only: never a window, never a display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ModuleNotFoundError("Executor.plot() needs matplotlib: pip install 'graphwren[plot]'") from None
    t0 = min(s.get("host_submit_tstamp", s["worker_func_start_tstamp"]) for s in stats)
    timeline, histogram = _paths(dst)

    fig, ax = plt.subplots(figsize=figsize)
    y = range(len(stats))
    ax.hlines(list(y), [s["worker_func_start_tstamp"] - t0 for s in stats],
              [s["worker_func_end_tstamp"] - t0 for s in stats], color="tab:blue", linewidth=3, label="running")
    ax.scatter([s.get("host_submit_tstamp", t0) - t0 for s in stats], list(y), s=6, color="tab:gray",
               label="submitted")
    done = [(i, s["host_result_done_tstamp"] - t0) for i, s in enumerate(stats) if "host_result_done_tstamp" in s]
    if done:
        ax.scatter([d for _, d in done], [i for i, _ in done], s=6, color="tab:green", label="result in driver")
    ax.set_xlabel("Execution Time (sec)")
    ax.set_ylabel("Function Call")
    ax.set_title(f"{len(stats)} calls")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(timeline)
    plt.close(fig)

    edges = sorted([(s["worker_func_start_tstamp"] - t0, 1) for s in stats] +
                   [(s["worker_func_end_tstamp"] - t0, -1) for s in stats])
    xs, ys, running = [0.0], [0], 0
    for t, step in edges:
        running += step
        xs.append(t)
        ys.append(running)
    fig, ax = plt.subplots(figsize=figsize)
    ax.step(xs, ys, where="post", color="tab:blue")
    ax.set_xlabel("Execution Time (sec)")
    ax.set_ylabel("Calls running")
    ax.set_title(f"concurrency of {len(stats)} calls (peak {max(ys)})")
    fig.tight_layout()
    fig.savefig(histogram)
    plt.close(fig)
    return timeline, histogram


def summary_rows(futures: list, backend: str, memory_mb: int | None, cloud_objects_n: int = 0) -> list[dict]:
    """One row per job (calls, memory, mean run time, cost), then a 'Summary' row, as Lithops' job_summary."""
    jobs: dict[str, list] = {}
    for f in futures:
        if f.done() and not f.cancelled() and "worker_func_exec_time" in f.stats:
            jobs.setdefault(f.job_id, []).append(f)
    rows = []
    for job_id, fs in jobs.items():
        runtimes = [f.stats["worker_func_exec_time"] for f in fs]
        mem = fs[0].stats.get("runtime_memory") or memory_mb or 0
        cost = 0.0
        if backend == "lambda":
            cost = sum(runtimes) * (mem / 1024) * LAMBDA_GB_SECOND + len({(f.stats.get("task"), f.stats.get(
                "task_attempt")) for f in fs}) * LAMBDA_REQUEST
        rows.append({"Job_ID": job_id, "Function": fs[0].function_name, "Invocations": len(fs),
                     "Memory(MB)": mem, "AvgRuntime": round(sum(runtimes) / len(runtimes), 10),
                     "Cost": cost, "CloudObjects": ""})
    if rows:
        calls = sum(r["Invocations"] for r in rows)
        rows.append({"Job_ID": "Summary", "Function": "", "Invocations": calls,
                     "Memory(MB)": sum(r["Memory(MB)"] for r in rows),
                     "AvgRuntime": round(sum(r["AvgRuntime"] * r["Invocations"] for r in rows) / calls, 10),
                     "Cost": sum(r["Cost"] for r in rows), "CloudObjects": cloud_objects_n})
    return rows


def write_csv(rows: list[dict], path: str) -> str:
    """The rows as CSV at ``path`` (folders made); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["Job_ID", "Function", "Invocations", "Memory(MB)", "AvgRuntime",
                                               "Cost", "CloudObjects"])
        writer.writeheader()
        writer.writerows(rows)
    return path

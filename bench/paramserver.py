"""Hogwild! SGD through graphwren's parameter server against single-process minibatch SGD (numpy).

Issue 17's benchmark: logistic regression on the deterministic synthetic
data set of ``examples/paramserver_logreg.py`` (8 shards, separable with
noise), one epoch. Single-process SGD (numpy, the data in memory) sets the
target: its held-out loss after the epoch, plus 1%. Then 2, 4 and 8
stateless tasks run Hogwild! on the local backend through a real
redis-server: each makes its shards, then reads the weights and adds its
steps on the server. Workers hand back a (time, w) every 25 updates and the
driver scores them after the run, so scoring costs the run nothing.

Printed per run (medians of ``--repeats``): time to the target loss
(from the first update; and from submitting the job, which adds starting
the workers and making the data), final held-out loss and accuracy,
updates per second through Redis.

    python bench/paramserver.py [--rows-per-shard 250000] [--workers 2,4,8] [--repeats 3]

The default is the issue's 2M x 100.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
from common import table  # noqa: E402
import paramserver_logreg as model  # noqa: E402 - the model, data and training step the example runs

import graphwren as gw  # noqa: E402

BATCH, LR = 500, 0.5   # defaults; --batch / --lr change them


def serial(rows: int, held_out) -> dict:
    """Minibatch SGD in one process, the data made first (not timed), scored every 25 updates."""
    data = [model.shard(s, rows) for s in range(model.SHARDS)]
    w, b = np.zeros(model.D), 0.0
    trace, updates, scoring = [], 0, 0.0
    start = time.perf_counter()
    for X, y in data:
        for i in range(0, rows, BATCH):
            g, gb = model.gradient(w, b, X[i:i + BATCH], y[i:i + BATCH])
            w, b = w - LR * g, b - LR * gb
            updates += 1
            if updates % 25 == 0:
                t = time.perf_counter()
                trace.append((t - start - scoring, model.loss(w, b, *held_out)))
                scoring += time.perf_counter() - t
    took = time.perf_counter() - start - scoring
    return {"seconds": took, "updates": updates, "trace": trace, "loss": model.loss(w, b, *held_out),
            "accuracy": model.accuracy(w, b, *held_out)}


def hogwild(url: str, workers: int, rows: int, held_out) -> dict:
    ps = gw.ParameterServer(url, name=f"bench{workers}", init={"w": np.zeros(model.D), "b": 0.0})
    try:
        seeds = [list(range(model.SHARDS))[i::workers] for i in range(workers)]
        ex = gw.Executor(workers=workers)
        submitted = time.time()
        runs = gw.get_all_results(ex.map(model.train, seeds, extra_args=(ps, rows, BATCH, LR)))
        ended = time.time()
        first = min(r["start"] for r in runs)
        scored = sorted((t, model.loss(w, b, *held_out)) for r in runs for t, w, b in r["trace"])
        w, b = ps.get("w"), float(ps.get("b"))
        updates = sum(r["updates"] for r in runs)
        busy = max(r["end"] for r in runs) - first
        return {"trace": [(t - first, loss) for t, loss in scored], "submitted": first - submitted,
                "updates": updates, "rate": updates / busy, "loss": model.loss(w, b, *held_out),
                "accuracy": model.accuracy(w, b, *held_out), "seconds": ended - submitted}
    finally:
        ps.delete()


def time_to(trace, target) -> float | None:
    return next((t for t, loss in trace if loss <= target), None)


def main(argv=None) -> None:
    global BATCH, LR
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows-per-shard", type=int, default=250_000)
    ap.add_argument("--workers", default="2,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=BATCH, help="rows per update: more compute per Redis round trip")
    ap.add_argument("--lr", type=float, default=LR)
    args = ap.parse_args(argv)
    BATCH, LR = args.batch, args.lr
    held_out = model.shard(10_000, 20_000)
    base = [serial(args.rows_per_shard, held_out) for _ in range(args.repeats)]
    target = statistics.median(r["loss"] for r in base) * 1.01
    rows = [{"system": "numpy, one process (minibatch SGD)",
             "to target (from 1st update)": f"{statistics.median(time_to(r['trace'], target) or r['seconds'] for r in base):.2f} s",
             "to target (from submit)": "-",
             "final loss": f"{statistics.median(r['loss'] for r in base):.4f}",
             "accuracy": f"{statistics.median(r['accuracy'] for r in base):.3f}",
             "updates/s": f"{statistics.median(r['updates'] / r['seconds'] for r in base):,.0f} (in memory)"}]
    with model.redis_url() as url:
        for workers in map(int, args.workers.split(",")):
            runs = [hogwild(url, workers, args.rows_per_shard, held_out) for _ in range(args.repeats)]
            reach = [time_to(r["trace"], target) for r in runs]
            reached = [t for t in reach if t is not None]
            to_target = f"{statistics.median(reached):.2f} s" if reached else "not reached"
            if reached and len(reached) < len(runs):
                to_target += f" ({len(reached)} of {len(runs)} runs)"
            from_submit = (f"{statistics.median(t + r['submitted'] for t, r in zip(reach, runs) if t is not None):.2f} s"
                           if reached else "-")
            rows.append({"system": f"graphwren Hogwild!, {workers} tasks, Redis",
                         "to target (from 1st update)": to_target, "to target (from submit)": from_submit,
                         "final loss": f"{statistics.median(r['loss'] for r in runs):.4f}",
                         "accuracy": f"{statistics.median(r['accuracy'] for r in runs):.3f}",
                         "updates/s": f"{statistics.median(r['rate'] for r in runs):,.0f}"})
    print(f"{model.SHARDS * args.rows_per_shard:,} x {model.D} rows, batch {BATCH}, lr {LR}, one epoch; "
          f"target loss {target:.4f} (single-process SGD's after the epoch, +1%); medians of {args.repeats}")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()

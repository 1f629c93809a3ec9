"""Logistic regression by Hogwild! SGD: stateless tasks read and update shared weights in Redis.

The PyWren paper's parameter-server pattern on graphwren: each task makes
its own shard of a deterministic synthetic data set (separable with
noise), then loops over minibatches: read the weights (perhaps stale),
compute a gradient, add the step on the server. No task waits for another.

    python examples/paramserver_logreg.py            # starts a throwaway redis-server
    REDIS_URL=redis://127.0.0.1:6379/0 python examples/paramserver_logreg.py

``bench/paramserver.py`` times the same model against single-process SGD.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time

import numpy as np

import graphwren as gw

D = 100            # features
SHARDS = 8         # the data set is SHARDS shards, each made from its own seed
NOISE = 0.5


def true_weights(d: int = D) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(d)


def shard(seed: int, rows: int, d: int = D) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the data set: X standard normal, y = [X w* + noise > 0]; the same for the same seed."""
    rng = np.random.default_rng(1000 + seed)
    X = rng.standard_normal((rows, d), dtype=np.float32)
    y = (X @ true_weights(d) + NOISE * rng.standard_normal(rows) > 0).astype(np.float32)
    return X, y


def gradient(w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    # in X's dtype: a float64 w would make numpy copy X to float64 for every product
    p = 1.0 / (1.0 + np.exp(-(X @ w.astype(X.dtype) + b)))
    err = p - y
    return (X.T @ err).astype(np.float64) / len(y), float(err.mean())


def loss(w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray) -> float:
    """Mean logistic loss, computed without overflow."""
    z = X @ w + b
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def accuracy(w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((X @ w + b > 0) == (y > 0.5)))


def train(seeds: list[int], ps, rows: int, batch: int, lr: float, every: int = 25) -> dict:
    """One worker's pass over its shards: Hogwild! steps on the parameter server.

    Returns its update count, when the updates started, and every ``every``
    updates a (time, w, b) it read: the driver scores them after the run, so
    scoring costs the workers nothing.
    """
    data = [shard(s, rows) for s in seeds]
    start, updates, trace = time.time(), 0, []
    for X, y in data:
        for i in range(0, rows, batch):
            w, b = ps.get("w"), float(ps.get("b"))           # may be stale: Hogwild!
            gw_, gb = gradient(w, b, X[i:i + batch], y[i:i + batch])
            ps.add("w", -lr * gw_)
            ps.add("b", -lr * gb)
            updates += 1
            if updates % every == 0:
                trace.append((time.time(), w, b))
    return {"updates": updates, "start": start, "end": time.time(), "trace": trace}


@contextlib.contextmanager
def redis_url():
    """$REDIS_URL, or a throwaway redis-server on a free loopback port."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from graphwren.sandbox import free_port, redis_answers, redis_server_path, stop_process
    port = free_port()
    proc = subprocess.Popen([redis_server_path(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def main(rows_per_shard: int = 25_000, workers: int = 4, batch: int = 500, lr: float = 0.5) -> None:
    with redis_url() as url:
        ps = gw.ParameterServer(url, name="logreg", init={"w": np.zeros(D), "b": 0.0})
        try:
            seeds = [list(range(SHARDS))[i::workers] for i in range(workers)]
            ex = gw.Executor(workers=workers)
            t = time.time()
            runs = gw.get_all_results(ex.map(train, seeds, extra_args=(ps, rows_per_shard, batch, lr)))
            took = time.time() - t
            X, y = shard(10_000, 20_000)   # held out
            w, b = ps.get("w"), float(ps.get("b"))
            print(f"{sum(r['updates'] for r in runs):,} Hogwild! updates from {workers} tasks in {took:.1f} s: "
                  f"held-out loss {loss(w, b, X, y):.4f}, accuracy {accuracy(w, b, X, y):.3f}")
        finally:
            ps.delete()


if __name__ == "__main__":
    main()

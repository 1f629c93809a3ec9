"""Lambda through the local endpoint vs the local backend, in one run.

    .venv/bin/python bench/lambda_local.py [--workers 2] [--tasks 300] [--storage URL]

Measures, through boto3 -> graphwren's Lambda emulator -> awslambdaric -> handler:
  * raw async invocations/s (Event invokes of a no-op ping, until all have run),
  * warm synchronous round trip p50/p99 (RequestResponse ping),
  * the overhead workload (map of no-op tasks, one task per item): tasks/s, lambda vs local,
  * the word-count workload (bag flat_map + frequencies), lambda vs local,
  * time from compute()/map() to the first task running.
Targets (issue): >= 300 invocations/s with 2 workers, p50 warm round trip < 5 ms.
Storage defaults to a local directory (the workers run on this machine).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(k, v)

import boto3  # noqa: E402
import cloudpickle  # noqa: E402

import graphwren as gw  # noqa: E402
from graphwren.aws.emulator import LambdaEmulator  # noqa: E402
from graphwren.runtime.backends.lambda_ import send_token  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _noop(x):
    return x


def _stamp(path):
    def run(x):
        with open(os.path.join(path, f"{x}-{os.getpid()}"), "w") as f:
            f.write(repr(time.time()))
        return x
    return run


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def raw_invokes(em, n):
    from concurrent.futures import ThreadPoolExecutor
    from botocore.config import Config
    client = boto3.client("lambda", endpoint_url=em.endpoint, config=Config(max_pool_connections=16))
    send_token(client, em.token)
    name = em.function().name
    fn = em.function()
    before = fn.deliveries
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: client.invoke(FunctionName=name, InvocationType="Event",
                                              Payload=b'{"graphwren": "ping"}'), range(n)))
    accepted = time.perf_counter() - t0
    em.drain(60)
    total = time.perf_counter() - t0
    assert fn.deliveries - before == n
    lat = []
    for _ in range(300):
        t = time.perf_counter()
        client.invoke(FunctionName=name, Payload=b'{"graphwren": "ping"}')["Payload"].read()
        lat.append((time.perf_counter() - t) * 1000)
    return {"async_invokes": n, "accepted_per_s": round(n / accepted), "run_per_s": round(n / total),
            "sync_p50_ms": round(statistics.median(lat), 2), "sync_p99_ms": round(pct(lat, 0.99), 2)}


def overhead(settings, n):
    ex = gw.Executor(**settings)
    gw.get_all_results(ex.map(_noop, range(8), chunksize=1))     # warm
    t0 = time.perf_counter()
    gw.get_all_results(ex.map(_noop, range(n), chunksize=1))
    dt = time.perf_counter() - t0
    stamps = tempfile.mkdtemp(prefix="gw-stamp-")
    t1 = time.time()
    gw.get_all_results(ex.map(_stamp(stamps), range(4), chunksize=1))
    first = min(float(open(os.path.join(stamps, f)).read()) for f in os.listdir(stamps)) - t1
    return {"tasks": n, "seconds": round(dt, 3), "tasks_per_s": round(n / dt), "first_task_ms": round(first * 1000, 1)}


def wordcount(settings, lines, nparts):
    with gw.config.set(**settings):
        bag = gw.bag.from_sequence(lines, npartitions=nparts).flat_map(str.split).frequencies()
        bag.compute()   # warm
        t0 = time.perf_counter()
        out = dict(bag.compute())
        return {"lines": len(lines), "partitions": nparts, "seconds": round(time.perf_counter() - t0, 3),
                "distinct_words": len(out)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=300)
    p.add_argument("--invokes", type=int, default=1000)
    p.add_argument("--lines", type=int, default=20000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--storage", default=None, help="store URL (default: a temp directory)")
    args = p.parse_args()
    storage = args.storage or "file://" + tempfile.mkdtemp(prefix="gw-bench-lambda-")
    words = "the quick brown fox jumps over the lazy dog while a cat sleeps".split()
    lines = [" ".join(words[(i + j) % len(words)] for j in range(10)) for i in range(args.lines)]
    results = {"workers": args.workers, "storage": storage.split("://")[0]}
    with LambdaEmulator(workers=args.workers, timeout=300) as em:
        os.environ.update(em.client_env)   # the endpoint and the token the emulator asks for
        results["emulator"] = raw_invokes(em, args.invokes)
        lam = {"backend": "lambda", "lambda_endpoint": em.endpoint, "storage": storage, "progress": False,
               "lambda_max_workers": 64}
        results["overhead_lambda"] = overhead(lam, args.tasks)
        results["wordcount_lambda"] = wordcount(lam, lines, args.partitions)
    loc = {"backend": "local", "workers": args.workers, "storage": storage, "progress": False}
    results["overhead_local"] = overhead(loc, args.tasks)
    results["wordcount_local"] = wordcount(loc, lines, args.partitions)
    e = results["emulator"]
    results["targets"] = {"invocations_per_s>=300": e["run_per_s"] >= 300, "p50_round_trip<5ms": e["sync_p50_ms"] < 5}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A back-of-envelope model of a 64k x 64k float64 matmul on 1000 AWS Lambdas, in bench/sort_model.py's spirit.

The task counts are the planner's own (random inputs stand in for stored ones, as
from_sequence does in sort_model: the counts depend on shapes and blocks alone): ``planner.plan`` over ``A @ B`` (each
64k x 64k, ``--block`` blocks) under ``logical.offline.planning()``, on S3 with
the Lambda backend, the plan ``explain()`` prints. For each stage of that
plan (the k-split partial products, then the sum of the partials) the model
takes per task:

* flops (2 c^2 K/s for a c x c output block over a 1/s share of the K
  contraction; 0 for the sum, which is memory-bound and costed by its bytes);
* S3 bytes read and written (the A row panel and B column panel shares, the
  partial block; the partials summed, the result block);
* a task's time = read (bytes / per-function S3 bandwidth + request latency)
  + compute (flops / per-core GFLOPS measured here with one BLAS thread,
  scaled by ``cpu_scale``) + write; a stage of T tasks on W workers runs
  ceil(T / W) waves, plus the invocation ramp (W / invoke rate + start).

Printed: the plan's stages, the per-stage breakdown, the predicted seconds and
TFLOPS (2 n^3 / seconds), beside the figures this is compared with:

* PyWren (Jonas et al., "Occupy the Cloud: Distributed Computing for the 99%",
  SoCC 2017): a peak of 40 TFLOPS from Lambda matmul-style compute, as issue 14
  quotes it; the earlier blog post (ericjonas.com/post/pywren1, "Extracting 25
  TFLOPS from AWS Lambda") reported 25 TFLOPS with over 60 GB/s S3 read and
  50 GB/s write. Neither is a 64k matmul through S3: both time compute
  inside each function (a peak), not a stored product.
* numpywren (Shankar et al., "numpywren: serverless linear algebra",
  arXiv:1810.09679, UCB/EECS-2018-137): its abstract states completion times
  within 33% of ScaLAPACK for matrix multiply, SVD and Cholesky and up to
  240% better compute efficiency (CPU-hours), and that QR is limited by
  network efficiency. Its absolute GEMM times (seconds, TFLOPS) could not be
  found through this project's search tool, so none are quoted.

    python bench/linalg_model.py [--block 4096] [--set s3_mb_s=80 --set cores_per_function=6]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import table  # noqa: E402

PYWREN_PEAK_TFLOPS = 40.0      # Jonas et al. 2017, as issue 14 quotes it
PYWREN_BLOG_TFLOPS = 25.0      # ericjonas.com/post/pywren1 (an earlier PyWren)


@dataclasses.dataclass
class Assumptions:
    n: int = 65536                 # C = A @ B, all n x n float64 (32 GiB each)
    workers: int = 1000            # concurrent Lambda functions
    lambda_memory_mb: int = 10240  # function size: the per-task memory bound the planner checks (10 GB)
    cores_per_function: int = 1    # BLAS threads a function uses (the paper's functions had one core)
    s3_mb_s: float = 35.0          # per-function S3 bandwidth: the PyWren paper measured 30-40 MB/s
    s3_latency_s: float = 0.03     # first-byte latency of a GET/PUT (assumed; tens of ms)
    s3_streams: int = 8            # requests a function keeps in flight (assumed)
    s3_object_mb: float = 64.0     # a ranged GET's size when reading a block (assumed)
    invoke_per_s: float = 500.0    # invocations the driver starts per second (assumed, as in sort_model)
    invoke_start_s: float = 1.0    # invocation to running, warm containers (assumed)
    cpu_scale: float = 1.0         # a Lambda core's speed relative to one core of this machine (assumed 1)


def one_core_gflops(c: int = 2048) -> float:
    """dgemm GFLOPS of one core of this machine on c x c blocks (a child with one BLAS thread)."""
    code = ("import numpy as np, time; a = np.random.default_rng(0).random((%d, %d)); a @ a; best = 1e9\n"
            "for _ in range(3):\n    t = time.perf_counter(); a @ a; best = min(best, time.perf_counter() - t)\n"
            "print(2 * %d ** 3 / best / 1e9)" % (c, c, c))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())


def planned_stages(a: Assumptions, block: int) -> list[dict]:
    """The planner's stages for A @ B stored to S3 on the Lambda backend: name, label, tasks, peak/task."""
    import graphwren.array as ga
    from graphwren import config, planner
    from graphwren.logical import offline
    n = a.n
    c = ga.random((n, n), chunks=block, seed=1) @ ga.random((n, n), chunks=block, seed=2)
    settings = config.resolve({"storage": "s3://model/matmul", "backend": "lambda", "lambda_function": "model",
                               "lambda_memory": a.lambda_memory_mb, "lambda_max_workers": a.workers,
                               "max_task_memory": a.lambda_memory_mb * 2**20})
    with offline.planning():
        plan = planner.plan(c.expr, settings, explaining=True, target="s3://model/matmul/C").plan
    return [{"name": s.name, "label": s.label, "tasks": s.ntasks, "peak": s.peak_memory} for s in plan.stages]


def predict(a: Assumptions, block: int, stages: list[dict], gflops_core: float) -> list[dict]:
    n, c = a.n, block
    blocks_out = (n // c) ** 2
    mm = stages[0]
    splits = mm["tasks"] // blocks_out          # k-splits the planner chose: tasks = output blocks x splits
    k_share = n // splits
    ramp = a.workers / a.invoke_per_s + a.invoke_start_s
    rate = gflops_core * 1e9 * a.cores_per_function * a.cpu_scale
    rows = []

    def s3(mb):    # per function: bandwidth, plus request latency over its streams
        return mb / a.s3_mb_s + math.ceil(mb / a.s3_object_mb) * a.s3_latency_s / a.s3_streams

    def add(stage, tasks, flops, read_mb, write_mb):
        waves = math.ceil(tasks / a.workers)
        terms = {"ramp": ramp, "S3 read": waves * s3(read_mb), "compute": waves * flops / rate,
                 "S3 write": waves * s3(write_mb)}
        rows.append({"stage": stage, "tasks": tasks, "waves": waves, "GFLOP/task": f"{flops / 1e9:.0f}",
                     "S3 MB read/task": f"{read_mb:.0f}", "S3 MB written/task": f"{write_mb:.0f}",
                     "seconds": sum(terms.values()), "binding": max(terms, key=terms.get),
                     "terms": ", ".join(f"{k} {v:.1f}" for k, v in terms.items())})
    block_mb = c * c * 8 / 1e6
    add(f"{mm['label']} ({splits} k-splits)", mm["tasks"], 2 * c * c * k_share,
        2 * c * k_share * 8 / 1e6, block_mb)
    for st in stages[1:]:
        add(st["label"], st["tasks"], 0.0, splits * block_mb, block_mb)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=4096, help="block side c (the array's chunks)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an assumption")
    ap.add_argument("--gflops-core", type=float, default=None, help="skip the measurement and use this")
    args = ap.parse_args(argv)
    a = Assumptions()
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in {f.name for f in dataclasses.fields(a)}:
            raise SystemExit(f"unknown assumption {name!r}; known: {[f.name for f in dataclasses.fields(a)]}")
        setattr(a, name, type(getattr(a, name))(float(value)))
    if a.n % args.block:
        raise SystemExit(f"--block {args.block} must divide n={a.n}")
    gflops_core = args.gflops_core or one_core_gflops()
    stages = planned_stages(a, args.block)
    print(f"one core of this machine, dgemm 2048 x 2048: {gflops_core:.1f} GFLOPS (cpu_scale {a.cpu_scale})")
    print("\nassumptions (override with --set name=value):")
    for f in dataclasses.fields(a):
        print(f"  {f.name:20s} = {getattr(a, f.name)}")
    print(f"\nthe planner's plan for A @ B, {a.n} x {a.n} in {args.block} blocks, stored to S3 "
          f"(lambda backend, {a.lambda_memory_mb} MB functions):")
    print(table([{**s, "peak": f"{s['peak'] / 2**20:.0f} MB"} for s in stages], ["name", "label", "tasks", "peak"]))
    rows = predict(a, args.block, stages, gflops_core)
    total = sum(r["seconds"] for r in rows)
    work = 2 * a.n ** 3
    print(f"\n## {a.workers} Lambdas, {a.cores_per_function} core(s) each, S3 at {a.s3_mb_s:.0f} MB/s per function")
    print(table([{**r, "seconds": f"{r['seconds']:.1f}"} for r in rows],
                ["stage", "tasks", "waves", "GFLOP/task", "S3 MB read/task", "S3 MB written/task", "seconds",
                 "binding", "terms"]))
    tflops = work / total / 1e12
    peak = a.workers * gflops_core * 1e9 * a.cores_per_function * a.cpu_scale   # flops/s, compute alone
    print(f"predicted {total:.0f} s for {work / 1e12:.0f} TFLOP = {tflops:.1f} TFLOPS end to end; the functions' "
          f"compute alone: {work / peak:.0f} s at {peak / 1e12:.1f} TFLOPS (one wave, no I/O)")
    print(f"PyWren paper's peak {PYWREN_PEAK_TFLOPS:.0f} TFLOPS: prediction / peak = {tflops / PYWREN_PEAK_TFLOPS:.2f}; "
          f"the earlier blog's {PYWREN_BLOG_TFLOPS:.0f} TFLOPS: {tflops / PYWREN_BLOG_TFLOPS:.2f}")
    print("numpywren: within 33% of ScaLAPACK's completion time for GEMM (its abstract); its absolute GEMM figures "
          "were not found, so no ratio is printed.")
    print("Not modelled: stragglers, retries, S3 request-rate limits (1,024 x 2 GETs per second is far under them), "
          "overlap of reads with compute (graphwren prefetches the next pair: the read and compute terms would "
          "overlap, so the total is an upper bound on that count).")
    print(json.dumps({"predicted_seconds": round(total, 1), "predicted_tflops": round(tflops, 2)}))


if __name__ == "__main__":
    main()

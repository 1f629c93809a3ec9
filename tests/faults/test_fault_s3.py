"""Multi-stage jobs with S3 storage behind a proxy that injects faults on the wire.

Each run must end with the right answer, or a graphwren error within the bound,
and leave nothing in the bucket.
"""
from __future__ import annotations

import functools

import boto3
import pytest

import faultkit as fk
from faultproxy import Rule

RUNS = 1            # of each job (bag and map_reduce) per scenario
TASK_TIMEOUT = 8.0  # seconds; a stalled attempt is declared lost after this
BOUND = 60.0        # seconds a job may take before it counts as a hang

SCENARIOS = {
    "s3: 500 on 25% of requests": [Rule("500", p=0.25)],
    "s3: 503 SlowDown on 15% of requests": [Rule("slowdown", p=0.15)],
    "s3: dropped connections on 10% (half after the request landed)":
        [Rule("drop-request", p=0.05), Rule("drop-reply", p=0.05)],
    "s3: 5% of replies held 2 s, past the 1 s read timeout": [Rule("delay", p=0.05, delay=2.0)],
    "s3: every PUT fails with 503 for 3 s": [Rule("503", classes={"PUT"}, start=0.5, duration=3.0)],
    "s3: 10% of GET bodies cut off halfway": [Rule("truncate", classes={"GET"}, p=0.10)],
    "s3: no reply at all for 8 s (a black hole)": [Rule("delay", start=0.5, duration=8.0, delay=8.0)],
}
ONLY_BAG = {"s3: no reply at all for 8 s (a black hole)"}  # the slow one: one job is enough


def bucket_keys(endpoint: str, bucket: str) -> list[str]:
    """Every key in the bucket, asked of moto directly (not through the proxy)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    try:
        resp = s3.list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in resp.get("Contents", ())]
    finally:
        s3.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_jobs_survive_s3_faults(name, s3_endpoint, s3_proxy, fault_bucket, fault_table):
    def settings(run):  # a new prefix is a new URL: every process opens (probes) the store again
        url = f"s3://{fault_bucket}/gw{run}?endpoint={s3_proxy.url}&timeout=1&connect_timeout=1"
        return dict(storage=url, task_timeout=TASK_TIMEOUT, task_retries=2, progress=False)

    jobs = [("bag frequencies", lambda run: fk.bag_job(settings(run)), fk.bag_reference()),
            ("map_reduce", lambda run: fk.map_reduce_job(settings(run), BOUND), fk.map_reduce_reference())]
    if name in ONLY_BAG:
        jobs = jobs[:1]
    outcomes, requests, injected = [], 0, 0
    for run in range(RUNS):
        for job, job_fn, reference in jobs:
            fn = functools.partial(job_fn, len(outcomes))
            rules = [Rule(**{**r.__dict__, "fired": 0}) for r in SCENARIOS[name]]
            s3_proxy.set_rules(rules, seed=1000 * run + len(outcomes))
            out = fk.judge(fn, reference, BOUND, lambda: bucket_keys(s3_endpoint, fault_bucket))
            requests += sum(s3_proxy.requests.values())
            injected += sum(s3_proxy.injected.values())
            s3_proxy.set_rules([])
            out.detail = f"[{job}] {out.detail}"
            fault_table.record(name, out)
            outcomes.append(out)
    fault_table.note(name, f"{injected} faults injected into {requests} requests")
    assert injected > 0, "the proxy injected no fault: the scenario tested nothing"
    bad = [o for o in outcomes if o.kind not in ("correct", "clear error") or o.leftovers]
    assert not bad, "\n".join(f"{o.kind} after {o.seconds:.1f}s, leftovers {o.leftovers[:3]}: {o.detail}"
                              for o in bad)


# Storage failures only a worker sees. The contract: a transient storage error in a worker
# is a lost attempt, retried (not a user failure), and a worker that cannot record its
# outcome is reported by the backend at once (not after task_timeout). task_timeout is
# set far beyond the bound here, so a silent stall shows up as a hang.
WORKER_SCENARIOS = {
    "s3: workers' reads of the stage function fail through all retries, 6 times":
        [Rule("500", classes={"GET"}, path="/func", limit=6)],
    "s3: as above, and no worker can write an error record":
        [Rule("500", classes={"GET"}, path="/func", limit=6), Rule("500", classes={"PUT"}, path="/err/")],
}


@pytest.mark.parametrize("name", list(WORKER_SCENARIOS))
def test_transient_worker_storage_errors_are_lost_attempts(name, s3_endpoint, s3_proxy, fault_bucket,
                                                           fault_table):
    url = f"s3://{fault_bucket}/w?endpoint={s3_proxy.url}&timeout=1&connect_timeout=1&retries=2"
    settings = dict(storage=url, task_timeout=120.0, task_retries=2, progress=False)
    s3_proxy.set_rules([Rule(**{**r.__dict__, "fired": 0}) for r in WORKER_SCENARIOS[name]], seed=7)
    out = fk.judge(lambda: fk.bag_job(settings), fk.bag_reference(), 20.0,
                   lambda: bucket_keys(s3_endpoint, fault_bucket))
    fault_table.note(name, f"{sum(s3_proxy.injected.values())} faults injected into "
                           f"{sum(s3_proxy.requests.values())} requests; task_timeout 120 s, bound 20 s")
    s3_proxy.set_rules([])
    out.detail = f"[bag frequencies] {out.detail}"
    fault_table.record(name, out)
    assert out.kind == "correct" and not out.leftovers, f"{out.kind} after {out.seconds:.1f}s: {out.detail}"

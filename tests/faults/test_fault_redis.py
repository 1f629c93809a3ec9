"""Multi-stage jobs with Redis storage while the real redis-server is restarted or paused.

Each run must end with the right answer, or a graphwren error within the bound,
and leave no key in Redis.
"""
from __future__ import annotations

import pytest

import faultkit as fk

TASK_TIMEOUT = 8.0
BOUND = 60.0
WORK = 0.0004  # seconds of sleep per record: the jobs last ~2 s, long enough to be struck

# name -> (URL options, the fault, when it strikes: seconds into the job, which jobs)
BOTH = ("bag frequencies", "map_reduce")
SCENARIOS = {
    "redis: restarted mid-job, down 0.1 s": ("", lambda s: s.restart(0.1), 0.3, BOTH),
    "redis: restarted mid-job, down 1 s": ("", lambda s: s.restart(1.0), 0.3, BOTH),
    "redis: SIGSTOPped 2 s mid-job (1 s socket timeout)": ("?timeout=1", lambda s: s.pause(2.0), 0.3, BOTH),
    # longer than the retries last (7 tries of 0.5 s + 1.75-3.5 s of backoff): must fail
    # clearly; it thaws while the driver's cleanup is still retrying, which must then succeed
    "redis: frozen 9 s mid-job (0.5 s socket timeout)":
        ("?timeout=0.5", lambda s: s.pause(9.0), 0.3, ("bag frequencies",)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_jobs_survive_redis_faults(name, redis_server, fault_table):
    options, fault, when, which = SCENARIOS[name]
    settings = dict(storage=redis_server.url + options, task_timeout=TASK_TIMEOUT, task_retries=2,
                    progress=False)
    jobs = [("bag frequencies", lambda: fk.bag_job(settings, WORK), fk.bag_reference()),
            ("map_reduce", lambda: fk.map_reduce_job(settings, BOUND, WORK), fk.map_reduce_reference())]
    jobs = [j for j in jobs if j[0] in which]
    outcomes, struck = [], 0
    for job, fn, reference in jobs:
        later = fk.Later(when, lambda: fault(redis_server))
        out = fk.judge(fn, reference, BOUND, redis_server.keys)
        later.join()
        struck += when < out.seconds  # the fault began before the job ended
        out.detail = f"[{job}] {out.detail}"
        fault_table.record(name, out)
        outcomes.append(out)
        redis_server.flush()
    fault_table.note(name, f"the fault struck while {struck} of {len(jobs)} jobs were running")
    assert struck, "every job ended before the fault: the scenario tested nothing"
    bad = [o for o in outcomes if o.kind not in ("correct", "clear error") or o.leftovers]
    assert not bad, "\n".join(f"{o.kind} after {o.seconds:.1f}s, leftovers {o.leftovers[:3]}: {o.detail}"
                              for o in bad)

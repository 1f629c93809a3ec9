"""The driver on hand-built physical plans: stages, edges, shuffles, and the commit rule.

Stage functions take a TaskContext and return one partition (a list), or
``nbuckets`` partitions for a shuffle stage. Tasks run in the shared local pool.
"""
from __future__ import annotations

import hashlib
import os
import signal
import time

import pytest

from graphwren import config
from graphwren.errors import TaskLost
from graphwren.runtime import integrity, records, worker
from graphwren.runtime.driver import Driver
from graphwren.runtime.plan import HASH_SHUFFLE, BROADCAST, CUSTOM, GATHER, ONE_TO_ONE, RANGE_SHUFFLE, Edge, Plan, Stage
from graphwren.runtime.storage import open_store


pytestmark = pytest.mark.usefixtures("isolated_config")


def make_driver(url, backend=None, **settings):
    return Driver(config.resolve({"storage": url, "progress": False, **settings}), backend=backend)


def run(driver, plan, **kw):
    outputs = {}

    def on_output(stage, task, part):
        assert (stage, task) not in outputs, f"{stage} task {task} delivered twice"
        outputs[(stage, task)] = part

    job = driver.run(plan, on_output, **kw)
    return job, outputs


def by_stage(outputs, name):
    tasks = sorted(t for s, t in outputs if s == name)
    return [outputs[(name, t)] for t in tasks]


# -- stage functions -------------------------------------------------------------------------
def numbers(ctx):
    return [ctx.task * 10 + i for i in range(5)]


def double(ctx):
    (part,) = list(ctx.input(0))
    return [2 * x for x in part]


def split_by_mod(ctx):
    buckets = [[] for _ in range(ctx.nbuckets)]
    for x in range(ctx.task * 10, ctx.task * 10 + 10):
        buckets[x % ctx.nbuckets].append(x)
    return buckets


def concat_sorted(ctx):
    return sorted(x for part in ctx.input(0) for x in part)


def total(ctx):
    return [sum(x for part in ctx.input(0) for x in part)]


def add_broadcast(ctx):
    (part,) = list(ctx.input(0))
    offset = sum(x for p in ctx.input(1) for x in p)
    return [x + offset for x in part]


def pair_with_next(ctx):
    return [list(p) for p in ctx.input(0)]


def neighbours(i):
    return [(i, None), ((i + 1) % 4, None)]


def data_reader(ctx):
    return list(ctx.read_data("blob"))


# -- plans -----------------------------------------------------------------------------------
def test_two_stage_one_to_one(store_url):
    driver = make_driver(store_url)
    plan = Plan([Stage("a", 4, numbers), Stage("b", 4, double, [Edge("a", ONE_TO_ONE)])], ["b"])
    job, out = run(driver, plan)
    assert by_stage(out, "b") == [[2 * (t * 10 + i) for i in range(5)] for t in range(4)]
    assert records.job_time(job) is not None
    assert open_store(store_url).list(f"{job}/") == []
    events = [e for _, _, e in driver.timeline]
    assert events.count("started") == 2 and events.count("finished") == 2


@pytest.mark.parametrize("kind", [HASH_SHUFFLE, RANGE_SHUFFLE])
def test_all_to_all_shuffle_with_nbuckets(store_url, kind):
    driver = make_driver(store_url)
    plan = Plan([Stage("map", 3, split_by_mod, nbuckets=4),
                 Stage("reduce", 4, concat_sorted, [Edge("map", kind)])], ["reduce"])
    _, out = run(driver, plan)
    assert by_stage(out, "reduce") == [[x for x in range(30) if x % 4 == b] for b in range(4)]


def test_shuffle_then_gather_three_stages(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s")
    plan = Plan([Stage("map", 5, split_by_mod, nbuckets=3),
                 Stage("reduce", 3, concat_sorted, [Edge("map", HASH_SHUFFLE)]),
                 Stage("sum", 1, total, [Edge("reduce", GATHER)])], ["sum", "reduce"])
    _, out = run(driver, plan)
    assert by_stage(out, "sum") == [[sum(range(50))]]
    assert sorted(x for part in by_stage(out, "reduce") for x in part) == list(range(50))


def test_large_outputs_go_through_out_objects(tmp_path):
    """Outputs above inline_limit are written as objects and read by ranged gets."""
    url = f"file://{tmp_path}/s"
    driver = make_driver(url, inline_limit=16)
    plan = Plan([Stage("map", 3, split_by_mod, nbuckets=2),
                 Stage("reduce", 2, concat_sorted, [Edge("map", HASH_SHUFFLE)])], ["reduce"])
    job, out = run(driver, plan, keep=True)
    assert by_stage(out, "reduce") == [list(range(0, 30, 2)), list(range(1, 30, 2))]
    keys = open_store(url).list(f"{job}/")
    assert any("/out/" in k for k in keys) and any(k.endswith("/manifest") for k in keys)
    open_store(url).delete(f"{job}/")


def test_broadcast_and_custom_edges(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s")
    plan = Plan([Stage("a", 4, numbers),
                 Stage("small", 1, numbers),
                 Stage("bc", 4, add_broadcast, [Edge("a"), Edge("small", BROADCAST)]),
                 Stage("pairs", 4, pair_with_next, [Edge("a", CUSTOM, table=[neighbours(t) for t in range(4)])])],
                ["bc", "pairs"])
    _, out = run(driver, plan)
    a = [[t * 10 + i for i in range(5)] for t in range(4)]
    assert by_stage(out, "bc") == [[x + sum(range(5)) for x in part] for part in a]
    assert by_stage(out, "pairs") == [[a[t], a[(t + 1) % 4]] for t in range(4)]


def test_custom_edge_reading_buckets(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s")
    # task i reads bucket i of upstream tasks 0 and 2 only
    plan = Plan([Stage("map", 3, split_by_mod, nbuckets=2),
                 Stage("pick", 2, concat_sorted, [Edge("map", CUSTOM, table=[[(0, i), (2, i)] for i in range(2)])])],
                ["pick"])
    _, out = run(driver, plan)
    assert by_stage(out, "pick") == [[x for x in list(range(10)) + list(range(20, 30)) if x % 2 == b]
                                     for b in range(2)]


def test_plan_data_is_uploaded_once_and_read_by_tasks(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s")
    plan = Plan([Stage("d", 2, data_reader)], ["d"], data={"blob": b"xyz"})
    _, out = run(driver, plan)
    assert by_stage(out, "d") == [list(b"xyz")] * 2


def test_plan_validation():
    with pytest.raises(ValueError, match="unknown stages"):
        Plan([Stage("a", 1, numbers)], ["b"])
    with pytest.raises(ValueError, match="duplicate"):
        Plan([Stage("a", 1, numbers), Stage("a", 1, numbers)], ["a"])
    with pytest.raises(ValueError, match="at least one task"):
        Stage("a", 0, numbers)
    with pytest.raises(ValueError, match="cycle"):
        Plan([Stage("a", 1, double, [Edge("b")]), Stage("b", 1, double, [Edge("a")])], ["a"]).graph()


def wrong_bucket_count(ctx):
    return [[1]]


def test_shuffle_stage_returning_wrong_bucket_count(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s")
    plan = Plan([Stage("m", 1, wrong_bucket_count, nbuckets=3)], ["m"])
    with pytest.raises(TypeError, match="must return 3 buckets"):
        run(driver, plan)


# -- failures --------------------------------------------------------------------------------
def fail_task_two(ctx):
    if ctx.task == 2:
        raise KeyError("missing thing")
    return [ctx.task]


def test_user_error_names_stage_and_task_and_cleans_up(store_url):
    driver = make_driver(store_url)
    plan = Plan([Stage("a", 4, numbers), Stage("b", 4, fail_task_two, [Edge("a")], label="b-label")], ["b"])
    with pytest.raises(KeyError, match="missing thing") as info:
        run(driver, plan)
    assert any("stage b-label task 2" in n for n in info.value.__notes__)
    assert "fail_task_two" in info.value.remote_traceback
    assert open_store(store_url).list("") == []


def fail_first_attempt(ctx):
    marker = os.path.join(ctx.read_data("dir").decode(), f"failed-{ctx.task}")
    if ctx.task == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient")
    return [ctx.task, ctx.attempt]


def test_user_error_retried_only_with_retries(tmp_path):
    url = f"file://{tmp_path}/s"
    data = {"dir": str(tmp_path).encode()}
    with pytest.raises(RuntimeError, match="transient"):
        run(make_driver(url), Plan([Stage("s", 3, fail_first_attempt)], ["s"], data=data))
    os.remove(tmp_path / "failed-1")
    _, out = run(make_driver(url, retries=1), Plan([Stage("s", 3, fail_first_attempt)], ["s"], data=data))
    assert by_stage(out, "s") == [[0, 0], [1, 1], [2, 0]]   # task 1 committed on its second attempt


def kill_first_attempt(ctx):
    if ctx.task == 0 and ctx.attempt == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return [ctx.task, ctx.attempt]


def test_killed_worker_is_retried(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s")
    _, out = run(driver, Plan([Stage("s", 3, kill_first_attempt)], ["s"]))
    assert by_stage(out, "s") == [[0, 1], [1, 0], [2, 0]]
    assert any("retry task 0: its worker process died" in e for _, _, e in driver.timeline)


def always_die(ctx):
    os.kill(os.getpid(), signal.SIGKILL)


def test_task_lost_after_task_retries(tmp_path):
    driver = make_driver(f"file://{tmp_path}/s", task_retries=1)
    with pytest.raises(TaskLost, match="lost 2 times"):
        run(driver, Plan([Stage("s", 1, always_die)], ["s"]))


def hang_first_attempt(ctx):
    """Attempt 0 waits until a later attempt of the same task has started (or 30 s)."""
    d = ctx.read_data("dir").decode()
    if ctx.task == ctx.ntasks - 1:
        if ctx.attempt == 0:
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(d, "rescued")) and time.monotonic() < deadline:
                time.sleep(0.01)
            open(os.path.join(d, "straggler-done"), "w").close()
        else:
            open(os.path.join(d, "rescued"), "w").close()
    return [ctx.task, ctx.attempt]


def _wait_for(path, seconds=30):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_timed_out_attempt_is_killed_and_relaunched(tmp_path):
    url = f"file://{tmp_path}/s"
    driver = make_driver(url, task_timeout=5.0, speculation=False)
    # Warm the workers first: importing this test module in a fresh worker (pytest,
    # hypothesis...) takes seconds on a loaded machine, and counts as task time.
    run(driver, Plan([Stage("warm", 4, which_attempt)], ["warm"]))
    plan = Plan([Stage("s", 2, hang_first_attempt)], ["s"], data={"dir": str(tmp_path).encode()})
    job, out = run(driver, plan, keep=True)
    assert by_stage(out, "s")[1] == [1, 1] and by_stage(out, "s")[0][0] == 0, driver.timeline
    assert any("task_timeout" in e for _, _, e in driver.timeline)
    header, _ = records.unpack(open_store(url).get(records.done_key(job, "s", 1)))
    assert header["a"] == 1
    # Attempt 0 was killed with its worker, so it never finishes and never writes late.
    time.sleep(1.0)
    assert not (tmp_path / "straggler-done").exists()
    open_store(url).delete(f"{job}/")
    # and the pool is whole for the next job
    job, out = run(driver, Plan([Stage("t", 4, lambda ctx: [ctx.task])], ["t"]))
    assert by_stage(out, "t") == [[0], [1], [2], [3]]


def test_speculation_launches_a_backup_of_a_straggler(tmp_path):
    url = f"file://{tmp_path}/s"
    driver = make_driver(url, speculation=True)
    plan = Plan([Stage("s", 6, hang_first_attempt)], ["s"], data={"dir": str(tmp_path).encode()})
    job, out = run(driver, plan, keep=True)
    parts = by_stage(out, "s")
    assert [p[0] for p in parts] == list(range(6)) and parts[5] == [5, 1]
    assert any("backup copy of task 5" in e for _, _, e in driver.timeline)
    # The straggler is killed when its job finishes (or loses the commit if it got that far).
    header, _ = records.unpack(open_store(url).get(records.done_key(job, "s", 5)))
    assert header["a"] == 1
    open_store(url).delete(f"{job}/")


def half_a_second(ctx):
    time.sleep(0.5)
    return [ctx.task]


def test_tasks_waiting_for_a_worker_get_no_backup(tmp_path):
    # 12 half-second tasks on 2 workers: the last ones leave the queue about 2.5 s after they were
    # invoked. Counted from the invocation they pass the 2 s straggler limit and get backups that
    # only queue behind them; counted from when they left the queue, none is late.
    from graphwren.runtime.backends.local import get_pool
    pool = get_pool(2)
    driver = make_driver(f"file://{tmp_path}/s", backend=pool, speculation=True, workers=2)
    _, out = run(driver, Plan([Stage("s", 12, half_a_second)], ["s"]))
    assert by_stage(out, "s") == [[t] for t in range(12)]
    backups = [e for _, _, e in driver.timeline if "backup copy" in e]
    assert backups == [], driver.timeline


# -- the commit rule, with duplicate and extra attempts ----------------------------------------
def which_attempt(ctx):
    return [ctx.task, ctx.attempt]


class DuplicatingBackend:
    """Delivers every invocation twice, plus a rogue extra attempt: as at-least-once queues do."""

    def __init__(self, inner, extra_attempt=50):
        self.inner, self.extra = inner, extra_attempt
        self.parallelism = inner.parallelism
        self.invoked = []

    def invoke(self, events):
        doubled = []
        for e in events:
            doubled += [e, dict(e), {**e, "attempt": e["attempt"] + self.extra}]
        self.invoked += doubled
        self.inner.invoke(doubled)

    def __getattr__(self, name):   # wait, lost, cancel, progress_count
        return getattr(self.inner, name)


def test_duplicate_deliveries_are_harmless(store_url):
    from graphwren.runtime.backends import get_backend
    base = config.resolve({"storage": store_url})
    backend = DuplicatingBackend(get_backend(base))
    driver = make_driver(store_url, backend=backend)
    plan = Plan([Stage("a", 4, which_attempt),
                 Stage("b", 2, concat_sorted, [Edge("a", GATHER)]),
                 ], ["a", "b"])
    job, out = run(driver, plan, keep=True)
    a = by_stage(out, "a")
    assert [p[0] for p in a] == [0, 1, 2, 3] and all(p[1] in (0, 50) for p in a)
    # every reader follows the commit record: b saw exactly the committed outputs of a
    assert by_stage(out, "b") == [sorted(x for p in a for x in p)] * 2
    store = open_store(store_url)
    for t, part in enumerate(a):
        header, _ = records.unpack(store.get(records.done_key(job, "a", t)))
        assert header["a"] == part[1]
    assert len(backend.invoked) == 3 * 6
    store.delete(f"{job}/")


def test_late_attempt_after_commit_does_not_replace_it(tmp_path):
    url = f"file://{tmp_path}/s"
    driver = make_driver(url)
    job, out = run(driver, Plan([Stage("s", 2, which_attempt)], ["s"]), keep=True)
    assert by_stage(out, "s") == [[0, 0], [1, 0]]
    store = open_store(url)
    before = store.get(records.done_key(job, "s", 0))
    key = integrity.job_key(job)   # a kept job's key stays in the driver's process
    func = integrity.unseal(key, records.func_key(job, "s"), store.get(records.func_key(job, "s")), url)
    fn_hash = hashlib.sha256(func).hexdigest()
    result = worker.handle({"store": url, "job": job, "stage": "s", "task": 0, "attempt": 7, "fn": fn_hash,
                            "key": key.hex()})
    assert result == {"ok": True, "committed": False, "recorded": True}
    assert store.get(records.done_key(job, "s", 0)) == before
    store.delete(f"{job}/")

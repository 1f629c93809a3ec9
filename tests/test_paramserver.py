"""The parameter server against a real redis-server on loopback: values against numpy, no lost update."""
from __future__ import annotations

import functools
import pickle
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren.errors import ParameterServerError
from graphwren.sandbox import free_port, redis_answers, redis_server_path, stop_process


@pytest.fixture
def ps_name():
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def second_redis(tmp_path):
    port = free_port()
    proc = subprocess.Popen([redis_server_path(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not redis_answers(port):
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    stop_process(proc)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple),
       dtype=st.sampled_from(["float32", "float64"]), piece_elems=st.integers(64, 200),
       rows=st.tuples(st.integers(-3, 10), st.integers(-3, 10)))
def test_set_get_and_add_match_numpy(redis_url, shape, dtype, piece_elems, rows):
    name = f"h{uuid.uuid4().hex[:10]}"
    rng = np.random.default_rng(len(shape) * 100 + piece_elems)
    value = rng.standard_normal(shape).astype(dtype)
    itemsize = np.dtype(dtype).itemsize
    ps = gw.ParameterServer(redis_url, name, init={"x": value}, piece_bytes=piece_elems * itemsize)
    try:
        got = ps.get("x")
        assert np.asarray(got).dtype == dtype and np.array_equal(got, value)
        delta = rng.standard_normal(shape).astype(dtype)
        ps.add("x", delta)
        expected = value + delta
        np.testing.assert_array_equal(ps.get("x"), expected)
        if shape:
            r = slice(*rows)
            part = rng.standard_normal(expected[r].shape).astype(dtype)
            ps.add("x", part, rows=r)
            expected[r] += part
            np.testing.assert_array_equal(ps.get("x"), expected)
            np.testing.assert_array_equal(ps.get("x", rows=r), expected[r])
    finally:
        ps.delete()


def test_scalars_integers_and_a_scalar_delta(redis_url, ps_name):
    ps = gw.ParameterServer(redis_url, ps_name, init={"b": 0.0, "n": np.arange(5)})
    try:
        ps.add("b", 2.5)
        ps.add("n", 1)              # a scalar delta is broadcast
        assert ps.get("b") == 2.5 and np.ndim(ps.get("b")) == 0
        assert ps.get("n").dtype == np.float64 and ps.get("n").tolist() == [1, 2, 3, 4, 5]
        assert ps.tensors() == ["b", "n"] and ps.version("n") == 1
    finally:
        ps.delete()


def add_ones(ps, times):
    for _ in range(times):
        ps.add("w", np.ones(3000))
        ps.add("b", 1.0)
    return times


def test_concurrent_adds_from_worker_processes_lose_no_update(redis_url, ps_name, tmp_path):
    """N tasks each add 1 to every element K times: the result is exactly N*K."""
    n, k = 8, 25
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros(3000), "b": 0.0}, piece_bytes=8 * 1024)
    try:
        ex = gw.Executor(storage=f"file://{tmp_path}/store")
        assert gw.get_all_results(ex.map(functools.partial(add_ones, times=k), [ps] * n)) == [k] * n
        assert np.array_equal(ps.get("w"), np.full(3000, n * k)) and ps.get("b") == n * k
    finally:
        ps.delete()


def test_concurrent_adds_from_threads_lose_no_update(redis_url, ps_name):
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros(3000), "b": 0.0}, piece_bytes=8 * 1024)
    try:
        threads = [threading.Thread(target=add_ones, args=(ps, 20)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert np.array_equal(ps.get("w"), np.full(3000, 240)) and ps.get("b") == 240
    finally:
        ps.delete()


def test_a_task_run_twice_applies_its_adds_once(redis_url, ps_name, tmp_path):
    """The adds of a task carry ids repeated by every execution: a re-run (here, the same task id
    entered twice, as a duplicate Lambda delivery is) skips what the first run applied."""
    from graphwren.runtime import current
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros(4)})
    try:
        for _ in range(2):
            with current.running("job-1", "0-map", 3):
                for _ in range(5):
                    ps.add("w", np.ones(4))
        assert ps.get("w").tolist() == [5.0] * 4
        with current.running("job-1", "0-map", 4):   # another task: applied
            ps.add("w", np.ones(4))
        assert ps.get("w").tolist() == [6.0] * 4
    finally:
        ps.delete()


def test_bad_input_is_named(redis_url, ps_name):
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros((4, 3))})
    try:
        with pytest.raises(ParameterServerError, match=r"tensor 'w': delta has shape \(3,\), the tensor \(4, 3\)"):
            ps.add("w", np.zeros(3))
        with pytest.raises(ParameterServerError, match="delta of dtype complex128 cannot be added to a float64"):
            ps.add("w", np.zeros((4, 3), complex))
        with pytest.raises(ParameterServerError, match=r"no tensor 'v'; it has \['w'\]"):
            ps.get("v")
        with pytest.raises(ParameterServerError, match="step 1"):
            ps.get("w", rows=slice(0, 4, 2))
        with pytest.raises(ParameterServerError, match="dtype <U1 is not supported"):
            ps.set("s", np.array(["a"]))
    finally:
        ps.delete()
    with pytest.raises(ParameterServerError, match="redis:// URLs"):
        gw.ParameterServer("http://127.0.0.1:1/", "x")


def test_an_unreachable_redis_is_an_error_at_construction():
    url = f"redis://127.0.0.1:{free_port()}/0"   # nothing listens there
    start = time.monotonic()
    with pytest.raises(ParameterServerError, match=f"connect could not reach {url}"):
        gw.ParameterServer(url, "nobody")
    assert time.monotonic() - start < 10


def test_it_pickles_to_a_small_handle(redis_url, ps_name):
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros(1_000_000)})
    try:
        blob = pickle.dumps(ps)
        assert len(blob) < 500
        clone = pickle.loads(blob)
        clone.add("w", np.ones(1_000_000))
        assert ps.get("w").sum() == 1_000_000
    finally:
        ps.delete()


def test_tensors_are_sharded_over_several_redis_servers(redis_url, second_redis, ps_name):
    import redis
    value = np.arange(20_000, dtype=np.float64)
    ps = gw.ParameterServer([redis_url, second_redis], ps_name, init={"w": value}, piece_bytes=8 * 1024)
    try:
        ps.add("w", np.ones(20_000))
        np.testing.assert_array_equal(ps.get("w"), value + 1)
        counts = [len(list(redis.Redis.from_url(u).scan_iter(match=f"gwps:{ps_name}:t:w:*")))
                  for u in (redis_url, second_redis)]
        assert all(c > 0 for c in counts)   # pieces (and their versions) on both servers
    finally:
        ps.delete()


@pytest.mark.parametrize("where", ["file", "s3"])
def test_snapshot_and_restore(redis_url, ps_name, tmp_path, where, request):
    base = str(tmp_path / "ckpt") if where == "file" else request.getfixturevalue("s3_url")
    url = f"{base}/logreg.npz"
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.arange(10.0), "b": 1.5})
    try:
        snap = ps.snapshot(url)
        assert set(snap) == {"w", "b"}
        ps.add("w", np.ones(10))
        ps.restore(url)
        assert ps.get("w").tolist() == list(np.arange(10.0)) and ps.get("b") == 1.5
        if where == "file":
            with np.load(tmp_path / "ckpt" / "logreg.npz") as data:   # numpy reads what it wrote
                assert data["w"].tolist() == list(np.arange(10.0))
    finally:
        ps.delete()


def test_bounded_staleness_keeps_every_worker_within_s_clocks_of_the_slowest(redis_url, ps_name):
    s, steps = 1, 8
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros(1)}, staleness=s)
    gaps, errors = [], []

    def worker(i, pause):
        try:
            for _ in range(steps):
                time.sleep(pause)
                mine = ps.clock(i, timeout=60)
                others = [int(v) for v in ps._call(0, "t", lambda c: c.hvals(f"gwps:{ps_name}:clocks"))]
                gaps.append(mine - min(others))
            ps.finish(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        ps.start_clocks(range(3))
        threads = [threading.Thread(target=worker, args=(i, p)) for i, p in enumerate([0.0, 0.0, 0.03])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and len(gaps) == 3 * steps
        assert max(gaps) <= s
    finally:
        ps.delete()


# -- on Lambda, through the local endpoint (boto3 -> emulator -> awslambdaric -> the handler) ----------
from lambda_fixtures import DUP, lambda_emulator, lambda_settings  # noqa: E402,F401


def test_lambda_tasks_add_through_redis_and_duplicate_deliveries_apply_once(
        lambda_settings, lambda_emulator, redis_url, redis_store_url, ps_name):
    """Every event delivered twice: each task's adds still land once (their ids repeat across executions)."""
    import cloudpickle
    import sys
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    n, k = 6, 10
    ps = gw.ParameterServer(redis_url, ps_name, init={"w": np.zeros(3000), "b": 0.0}, piece_bytes=8 * 1024)
    fn = lambda_emulator.function(DUP)
    try:
        before = fn.deliveries
        ex = gw.Executor(storage=redis_store_url, lambda_function=DUP, **lambda_settings)
        assert gw.get_all_results(ex.map(functools.partial(add_ones, times=k), [ps] * n)) == [k] * n
        assert lambda_emulator.drain(30)
        assert fn.deliveries - before >= 2 * n      # every task ran twice (or more: a backup copy)
        assert np.array_equal(ps.get("w"), np.full(3000, n * k)) and ps.get("b") == n * k
    finally:
        ps.delete()

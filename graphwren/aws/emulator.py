"""A local AWS Lambda endpoint: the Invoke API for boto3, the Runtime API for workers.

``LambdaEmulator`` listens on loopback only. boto3's ``lambda`` client,
pointed at ``emulator.endpoint`` (``endpoint_url=`` or
``AWS_ENDPOINT_URL_LAMBDA``), calls Invoke / GetFunction exactly as it calls
AWS. Each function's workers are ``python -m awslambdaric <handler>``
processes (AWS's own runtime interface client, as in a container image),
each talking to its own Runtime API port. The emulator

* enforces the function timeout (the worker is killed; the invocation fails
  with Lambda's ``Task timed out after N seconds``) and memory size (RSS above
  it kills the worker: ``Runtime.OutOfMemory``);
* reports errors in Lambda's format (``X-Amz-Function-Error``; ``errorType``,
  ``errorMessage``, ``stackTrace``; ``x-amzn-ErrorType`` for API errors);
* keeps invocations queued when a worker dies: the invocation it was running
  goes back to the head of the queue (at most ``max_redeliveries`` times), and
  so does one whose hand-over to a worker failed;
* can deliver every async event twice (``duplicate_events``), retry failed
  async events (``async_retries``, as Lambda's default of 2), and inject
  throttling / 5xx answers (``inject``) to test clients;
* sets ``TCP_NODELAY`` on every socket (without it a warm invoke took 88 ms);
* answers the Invoke API only with its token: a random ``token`` made when
  it is created, which clients send in the ``X-Graphwren-Token`` header
  (graphwren's Lambda backend sends ``$GRAPHWREN_LAMBDA_TOKEN``; another
  boto3 client: ``graphwren.runtime.backends.lambda_.send_token``). Any
  other local user's request is refused with 403, so nobody else on the
  machine can run code in the workers or read their functions' settings.
"""
from __future__ import annotations

import collections
import hmac
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

from ..runtime.backends.lambda_ import TOKEN_ENV, TOKEN_HEADER
from . import DEFAULT_MEMORY, HANDLER, function_name

ACCOUNT = "000000000000"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ASYNC_PAYLOAD_LIMIT = 1024 * 1024        # Event invocations (AWS raised it from 256 KB to 1 MB)
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024     # RequestResponse requests and responses
_FORWARD_PREFIXES = ("AWS_", "GRAPHWREN_", "REDIS", "PYTHON", "PATH", "HOME", "LANG", "LC_", "TMPDIR",
                     "VIRTUAL_ENV", "COVERAGE", "NO_PROXY", "no_proxy")


def _nodelay(sock) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class _Server(http.server.ThreadingHTTPServer):
    """A threading HTTP server on loopback that knows its emulator."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):  # a client hanging up is not news
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def __init__(self, host, port, handler, owner):
        self.owner = owner
        self.closed = False
        super().__init__((host, port), handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Base request handler: JSON replies, quiet logs."""
    protocol_version = "HTTP/1.1"
    server_version = "graphwren-lambda-emulator"

    def setup(self):
        _nodelay(self.request)
        super().setup()

    def log_message(self, *args):  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()


# --------------------------------------------------------------------------- state

class Invocation:
    """One event queued for a function: its payload, deliveries so far, and where its reply goes."""

    def __init__(self, function: "Function", payload: bytes, sync: bool):
        self.id = str(uuid.uuid4())
        self.function = function
        self.payload = payload
        self.sync = sync
        self.deliveries = 0       # times handed to a worker
        self.redeliveries = 0     # times handed back after a worker died
        self.retries = 0          # async retries after a function error
        self.done = threading.Event()
        self.result: bytes = b""
        self.error_type: str | None = None   # X-Amz-Function-Error value when set


class _Worker:
    """One ``python -m awslambdaric`` process and the Runtime API server it talks to."""

    def __init__(self, function: "Function"):
        self.function = function
        self.current: Invocation | None = None
        self.deadline = 0.0
        self.dead = False
        self.ready = threading.Event()     # it asked for its first invocation
        self.init_error: dict | None = None
        em = function.emulator
        self.server = _Server(em.host, 0, _RuntimeHandler, self)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name=f"lambda-runtime-{function.name}", daemon=True)
        self.thread.start()
        env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_PREFIXES)}
        env.update({
            "AWS_LAMBDA_RUNTIME_API": f"{em.host}:{self.port}",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
            "AWS_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "_HANDLER": function.handler,
            "LAMBDA_TASK_ROOT": os.getcwd(),
        })
        env.update(function.env)
        env.pop(TOKEN_ENV, None)   # the workers never call the Invoke API
        self.log = open(function.log_path, "ab")
        self.process = subprocess.Popen([function.python, "-m", "awslambdaric", function.handler],
                                        env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=function.cwd)

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.process.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def shut(self) -> None:
        self.dead = True
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.server.closed = True
        self.server.shutdown()
        self.server.server_close()
        self.log.close()


class Function:
    """One emulated function: its configuration, its queue, its workers."""

    def __init__(self, emulator: "LambdaEmulator", name: str, handler: str, timeout: float, memory: int,
                 workers: int, env: dict, async_retries: int, duplicate_events: bool,
                 max_redeliveries: int, python: str, cwd: str | None):
        self.emulator = emulator
        self.name, self.handler, self.timeout, self.memory = name, handler, timeout, memory
        self.concurrency, self.env = workers, dict(env)
        self.async_retries, self.duplicate_events = async_retries, duplicate_events
        self.max_redeliveries = max_redeliveries
        self.python, self.cwd = python, cwd
        self.queue: collections.deque[Invocation] = collections.deque()
        self.workers: list[_Worker] = []
        self.log_path = os.path.join(emulator.log_dir, f"{name}.log")
        # what tests look at
        self.invocations = 0        # accepted Invoke calls
        self.deliveries = 0         # invocations handed to workers (duplicates, retries included)
        self.max_outstanding = 0    # most invocations queued or running at once
        self.errors: list[dict] = []  # function errors of async invocations (Lambda's format)
        self.worker_deaths = 0
        self.timeouts = 0

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.emulator.region}:{ACCOUNT}:function:{self.name}"

    def configuration(self) -> dict:
        return {
            "FunctionName": self.name, "FunctionArn": self.arn, "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "Role": f"arn:aws:iam::{ACCOUNT}:role/graphwren-emulator", "Handler": self.handler,
            "CodeSize": 0, "Description": "graphwren local Lambda emulator", "Timeout": int(self.timeout) or 1,
            "MemorySize": self.memory, "LastModified": "2024-01-01T00:00:00.000+0000",
            "Version": "$LATEST", "Environment": {"Variables": dict(self.env)}, "State": "Active",
            "LastUpdateStatus": "Successful", "PackageType": "Zip", "Architectures": ["x86_64"],
        }

    def busy(self) -> int:
        return sum(1 for w in self.workers if w.current is not None)


# --------------------------------------------------------------------------- Runtime API

class _RuntimeHandler(_Handler):
    """The Lambda Runtime API a worker polls: next event, response, error."""
    PREFIX = "/2018-06-01/runtime/"

    def do_GET(self):
        worker: _Worker = self.server.owner
        if self.path != self.PREFIX + "invocation/next":
            return self._send(404, b'{"errorMessage":"unknown runtime API path"}')
        em = worker.function.emulator
        worker.ready.set()
        inv = em._next_for(worker)
        if inv is None:       # the worker or the emulator is going away
            return self._send(410, b'{"errorMessage":"shutting down"}')
        deadline_ms = int((time.time() + worker.function.timeout) * 1000)
        try:
            self._send(200, inv.payload, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": inv.id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": worker.function.arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            })
        except OSError:
            em._hand_back(worker, inv)   # never lose an invocation the worker did not get

    def do_POST(self):
        worker: _Worker = self.server.owner
        em = worker.function.emulator
        body = self._body()
        path = self.path[len(self.PREFIX):] if self.path.startswith(self.PREFIX) else ""
        if path == "init/error":
            self._send(202, b'{"status":"OK"}')
            return em._init_failed(worker, _error_doc(body, self.headers.get("Lambda-Runtime-Function-Error-Type")))
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            ok = em._finish(worker, parts[1], body, None if parts[2] == "response" else
                            _error_doc(body, self.headers.get("Lambda-Runtime-Function-Error-Type")))
            if not ok:
                return self._send(400, b'{"errorMessage":"unknown or finished request id","errorType":"InvalidRequestID"}')
            return self._send(202, b'{"status":"OK"}')
        self._send(404, b'{"errorMessage":"unknown runtime API path"}')


def _error_doc(body: bytes, error_type: str | None) -> dict:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(doc, dict):
        doc = {"errorMessage": str(doc)}
    doc.setdefault("errorType", error_type or "Unhandled")
    doc.setdefault("errorMessage", "")
    return doc


# --------------------------------------------------------------------------- Invoke API

class _InvokeHandler(_Handler):
    """The Lambda Invoke API boto3 calls: queue an event, or run it and wait."""

    def _authorized(self) -> bool:
        """The request carries the emulator's token; otherwise it is answered 403."""
        em: LambdaEmulator = self.server.owner
        if hmac.compare_digest(self.headers.get(TOKEN_HEADER, "").encode(), em.token.encode()):
            return True
        self._body()   # read it, so the connection stays usable for the client's next request
        self._api_error(403, "AccessDeniedException",
                        f"the graphwren Lambda emulator at {em.endpoint} needs its token in the "
                        f"{TOKEN_HEADER} header: set {TOKEN_ENV} to the token it printed "
                        f"(or use LambdaEmulator.token)")
        return False

    def _api_error(self, status: int, code: str, message: str, extra: dict | None = None) -> None:
        doc = {"Type": "User", "message": message, "Message": message, **(extra or {})}
        self._send(status, json.dumps(doc).encode(), {
            "Content-Type": "application/json", "x-amzn-ErrorType": code,
            "x-amzn-RequestId": str(uuid.uuid4())})

    def _function(self, raw: str):
        name = urllib.parse.unquote(raw)
        if name.startswith("arn:"):
            bits = name.split(":")
            name = bits[6] if len(bits) > 6 else name
        fn = self.server.owner.functions.get(name)
        if fn is None:
            self._api_error(404, "ResourceNotFoundException",
                            f"Function not found: arn:aws:lambda:{self.server.owner.region}:{ACCOUNT}:function:{name}")
        return fn

    def do_GET(self):
        if not self._authorized():
            return
        path = urllib.parse.urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[1] == "functions":
            fn = self._function(parts[2])
            if fn is None:
                return
            if len(parts) == 3:
                doc = {"Configuration": fn.configuration(), "Code": {"RepositoryType": "S3", "Location": ""},
                       "Concurrency": {"ReservedConcurrentExecutions": fn.concurrency}}
            elif parts[3] == "configuration":
                doc = fn.configuration()
            elif parts[3] == "concurrency":
                doc = {"ReservedConcurrentExecutions": fn.concurrency}
            else:
                return self._api_error(404, "ResourceNotFoundException", f"unknown path {path}")
            return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        if path.rstrip("/").endswith("/functions"):
            doc = {"Functions": [f.configuration() for f in self.server.owner.functions.values()]}
            return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        self._api_error(404, "ResourceNotFoundException", f"unknown path {path}")

    def do_POST(self):
        if not self._authorized():
            return
        em: LambdaEmulator = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        parts = path.strip("/").split("/")
        body = self._body()
        if not (len(parts) == 4 and parts[1] == "functions" and parts[3] == "invocations"):
            return self._api_error(404, "ResourceNotFoundException", f"unknown path {path}")
        fault = em._take_fault()
        if fault is not None:
            status, code = fault
            return self._api_error(status, code, f"injected {code}",
                                   {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"} if status == 429 else None)
        fn = self._function(parts[2])
        if fn is None:
            return
        kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        limit = ASYNC_PAYLOAD_LIMIT if kind == "Event" else SYNC_PAYLOAD_LIMIT
        if len(body) > limit:
            return self._api_error(413, "RequestEntityTooLargeException",
                                   f"{len(body)} byte payload is too large for the {kind} invocation type "
                                   f"(limit {limit} bytes)")
        try:
            json.loads(body or b"{}")
        except ValueError:
            return self._api_error(400, "InvalidRequestContentException",
                                   "Could not parse request body into json")
        body = body or b"{}"
        if kind == "DryRun":
            return self._send(204, b"", {"x-amzn-RequestId": str(uuid.uuid4())})
        if kind == "Event":
            inv = em._submit(fn, body, sync=False)
            return self._send(202, b"", {"x-amzn-RequestId": inv.id})
        if kind != "RequestResponse":
            return self._api_error(400, "InvalidParameterValueException", f"unknown invocation type {kind}")
        inv = em._submit(fn, body, sync=True)
        inv.done.wait()
        if len(inv.result) > SYNC_PAYLOAD_LIMIT:
            inv.result = json.dumps({"errorType": "Function.ResponseSizeTooLarge",
                                     "errorMessage": f"Response payload size ({len(inv.result)} bytes) exceeded "
                                                     f"maximum allowed payload size ({SYNC_PAYLOAD_LIMIT} bytes)."}).encode()
            inv.error_type = "Unhandled"
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": inv.id,
                   "X-Amz-Executed-Version": "$LATEST"}
        if inv.error_type:
            headers["X-Amz-Function-Error"] = inv.error_type
        self._send(200, inv.result, headers)


# --------------------------------------------------------------------------- the emulator

class LambdaEmulator:
    """A Lambda endpoint on loopback. Use as a context manager, or ``start()`` / ``stop()``.

    >>> with LambdaEmulator(workers=2) as lam:           # doctest: +SKIP
    ...     os.environ.update(lam.client_env)   # the endpoint and the token
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str | None = None,
                 log_dir: str | None = None, default: bool = True, token: str | None = None,
                 **default_function):
        if host not in LOOPBACK:
            raise ValueError(f"the Lambda emulator serves loopback only (127.0.0.1 or ::1), not {host!r}")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.token = token or secrets.token_urlsafe(32)   # Invoke API requests must carry it
        self.region = region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="graphwren-lambda-")
        os.makedirs(self.log_dir, exist_ok=True)
        self.functions: dict[str, Function] = {}
        self._cond = threading.Condition()
        self._faults: collections.deque = collections.deque()
        self._server: _Server | None = None
        self._closed = False
        self._monitor: threading.Thread | None = None
        self._default = default_function if default else None

    # -- lifecycle ---------------------------------------------------------------
    def start(self, wait: float = 60.0) -> "LambdaEmulator":
        self._server = _Server(self.host, self.port, _InvokeHandler, self)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="lambda-invoke-api", daemon=True).start()
        self._monitor = threading.Thread(target=self._watch, name="lambda-monitor", daemon=True)
        self._monitor.start()
        if self._default is not None and not self.functions and not self._closed:
            self.add_function(**self._default, wait=wait)
        return self

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def client_env(self) -> dict:
        """The variables that point graphwren's Lambda backend at this emulator."""
        return {"AWS_ENDPOINT_URL_LAMBDA": self.endpoint, TOKEN_ENV: self.token}

    def stop(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for fn in self.functions.values():
            for w in list(fn.workers):
                w.shut()
            with self._cond:
                for inv in fn.queue:
                    inv.error_type = "Unhandled"
                    inv.result = b'{"errorType":"Emulator.Stopped","errorMessage":"the emulator stopped"}'
                    inv.done.set()
                fn.queue.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- functions -----------------------------------------------------------------
    def add_function(self, name: str | None = None, handler: str = HANDLER, timeout: float = 60.0,
                     memory: int = DEFAULT_MEMORY, workers: int = 2, env: dict | None = None,
                     version: str | None = None, async_retries: int = 0, duplicate_events: bool = False,
                     max_redeliveries: int = 2, prewarm: bool = True, python: str | None = None,
                     cwd: str | None = None, wait: float = 60.0) -> Function:
        """Register a function; ``prewarm`` starts its workers now (and waits for them)."""
        from ..version import __version__
        name = name or function_name(memory)
        env = {"GRAPHWREN_VERSION": version or __version__, **(env or {})}
        fn = Function(self, name, handler, float(timeout), int(memory), int(workers), env,
                      int(async_retries), bool(duplicate_events), int(max_redeliveries),
                      python or sys.executable, cwd)
        with self._cond:
            if name in self.functions:
                raise ValueError(f"function {name!r} already exists")
            self.functions[name] = fn
        if prewarm:
            self._ensure_workers(fn)
            deadline = time.monotonic() + wait
            for w in list(fn.workers):
                while not w.ready.wait(0.05):
                    if w.process.poll() is not None or w.init_error or time.monotonic() > deadline:
                        break
        return fn

    def function(self, name: str | None = None) -> Function:
        return self.functions[name] if name else next(iter(self.functions.values()))

    def inject(self, count: int = 1, status: int = 429, code: str = "TooManyRequestsException") -> None:
        """Answer the next ``count`` Invoke calls with this API error (throttling by default)."""
        with self._cond:
            self._faults.extend([(status, code)] * count)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no invocation is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if all(not f.queue and not f.busy() for f in self.functions.values()):
                    return True
            time.sleep(0.01)
        return False

    # -- internals (called from server threads) ---------------------------------------
    def _take_fault(self):
        with self._cond:
            return self._faults.popleft() if self._faults else None

    def _ensure_workers(self, fn: Function) -> None:
        with self._cond:
            if self._closed:
                return
            fn.workers = [w for w in fn.workers if not w.dead]
            missing = fn.concurrency - len(fn.workers)
        for _ in range(max(0, missing)):
            w = _Worker(fn)
            with self._cond:
                fn.workers.append(w)

    def _submit(self, fn: Function, payload: bytes, sync: bool) -> Invocation:
        inv = Invocation(fn, payload, sync)
        with self._cond:
            fn.invocations += 1
            fn.queue.append(inv)
            if fn.duplicate_events and not sync:
                fn.queue.append(Invocation(fn, payload, sync))   # Lambda's at-least-once delivery
            fn.max_outstanding = max(fn.max_outstanding, len(fn.queue) + fn.busy())
            self._cond.notify_all()
        if sum(1 for w in fn.workers if not w.dead) < fn.concurrency:
            self._ensure_workers(fn)
        return inv

    def _next_for(self, worker: _Worker) -> Invocation | None:
        fn = worker.function
        with self._cond:
            worker.current = None
            while not fn.queue and not worker.dead and not self._closed:
                self._cond.wait(1.0)
            if worker.dead or self._closed:
                return None
            inv = fn.queue.popleft()
            inv.deliveries += 1
            fn.deliveries += 1
            worker.current = inv
            worker.deadline = time.monotonic() + fn.timeout
            return inv

    def _hand_back(self, worker: _Worker, inv: Invocation) -> None:
        with self._cond:
            if worker.current is inv:
                worker.current = None
                fn = worker.function
                fn.queue.appendleft(inv)
                self._cond.notify_all()

    def _finish(self, worker: _Worker, request_id: str, body: bytes, error: dict | None) -> bool:
        with self._cond:
            inv = worker.current
            if inv is None or inv.id != request_id:
                return False
            worker.current = None
        if error is None:
            self._complete(inv, body, None)
        else:
            self._fail(inv, error)
        return True

    def _complete(self, inv: Invocation, body: bytes, error_type: str | None) -> None:
        inv.result, inv.error_type = body, error_type
        inv.done.set()

    def _fail(self, inv: Invocation, error: dict) -> None:
        """A function error: sync callers get it; async events are retried, then dropped."""
        fn = inv.function
        if not inv.sync:
            with self._cond:
                fn.errors.append(error)
                if inv.retries < fn.async_retries and not self._closed:
                    inv.retries += 1
                    fn.queue.append(inv)
                    self._cond.notify_all()
                    return
        self._complete(inv, json.dumps(error).encode(), "Unhandled")

    def _init_failed(self, worker: _Worker, error: dict) -> None:
        """The handler could not be loaded: fail what is queued with Lambda's init error."""
        worker.init_error = error
        fn = worker.function
        with self._cond:
            failed = list(fn.queue)
            fn.queue.clear()
        for inv in failed:
            self._fail_no_retry(inv, error)

    def _fail_no_retry(self, inv: Invocation, error: dict) -> None:
        if not inv.sync:
            with self._cond:
                inv.function.errors.append(error)
        self._complete(inv, json.dumps(error).encode(), "Unhandled")

    def _watch(self) -> None:
        """Enforce timeouts and memory; replace dead workers; hand their invocations back."""
        tick = 0
        while True:
            with self._cond:
                if self._closed:
                    return
                fns = list(self.functions.values())
            tick += 1
            now = time.monotonic()
            for fn in fns:
                for w in list(fn.workers):
                    if w.dead:
                        continue
                    inv = w.current
                    reason = None
                    if w.process.poll() is not None:
                        reason = "died"
                    elif inv is not None and now > w.deadline:
                        reason = "timeout"
                    elif inv is not None and tick % 3 == 0 and w.rss_mb() > fn.memory:
                        reason = "memory"
                    if reason is None:
                        continue
                    with self._cond:
                        inv = w.current
                        w.current = None
                        w.dead = True
                    code = w.process.poll()
                    threading.Thread(target=w.shut, daemon=True).start()
                    if inv is not None:
                        self._on_lost(fn, inv, reason, code)
                    elif reason == "died" and w.init_error is None:
                        fn.worker_deaths += 1
                    with self._cond:
                        wanted = w.init_error is None or bool(fn.queue)   # a broken image is retried per invoke
                    if wanted:
                        self._ensure_workers(fn)
            time.sleep(0.01)

    def _on_lost(self, fn: Function, inv: Invocation, reason: str, code) -> None:
        rid = inv.id
        if reason == "timeout":
            fn.timeouts += 1
            return self._fail(inv, {"errorType": "Sandbox.Timedout",
                                    "errorMessage": f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {rid} "
                                                    f"Task timed out after {fn.timeout:.2f} seconds"})
        if reason == "memory":
            return self._fail(inv, {"errorType": "Runtime.OutOfMemory",
                                    "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: signal: killed "
                                                    f"(memory size {fn.memory} MB exceeded)"})
        fn.worker_deaths += 1
        with self._cond:
            if inv.redeliveries < fn.max_redeliveries and not self._closed:
                inv.redeliveries += 1
                fn.queue.appendleft(inv)      # the invocation stays queued: another worker takes it
                self._cond.notify_all()
                return
        status = f"signal: {-code}" if code is not None and code < 0 else f"exit status {code}"
        self._fail(inv, {"errorType": "Runtime.ExitError",
                         "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: {status}"})


def serve(port: int, workers: int = 2, timeout: float = 900, memory: int = DEFAULT_MEMORY,
          name: str | None = None, host: str = "127.0.0.1") -> None:
    """Run an emulator in the foreground until interrupted (``graphwren lambda emulate``)."""
    import signal

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)   # stop the workers too, not only this process
    em = LambdaEmulator(host=host, port=port, default=False)
    em.start()
    try:
        fn = em.add_function(name=name, workers=workers, timeout=timeout, memory=memory)
        print(f"graphwren Lambda emulator on {em.endpoint}: function {fn.name} "
              f"({workers} workers, {memory} MB, timeout {timeout:g} s)", flush=True)
        for name, value in em.client_env.items():
            print(f"  export {name}={value}", flush=True)
        print(f"  worker logs: {fn.log_path}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        em.stop()


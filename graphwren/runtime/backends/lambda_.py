"""The AWS Lambda backend: asynchronous invocations through boto3.

A backend only invokes. Each event (a task pointer of ~200 bytes) becomes
one ``Invoke(InvocationType="Event")`` call, made from a shared thread pool.
At most ``lambda_max_workers`` tasks are in flight: a token is taken per
invocation and given back when the task's ``done`` or ``err`` record shows
up in storage (one LIST per stage, only while tokens are short), when the
job is cancelled, or after ``task_timeout`` (the driver re-invokes then).
Throttling (``TooManyRequestsException``, 429), 5xx answers and dropped
connections are retried with exponential back-off and jitter; an invocation
that cannot be made at all (function deleted, access denied) gets an error
record in storage, so the driver raises it at once instead of waiting.

Lambda may deliver an async event twice and retries failed ones: the commit
rule makes that harmless. Before the first job the backend checks, once,
that credentials exist, the function exists, and that it runs this
graphwren and Python version (a ``ping`` invocation), so a bad setup is
reported with its fix before anything starts.
"""
from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import platform
import random
import threading
import time

from ...errors import LambdaInvokeError, LambdaSetupError
from .. import integrity, records, remote_errors

MAX_PAYLOAD = 256 * 1024          # far below Lambda's async limit (1 MB); ours are ~200 bytes
THROTTLE_CODES = {"TooManyRequestsException", "ThrottlingException", "Throttling",
                  "TooManyRequests", "RequestLimitExceeded", "EC2ThrottledException"}
TRANSIENT_CODES = {"ServiceException", "ServiceUnavailableException", "InternalFailure",
                   "InternalServerError", "ResourceNotReadyException", "ResourceConflictException",
                   "EFSMountConnectivityException", "SubnetIPAddressLimitReachedException"}
RETRY_SECONDS = 300.0             # longest we keep retrying one throttled invocation
BACKOFF_BASE, BACKOFF_MAX = 0.02, 5.0
SEND_THREADS = 32
# The local Lambda emulator (graphwren.aws.emulator) answers only requests carrying its token.
TOKEN_ENV = "GRAPHWREN_LAMBDA_TOKEN"
TOKEN_HEADER = "X-Graphwren-Token"


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_checked: dict[tuple, dict] = {}    # (endpoint, region, function) -> ping answer


def send_token(client, token: str) -> None:
    """Make every request of a boto3 Lambda client carry the local emulator's token."""
    def add(request, **_):
        request.headers[TOKEN_HEADER] = token
    client.meta.events.register("before-sign.lambda", add)


def _send_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="gw-lambda-invoke")
        return _pool


def _error_code(exc) -> tuple[str, int]:
    resp = getattr(exc, "response", None) or {}
    code = resp.get("Error", {}).get("Code", "") or ""
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, status


class LambdaBackend:
    """Runs tasks as asynchronous invocations of one Lambda function."""

    name = "lambda"

    def __init__(self, settings: dict, client=None, check: bool = True):
        from .lambda_names import function_name
        self.settings = settings
        self.function = settings.get("lambda_function") or function_name(settings.get("lambda_memory"))
        cap = int(settings.get("lambda_max_workers") or 1000)
        if cap < 1:
            raise ValueError(f"lambda_max_workers must be >= 1, got {cap}")
        self.parallelism = cap
        self.task_timeout = float(settings.get("task_timeout") or 900.0)
        self.endpoint = settings.get("lambda_endpoint") or os.environ.get("AWS_ENDPOINT_URL_LAMBDA") \
            or os.environ.get("AWS_ENDPOINT_URL")
        self._client = client if client is not None else self._make_client()
        self._lock = threading.Condition()
        self._pending: collections.deque = collections.deque()
        self._inflight: dict[tuple, tuple[dict, float]] = {}   # (store, job, stage, task, attempt) -> (event, sent)
        self._reaper: threading.Thread | None = None
        self._cancelled: set[str] = set()
        self.stats = collections.Counter()   # invoked, throttled, transient, failed, released
        if check:
            self.check()

    # -- set-up ------------------------------------------------------------------
    def _make_client(self):
        import boto3
        from botocore.config import Config
        session = boto3.Session()
        if session.get_credentials() is None:
            raise LambdaSetupError(
                "the Lambda backend found no AWS credentials. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run `aws configure`); for the local Lambda "
                "endpoint any values do, e.g. `graphwren lambda emulate` plus "
                "the AWS_ENDPOINT_URL_LAMBDA and GRAPHWREN_LAMBDA_TOKEN it prints.")
        region = session.region_name or os.environ.get("AWS_REGION")
        if region is None:
            raise LambdaSetupError("the Lambda backend found no AWS region: set AWS_DEFAULT_REGION "
                                   "(or a region in ~/.aws/config).")
        self.region = region
        config = Config(max_pool_connections=SEND_THREADS + 4, retries={"total_max_attempts": 1, "mode": "standard"},
                        connect_timeout=5, read_timeout=max(70, self.task_timeout + 10), tcp_keepalive=True)
        client = session.client("lambda", region_name=region, endpoint_url=self.endpoint, config=config)
        token = os.environ.get(TOKEN_ENV)
        if token:
            send_token(client, token)
        return client

    def _where(self) -> str:
        return f"{self.function!r}" + (f" at {self.endpoint}" if self.endpoint else
                                        f" in {getattr(self, 'region', '?')}")

    def check(self) -> dict:
        """Fail now, with the fix, if the function is missing, stale, or has no graphwren."""
        from botocore.exceptions import BotoCoreError, ClientError

        from ...version import __version__
        key = (self.endpoint, getattr(self, "region", None), self.function)
        if key in _checked:
            return _checked[key]
        deploy = "run `graphwren lambda deploy --bucket BUCKET`"
        try:
            conf = self._client.get_function_configuration(FunctionName=self.function)
        except ClientError as exc:
            code, _ = _error_code(exc)
            if code == "ResourceNotFoundException":
                raise LambdaSetupError(
                    f"the Lambda function {self._where()} does not exist; {deploy} to create it "
                    f"(or set lambda_function= to a deployed graphwren function).") from None
            raise LambdaSetupError(f"cannot read the Lambda function {self._where()}: {exc}") from None
        except BotoCoreError as exc:
            raise LambdaSetupError(f"cannot reach AWS Lambda for {self._where()}: {exc}") from None
        deployed = ((conf.get("Environment") or {}).get("Variables") or {}).get("GRAPHWREN_VERSION")
        if deployed is not None and deployed != __version__:
            raise LambdaSetupError(
                f"the Lambda function {self._where()} was deployed with graphwren {deployed}, but this is "
                f"graphwren {__version__}; {deploy} to deploy this version "
                f"(each version gets its own function, so the old one keeps working).")
        try:
            resp = self._client.invoke(FunctionName=self.function, InvocationType="RequestResponse",
                                       Payload=b'{"graphwren": "ping"}')
            body = resp["Payload"].read()
        except (ClientError, BotoCoreError) as exc:
            raise LambdaSetupError(f"cannot invoke the Lambda function {self._where()}: {exc}") from None
        try:
            answer = json.loads(body or b"null")
        except ValueError:
            answer = body.decode("utf-8", "replace")
        if resp.get("FunctionError"):
            err = answer if isinstance(answer, dict) else {"errorMessage": str(answer)}
            etype, msg = err.get("errorType", "Unhandled"), err.get("errorMessage", "")
            if etype in ("Runtime.ImportModuleError", "Runtime.HandlerNotFound") or "graphwren" in msg:
                raise LambdaSetupError(
                    f"the Lambda function {self._where()} cannot load graphwren's handler ({etype}: {msg}). "
                    f"Its package or image must contain graphwren and use the handler "
                    f"graphwren.runtime.lambda_handler.handler: build the image from graphwren's Dockerfile "
                    f"and `graphwren lambda deploy --image URI`, or {deploy}.")
            raise LambdaSetupError(f"the Lambda function {self._where()} failed a test invocation: "
                                   f"{etype}: {msg}")
        if not isinstance(answer, dict) or "graphwren" not in answer:
            raise LambdaSetupError(
                f"the Lambda function {self._where()} is not a graphwren function (its answer to a ping was "
                f"{str(answer)[:200]!r}); {deploy}, or point lambda_function= at a graphwren function.")
        if answer["graphwren"] != __version__:
            raise LambdaSetupError(
                f"the Lambda function {self._where()} runs graphwren {answer['graphwren']}, but this is "
                f"graphwren {__version__}; {deploy} (or rebuild and push the image).")
        mine = ".".join(platform.python_version_tuple()[:2])
        theirs = ".".join(str(answer.get("python", "")).split(".")[:2])
        if theirs and theirs != mine:
            raise LambdaSetupError(
                f"the Lambda function {self._where()} runs Python {theirs} but this driver runs Python {mine}; "
                f"stage functions are pickled, so both must match: deploy with --python {mine} "
                f"(or run the driver on Python {theirs}).")
        _checked[key] = answer
        return answer

    def available_modules(self) -> set[str] | None:
        """Top-level modules the function's image can import (None: it did not say)."""
        modules = self.check().get("modules")
        return set(modules) if modules is not None else None

    # -- the driver's side ----------------------------------------------------------
    def invoke(self, events: list[dict]) -> None:
        for event in events:
            size = len(json.dumps(event))
            if size > MAX_PAYLOAD:
                raise LambdaInvokeError(
                    f"a task event is {size} bytes, beyond the {MAX_PAYLOAD} byte limit graphwren keeps for "
                    f"Lambda payloads; events only point at storage, so a store URL or job id this long "
                    f"is a mistake: shorten the storage URL.")
        with self._lock:
            for event in events:
                self._cancelled.discard(event["job"])
            self._pending.extend(events)
        self._pump()

    def cancel(self, job: str) -> None:
        """Drop the job's queued invocations and give back its tokens."""
        with self._lock:
            self._cancelled.add(job)
            self._pending = collections.deque(e for e in self._pending if e["job"] != job)
            for key in [k for k in self._inflight if k[1] == job]:
                del self._inflight[key]
                self.stats["released"] += 1
            self._lock.notify_all()
        self._pump()

    def waiting(self, job: str, stage: str) -> set[tuple[int, int]]:
        """(task, attempt) of the stage's events still waiting for a token (lambda_max_workers in flight)."""
        with self._lock:
            return {(int(e["task"]), int(e["attempt"])) for e in self._pending
                    if e["job"] == job and e["stage"] == stage}

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def close(self) -> None:
        with self._lock:
            self._pending.clear()

    # -- invoking ------------------------------------------------------------------
    def _pump(self) -> None:
        to_send = []
        with self._lock:
            while self._pending and len(self._inflight) < self.parallelism:
                event = self._pending.popleft()
                key = (event["store"], event["job"], event["stage"], int(event["task"]), int(event["attempt"]))
                self._inflight[key] = (event, time.monotonic())
                to_send.append(event)
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], len(self._inflight))
            if self._pending and (self._reaper is None or not self._reaper.is_alive()):
                self._reaper = threading.Thread(target=self._reap_loop, name="gw-lambda-tokens", daemon=True)
                self._reaper.start()
        pool = _send_pool()
        for event in to_send:
            pool.submit(self._send, event)

    def _send(self, event: dict) -> None:
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError,
                                         EndpointConnectionError, ReadTimeoutError)
        payload = json.dumps(event, separators=(",", ":")).encode()
        started = time.monotonic()
        attempt = 0
        while True:
            if event["job"] in self._cancelled:
                return
            try:
                self._client.invoke(FunctionName=self.function, InvocationType="Event", Payload=payload)
                self.stats["invoked"] += 1
                return
            except ClientError as exc:
                code, status = _error_code(exc)
                if code in THROTTLE_CODES or status == 429:
                    self.stats["throttled"] += 1
                elif code in TRANSIENT_CODES or status >= 500:
                    self.stats["transient"] += 1
                else:
                    return self._give_up(event, exc, code)
                failure = exc
            except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as exc:
                self.stats["transient"] += 1
                failure = exc
            except BotoCoreError as exc:
                return self._give_up(event, exc, type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - never lose an event silently
                return self._give_up(event, exc, type(exc).__name__)
            if time.monotonic() - started > RETRY_SECONDS:
                return self._give_up(event, failure, "retries exhausted")
            delay = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** attempt))
            time.sleep(delay * (0.5 + random.random()))   # full jitter keeps a burst from re-colliding
            attempt += 1

    def _give_up(self, event: dict, exc: BaseException, code: str) -> None:
        self.stats["failed"] += 1
        from .lambda_names import function_name as default_name
        hint = ""
        if code == "ResourceNotFoundException":
            hint = " The function is gone: run `graphwren lambda deploy --bucket BUCKET`."
        elif code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
                      "InvalidSignatureException", "ExpiredTokenException"):
            hint = " Check the AWS credentials and that they may call lambda:InvokeFunction."
        elif code == "RequestEntityTooLargeException":
            hint = " The payload is over Lambda's limit; shorten the storage URL."
        elif code == "retries exhausted":
            hint = (f" Lambda kept throttling for {RETRY_SECONDS:g} s: lower lambda_max_workers or raise "
                    f"the account's concurrency limit.")
        err = LambdaInvokeError(f"could not invoke Lambda function {self.function!r} "
                                f"(default for this version: {default_name(self.settings.get('lambda_memory'))}): "
                                f"{exc}.{hint}")
        where = f"stage {event['stage']} task {event['task']} (attempt {event['attempt']}), invoking Lambda"
        try:
            from ..storage import open_store
            remote_errors.record(open_store(event["store"]), integrity.from_event(event.get("key")), event["job"],
                                 event["stage"], int(event["task"]), int(event["attempt"]), err, where)
        except Exception:  # noqa: BLE001 - the driver's task_timeout remains the backstop
            pass
        self._release([(event["store"], event["job"], event["stage"], int(event["task"]), int(event["attempt"]))])

    def _release(self, keys) -> None:
        with self._lock:
            for key in keys:
                if self._inflight.pop(key, None) is not None:
                    self.stats["released"] += 1
            self._lock.notify_all()
        self._pump()

    # -- tokens come back as tasks commit ----------------------------------------------
    def _reap_loop(self) -> None:
        pause = 0.01
        while True:
            with self._lock:
                if not self._pending:
                    return
            freed = self._reap()
            self._pump()
            pause = 0.01 if freed else min(pause * 2, 0.2)
            time.sleep(pause)

    def _reap(self) -> int:
        from ..storage import open_store
        with self._lock:
            inflight = dict(self._inflight)
        now = time.monotonic()
        done: list[tuple] = [k for k, (_, sent) in inflight.items() if now - sent > self.task_timeout]
        groups: dict[tuple, list[tuple]] = collections.defaultdict(list)
        for key in inflight:
            groups[key[:3]].append(key)
        for (store_url, job, stage), keys in groups.items():
            prefix = records.stage_prefix(job, stage)
            try:
                listed = open_store(store_url).list(prefix)
            except Exception:  # noqa: BLE001 - try again on the next round
                continue
            committed, failed = set(), set()
            for name in listed:
                parsed = records.parse_status_key(name, prefix)
                if parsed is None:
                    continue
                kind, task, attempt = parsed
                (committed if kind == "done" else failed).add(task if kind == "done" else (task, attempt))
            done += [k for k in keys if k[3] in committed or (k[3], k[4]) in failed]
        if done:
            self._release(done)
        return len(done)

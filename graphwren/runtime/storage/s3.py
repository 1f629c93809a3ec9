"""S3Store: keys under s3://bucket/prefix, on AWS or any S3-compatible endpoint.

URL: s3://bucket/prefix[?endpoint=URL][&connect_timeout=S][&timeout=S][&retries=N][&retry_mode=M]

The endpoint comes from (first wins) the explicit `endpoint_url` argument,
`?endpoint=...` in the URL, or botocore's own resolution, which honours
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL natively.

Every request has bounded connect and read timeouts and is retried by
botocore (`standard` mode by default: exponential backoff with jitter on
5xx, throttling, timeouts and dropped connections; `retry_mode=adaptive`
adds client-side rate limiting after throttles). A body that breaks off
mid-read is fetched again here, since botocore has already returned by then.
Whatever still fails escapes as StorageError naming the store and the key,
TransientStorageError when it was the retryable kind.

put_if_absent is a conditional PUT (If-None-Match: *), the S3 primitive for
"create only if absent"; of racing writers S3 lets exactly one succeed. Each
call tags its object with a random token, so a retried PUT whose first reply
was lost (the retry then sees 412) can still tell that it was the winner.
"""
from __future__ import annotations

import dataclasses
import http.client
import io
import os
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import boto3.exceptions
import botocore.exceptions
import urllib3.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from ...errors import MissingKey, StorageError, TransientStorageError
from .base import RetryPolicy, Store, guarded, retry

MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
MAX_POOL_CONNECTIONS = 64
# botocore waits 50 ms * 2**i (jittered, capped at 20 s) before retry i of a 5xx or a
# dropped connection, 1 s * 2**i after a throttle: 8 retries span ~6 s (12.75 s at most)
# of 5xx and minutes of throttling; a black-holed endpoint fails in ~9 * timeout.
DEFAULT_POLICY = RetryPolicy(connect_timeout=2.0, timeout=5.0, retries=8)
PROBE_ATTEMPTS = 5  # opening a store on a dead endpoint fails within ~2 s, not ~6 s
RETRY_MODES = ("standard", "adaptive")
BODY_RETRIES = 3  # refetches of a GET whose body broke off (each refetch has botocore's retries)
TOKEN = "gw-token"  # user metadata naming the put_if_absent call that wrote an object

# Error codes botocore treats as retryable besides 5xx (standard.py); if one escapes, the
# retries ran out and the request may well pass later.
_RETRYABLE_CODES = {
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "Throttling",
    "ThrottlingException", "ThrottledException", "RequestThrottledException", "SlowDown",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TransactionInProgressException", "BandwidthLimitExceeded", "LimitExceededException",
    "RequestThrottled", "EC2ThrottledException", "InternalError", "ServiceUnavailable",
    "ConditionalRequestConflict",
}
# What a broken-off or garbled connection raises, from botocore or the layers below it.
_WIRE_ERRORS = (
    botocore.exceptions.HTTPClientError,   # ReadTimeout, ConnectionClosed, ResponseStreaming
    botocore.exceptions.ConnectionError,   # EndpointConnection, ConnectTimeout
    botocore.exceptions.IncompleteReadError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)
_ALL_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
               boto3.exceptions.Boto3Error) + _WIRE_ERRORS


def _code(err: botocore.exceptions.ClientError) -> tuple[str, int]:
    resp = err.response or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _causes(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:  # boto3's transfer errors wrap the real one
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_transient(exc: BaseException) -> bool:
    for e in _causes(exc):
        if isinstance(e, botocore.exceptions.ClientError):
            code, status = _code(e)
            return status >= 500 or status == 429 or code in _RETRYABLE_CODES
        if isinstance(e, _WIRE_ERRORS):
            return True
    return False


def _attempts(exc: BaseException) -> int | None:
    for e in _causes(exc):
        if isinstance(e, botocore.exceptions.ClientError):
            n = (e.response or {}).get("ResponseMetadata", {}).get("RetryAttempts")
            return None if n is None else int(n) + 1
    return None


def _endpoint_in_use() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


class _BodyBroke(Exception):
    """The response body of a GET broke off; the GET is worth repeating."""


class S3Store(Store):
    """A store in an S3 bucket under a key prefix."""

    def __init__(self, url: str, endpoint_url: str | None = None, verify: bool = True):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StorageError(f"not an S3 URL (want s3://bucket/prefix): {url!r}", url=url)
        query = parse_qs(parts.query, keep_blank_values=True)
        self.policy = RetryPolicy.from_query(url, query, DEFAULT_POLICY)
        endpoint_url = endpoint_url or (query.pop("endpoint", None) or [None])[-1]
        mode = (query.pop("retry_mode", None) or ["standard"])[-1]
        if mode not in RETRY_MODES:
            raise StorageError(f"bad retry_mode={mode!r} in store URL {url!r}: want one of "
                               f"{', '.join(RETRY_MODES)}", url=url)
        if query:
            raise StorageError(
                f"unknown option{'s' if len(query) > 1 else ''} {', '.join(sorted(query))} in S3 "
                f"store URL {url!r}; known: endpoint, connect_timeout, timeout, retries, retry_mode",
                url=url)
        self.url = url
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.root = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.closed = False

        custom_endpoint = endpoint_url or _endpoint_in_use()
        base = dict(
            connect_timeout=self.policy.connect_timeout,
            read_timeout=self.policy.timeout,
            max_pool_connections=MAX_POOL_CONNECTIONS,
            tcp_keepalive=True,
            s3={"addressing_style": "path"} if custom_endpoint else {},
        )
        attempts = self.policy.retries + 1
        session = boto3.session.Session()
        self._session = session
        try:
            self._client = session.client(
                "s3", endpoint_url=endpoint_url,
                config=Config(retries={"mode": mode, "total_max_attempts": attempts}, **base))
        except Exception as e:  # bad endpoint URL, bad region, ...
            raise StorageError(f"cannot create an S3 client for {url!r}: {e}", url=url) from e
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNKSIZE,
            max_concurrency=8,
            use_threads=True,
        )
        if verify:
            probe = Config(retries={"mode": mode, "total_max_attempts": min(attempts, PROBE_ATTEMPTS)},
                           **base)
            self._verify(probe)

    def _where(self) -> str:
        return self._client.meta.endpoint_url

    def _verify(self, probe_config: Config) -> None:
        """Fail fast and clearly if the endpoint is down or the bucket is not there."""
        probe = self._session.client("s3", endpoint_url=self.endpoint_url, config=probe_config)
        fail = StorageError
        try:
            probe.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    f"S3 bucket {self.bucket!r} does not exist (endpoint {self._where()})", url=self.url
                ) from None
            if status == 403 or code in ("403", "AccessDenied", "Forbidden"):
                raise StorageError(
                    f"access denied to S3 bucket {self.bucket!r} (endpoint {self._where()}); "
                    f"check the credentials", url=self.url
                ) from None
            fail = TransientStorageError if _is_transient(e) else StorageError
            raise fail(f"cannot open {self.url}: {code or status}: {e}", url=self.url) from None
        except botocore.exceptions.NoCredentialsError:
            raise StorageError(f"no AWS credentials found to open {self.url}", url=self.url) from None
        except _WIRE_ERRORS as e:
            raise TransientStorageError(
                f"S3 endpoint {self._where()} is unreachable while opening {self.url}: {e}", url=self.url
            ) from None
        except botocore.exceptions.BotoCoreError as e:
            raise StorageError(f"cannot open {self.url}: {e}", url=self.url) from None
        finally:
            probe.close()

    def _storage_error(self, op: str, key: str, exc: BaseException) -> StorageError | None:
        """The StorageError for a failed request, or None if exc is not a storage failure."""
        if isinstance(exc, _BodyBroke):
            exc = exc.__cause__ or exc
        if not isinstance(exc, _ALL_ERRORS):
            return None
        transient = _is_transient(exc)
        n = _attempts(exc)
        after = f" after {n} attempts" if n and n > 1 else (" after retries" if transient else "")
        detail = str(exc)
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status = _code(exc)
            detail = f"{code or status}: {exc}"
        cls = TransientStorageError if transient else StorageError
        return cls(f"S3 {op} of key {key!r} in {self.url} (endpoint {self._where()}) failed{after}: "
                   f"{type(exc).__name__}: {detail}", url=self.url, key=key, op=op)

    def _k(self, key: str) -> str:
        if not key:
            raise ValueError("empty storage key")
        return self.root + key

    def _missing(self, key: str) -> MissingKey:
        return MissingKey(f"missing key s3://{self.bucket}/{self._k(key)}")

    # -- Store ---------------------------------------------------------------

    @guarded("put")
    def put(self, key: str, data: bytes) -> None:
        k = self._k(key)
        if len(data) > MULTIPART_THRESHOLD:
            self._client.upload_fileobj(
                io.BytesIO(data), self.bucket, k, Config=self._transfer
            )
        else:
            self._client.put_object(Bucket=self.bucket, Key=k, Body=data)

    @guarded("put_if_absent")
    def put_if_absent(self, key: str, data: bytes) -> bool:
        # A single conditional PUT (S3 takes up to 5 GiB in one PUT; commit records are tiny).
        k = self._k(key)
        token = secrets.token_hex(16)
        for attempt in range(8):
            try:
                self._client.put_object(Bucket=self.bucket, Key=k, Body=data, IfNoneMatch="*",
                                        Metadata={TOKEN: token})
                return True
            except botocore.exceptions.ClientError as e:
                code, status = _code(e)
                if status == 412 or code == "PreconditionFailed":
                    # Someone's object is there. It is ours if botocore retried a PUT of ours
                    # that had landed but whose reply was lost: the token says.
                    return self._token_of(k) == token
                if status == 409 or code == "ConditionalRequestConflict":
                    # Another write to this key is in flight. AWS asks callers to retry:
                    # it will then either be there (412 -> False) or have failed (we win).
                    time.sleep(self.policy.delay(attempt + 1))
                    continue
                raise
        raise TransientStorageError(
            f"S3 put_if_absent of key {key!r} in {self.url}: conflicting writes kept the outcome "
            f"open through 8 attempts", url=self.url, key=key, op="put_if_absent")

    def _token_of(self, k: str) -> str | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=k)
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None  # the winner's object is gone already (its job was cleaned up)
            raise
        return (head.get("Metadata") or {}).get(TOKEN)

    @guarded("get")
    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None and end is not None and end <= start:
            return b""  # empty range: no request
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ValueError(f"negative byte range [{start}, {end}) for {key!r}")
        kwargs = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        k = self._k(key)

        def once() -> bytes:
            try:
                resp = self._client.get_object(Bucket=self.bucket, Key=k, **kwargs)
            except botocore.exceptions.ClientError as e:
                code, status = _code(e)
                if code in ("NoSuchKey", "404") or status == 404:
                    raise self._missing(key) from None
                if code == "InvalidRange" or status == 416:
                    return b""  # range starts at or past the end of the value
                raise
            try:
                with resp["Body"] as body:
                    return body.read()  # botocore checks the length against Content-Length
            except _WIRE_ERRORS as e:
                raise _BodyBroke() from e

        policy = dataclasses.replace(self.policy, retries=min(self.policy.retries, BODY_RETRIES))
        return retry(once, policy, lambda e: isinstance(e, _BodyBroke))

    @guarded("exists")
    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    @guarded("size")
    def size(self, key: str) -> int:
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self._k(key))
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                raise self._missing(key) from None
            raise
        return int(resp["ContentLength"])

    @guarded("list")
    def list(self, prefix: str) -> list[str]:
        return self._list(prefix)

    def _list(self, prefix: str) -> list[str]:
        return [key for key, _ in self._list_sized(prefix)]

    @guarded("list")
    def list_sized(self, prefix: str) -> list[tuple[str, int]]:
        return self._list_sized(prefix)

    def _list_sized(self, prefix: str) -> list[tuple[str, int]]:
        n = len(self.root)
        out = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root + prefix):
            for obj in page.get("Contents", ()):
                out.append((obj["Key"][n:], int(obj["Size"])))
        out.sort()
        return out

    @guarded("delete")
    def delete(self, prefix: str) -> int:
        keys = self._list(prefix)
        count = 0
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            count += self._delete_batch(prefix, batch)
        return count

    def _delete_batch(self, prefix: str, batch: list[str]) -> int:
        pending = batch
        for failures in range(self.policy.retries + 1):
            resp = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.root + k} for k in pending], "Quiet": True},
            )
            errors = resp.get("Errors") or []
            # Per-key errors come in a 200 reply, so botocore never retried them.
            retryable = [e for e in errors if e.get("Code") in _RETRYABLE_CODES]
            if not errors or len(retryable) < len(errors):
                break
            pending = [e["Key"][len(self.root):] for e in retryable]
            time.sleep(self.policy.delay(failures + 1))
        if errors:
            first = errors[0]
            cls = TransientStorageError if len(retryable) == len(errors) else StorageError
            raise cls(
                f"S3 refused to delete {len(errors)} of {len(batch)} keys under "
                f"s3://{self.bucket}/{self.root}{prefix}: {first.get('Code')}: "
                f"{first.get('Message')} (e.g. {first.get('Key')})",
                url=self.url, key=prefix, op="delete")
        return len(batch)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._client.close()
            except Exception:
                pass

"""S3Store: keys under s3://bucket/prefix, on AWS or any S3-compatible endpoint.

The endpoint comes from (first wins) the explicit `endpoint_url` argument,
`?endpoint=...` in the URL, or botocore's own resolution, which honours
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL natively.

put_if_absent is a conditional PUT (If-None-Match: *), the S3 primitive for
"create only if absent"; of racing writers S3 lets exactly one succeed.
"""
from __future__ import annotations

import io
import os
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from graphwren.errors import MissingKey, StorageError
from graphwren.runtime.storage.base import Store

MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
MAX_POOL_CONNECTIONS = 64
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 60.0


def _code(err: botocore.exceptions.ClientError) -> tuple[str, int]:
    resp = err.response or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _endpoint_in_use() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


class S3Store(Store):
    def __init__(self, url: str, endpoint_url: str | None = None, verify: bool = True):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StorageError(f"not an S3 URL (want s3://bucket/prefix): {url!r}")
        query = parse_qs(parts.query)
        endpoint_url = endpoint_url or (query.get("endpoint") or [None])[0]
        self.url = url
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.root = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.closed = False

        custom_endpoint = endpoint_url or _endpoint_in_use()
        s3_opts = {"addressing_style": "path"} if custom_endpoint else {}
        base = dict(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=MAX_POOL_CONNECTIONS,
            tcp_keepalive=True,
            s3=s3_opts,
        )
        session = boto3.session.Session()
        self._session = session
        try:
            self._client = session.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(retries={"mode": "standard", "total_max_attempts": 3}, **base),
            )
        except Exception as e:  # bad endpoint URL, bad region, ...
            raise StorageError(f"cannot create an S3 client for {url!r}: {e}") from e
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNKSIZE,
            max_concurrency=8,
            use_threads=True,
        )
        if verify:
            self._verify(Config(retries={"mode": "standard", "total_max_attempts": 1}, **base))

    def _where(self) -> str:
        return self._client.meta.endpoint_url

    def _verify(self, probe_config: Config) -> None:
        """Fail fast and clearly if the endpoint is down or the bucket is not there."""
        probe = self._session.client("s3", endpoint_url=self.endpoint_url, config=probe_config)
        try:
            probe.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    f"S3 bucket {self.bucket!r} does not exist (endpoint {self._where()})"
                ) from None
            if status == 403 or code in ("403", "AccessDenied", "Forbidden"):
                raise StorageError(
                    f"access denied to S3 bucket {self.bucket!r} (endpoint {self._where()}); "
                    f"check the credentials"
                ) from None
            raise StorageError(f"cannot open {self.url}: {code or status}: {e}") from None
        except botocore.exceptions.NoCredentialsError:
            raise StorageError(f"no AWS credentials found to open {self.url}") from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionError,
        ) as e:
            raise StorageError(
                f"S3 endpoint {self._where()} is unreachable while opening {self.url}: {e}"
            ) from None
        except botocore.exceptions.BotoCoreError as e:
            raise StorageError(f"cannot open {self.url}: {e}") from None
        finally:
            probe.close()

    def _k(self, key: str) -> str:
        if not key:
            raise ValueError("empty storage key")
        return self.root + key

    def _missing(self, key: str) -> MissingKey:
        return MissingKey(f"missing key s3://{self.bucket}/{self._k(key)}")

    # -- Store ---------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        k = self._k(key)
        if len(data) > MULTIPART_THRESHOLD:
            self._client.upload_fileobj(
                io.BytesIO(data), self.bucket, k, Config=self._transfer
            )
        else:
            self._client.put_object(Bucket=self.bucket, Key=k, Body=data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # A single conditional PUT (S3 takes up to 5 GiB in one PUT; commit records are tiny).
        k = self._k(key)
        for attempt in range(5):
            try:
                self._client.put_object(Bucket=self.bucket, Key=k, Body=data, IfNoneMatch="*")
                return True
            except botocore.exceptions.ClientError as e:
                code, status = _code(e)
                if status == 412 or code == "PreconditionFailed":
                    return False
                if status == 409 or code == "ConditionalRequestConflict":
                    # Another write to this key is in flight. AWS asks callers to retry:
                    # it will then either be there (412 -> False) or have failed (we win).
                    time.sleep(0.02 * (attempt + 1))
                    continue
                raise
        return False

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None and end is not None and end <= start:
            return b""  # empty range: no request
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ValueError(f"negative byte range [{start}, {end}) for {key!r}")
        kwargs = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._k(key), **kwargs)
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if code in ("NoSuchKey", "404") or status == 404:
                raise self._missing(key) from None
            if code == "InvalidRange" or status == 416:
                return b""  # range starts at or past the end of the value
            raise
        with resp["Body"] as body:
            return body.read()

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def size(self, key: str) -> int:
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self._k(key))
        except botocore.exceptions.ClientError as e:
            code, status = _code(e)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                raise self._missing(key) from None
            raise
        return int(resp["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        n = len(self.root)
        out = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root + prefix):
            for obj in page.get("Contents", ()):
                out.append(obj["Key"][n:])
        out.sort()
        return out

    def delete(self, prefix: str) -> int:
        keys = self.list(prefix)
        count = 0
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            resp = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.root + k} for k in batch], "Quiet": True},
            )
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 refused to delete {len(errors)} of {len(batch)} keys under "
                    f"s3://{self.bucket}/{self.root}{prefix}: {first.get('Code')}: "
                    f"{first.get('Message')} (e.g. {first.get('Key')})"
                )
            count += len(batch)
        return count

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._client.close()
            except Exception:
                pass

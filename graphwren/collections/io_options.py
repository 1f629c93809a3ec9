"""What bag readers and writers share: dask's byte sizes ("10kB") and storage_options as store-URL options."""
from __future__ import annotations

import re
from urllib.parse import urlencode

# dask.utils.parse_bytes' table: decimal and binary units, any case, "k" for "kB", "ki" for "kiB".
_UNITS = {"b": 1, "": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}
_UNITS.update({k[0]: v for k, v in list(_UNITS.items()) if k and "i" not in k})
_UNITS.update({k[:-1]: v for k, v in list(_UNITS.items()) if k and "i" in k})
_NUMBER = re.compile(r"^(\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)?([a-z]*)$")


def parse_bytes(value, what: str = "size") -> int:
    """A byte count from a number or a string like "10kB", "5 MiB", "1e6", "MB" (dask's rules)."""
    if isinstance(value, bool):
        raise TypeError(f"{what}: a number of bytes or a string like '10kB', got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise TypeError(f"{what}: a number of bytes or a string like '10kB', got {type(value).__name__} {value!r}")
    text = value.replace(" ", "").lower()
    m = _NUMBER.match(text)
    if m is None or m.group(2) not in _UNITS:
        raise ValueError(f"{what}: cannot read {value!r} as a byte size; write a number and a unit "
                         f"such as '10kB', '64MiB' or '1GB'")
    return int(float(m.group(1) or 1) * _UNITS[m.group(2)])


# What storage_options may say (fsspec's names where they mean the same), as store-URL options.
_S3_OPTIONS = {"endpoint_url": "endpoint", "connect_timeout": "connect_timeout", "timeout": "timeout",
               "read_timeout": "timeout", "retries": "retries", "retry_mode": "retry_mode"}
_SECRETS = ("key", "secret", "token", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
            "profile", "anon")


def store_query(storage_options: dict | None, what: str) -> str:
    """storage_options as the query graphwren's S3 store URLs take (``endpoint=...&timeout=...``)."""
    if not storage_options:
        return ""
    if not isinstance(storage_options, dict):
        raise TypeError(f"{what}: storage_options must be a dict, got {type(storage_options).__name__}")
    options = dict(storage_options)
    client = options.pop("client_kwargs", None) or {}
    if "endpoint_url" in client:
        options.setdefault("endpoint_url", client.pop("endpoint_url"))
    secrets = sorted(k for k in options if k in _SECRETS) + sorted(k for k in client if k in _SECRETS)
    if secrets:
        raise ValueError(f"{what}: storage_options {secrets} are credentials; graphwren takes them from the "
                         f"environment or ~/.aws (AWS_ACCESS_KEY_ID, AWS_PROFILE...), because store URLs travel "
                         f"in every task's event and would carry the secret with them")
    unknown = sorted(k for k in options if k not in _S3_OPTIONS) + sorted(client)
    if unknown:
        raise ValueError(f"{what}: unknown storage_options {unknown}; known: "
                         f"{', '.join(sorted(_S3_OPTIONS))}, client_kwargs={{'endpoint_url': ...}}")
    return urlencode({_S3_OPTIONS[k]: v for k, v in options.items()})


def apply_storage_options(store_url: str, storage_options: dict | None, what: str) -> str:
    """A remote store URL with storage_options in its query; local stores take none."""
    query = store_query(storage_options, what)
    if not query:
        return store_url
    if store_url.startswith("file://"):
        raise ValueError(f"{what}: storage_options apply to s3:// paths; a local path takes none")
    return f"{store_url}?{query}"

"""Lithops' data partitioner on graphwren's stores: ``obj`` items -> one call per chunk of each object.

An item's ``obj`` names stored objects, as Lithops accepts them:

- ``s3://bucket/key`` one object; ``s3://bucket/prefix/`` (ending in ``/``) or
  ``s3://bucket`` every object under it; a ``*``/``?``/``[`` glob in the key;
- ``redis://host:port/db/key`` (a ``?prefix=`` query as in graphwren's store URLs),
  with the same prefix and glob forms;
- ``file:///path`` or ``/path``: a file, a directory (its files, not recursing, as
  Lithops reads localhost directories) or a glob;
- a bare ``bucket/key`` (or ``bucket``): relative to the executor's storage, as
  Lithops resolves it against its storage backend (an S3 store: that bucket; a
  file store, e.g. ``storage='localhost'``: a folder under its root; Redis: a key).

A listing skips the keys of graphwren's own jobs under the executor's storage,
so ``s3://bucket`` of a bucket that also holds the executor's jobs lists only data.

Each object is cut into chunks of ``obj_chunk_size`` bytes, or into
``obj_chunk_number`` chunks of ``ceil(size / n)`` bytes (Lithops' rounding),
or left whole; ``tasks/cloud_objects`` aligns them to lines in the worker.
Where this differs from Lithops: an empty object gets no call (as in Lithops)
but a one-byte object or a one-byte tail gets its chunk (Lithops drops it),
and a line longer than Lithops' 128 KiB look-ahead is never cut.
"""
from __future__ import annotations

import fnmatch
import glob as globmod
import math
import os
from urllib.parse import urlsplit, urlunsplit

from .errors import MissingKey
from .runtime import records
from .runtime.storage import open_store
from .runtime.storage.paths import natural_key
from .tasks.cloud_objects import CloudObject

_GLOB = "*?["


def _chunk_bytes(size: int, chunk_size: int | None, chunk_number: int | None) -> int:
    if chunk_number:
        return max(1, math.ceil(size / chunk_number))
    if chunk_size:
        return chunk_size
    return max(size, 1)


def check_options(chunk_size, chunk_number, newline) -> None:
    """A ValueError naming the option that is wrong."""
    for name, value in (("obj_chunk_size", chunk_size), ("obj_chunk_number", chunk_number)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a whole number >= 1 (or None), got {value!r}")
    if newline is not None and (not isinstance(newline, str) or len(newline.encode()) != 1):
        raise ValueError(f"obj_newline must be one single-byte character (or None for exact byte ranges), "
                         f"got {newline!r}")


def chunks(location: dict, size: int, chunk_size, chunk_number, newline) -> list[CloudObject]:
    """The chunks of one object of ``size`` bytes, numbered from 1."""
    if size == 0:
        return []
    step = _chunk_bytes(size, chunk_size, chunk_number)
    starts = list(range(0, size, step))
    return [CloudObject(size=size, start=s, end=min(s + step, size), part=i + 1, total_parts=len(starts),
                        newline=newline, **location) for i, s in enumerate(starts)]


def objects(spec, default_store: str, where: str) -> list[tuple[dict, int]]:
    """(location, size) of every object ``spec`` names, in natural order; FileNotFoundError if none."""
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"{where}: obj must be an object URL or path string, got {type(spec).__name__} {spec!r}")
    if spec.startswith("file://"):
        rest = spec[len("file://"):]
        return _local(rest[len("localhost"):] if rest.startswith("localhost/") else rest, where)
    if spec.startswith("/"):
        return _local(spec, where)
    if "://" in spec:
        scheme = urlsplit(spec).scheme.lower()
        if scheme == "s3":
            parts = urlsplit(spec)
            if not parts.netloc:
                raise ValueError(f"{where}: S3 URL without a bucket: {spec!r}")
            return _stored(f"s3://{parts.netloc}", parts.path.lstrip("/"), "aws_s3", parts.netloc, spec, where,
                           _own_prefix(f"s3://{parts.netloc}", default_store))
        if scheme in ("redis", "rediss"):
            parts = urlsplit(spec)
            db, _, key = parts.path.lstrip("/").partition("/")
            store_url = urlunsplit(parts._replace(path=f"/{db}" if db else ""))
            return _stored(store_url, key, "redis", f"{parts.netloc}/{db or 0}", spec, where,
                           _own_prefix(store_url, default_store))
        raise ValueError(f"{where}: obj {spec!r}: graphwren reads objects from s3://, redis://, file:// URLs and "
                         f"local paths (not {scheme}://)")
    return objects(_relative(spec, default_store), default_store, where)


def _relative(spec: str, default_store: str) -> str:
    """A bare 'bucket/key' as a URL on the executor's storage."""
    if default_store.startswith("s3://"):
        return "s3://" + spec
    if default_store.startswith(("redis://", "rediss://")):
        parts = urlsplit(default_store)
        db = parts.path.strip("/").split("/")[0] or "0"
        return urlunsplit(parts._replace(path=f"/{db}/{spec}"))
    root = default_store[len("file://"):] if default_store.startswith("file://") else default_store
    return os.path.join(os.path.abspath(os.path.expanduser(root)), spec)


def _own_prefix(store_url: str, default_store: str) -> str | None:
    """The executor's own key prefix in that store (its job keys are no input), or None if elsewhere."""
    if default_store.startswith("s3://"):
        parts = urlsplit(default_store)
        if f"s3://{parts.netloc}" == store_url:
            prefix = parts.path.strip("/")
            return prefix + "/" if prefix else ""
        return None
    if default_store.startswith(("redis://", "rediss://")):
        mine = urlsplit(default_store)
        theirs = urlsplit(store_url)
        same = (mine.netloc, mine.path.strip("/") or "0", mine.query) == (theirs.netloc, theirs.path.strip("/") or "0",
                                                                         theirs.query)
        return "" if same else None
    return None


def _is_job_key(key: str, own: str | None) -> bool:
    """True for a key of one of graphwren's jobs under the executor's own prefix."""
    if own is None or not key.startswith(own):
        return False
    return records.job_time(key[len(own):].split("/", 1)[0]) is not None


def _local(path: str, where: str) -> list[tuple[dict, int]]:
    path = os.path.abspath(os.path.expanduser(path))
    if any(c in path for c in _GLOB):
        files = [p for p in globmod.glob(path) if os.path.isfile(p)]
        if not files:
            raise FileNotFoundError(f"{where}: the pattern {path!r} matches no file")
    elif os.path.isdir(path):
        files = [os.path.join(path, n) for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))]
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"{where}: no such file or directory {path!r}")
    out = []
    for p in sorted(files, key=natural_key):
        loc = {"store_url": None, "key": os.path.basename(p), "backend": "localhost",
               "bucket": os.path.dirname(p), "path": p, "url": f"file://{p}"}
        out.append((loc, os.path.getsize(p)))
    return out


def _stored(store_url: str, key: str, backend: str, bucket: str, spec: str, where: str,
            own: str | None) -> list[tuple[dict, int]]:
    store = open_store(store_url)
    base = spec.split("?", 1)[0]
    head = base[: len(base) - len(key)] if key and base.endswith(key) else base.rstrip("/") + "/"

    def loc(k: str) -> dict:
        return {"store_url": store_url, "key": k, "backend": backend, "bucket": bucket, "url": head + k}

    if any(c in key for c in _GLOB):
        fixed = key[: min(key.find(c) for c in _GLOB if c in key)]
        found = [(k, n) for k, n in store.list_sized(fixed) if fnmatch.fnmatchcase(k, key) and not _is_job_key(k, own)]
        if not found:
            raise FileNotFoundError(f"{where}: the pattern {spec!r} matches no object")
    elif key == "" or key.endswith("/"):
        # a prefix: every object under it; keys ending in '/' are folder markers (Lithops skips them too)
        found = [(k, n) for k, n in store.list_sized(key) if not k.endswith("/") and not _is_job_key(k, own)]
        if not found:
            raise FileNotFoundError(f"{where}: no object under {spec!r}")
    else:
        try:
            found = [(key, store.size(key))]
        except MissingKey:
            raise FileNotFoundError(f"{where}: no such object {spec!r}") from None
    return [(loc(k), n) for k, n in sorted(found, key=lambda kn: natural_key(kn[0]))]

"""Stores chosen by URL: open_store('file:///dir' | '/dir' | 's3://bucket/prefix' | 'redis://host:port/db').

open_store caches one store per URL per process: a forked or spawned child
never reuses its parent's sockets, because the cache is keyed by os.getpid().
Opening checks that the store is reachable and fails fast with StorageError.
"""
from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit

from graphwren.errors import StorageError
from graphwren.runtime.storage.base import Store

__all__ = ["Store", "open_store", "clear_cache", "SCHEMES"]

SCHEMES = ("file", "s3", "redis", "rediss")

_cache: dict[tuple, Store] = {}
_lock = threading.Lock()
_opening: dict[tuple, threading.Lock] = {}


def _cache_key(url: str) -> tuple:
    if isinstance(url, str) and url and "://" not in url:  # a plain path: relative to the cwd now
        return (os.getpid(), os.path.abspath(os.path.expanduser(url)), ())
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    extra: tuple = ()
    if scheme == "s3":  # botocore resolves the endpoint from the environment at open
        extra = (os.environ.get("AWS_ENDPOINT_URL_S3"), os.environ.get("AWS_ENDPOINT_URL"))
    return (os.getpid(), url, extra)


def _open(url: str) -> Store:
    if not isinstance(url, str) or not url:
        raise StorageError(f"a store URL must be a non-empty string, got {url!r}")
    if "://" not in url:  # a plain local path
        from graphwren.runtime.storage.file import FileStore

        return FileStore(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"file:// URLs must be local (file:///path), got {url!r}")
        if not parts.path:
            raise StorageError(f"file:// URL without a path: {url!r}")
        from graphwren.runtime.storage.file import FileStore

        path = url.split("://", 1)[1]
        if parts.netloc:
            path = path[len(parts.netloc):]
        return FileStore(path)
    if scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"S3 URL without a bucket (want s3://bucket/prefix): {url!r}")
        from graphwren.runtime.storage.s3 import S3Store

        return S3Store(url)
    if scheme in ("redis", "rediss"):
        from graphwren.runtime.storage.redis import RedisStore

        return RedisStore(url)
    raise StorageError(
        f"unsupported store URL scheme {parts.scheme!r} in {url!r}; supported: "
        "file:// (or a plain local path), s3://bucket/prefix, redis://host:port/db[?prefix=name]"
    )


def open_store(url: str) -> Store:
    """The store for url, opened once per process and shared by all threads."""
    key = _cache_key(url)
    store = _cache.get(key)
    if store is not None and not getattr(store, "closed", False):
        return store
    with _lock:
        opening = _opening.setdefault(key, threading.Lock())
    with opening:  # one opener per URL; other URLs open concurrently
        store = _cache.get(key)
        if store is None or getattr(store, "closed", False):
            store = _open(url)
            with _lock:
                _cache[key] = store
        return store


def _after_fork_in_child() -> None:
    # The child must not reuse the parent's sockets (the pid in the cache key already
    # ensures that), nor inherit a lock some other parent thread held at fork time.
    global _lock, _opening, _cache
    _lock = threading.Lock()
    _opening = {}
    _cache = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def clear_cache() -> None:
    """Forget every open store, so the next open_store sees changed credentials or endpoints."""
    with _lock:
        stores = list(_cache.values())
        _cache.clear()
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - a dead connection is fine to drop
            pass

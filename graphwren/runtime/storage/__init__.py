"""Stores chosen by URL: open_store('file:///dir' | '/dir' | 's3://bucket/prefix' | 'redis://host:port/db').

open_store caches one store per URL per process: a forked or spawned child
never reuses its parent's sockets, because the cache is keyed by os.getpid().
Opening checks that the store is reachable and fails fast with StorageError.
check_url only checks the URL's form (no I/O): settings use it to refuse a typo early.
set_opener puts a stand-in in front of every URL (graphwren.sim's simulated S3 and Redis).
"""
from __future__ import annotations

import difflib
import os
import re
import threading
from urllib.parse import urlsplit

from ...errors import StorageError
from .base import Store

__all__ = ["Store", "open_store", "check_url", "clear_cache", "set_opener", "SCHEMES"]

SCHEMES = ("file", "s3", "redis", "rediss")
_SUPPORTED = "file:///path (or a plain local path), s3://bucket/prefix, redis://host:port/db[?prefix=name]"
# What a plain path that is really a mistyped URL starts with: 'scheme:' before any '/'.
_SCHEME_LIKE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)

_cache: dict[tuple, Store] = {}
_lock = threading.Lock()
_opening: dict[tuple, threading.Lock] = {}
_opener = None   # url -> Store or None: a stand-in consulted before the real stores (set_opener)


def _cache_key(url: str) -> tuple:
    if isinstance(url, str) and url and "://" not in url:  # a plain path: relative to the cwd now
        return (os.getpid(), os.path.abspath(os.path.expanduser(url)), ())
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    extra: tuple = ()
    if scheme == "s3":  # botocore resolves the endpoint from the environment at open
        extra = (os.environ.get("AWS_ENDPOINT_URL_S3"), os.environ.get("AWS_ENDPOINT_URL"))
    return (os.getpid(), url, extra)


def _suggest(scheme: str, rest: str) -> str:
    """The URL a mistyped 'scheme:rest' most likely meant."""
    rest = rest.lstrip("/")
    return f"{scheme}:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


def check_url(url) -> None:
    """Raise StorageError if url is not a store URL or plain path (form only, no I/O)."""
    if not isinstance(url, str) or not url:
        raise StorageError(f"a store URL must be a non-empty string, got {url!r}")
    if "://" not in url:
        # A plain path; but 's3:/bucket/x' or 'redis:host' would silently become a local
        # folder named 's3:' in the working directory: refuse whatever starts 'word:'.
        m = _SCHEME_LIKE.fullmatch(url)
        if m is None or ":" not in url.split("/", 1)[0]:
            return
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme in SCHEMES:
            hint = f"did you mean {_suggest(scheme, rest)!r}?"
        else:
            close = difflib.get_close_matches(scheme, SCHEMES, n=1, cutoff=0.5)
            hint = (f"did you mean {_suggest(close[0], rest)!r}? " if close else "") + f"supported: {_SUPPORTED}"
        raise StorageError(f"store URL {url!r} looks like a mistyped URL (scheme {scheme!r} without '//'); "
                           f"{hint} (for a local folder of that name write './{url}')")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        close = difflib.get_close_matches(scheme, SCHEMES, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}://?)" if close else ""
        raise StorageError(f"unsupported store URL scheme {scheme!r} in {url!r}{hint}; supported: {_SUPPORTED}")


def set_opener(opener) -> None:
    """Open every URL with ``opener(url)`` first (None from it: the real store); None restores the real ones.

    The cache is cleared either way, so no store opened before is handed out after.
    """
    global _opener
    clear_cache()
    _opener = opener


def _open(url: str) -> Store:
    check_url(url)
    if _opener is not None:
        store = _opener(url)
        if store is not None:
            return store
    if "://" not in url:  # a plain local path
        from .file import FileStore

        return FileStore(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"file:// URLs must be local (file:///path), got {url!r}")
        if not parts.path:
            raise StorageError(f"file:// URL without a path: {url!r}")
        from .file import FileStore

        path = url.split("://", 1)[1]
        if parts.netloc:
            path = path[len(parts.netloc):]
        return FileStore(path)
    if scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"S3 URL without a bucket (want s3://bucket/prefix): {url!r}")
        from .s3 import S3Store

        return S3Store(url)
    if scheme in ("redis", "rediss"):
        from .redis import RedisStore

        return RedisStore(url)
    raise AssertionError(f"check_url let {url!r} through")  # SCHEMES and the branches above agree


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

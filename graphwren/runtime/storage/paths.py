"""Files named by users: a path, a glob or a list of them, as (store URL, key) pairs.

Every file is addressed as (store URL, key), so local paths, ``s3://`` and
``redis://`` list and read alike.
"""
from __future__ import annotations

import fnmatch
import glob as globmod
import os
import re
import stat
from urllib.parse import urlsplit

from ...errors import MissingKey
from ..prefetch import Prefetcher
from . import open_store

_sizer = Prefetcher(16, "gw-size")  # planning asks a remote store for many sizes at once


def split_url(path: str) -> tuple[str, str]:
    """(store URL, key) of one file."""
    if "://" in path and not path.startswith("file://"):
        parts = urlsplit(path)
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    if path.startswith("file://"):
        path = path[len("file://"):]
    return "file:///", os.path.abspath(os.path.expanduser(path)).lstrip("/")


def natural_key(name: str) -> list:
    """Sort key that orders part.2 before part.10 (read_parquet's order; dask.dataframe's too)."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", name)]


def name_key(name: str) -> str:
    """Plain sort by name, part.10 before part.2: dask.bag's read_text order (fsspec's sorted glob)."""
    return name


_ORDERS = {"natural": natural_key, "name": name_key}


def expand(urlpath, what: str) -> list[tuple[str, str]]:
    """Every (store URL, key) a path, glob or list of them names; an error if none."""
    return [(store_url, key) for store_url, key, _ in _expand(urlpath, what, sized=False)]


def expand_sized(urlpath, what: str, store_query: str = "", order: str = "natural") -> list[tuple[str, str, int]]:
    """Every (store URL, key, size in bytes) a path, glob or list of them names; an error if none.

    A glob's sizes come with its listing (one LIST per 1,000 S3 keys, no request per file);
    a plain path costs one size request, asked 16 at a time of remote stores.
    ``store_query`` (``endpoint=...``) is added to every remote store's URL; ``order`` sorts
    each glob's matches ("natural" or "name", see _ORDERS).
    """
    files = _expand(urlpath, what, sized=True, store_query=store_query, order=order)
    unsized = [i for i, f in enumerate(files) if f[2] is None]

    def size(i):
        store_url, key, _ = files[i]
        try:
            return open_store(store_url).size(key)
        except MissingKey:
            raise FileNotFoundError(f"{what}: no such file {display(store_url, key)!r}") from None

    local = all(files[i][0].startswith("file://") for i in unsized)
    sizes = [size(i) for i in unsized] if local else _sizer.map(size, unsized)
    for i, n in zip(unsized, sizes):
        files[i] = (files[i][0], files[i][1], n)
    return files


def _expand(urlpath, what: str, sized: bool, store_query: str = "",
            order: str = "natural") -> list[tuple[str, str, int | None]]:
    sort_key = _ORDERS[order]
    paths = [urlpath] if isinstance(urlpath, (str, os.PathLike)) else list(urlpath)
    if not paths:
        raise ValueError(f"{what}: an empty list of paths")
    out = []
    for path in map(str, paths):
        if not any(c in path for c in "*?["):
            store_url, key = _with_query(split_url(path), store_query)
            if not sized and not open_store(store_url).exists(key):
                raise FileNotFoundError(f"{what}: no such file {path!r}")
            out.append((store_url, key, None))
            continue
        if "://" in path and not path.startswith("file://"):
            store_url, pattern = _with_query(split_url(path), store_query)
            fixed = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)]
            store = open_store(store_url)
            listed = store.list_sized(fixed) if sized else [(k, None) for k in store.list(fixed)]
            matches = [(store_url, k, n) for k, n in sorted(listed, key=lambda kn: sort_key(kn[0]))
                       if fnmatch.fnmatchcase(k, pattern)]
        else:
            local = path[len("file://"):] if path.startswith("file://") else path
            matches = _local_matches(local, sort_key, sized)
        if not matches:
            raise FileNotFoundError(f"{what}: the pattern {path!r} matches no file")
        out.extend(matches)
    return out


def _local_matches(pattern: str, sort_key, sized: bool) -> list[tuple[str, str, int | None]]:
    """The regular files a local glob matches, sorted, each with its size from the one stat that
    tells it is a file (a glob of 100,000 files costs 100,000 stats, not twice that)."""
    # abspath first: glob then yields absolute, normalised paths, which are the keys as they are
    matches = []
    for p in sorted(globmod.glob(os.path.abspath(os.path.expanduser(pattern))), key=sort_key):
        try:
            st = os.stat(p)
        except OSError:   # gone since the glob saw it (or a dangling link): not a file to read
            continue
        if stat.S_ISREG(st.st_mode):
            matches.append(("file:///", p.lstrip("/"), st.st_size if sized else None))
    return matches


def _with_query(store_key: tuple[str, str], store_query: str) -> tuple[str, str]:
    store_url, key = store_key
    if store_query and not store_url.startswith("file://"):
        store_url = f"{store_url}?{store_query}"
    return store_url, key


def display(store_url: str, key: str) -> str:
    """A file's name in messages: a local path as a path, others as their URL."""
    if store_url.startswith("file://"):
        return "/" + key.lstrip("/")
    return f"{store_url.rstrip('/')}/{key}"

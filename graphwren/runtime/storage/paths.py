"""Files named by users: a path, a glob or a list of them, as (store URL, key) pairs.

Every file is addressed as (store URL, key), so local paths, ``s3://`` and
``redis://`` list and read alike.
"""
from __future__ import annotations

import fnmatch
import glob as globmod
import os
import re
from urllib.parse import urlsplit

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
    """Sort key that orders part.2 before part.10, as dask does for globs."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", name)]


def expand(urlpath, what: str) -> list[tuple[str, str]]:
    """Every (store URL, key) a path, glob or list of them names; an error if none."""
    paths = [urlpath] if isinstance(urlpath, (str, os.PathLike)) else list(urlpath)
    if not paths:
        raise ValueError(f"{what}: an empty list of paths")
    out = []
    for path in map(str, paths):
        if not any(c in path for c in "*?["):
            store_url, key = split_url(path)
            if not open_store(store_url).exists(key):
                raise FileNotFoundError(f"{what}: no such file {path!r}")
            out.append((store_url, key))
            continue
        if "://" in path and not path.startswith("file://"):
            store_url, pattern = split_url(path)
            fixed = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)]
            keys = [k for k in open_store(store_url).list(fixed) if fnmatch.fnmatchcase(k, pattern)]
            matches = [(store_url, k) for k in sorted(keys, key=natural_key)]
        else:
            local = path[len("file://"):] if path.startswith("file://") else path
            matches = [split_url(p) for p in sorted(globmod.glob(os.path.expanduser(local)), key=natural_key)
                       if os.path.isfile(p)]
        if not matches:
            raise FileNotFoundError(f"{what}: the pattern {path!r} matches no file")
        out.extend(matches)
    return out


def expand_sized(urlpath, what: str) -> list[tuple[str, str, int]]:
    """Every (store URL, key, size in bytes) a path, glob or list of them names; an error if none.

    Sizes of remote files are asked for 16 at a time.
    """
    files = expand(urlpath, what)
    size = lambda f: open_store(f[0]).size(f[1])  # noqa: E731
    local = all(store_url.startswith("file://") for store_url, _ in files)
    sizes = [size(f) for f in files] if local else _sizer.map(size, files)
    return [(store_url, key, size) for (store_url, key), size in zip(files, sizes)]


def display(store_url: str, key: str) -> str:
    """A file's name in messages: a local path as a path, others as their URL."""
    if store_url.startswith("file://"):
        return "/" + key.lstrip("/")
    return f"{store_url.rstrip('/')}/{key}"

"""Bag readers (read_text, from_s3, read_avro, from_url) and what they share: dask's byte sizes
("10kB") and storage_options.

As dask, a reader lists its glob when it is called: the files a bag reads
are fixed then, and a pattern matching nothing fails at once. A remote
store that cannot be reached at that moment (no credentials, as when only
explain() is wanted) is listed by compute() instead.
"""
from __future__ import annotations

import os

from ..errors import StorageError
from ..logical import bag as e
from ..logical import bag_multi as em
from .bag import Bag, _check_npartitions
from .io_options import parse_bytes, store_query  # noqa: F401 - parse_bytes is public

def _paths(urlpath):
    """A path, a pathlib.Path or a list of them, as the readers' nodes hold them (str or tuple of str)."""
    if isinstance(urlpath, (str, os.PathLike)):
        return os.fspath(urlpath)
    return tuple(os.fspath(p) for p in urlpath)


def read_text(urlpath, blocksize=None, compression="infer", encoding: str = "utf-8", errors: str = "strict",
              linedelimiter: str | None = None, collection: bool = True, storage_options: dict | None = None,
              files_per_partition: int | None = None, include_path: bool = False) -> Bag:
    """Lines (with their delimiter) of local files, s3:// or redis:// objects; globs and lists allowed.

    The planner sizes the partitions from the files' sizes: small files are
    packed together, large ones cut into delimiter-aligned blocks read with
    ranged GETs, so every worker has a few (dask: one partition per file).
    ``blocksize`` (bytes, or a string like "64MiB", per block of each file,
    as dask) or ``files_per_partition`` (whole files per partition, as dask)
    choose instead. Globs are listed now and sorted by name, as dask's
    (part.10 before part.2; read_parquet sorts numbers numerically).
    ``include_path=True`` gives (line, path) records; the path is a local
    path, or the full s3:// URL (dask drops the scheme). ``storage_options``
    may set the S3 endpoint and timeouts, not credentials.
    """
    if not collection:
        raise NotImplementedError("read_text(collection=False) returns dask delayed objects; use "
                                  "read_text(...) as a bag")
    if blocksize is not None:
        blocksize = parse_bytes(blocksize, "read_text blocksize")
        if blocksize < 1:
            raise ValueError(f"read_text: blocksize must be a positive number of bytes, got {blocksize!r}")
    _check_npartitions(files_per_partition, "read_text files_per_partition")
    if blocksize is not None and files_per_partition is not None:
        raise ValueError("read_text: give blocksize= (cut files) or files_per_partition= (pack files), not both")
    if linedelimiter is not None and (not isinstance(linedelimiter, str)):
        raise TypeError(f"read_text: linedelimiter must be a string, got {type(linedelimiter).__name__}")
    node = e.ReadText(_paths(urlpath), blocksize, encoding, errors, compression, files_per_partition,
                      linedelimiter, bool(include_path), store_query(storage_options, "read_text"))
    try:
        files = node.files   # listed now, as dask does: the bag reads the files that exist at this call
    except StorageError:     # the store cannot be reached now: compute() lists it (and raises if still not)
        return Bag(node)
    return Bag(node.substitute(listing=tuple(files)))


def from_s3(urlpath, **kwargs) -> Bag:
    """read_text for s3:// URLs (PyWren's name for it)."""
    paths = [urlpath] if isinstance(urlpath, str) else list(urlpath)
    bad = [p for p in paths if not p.startswith("s3://")]
    if bad:
        raise ValueError(f"from_s3 takes s3:// URLs, got {bad[0]!r}; use read_text for other paths")
    return read_text(urlpath, **kwargs)


def read_avro(urlpath, blocksize=100000000, storage_options: dict | None = None, compression=None) -> Bag:
    """Records (dicts) of avro files, one partition per file (needs fastavro: the ``avro`` extra).

    dask cuts big files at avro sync markers every ``blocksize`` bytes;
    graphwren reads each file whole in one task (``blocksize`` is accepted
    and not used). ``compression`` must be None: avro compresses inside.
    """
    from ..runtime.storage.paths import expand_sized
    from ..tasks.avro import fastavro
    fastavro()   # the extra's error now, not from a worker
    if compression is not None:
        raise ValueError(f"read_avro: compression={compression!r} is not supported; avro files compress "
                         f"their blocks themselves (codec), which read_avro reads")
    parse_bytes(blocksize, "read_avro blocksize")
    files = expand_sized(_paths(urlpath), "read_avro", store_query(storage_options, "read_avro"))
    return Bag(em.ReadAvro(tuple(files)))


def from_url(urls) -> Bag:
    """The lines (bytes, with their newline) of each URL, one partition per URL, read by the tasks (dask's)."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls or not all(isinstance(u, str) for u in urls):
        raise TypeError("from_url needs a URL or a non-empty list of URLs")
    return Bag(em.FromURL(tuple(urls)))


__all__ = ["read_text", "from_s3", "read_avro", "from_url", "parse_bytes"]

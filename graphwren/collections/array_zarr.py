"""Zarr storage for graphwren arrays: ``to_zarr(url)`` / ``from_zarr(url)`` on file://, s3:// and redis://.

One zarr chunk per block: the tasks write their own chunks (the driver only
writes the metadata, ``zarr.json``), and what they write is plain zarr v3
that zarr-python, xarray and dask read. Irregular chunkings are rechunked to
zarr's regular grid first. ``store``/``load`` are the old names, kept as
thin aliases (``store`` overwrites; ``load`` also reads graphwren's first
format, ``_array.json`` and codec blocks).
"""
from __future__ import annotations

import hashlib

from .. import config, planner
from ..errors import MissingKey
from ..logical.array import Load, ZarrSource, check_numeric
from ..logical.chunks import normalize_chunks
from ..planner.outputs import Partitions
from ..runtime.storage import open_store
from ..tasks.array_zarr import ZarrWriter, open_array, regular_chunks, zarr_grid, zarr_store
from ..tasks.blocks import HEADER_KEY
from .array_base import Array, ArrayError, load_legacy

_METADATA = ("zarr.json", ".zarray")


def _metadata(store) -> bytes | None:
    for key in _METADATA:
        try:
            return store.get(key)
        except MissingKey:
            continue
    return None


def to_zarr(arr, url, component=None, storage_options=None, overwrite=False, region=None, compute=True,
            return_stored=False, compressors="auto", **settings):
    """dask.array.to_zarr: write ``arr`` to a zarr v3 array at ``url``, one chunk per block, from the tasks.

    Returns the bytes written (uncompressed). ``overwrite=False`` refuses a URL
    that already holds an array, as dask does. ``compressors`` is zarr's
    (``"auto"``: zarr's default, zstd; ``None``: chunks stored raw).
    """
    import zarr
    if not isinstance(arr, Array):
        raise TypeError(f"to_zarr: {type(arr).__name__} is not a graphwren array (use from_array first)")
    for name, value in (("component", component), ("storage_options", storage_options), ("region", region)):
        if value is not None:
            raise NotImplementedError(f"to_zarr: {name}= is not supported; name the array by its URL")
    if not compute or return_stored:
        raise NotImplementedError("to_zarr: compute=False and return_stored=True are not supported")
    settings = config.resolve(settings)
    store = open_store(url)
    for node in arr.expr.walk():
        if isinstance(node, (Load, ZarrSource)) and node.url == store.url:
            raise ArrayError(f"to_zarr({url!r}): the array reads its own target; write to another URL")
    if not overwrite and _metadata(store) is not None:
        raise ArrayError(f"to_zarr({url!r}): an array is already stored there; pass overwrite=True to replace it")
    if not regular_chunks(arr.chunks):   # zarr's grid: equal chunks, the last one shorter
        arr = arr.rechunk(tuple(max(c) for c in arr.chunks))
    zarr.create_array(store=zarr_store(store.url), shape=arr.shape, chunks=zarr_grid(arr.chunks), dtype=arr.dtype,
                      fill_value=0, overwrite=True, compressors=compressors)
    if store.exists(HEADER_KEY):   # an array in graphwren's first format was here: it is replaced
        store.delete(HEADER_KEY)
        store.delete("block/")
    planned = planner.plan(arr.expr, settings, target=ZarrWriter(store.url, arr.chunks))
    output = Partitions()
    planner.execute(planned, settings, output, description=f"to_zarr {url}")
    return sum(n for part in output.value() for _, n in part)


def from_zarr(url, component=None, storage_options=None, chunks=None, name=None, inline_array=False,
              **kwargs) -> Array:
    """dask.array.from_zarr: the zarr array at ``url``, lazily; blocks default to zarr's chunks (or shards)."""
    for what, value in (("component", component), ("storage_options", storage_options)):
        if value is not None:
            raise NotImplementedError(f"from_zarr: {what}= is not supported; name the array by its URL")
    store = open_store(url)
    meta = _metadata(store)
    if meta is None:
        raise ArrayError(f"from_zarr({url!r}): no zarr array there (no zarr.json or .zarray)")
    z = open_array(store.url)
    dtype = check_numeric(z.dtype, f"from_zarr({url!r})")
    zchunks = tuple(getattr(z, "shards", None) or z.chunks)
    shape = tuple(z.shape)
    blocks = normalize_chunks(zchunks if chunks is None else chunks, shape, dtype)
    token = hashlib.sha1(meta).hexdigest()[:16]
    return Array(ZarrSource(store.url, token, shape, blocks, dtype, tuple(z.chunks)))


def store(arr, url, compressors="auto", **settings) -> dict:
    """The old name of ``to_zarr(url, overwrite=True)``; returns a summary of what was written."""
    nbytes = to_zarr(arr, url, overwrite=True, compressors=compressors, **settings)
    out = arr if regular_chunks(arr.chunks) else arr.rechunk(tuple(max(c) for c in arr.chunks))
    return {"format": "zarr", "zarr_format": 3, "shape": list(arr.shape), "dtype": arr.dtype.str,
            "chunks": [list(c) for c in out.chunks], "nbytes": nbytes}


def load(url: str, chunks=None) -> Array:
    """The old name of ``from_zarr``; also reads arrays in graphwren's first format (``_array.json``)."""
    s = open_store(url)
    if _metadata(s) is None and s.exists(HEADER_KEY):
        return load_legacy(url)
    return from_zarr(url, chunks=chunks)


__all__ = ["to_zarr", "from_zarr", "store", "load"]

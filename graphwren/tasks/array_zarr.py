"""Zarr as graphwren's array format: a zarr-python store over graphwren's stores, and the read/write kernels.

``zarr_store(url)`` lets zarr-python read and write through ``runtime.storage``
(file://, s3://, redis://), so one code path covers all three and the keys
are plain zarr keys (``zarr.json``, ``c/0/1``...) that zarr, xarray and dask
read directly from a directory or bucket. Each task writes exactly the zarr
chunk its block is (the planner makes blocks and zarr chunks coincide), so
writers never share a chunk; each reading task asks zarr for its block's
region, whatever the stored chunking.
"""
from __future__ import annotations

import asyncio
import functools
import math

import numpy as np

from ..errors import MissingKey
from ..runtime.storage import open_store
from .blocks import block_shape, chunk_offsets


@functools.cache
def zarr_store_class():
    """zarr-python's Store subclass over graphwren stores, made on first use (zarr takes ~1 s to import)."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype

    class ZarrStore(Store):
        """A zarr-python Store over a graphwren store URL (keys as zarr names them)."""

        supports_writes = True
        supports_deletes = True
        supports_listing = True
        supports_partial_writes = False

        def __init__(self, url: str, *, read_only: bool = False):
            super().__init__(read_only=read_only)
            self.url = url

        @property
        def _store(self):
            return open_store(self.url)   # cached per process; a fresh one after fork

        def with_read_only(self, read_only: bool = False):
            return ZarrStore(self.url, read_only=read_only)

        def __eq__(self, other) -> bool:
            return isinstance(other, ZarrStore) and other.url == self.url and other.read_only == self.read_only

        def __repr__(self):
            return f"ZarrStore({self.url!r})"

        def _get(self, key, byte_range):
            store = self._store
            try:
                if byte_range is None:
                    return store.get(key)
                if isinstance(byte_range, RangeByteRequest):
                    return store.get(key, byte_range.start, byte_range.end)
                if isinstance(byte_range, OffsetByteRequest):
                    return store.get(key, byte_range.offset, None)
                if isinstance(byte_range, SuffixByteRequest):
                    size = store.size(key)
                    return store.get(key, max(0, size - byte_range.suffix), None)
            except MissingKey:
                return None
            raise TypeError(f"unknown byte range {byte_range!r}")

        async def get(self, key, prototype=None, byte_range=None):
            prototype = prototype or default_buffer_prototype()
            data = await asyncio.to_thread(self._get, key, byte_range)
            return None if data is None else prototype.buffer.from_bytes(data)

        async def get_partial_values(self, prototype, key_ranges):
            return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

        async def exists(self, key) -> bool:
            return await asyncio.to_thread(self._store.exists, key)

        async def set(self, key, value) -> None:
            self._check_writable()
            await asyncio.to_thread(self._store.put, key, value.to_bytes())

        async def delete(self, key) -> None:
            self._check_writable()

            def delete_exactly():
                # graphwren deletes by prefix: delete only when no other key shares this one as a prefix
                keys = self._store.list(key)
                if keys == [key]:
                    self._store.delete(key)
                elif key in keys:
                    raise NotImplementedError(f"zarr asked to delete {key!r} alone, but other keys start with it")
            await asyncio.to_thread(delete_exactly)

        async def list(self):
            for key in await asyncio.to_thread(self._store.list, ""):
                yield key

        async def list_prefix(self, prefix):
            for key in await asyncio.to_thread(self._store.list, prefix):
                yield key

        async def list_dir(self, prefix):
            prefix = prefix.rstrip("/")
            start = prefix + "/" if prefix else ""
            seen = set()
            for key in await asyncio.to_thread(self._store.list, start):
                name = key[len(start):].split("/", 1)[0]
                if name and name not in seen:
                    seen.add(name)
                    yield name

    return ZarrStore


def zarr_store(url: str, read_only: bool = False):
    """A zarr-python store over the graphwren store at ``url``."""
    return zarr_store_class()(url, read_only=read_only)


def regular_chunks(chunks) -> bool:
    """True when every block but the last along each dimension has the first one's length (zarr's grid)."""
    return all(len(c) <= 1 or (len(set(c[:-1])) == 1 and c[-1] <= c[0]) for c in chunks)


def zarr_grid(chunks) -> tuple[int, ...]:
    """zarr's chunk shape for graphwren's regular chunks (at least 1 on 0-length dimensions)."""
    return tuple(max(1, c[0]) if c else 1 for c in chunks)


def _region(chunks, idx):
    return tuple(slice(o[i], o[i + 1]) for o, i in zip((chunk_offsets(c) for c in chunks), idx))


def open_array(url: str, mode: str = "r"):
    import zarr
    return zarr.open_array(store=zarr_store(url, read_only=mode == "r"), mode=mode)


class ZarrWriter:
    """Where a storing stage's tasks put their blocks: each writes its own zarr chunk of the array at ``url``."""

    def __init__(self, url: str, chunks):
        self.url, self.chunks = url, chunks

    def write(self, idx, block) -> int:
        if block.size == 0:
            return 0
        import zarr
        # zarr's default: a block that is all fill value is left out (readers fill it), at the cost of a scan
        # of each block; writing them instead made a Cholesky's L (6 zero blocks of 16) 6% slower
        arr = zarr.open_array(store=zarr_store(self.url), mode="r+")
        arr[_region(self.chunks, idx)] = block
        return int(block.nbytes)

    def __str__(self):
        return self.url


def _raw_dtype(arr):
    """The dtype of an array's chunks as stored when they are its values' bytes alone (no compressor, filter,
    transposition or sharding), else None."""
    meta = arr.metadata
    if meta.zarr_format == 2:
        plain = meta.order == "C" and not meta.filters and meta.compressor is None
        return np.dtype(meta.dtype.to_native_dtype()) if plain else None
    from zarr.codecs import BytesCodec
    if getattr(meta, "storage_transformers", ()) or len(meta.codecs) != 1 or not isinstance(meta.codecs[0], BytesCodec):
        return None
    dtype = np.dtype(arr.dtype)
    endian = meta.codecs[0].endian
    return dtype if endian is None else dtype.newbyteorder("<" if endian.value == "little" else ">")


def _whole_raw_chunk(arr, url: str, region):
    """The block at ``region`` straight from its chunk's bytes (no copy, so read-only: a user's map_blocks
    gets a writable copy), when the region is exactly one stored, uncompressed chunk (the edge chunks cut
    to the array); else None and zarr reads it.

    zarr's own read of such a chunk copies it into a fresh buffer through its event loop: on 32 MB blocks
    that was a fifth of a matmul task's CPU.
    """
    grid = arr.chunks
    dtype = _raw_dtype(arr)
    if dtype is None or len(grid) != len(region):
        return None
    coords = []
    for r, step, size in zip(region, grid, arr.shape):
        if r.start % step or r.stop - r.start != min(step, size - r.start):
            return None
        coords.append(r.start // step)
    key = arr.metadata.encode_chunk_key(tuple(coords))
    try:
        blob = open_store(url).view(key)   # a file store maps it: no copy out of the page cache
    except MissingKey:
        return None   # never written: zarr fills it
    if len(blob) != math.prod(grid) * dtype.itemsize:
        return None   # not what the metadata says: zarr's read names the problem
    full = np.frombuffer(blob, dtype=dtype).reshape(grid)
    return full[tuple(slice(0, r.stop - r.start) for r in region)]


class KZarrRead:
    """Kernel: block idx read from the zarr array at ``url`` (zarr decodes the chunks it overlaps)."""

    name = ""

    def __init__(self, url, chunks, dtype):
        self.url, self.chunks, self.dtype = url, chunks, np.dtype(dtype)

    def compute(self, env, idx):
        shape = block_shape(self.chunks, idx)
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype=self.dtype)
        arr = open_array(self.url)
        region = _region(self.chunks, idx)
        block = _whole_raw_chunk(arr, self.url, region)
        if block is None:
            block = np.asarray(arr[region])
        return block.astype(self.dtype, copy=False)

    def reads(self, idx, out):
        pass

    def source_bytes(self, idx):
        return math.prod(block_shape(self.chunks, idx)) * self.dtype.itemsize

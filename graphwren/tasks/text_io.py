"""Reading and writing text: newline-aligned byte ranges, compression, one file per partition.

A task fetches only its byte range (ranged GETs), plus the few bytes past it
that finish its last line.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os

from ..runtime.storage import open_store
from ..runtime.storage.paths import display, expand, split_url

COMPRESSIONS = {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}
_EXTENSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
_READ_MORE = 64 * 1024


def infer_compression(key: str, compression):
    if compression == "infer":
        return _EXTENSIONS.get(os.path.splitext(key)[1])
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; choose one of {sorted(COMPRESSIONS)} or 'infer'")
    return compression


def text_splits(urlpath, blocksize, compression) -> list[tuple]:
    """(store URL, key, start, end, compression) blocks; compressed files are one block."""
    if blocksize is not None and (not isinstance(blocksize, int) or blocksize < 1):
        raise ValueError(f"read_text: blocksize must be a positive number of bytes, got {blocksize!r}")
    splits = []
    for store_url, key in expand(urlpath, "read_text"):
        comp = infer_compression(key, compression)
        size = open_store(store_url).size(key)
        if comp is not None or blocksize is None or size <= blocksize:
            splits.append((store_url, key, 0, size, comp))
            continue
        for start in range(0, size, blocksize):
            splits.append((store_url, key, start, min(start + blocksize, size), None))
    return splits


class ReadTextBlock:
    """Lines of block i: those that *start* inside [start, end), each with its newline."""

    def __init__(self, splits: list[tuple], encoding: str, errors: str):
        self.splits, self.encoding, self.errors = splits, encoding, errors

    def __call__(self, ctx):
        return self.decode(ctx, *self.raw(ctx))

    def raw(self, ctx) -> tuple[bytes, int]:
        """The block's bytes (decompressed, on line boundaries) and their offset in the file."""
        store_url, key, start, end, comp = self.splits[ctx.task]
        store = open_store(store_url)
        ctx.where = f"{display(store_url, key)} bytes {start}-{end}"
        if comp is not None:
            return COMPRESSIONS[comp](store.get(key)), 0
        return self._aligned(store, key, start, end)

    def decode(self, ctx, data: bytes, offset: int):
        """The block's lines, each with its newline (\r\n and \r read as \n, as dask does)."""
        store_url, key, start, end, comp = self.splits[ctx.task]
        try:
            text = data.decode(self.encoding, self.errors)
        except UnicodeDecodeError as exc:
            raise ValueError(f"read_text: cannot decode {display(store_url, key)} as {self.encoding} at byte "
                             f"{offset + exc.start}{' (after decompression)' if comp else ''}: "
                             f"{exc.reason}") from None
        return iter(io.StringIO(text, newline=None))

    @staticmethod
    def _aligned(store, key: str, start: int, end: int) -> tuple[bytes, int]:
        if start > 0:
            data = store.get(key, start - 1, end)
            first = data.find(b"\n")
            if first < 0:
                return b"", start  # the block lies inside a line that began earlier
            data, offset = data[first + 1:], start + first
        else:
            data, offset = store.get(key, 0, end), 0
        if not data:
            return b"", offset
        size = None
        pos = end
        tail = []
        while not (tail[-1] if tail else data).endswith(b"\n"):
            size = store.size(key) if size is None else size
            if pos >= size:
                break
            more = store.get(key, pos, min(pos + _READ_MORE, size))
            cut = more.find(b"\n")
            tail.append(more if cut < 0 else more[: cut + 1])
            pos += len(more)
            if cut >= 0:
                break
        return data + b"".join(tail), offset


def output_targets(urlpath: str, n: int, name_function) -> list[tuple[str, str]]:
    """(store URL, key) of each output file: '*' is replaced, else files in a directory."""
    name_function = name_function or str
    if "*" in urlpath:
        paths = [urlpath.replace("*", name_function(i)) for i in range(n)]
    else:
        paths = [urlpath.rstrip("/") + f"/{name_function(i)}.part" for i in range(n)]
    return [split_url(p) for p in paths]


class WriteText:
    """Sink: one text file per partition, one line per record; returns the file's URL."""

    def __init__(self, targets: list[tuple[str, str]], encoding: str, compression):
        self.targets, self.encoding, self.compression = targets, encoding, compression

    def __call__(self, ctx, it):
        store_url, key = self.targets[ctx.task]
        data = "\n".join(it).encode(self.encoding)
        comp = infer_compression(key, self.compression)
        if comp == "gzip":
            data = gzip.compress(data)
        elif comp == "bz2":
            data = bz2.compress(data)
        elif comp == "xz":
            data = lzma.compress(data)
        open_store(store_url).put(key, data)
        return [display(store_url, key)]

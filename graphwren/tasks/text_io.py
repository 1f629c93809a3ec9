"""Reading and writing text: newline-aligned byte ranges, compression, one file per partition.

A task fetches only its byte range (ranged GETs), plus the few bytes past it
that finish its last line.
"""
from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import os

from ..runtime.storage import open_store
from ..runtime.storage.paths import display, split_url

COMPRESSIONS = {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}
_EXTENSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
_READ_MORE = 64 * 1024


def infer_compression(key: str, compression):
    if compression == "infer":
        return _EXTENSIONS.get(os.path.splitext(key)[1])
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; choose one of {sorted(COMPRESSIONS)} or 'infer'")
    return compression


class ReadTextBlock:
    """Lines of split i: of each piece (a file's byte range) packed into it, the lines that *start*
    inside [start, end), each with its newline, piece after piece."""

    def __init__(self, splits: list[list[tuple]], encoding: str, errors: str):
        self.splits, self.encoding, self.errors = splits, encoding, errors

    def __call__(self, ctx):
        return itertools.chain.from_iterable(self.decode(ctx, piece, *self.raw(ctx, piece))
                                             for piece in self.pieces(ctx))

    def pieces(self, ctx) -> list[tuple]:
        """This task's pieces: (store URL, key, start, end, compression)."""
        return self.splits[ctx.task]

    def raw(self, ctx, piece: tuple) -> tuple[bytes, int]:
        """A piece's bytes (decompressed, on line boundaries) and their offset in the file."""
        store_url, key, start, end, comp = piece
        store = open_store(store_url)
        ctx.where = f"{display(store_url, key)} bytes {start}-{end}"
        if comp is not None:
            return COMPRESSIONS[comp](store.get(key)), 0
        return self._aligned(store, key, start, end)

    def decode(self, ctx, piece: tuple, data: bytes, offset: int):
        """A piece's lines, each with its newline (\r\n and \r read as \n, as dask does)."""
        store_url, key, start, end, comp = piece
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

"""Reading and writing text: newline-aligned byte ranges, compression, one file per partition.

A task fetches only its byte range (ranged GETs), plus the few bytes past it
that finish its last line.
"""
from __future__ import annotations

import bz2
import functools
import gzip
import io
import itertools
import lzma
import os
import weakref

from ..runtime.prefetch import Prefetcher
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
    inside [start, end), each with its newline, piece after piece.

    ``linedelimiter`` as dask's read_text without blocksize: None reads
    universal newlines (``\r\n`` and ``\r`` become ``\n``), "" splits at any
    of them and keeps them, any other string ("\n", "\r\n", ";") splits
    there only and keeps it at the end of each record. (dask with a
    blocksize turns "\n" into "\r\n" for linedelimiter="\r\n"; graphwren
    gives the same records with or without blocks.) ``include_path`` makes each
    record ``(line, path)``.
    """

    def __init__(self, splits: list[list[tuple]], encoding: str, errors: str, linedelimiter: str | None = None,
                 include_path: bool = False):
        self.splits, self.encoding, self.errors = splits, encoding, errors
        self.linedelimiter, self.include_path = linedelimiter, include_path

    def __call__(self, ctx):
        return itertools.chain.from_iterable(self.decode(ctx, piece, *self.raw(ctx, piece))
                                             for piece in self.pieces(ctx))

    def pieces(self, ctx) -> list[tuple]:
        """This task's pieces: (store URL, key, start, end, compression)."""
        return self.splits[ctx.task]

    def _delimiter(self) -> bytes:
        """The bytes a block boundary moves to: a newline, or the custom delimiter (encoded)."""
        d = self.linedelimiter
        return b"\n" if d in (None, "") else d.encode(self.encoding)

    def raw(self, ctx, piece: tuple) -> tuple[bytes, int]:
        """A piece's bytes (decompressed, on line boundaries) and their offset in the file.

        Pieces of a remote store are fetched a few ahead of the caller (who
        takes them in split order), so a split of 2,000 small S3 objects waits
        on a few GETs at a time, not on each in turn.
        """
        ctx.where = _At(piece)
        if piece[0].startswith("file://") or len(self.pieces(ctx)) < 2:
            return self._fetch(piece)
        ahead = _AHEAD.get(ctx)
        if ahead is None:
            ahead = _AHEAD[ctx] = _Ahead(self, self.pieces(ctx))
        return ahead.take(piece)

    def _fetch(self, piece: tuple) -> tuple[bytes, int]:
        store_url, key, start, end, comp = piece
        store = open_store(store_url)
        if comp is not None:
            return COMPRESSIONS[comp](store.get(key)), 0
        return self._aligned(store, key, start, end, self._delimiter())

    def decode(self, ctx, piece: tuple, data: bytes, offset: int):
        """A piece's records: its lines, each with its delimiter (see the class docstring)."""
        store_url, key, start, end, comp = piece
        try:
            text = data.decode(self.encoding, self.errors)
        except UnicodeDecodeError as exc:
            raise ValueError(f"read_text: cannot decode {display(store_url, key)} as {self.encoding} at byte "
                             f"{offset + exc.start}{' (after decompression)' if comp else ''}: "
                             f"{exc.reason}") from None
        d = self.linedelimiter
        if d in (None, ""):   # universal newlines: translated to \n (None) or kept as they are ("")
            lines = iter(io.StringIO(text, newline=d))
        else:   # split on it and keep it (open(newline=d) in dask), no empty record after a final delimiter
            parts = text.split(d)
            lines = iter([p + d for p in parts[:-1]] + ([parts[-1]] if parts[-1] else []))
        if self.include_path:
            path = display(store_url.split("?", 1)[0], key)
            return ((line, path) for line in lines)
        return lines

    @staticmethod
    def _aligned(store, key: str, start: int, end: int, delim: bytes = b"\n") -> tuple[bytes, int]:
        """The records that start in [start, end): from just after the first delimiter that ends at or
        after ``start`` to the first delimiter ending at or after ``end`` (reading past ``end`` for it)."""
        width = len(delim)
        if start > 0:
            lead = max(0, start - width)
            data = store.get(key, lead, end)
            first = data.find(delim)
            if first < 0 or lead + first + width > end:
                return b"", start  # the block lies inside a record that began earlier
            data, offset = data[first + width:], lead + first + width
        else:
            data, offset = store.get(key, 0, end), 0
        if not data:
            return b"", offset
        size = None
        pos = end
        tail = b""
        while not (data + tail).endswith(delim):
            size = store.size(key) if size is None else size
            if pos >= size:
                break
            more = store.get(key, pos, min(pos + _READ_MORE, size))
            # a delimiter may straddle the boundary: search from its possible start
            window = (data + tail)[-(width - 1):] if width > 1 else b""
            cut = (window + more).find(delim)
            if cut >= 0:
                tail += more[: cut - len(window) + width]
                break
            tail += more
            pos += len(more)
        return data + tail, offset


class _At:
    """Where a reader is, for an error message: formatted only if one is raised (not per file)."""

    __slots__ = ("piece",)

    def __init__(self, piece: tuple):
        self.piece = piece

    def __str__(self) -> str:
        store_url, key, start, end, _ = self.piece
        return f"{display(store_url, key)} bytes {start}-{end}"


class _Ahead:
    """One task's remote pieces, fetched AHEAD at a time in the background and taken in order."""

    def __init__(self, reader: ReadTextBlock, pieces: list[tuple]):
        self.pieces = list(pieces)
        self.next = 0
        self.results = _PREFETCH.iter(functools.partial(reader._fetch, p) for p in self.pieces)
        self.reader = reader

    def take(self, piece: tuple) -> tuple[bytes, int]:
        if self.next < len(self.pieces) and self.pieces[self.next] == piece:
            self.next += 1
            return next(self.results)
        return self.reader._fetch(piece)   # asked out of order: fetch it directly


#: Remote pieces in flight per task: enough to hide a GET's latency, few enough to bound memory.
AHEAD = 16
_PREFETCH = Prefetcher(AHEAD, "gw-text")
_AHEAD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # task context -> its _Ahead


class ReadTextOptions:
    """Reader: a ReadTextBlock with dask's linedelimiter or include_path (never the columnar path)."""

    def __init__(self, inner: ReadTextBlock):
        self.inner = inner

    def __call__(self, ctx):
        return self.inner(ctx)


def text_reader(splits, encoding: str, errors: str, linedelimiter: str | None = None, include_path: bool = False):
    """The reader of read_text's splits: the plain one (which the columnar path may take) or one with options."""
    if linedelimiter is None and not include_path:
        return ReadTextBlock(splits, encoding, errors)
    return ReadTextOptions(ReadTextBlock(splits, encoding, errors, linedelimiter, include_path))


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

    def __init__(self, targets: list[tuple[str, str]], encoding: str, compression, last_endline: bool = False):
        self.targets, self.encoding, self.compression = targets, encoding, compression
        self.last_endline = last_endline

    def __call__(self, ctx, it):
        store_url, key = self.targets[ctx.task]
        text = "\n".join(it)
        data = (text + "\n" if self.last_endline and text else text).encode(self.encoding)
        comp = infer_compression(key, self.compression)
        if comp == "gzip":
            data = gzip.compress(data)
        elif comp == "bz2":
            data = bz2.compress(data)
        elif comp == "xz":
            data = lzma.compress(data)
        open_store(store_url).put(key, data)
        return [display(store_url.split("?", 1)[0], key)]   # the file, without the store options

"""The ``obj`` a Lithops-style call receives: one chunk of a stored object, and a stream over its bytes.

A chunk is a nominal byte range ``[start, end)`` of an object. With a newline
character (Lithops' ``obj_newline``, ``"\\n"`` by default) the chunk owns
exactly the lines that *start* inside its range: it skips the tail of a line
that began before ``start`` and reads past ``end`` to finish its last line.
Consecutive chunks therefore meet at the same line boundary, so their
streams concatenate to the object's bytes, whatever the chunk size and line
lengths (a line longer than a chunk lands whole in the chunk it starts in;
the chunks it covers otherwise stream nothing). Lithops reads a fixed 128 KiB
past each chunk and cuts longer lines; this reader reads on until the line
ends. With ``newline=None`` a chunk is its exact byte range.

The stream reads lazily, ``READ_BLOCK`` bytes per ranged GET, so a call
holds one block in memory however large its chunk is. Local files (``file://``
URLs and absolute paths) are read with plain file I/O, as Lithops reads
localhost paths; everything else goes through graphwren's ``Store``.
"""
from __future__ import annotations

import io
import os

from ..runtime.storage import open_store

READ_BLOCK = 1 << 20     # bytes per ranged GET while streaming a chunk
SCAN_BLOCK = 64 * 1024   # bytes per GET while looking for a line boundary


class CloudObject:
    """One chunk of one object, as Lithops hands it to a function's ``obj`` parameter."""

    def __init__(self, store_url: str | None, key: str, size: int, start: int, end: int,
                 part: int, total_parts: int, newline: str | None, backend: str, bucket: str,
                 path: str | None = None, url: str = ""):
        self.store_url = store_url    # None for a local file, read at ``path``
        self.key = key
        self.size = size              # of the whole object
        self.start, self.end = start, end
        self.chunk_size = end - start
        self.data_byte_range = (start, end - 1) if end > start else (start, start)  # inclusive, as Lithops
        self.part = part              # 1-based, as Lithops numbers them
        self.total_parts = total_parts
        self.newline = newline
        self.backend = backend        # "aws_s3", "localhost" or "redis", Lithops' backend names
        self.bucket = bucket
        self.url = url                # the object's full URL, for messages
        if path is not None:
            self.path = path
        self.data_stream = None       # set in the worker, just before the call

    def open(self) -> io.BufferedReader:
        """A fresh readable stream over this chunk's bytes (line-aligned unless ``newline`` is None)."""
        return io.BufferedReader(_ChunkReader(self), buffer_size=READ_BLOCK)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["data_stream"] = None   # a stream is the worker's own; it never travels
        return state

    def __str__(self):
        return f"<CloudObject at {self.url} part {self.part}/{self.total_parts}>"

    __repr__ = __str__


def _reader_of(obj: CloudObject):
    """``get(lo, hi) -> bytes`` over the object, ``hi`` clipped to its size."""
    if obj.store_url is None:
        path = obj.path

        def get(lo: int, hi: int) -> bytes:
            hi = min(hi, obj.size)
            if hi <= lo:
                return b""
            with open(path, "rb", buffering=0) as f:
                return os.pread(f.fileno(), hi - lo, lo)
        return get
    store = open_store(obj.store_url)

    def get(lo: int, hi: int) -> bytes:
        hi = min(hi, obj.size)
        return store.get(obj.key, lo, hi) if hi > lo else b""
    return get


def line_start_at_or_after(get, size: int, pos: int, newline: bytes) -> int:
    """Where the first line starting at or after ``pos`` starts (``size`` if none does)."""
    if pos <= 0:
        return 0
    at = pos - 1   # a line starts at pos exactly when the byte before it is a newline
    while at < size:
        block = get(at, at + SCAN_BLOCK)
        if not block:
            break
        cut = block.find(newline)
        if cut >= 0:
            return at + cut + 1
        at += len(block)
    return size


class _ChunkReader(io.RawIOBase):
    """Raw stream of one chunk: its first whole line up to the end of the last line starting before ``end``."""

    def __init__(self, obj: CloudObject):
        self._get = _reader_of(obj)
        self._size = obj.size
        self._nl = obj.newline.encode() if obj.newline is not None else None
        self._start, self._end = obj.start, min(obj.end, obj.size)
        self._pos: int | None = None   # found on the first read: finding it costs a GET
        self._stop: int | None = None if self._nl is not None else self._end   # known once the last line ends
        self._last = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pos is None:
            self._pos = (self._start if self._nl is None else
                         line_start_at_or_after(self._get, self._size, self._start, self._nl))
            if self._pos >= self._end:   # no line starts in this chunk
                self._stop = self._pos
        if self._stop is not None and self._pos >= self._stop:
            return 0
        want = len(buffer)
        if self._pos < self._end:   # inside the nominal range
            data = self._get(self._pos, min(self._end, self._pos + max(want, 1)))
            if self._pos + len(data) >= self._end and self._stop is None and data.endswith(self._nl):
                self._stop = self._end   # the range ends exactly on a line boundary
        else:   # past it: finish the last line, and no more
            if self._stop is None and self._last == self._nl:
                self._stop = self._pos
                return 0
            data = self._get(self._pos, self._pos + min(max(want, 1), SCAN_BLOCK))
            cut = data.find(self._nl)
            if cut >= 0:
                data = data[:cut + 1]
                self._stop = self._pos + len(data)
        if not data:
            self._stop = self._pos
            return 0
        n = len(data)
        buffer[:n] = data
        self._pos += n
        self._last = data[-1:]
        if self._pos >= self._size:
            self._stop = self._pos
        return n


def attach_stream(obj: CloudObject) -> CloudObject:
    """The object, with a fresh ``data_stream`` over its chunk."""
    obj.data_stream = obj.open()
    return obj

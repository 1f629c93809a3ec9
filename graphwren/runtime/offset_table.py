"""A shuffle stage's bucket offsets laid out column by column, so a reader fetches only its own.

Map task i's commit record holds the offsets o_i[0..R] of its R buckets in
its output object. A manifest that held every task's offsets grew as M x R
numbers and every one of the stage's readers downloaded all of it: 8 MB for
a 1,000 x 1,000 shuffle (8.5 GB of manifest GETs over its readers) and
800 MB at 10,000 x 10,000. Above ``records.COLUMN_OFFSETS`` numbers the
driver instead writes them here, column-major: column c is
o_0[c], ..., o_{M-1}[c] as little-endian int64, sealed like an output
bucket (``integrity.seal_output``: padding, then a tag bound to the table's
name and c). A reader of buckets lo..hi-1 needs columns lo..hi, which lie
side by side: one ranged GET of (hi - lo + 1) columns, 16 M bytes for one
bucket whatever R is. The table's name carries a nonce the signed manifest
names, so a table only ever passes for the manifest it was written with.
"""
from __future__ import annotations

import numpy as np

from ..errors import IntegrityError
from . import integrity

_DTYPE = np.dtype("<i8")


def stride(ntasks: int) -> int:
    """Bytes one sealed column takes: its offsets, the padding ``seal_output`` adds, the tag."""
    body = _DTYPE.itemsize * ntasks
    return body + (-(body + integrity.TAG_SIZE) % integrity.ALIGN) + integrity.TAG_SIZE


def encode(key: bytes, name: str, offsets: np.ndarray) -> bytes:
    """The sealed table of an (M, R + 1) offset matrix, row i being map task i's offsets."""
    m, width = offsets.shape
    columns = np.ascontiguousarray(offsets.T, dtype=_DTYPE)   # column c is row c here
    body = _DTYPE.itemsize * m
    blob, sealed = integrity.seal_output(key, name, columns.tobytes(), [c * body for c in range(width + 1)])
    assert sealed[-1] == width * stride(m)   # noqa: S101 - the layout readers compute must be the one written
    return blob


def byte_range(ntasks: int, lo: int, hi: int) -> tuple[int, int]:
    """Where columns lo..hi (inclusive) lie in the table: what a reader of buckets lo..hi-1 GETs."""
    step = stride(ntasks)
    return lo * step, (hi + 1) * step


def decode(key: bytes, name: str, blob, ntasks: int, lo: int, hi: int, store_url: str) -> np.ndarray:
    """Columns lo..hi of a ranged read, each checked against its tag: an array (hi - lo + 1, M)."""
    view, step = memoryview(blob), stride(ntasks)
    if len(view) != (hi - lo + 1) * step:
        raise IntegrityError(
            f"offset table {name!r} in {store_url}: the read of its columns {lo}..{hi} returned {len(view)} "
            f"bytes, not {hi - lo + 1} columns of {step}: it was truncated or replaced")
    rows = []
    for i in range(hi - lo + 1):
        body = integrity.open_segment(key, name, lo + i, view[i * step:(i + 1) * step], store_url,
                                      what=f"column {lo + i} of offset table")
        rows.append(np.frombuffer(body[:_DTYPE.itemsize * ntasks], dtype=_DTYPE))
    return np.stack(rows)

"""Data the driver holds, shipped to the tasks through storage: one object, one byte range per piece.

``from_sequence`` partitions, ``from_arrow`` tables, ``from_numpy`` blocks
and ``Executor.map``'s chunks of items all travel the same way: the planner
packs the pieces into one ``Plan.data`` object, and a task reads only its
own piece with one ranged GET. Pieces start at multiples of ``ALIGN`` so
that numpy blocks decode zero-copy.
"""
from __future__ import annotations

import pickle
from typing import Callable, Iterable

from ..runtime import codec

ALIGN = 64


def pack(pieces: Iterable, encode: Callable[[object], bytes] = codec.encode) -> tuple[bytes, list[int]]:
    """(one object holding every encoded piece, the byte offset of each piece and of the end)."""
    blobs, offsets = [], [0]
    for piece in pieces:
        blob = encode(piece)
        pad = -len(blob) % ALIGN
        blobs.append(blob + b"\0" * pad if pad else blob)
        offsets.append(offsets[-1] + len(blobs[-1]))
    return b"".join(blobs), offsets


class Shipped:
    """Piece i of a shipped object (by default piece ``ctx.task``), read with one ranged GET and decoded."""

    def __init__(self, name: str, offsets: list[int], decode: str = "codec"):
        if decode not in ("codec", "pickle"):
            raise ValueError(f"Shipped: decode is 'codec' or 'pickle', got {decode!r}")
        self.name, self.offsets, self.decode = name, list(offsets), decode

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def nbytes(self, i: int) -> int:
        """Encoded bytes of piece i (what a task reads for it)."""
        return self.offsets[i + 1] - self.offsets[i]

    def read(self, ctx, i: int):
        blob = ctx.read_data(self.name, self.offsets[i], self.offsets[i + 1])
        return pickle.loads(blob) if self.decode == "pickle" else codec.decode(blob)

    def __call__(self, ctx):
        return self.read(ctx, ctx.task)

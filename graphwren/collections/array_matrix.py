"""Matrix-shaped helpers of numpy: tril, triu, diagonal, diag (built on map_blocks, einsum and eye)."""
from __future__ import annotations

import numpy as np

from ..tasks.blocks import chunk_offsets
from .array_base import Array, full
from .array_blockwise import einsum, map_blocks
from .array_create import eye
from .array_shape import asarray_like, concatenate


class _Tri:
    """A picklable tril/triu of one block, from its global offsets (block_id)."""

    gw_reads_only = True

    def __init__(self, k, lower, offsets):
        self.k, self.lower, self.offsets = k, lower, offsets
        self.__qualname__ = "tril" if lower else "triu"

    def __call__(self, b, block_id=None):
        r0 = self.offsets[0][block_id[-2]]
        c0 = self.offsets[1][block_id[-1]]
        k = self.k + r0 - c0
        return np.tril(b, k) if self.lower else np.triu(b, k)


def tril(m, k=0) -> Array:
    m = asarray_like(m)
    if m.ndim < 2:
        raise ValueError("tril: input must be at least 2-d")
    offs = (chunk_offsets(m.chunks[-2]), chunk_offsets(m.chunks[-1]))
    return map_blocks(_Tri(k, True, offs), m, dtype=m.dtype)


def triu(m, k=0) -> Array:
    m = asarray_like(m)
    if m.ndim < 2:
        raise ValueError("triu: input must be at least 2-d")
    offs = (chunk_offsets(m.chunks[-2]), chunk_offsets(m.chunks[-1]))
    return map_blocks(_Tri(k, False, offs), m, dtype=m.dtype)


def diagonal(a, offset=0, axis1=0, axis2=1) -> Array:
    """numpy.diagonal of a 2-d array, as the einsum 'ii->i' of the right square piece."""
    a = asarray_like(a)
    if a.ndim != 2 or (axis1, axis2) not in ((0, 1), (1, 0)):
        raise NotImplementedError("diagonal: graphwren supports 2-d arrays (axes 0 and 1)")
    if (axis1, axis2) == (1, 0):
        a = a.T
    a = a[:, offset:] if offset >= 0 else a[-offset:, :]
    n = min(a.shape)
    return einsum("ii->i", a[:n, :n])


def diag(v, k=0) -> Array:
    """numpy.diag: the k-th diagonal of a 2-d array, or a 2-d array with a 1-d one on its diagonal."""
    v = asarray_like(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ValueError("diag: input must be 1-d or 2-d")
    n = v.shape[0] + abs(k)
    pad = full((abs(k),), 0, dtype=v.dtype)
    row = concatenate([pad, v] if k > 0 else [v, pad]) if k else v
    out = eye(n, chunks=(row.chunks[0], row.chunks[0]), k=k, dtype=v.dtype)
    return out * row[None, :]    # column j of the k-th diagonal holds row[j]


__all__ = ["tril", "triu", "diagonal", "diag"]

"""Array nodes that move blocks around without arithmetic: reshape, concatenate, take (integer-array indexing).

``BlockReshape`` and ``Concatenate`` are narrow (each output block is one
input block, reshaped or renumbered); ``Take`` is wide (an output block
gathers rows from every input block its indices fall in). ``reshape_plan``
is the chunk arithmetic that makes a reshape blockwise (dask's
``reshape_rechunk`` idea): within each group of dimensions that merge or
split, every input dimension but the first is one whole block, and the
first one's blocks are cut at multiples of what the split needs.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ArrayError
from ..tasks.blocks import chunk_offsets
from .array import ArrayExpr, _shape_str


def reshape_groups(old: tuple[int, ...], new: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Pairs (input dims, output dims) whose sizes multiply to the same; both shapes hold no 1s or 0s."""
    groups, i, j = [], 0, 0
    while i < len(old):
        i0, j0, pi, pj = i, j, old[i], new[j]
        while pi != pj:
            if pi < pj:
                i += 1
                pi *= old[i]
            else:
                j += 1
                pj *= new[j]
        groups.append((tuple(range(i0, i + 1)), tuple(range(j0, j + 1))))
        i, j = i + 1, j + 1
    return groups


def _round_chunks(chunks: tuple[int, ...], size: int, m: int) -> tuple[int, ...]:
    """Block lengths near ``chunks`` whose boundaries are multiples of ``m``."""
    if m >= size:
        return (size,)
    bounds = {min(size, max(m, int(round(b / m)) * m)) for b in chunk_offsets(chunks)[1:-1]}
    edges = [0] + sorted(b for b in bounds if 0 < b < size) + [size]
    return tuple(b - a for a, b in zip(edges, edges[1:]))


def reshape_plan(shape, chunks, new_shape):
    """(input chunks to rechunk to, output chunks, groups) for a blockwise reshape (no 1s, no 0s)."""
    groups = reshape_groups(tuple(shape), tuple(new_shape))
    in_chunks, out_chunks = list(chunks), [None] * len(new_shape)
    for ins, outs in groups:
        r = math.prod(shape[d] for d in ins[1:])
        s = math.prod(new_shape[d] for d in outs[1:])
        for d in ins[1:]:
            in_chunks[d] = (shape[d],)
        first = _round_chunks(chunks[ins[0]], shape[ins[0]], s // math.gcd(r, s))
        in_chunks[ins[0]] = first
        out_chunks[outs[0]] = tuple(c * r // s for c in first)
        for d in outs[1:]:
            out_chunks[d] = (new_shape[d],)
    return tuple(in_chunks), tuple(out_chunks), tuple(groups)


class BlockReshape(ArrayExpr):
    """A reshape whose every output block is one input block reshaped (see ``reshape_plan``)."""

    _parameters = ("x", "shape_", "chunks_", "groups")

    def _meta(self):
        return self.shape_, self.x.dtype, self.chunks_

    def _describe(self):
        return f"Reshape({list(self.x.shape)} -> {list(self.shape_)}) -> {_shape_str(self)}"


class Concatenate(ArrayExpr):
    """Arrays joined along ``axis``: output block b along it is one block of one input."""

    _parameters = ("arrays", "axis")

    def _meta(self):
        first, ax = self.arrays[0], self.axis
        shape = list(first.shape)
        shape[ax] = sum(a.shape[ax] for a in self.arrays)
        chunks = list(first.chunks)
        chunks[ax] = tuple(c for a in self.arrays for c in a.chunks[ax])
        return tuple(shape), first.dtype, tuple(chunks)

    def _describe(self):
        return f"Concatenate({len(self.arrays)} arrays, axis={self.axis}) -> {_shape_str(self)}"


class Take(ArrayExpr):
    """``x`` indexed by an integer array along ``axis`` (numpy's ``take``); ``index`` is a Held array."""

    _parameters = ("x", "index", "axis", "chunks_")
    kind = "wide"

    def _meta(self):
        shape = list(self.x.shape)
        shape[self.axis] = len(self.index.array)
        chunks = list(self.x.chunks)
        chunks[self.axis] = self.chunks_
        return tuple(shape), self.x.dtype, tuple(chunks)

    def _describe(self):
        return f"Take({len(self.index.array)} indices, axis={self.axis}) -> {_shape_str(self)}"


def take_chunks(n: int, like: tuple[int, ...]) -> tuple[int, ...]:
    """Output block lengths for ``n`` taken indices: about as long as the input's blocks."""
    edge = max(1, max(like) if like else 1)
    if n == 0:
        return (0,)
    return tuple(min(edge, n - o) for o in range(0, n, edge))


def normalize_index_array(index, size: int, axis: int) -> np.ndarray:
    """An integer or boolean index array along one axis as int64 positions, checked against ``size``."""
    index = np.asarray(index)
    if index.dtype == bool:
        if index.shape != (size,):
            raise IndexError(f"boolean index of shape {index.shape} does not match axis {axis} of length {size}")
        return np.flatnonzero(index).astype(np.int64)
    if index.dtype.kind not in "iu":
        if index.size == 0:
            return np.zeros(0, dtype=np.int64)
        raise IndexError(f"arrays used as indices must be of integer or boolean type, got {index.dtype}")
    if index.ndim != 1:
        raise NotImplementedError(f"an index array along axis {axis} must be 1-d, got shape {index.shape}")
    out = index.astype(np.int64)
    bad = (out < -size) | (out >= size)
    if bad.any():
        raise IndexError(f"index {int(out[bad][0])} is out of bounds for axis {axis} with size {size}")
    return np.where(out < 0, out + size, out)


__all__ = ["BlockReshape", "Concatenate", "Take", "reshape_plan", "take_chunks", "normalize_index_array",
           "ArrayError"]

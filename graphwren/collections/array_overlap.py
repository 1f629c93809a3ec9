"""dask's map_overlap: a function over each block with a halo of its neighbours' values (and boundary values).

Planned as one BlockGraph stage: each task reads the input blocks its halo
touches (across the array's edge too, for 'periodic'), assembles the block
with ``depth`` extra items on each side (the array's edge filled as
``boundary`` says: 'reflect' mirrors including the edge item, as numpy's
'symmetric'; 'periodic' wraps; 'nearest' repeats the edge; a number is a
constant; 'none' adds nothing), applies ``func`` and trims the halo off.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from ..logical.array_blockgraph import BlockGraph
from ..tasks.blocks import chunk_offsets, ravel
from .array_base import Array, ArrayError, from_numpy

_MODES = ("reflect", "periodic", "nearest", "none")


def _per_axis(value, ndim, default, what):
    if isinstance(value, dict):
        return tuple(value.get(d, default) for d in range(ndim))
    if isinstance(value, (tuple, list)):
        if len(value) != ndim:
            raise ValueError(f"map_overlap: {what} has {len(value)} entries for a {ndim}-d array")
        return tuple(value)
    return (default if value is None else value,) * ndim


def _halo_index(lo, hi, n, d, mode):
    """Global indices of the halo'd block [lo - d, hi + d) along one axis; -1 marks a constant fill."""
    out = []
    for j in range(lo - d, hi + d):
        if 0 <= j < n:
            out.append(j)
        elif mode == "none":
            continue
        elif mode == "reflect":
            out.append(-j - 1 if j < 0 else 2 * n - j - 1)
        elif mode == "periodic":
            out.append(j % n)
        elif mode == "nearest":
            out.append(min(max(j, 0), n - 1))
        else:
            out.append(-1)
    return np.asarray(out, dtype=np.int64)


class _Overlap:
    """Assemble the halo'd block from the blocks it touches, apply func, trim the halo."""

    def __init__(self, func, kwargs, halos, offsets, trims, fills, dtype, trim):
        self.func, self.kwargs, self.halos, self.offsets = func, dict(kwargs), halos, offsets
        self.trims, self.fills, self.dtype, self.trim = trims, fills, np.dtype(dtype), trim
        self.__qualname__ = f"map_overlap({getattr(func, '__name__', 'func')})"

    def __call__(self, idx, blocks):
        halo = [self.halos[d][i] for d, i in enumerate(idx)]
        fill = next((f for f in self.fills if f is not None), 0)
        out = np.full(tuple(len(h) for h in halo), fill, dtype=self.dtype)
        for bidx, blk in blocks:
            where, local = [], []
            for d, b in enumerate(bidx):
                lo, hi = self.offsets[d][b], self.offsets[d][b + 1]
                hit = np.flatnonzero((halo[d] >= lo) & (halo[d] < hi))
                where.append(hit)
                local.append(halo[d][hit] - lo)
            out[np.ix_(*where)] = blk[np.ix_(*local)]
        res = np.asarray(self.func(out, **self.kwargs))
        if not self.trim:
            return res
        sl = tuple(slice(self.trims[d][i][0], res.shape[d] - self.trims[d][i][1]) for d, i in enumerate(idx))
        return res[sl]


def map_overlap(func, *args, depth=None, boundary=None, trim=True, align_arrays=True, allow_rechunk=True,
                dtype=None, **kwargs) -> Array:
    """dask.array.map_overlap for one array: ``func`` sees each block with ``depth`` neighbouring items."""
    arrays = [a for a in args if isinstance(a, (Array, np.ndarray))]
    if len(arrays) != 1 or len(args) != 1:
        raise NotImplementedError("map_overlap: graphwren supports one array argument (pass others by keyword)")
    x = args[0] if isinstance(args[0], Array) else from_numpy(np.asarray(args[0]))
    depth = tuple(int(v) for v in _per_axis(depth, x.ndim, 0, "depth"))
    modes = _per_axis(boundary, x.ndim, "none", "boundary")
    for d, (dep, mode) in enumerate(zip(depth, modes)):
        if dep < 0:
            raise ValueError(f"map_overlap: depth {dep} on axis {d} is negative")
        if not (mode in _MODES or isinstance(mode, numbers.Number)):
            raise ValueError(f"map_overlap: boundary {mode!r} on axis {d}: use {_MODES} or a number")
        if mode == "reflect" and dep > x.shape[d]:
            raise ValueError(f"map_overlap: depth {dep} is deeper than axis {d} (length {x.shape[d]}) to reflect")
    offsets = [chunk_offsets(c) for c in x.chunks]
    halos, trims, needed = [], [], []
    for d in range(x.ndim):
        h_d, t_d, n_d = [], [], []
        for b in range(x.numblocks[d]):
            lo, hi = offsets[d][b], offsets[d][b + 1]
            mode = modes[d] if isinstance(modes[d], str) else "constant"
            h = _halo_index(lo, hi, x.shape[d], depth[d], mode)
            h_d.append(h)
            left = min(depth[d], lo) if mode == "none" else depth[d]   # halo items before the block
            t_d.append((left, len(h) - left - (hi - lo)))
            inside = h[h >= 0]
            n_d.append(sorted(set(np.searchsorted(offsets[d], inside, side="right") - 1)))
        halos.append(h_d)
        trims.append(t_d)
        needed.append(n_d)
    table = []
    for idx in itertools.product(*(range(n) for n in x.numblocks)):
        table.append(tuple((0, tuple(int(b) for b in combo))
                           for combo in itertools.product(*(needed[d][i] for d, i in enumerate(idx)))))
    dtype = np.dtype(dtype) if dtype is not None else x.dtype
    fills = tuple(m if isinstance(m, numbers.Number) else None for m in modes)
    body = _Overlap(func, sorted(kwargs.items()), halos, offsets, trims, fills, x.dtype, trim)
    chunks = x.chunks if trim else tuple(tuple(len(h) for h in hd) for hd in halos)
    shape = tuple(sum(c) for c in chunks)
    return Array(BlockGraph(_WithIndex(body, table, x.numblocks), (x.expr,), tuple(table), shape, chunks, dtype,
                            3, f"map_overlap(depth={depth})"))


class _WithIndex:
    """Pairs each streamed block with the block index the table names for it."""

    def __init__(self, body, table, numblocks):
        self.body, self.table, self.numblocks = body, table, numblocks
        self.__qualname__ = body.__qualname__

    def __call__(self, idx, blocks):
        names = [j for _, j in self.table[ravel(idx, self.numblocks)]]
        return self.body(idx, zip(names, blocks))


__all__ = ["map_overlap", "ArrayError"]

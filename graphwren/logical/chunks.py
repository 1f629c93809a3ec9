"""Chunk arithmetic for blocked arrays: normalizing chunks, broadcasting layouts, index -> block plans.

Pure functions of shapes and chunk tuples (one tuple of block lengths per
dimension, as in dask.array); the expression nodes in ``logical.array`` use
them to know their layout without running anything. Per-block helpers the
kernels need too (``block_shape``, ``chunk_offsets``) live in ``tasks.blocks``.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import ArrayError
from ..tasks.blocks import chunk_offsets

Chunks = tuple[tuple[int, ...], ...]


def _dim_chunks(size: int, c) -> tuple[int, ...]:
    """One dimension's block lengths from an int, -1/None (whole) or explicit lengths."""
    if isinstance(c, (tuple, list)):
        c = tuple(int(x) for x in c)
        if sum(c) != size or any(x < 0 for x in c):
            raise ArrayError(f"chunks {c} do not add up to the dimension's length {size}")
        if size > 0 and any(x == 0 for x in c):
            c = tuple(x for x in c if x > 0)
        return c or (0,)
    if c is None or c == -1 or (isinstance(c, numbers.Integral) and c >= size):
        return (size,)
    if not isinstance(c, numbers.Integral) or isinstance(c, bool) or c <= 0:
        raise ArrayError(f"a chunk length must be a positive int, -1 or None, got {c!r}")
    c = int(c)
    n, rest = divmod(size, c)
    return (c,) * n + ((rest,) if rest else ())


def normalize_chunks(chunks, shape: tuple[int, ...], dtype=np.float64,
                     target_bytes: int = 128 * 1024**2) -> Chunks:
    """An int, a tuple of ints (one per dim; -1/None = whole dim), or per-dim tuples of lengths."""
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if chunks is None or chunks == "auto":
        itemsize = np.dtype(dtype).itemsize
        edge = max(1, int((target_bytes / itemsize) ** (1 / max(ndim, 1))))
        chunks = edge
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        return tuple(_dim_chunks(s, int(chunks)) for s in shape)
    if isinstance(chunks, dict):
        chunks = tuple(chunks.get(d, -1) for d in range(ndim))
    if not isinstance(chunks, (tuple, list)):
        raise ArrayError(f"chunks must be an int, a tuple or per-dimension tuples, got {chunks!r}")
    if len(chunks) != ndim:
        raise ArrayError(f"chunks {chunks!r} has {len(chunks)} entries for a {ndim}-d array of shape {shape}")
    return tuple(_dim_chunks(s, c) for s, c in zip(shape, chunks))


def max_block_nbytes(chunks: Chunks, dtype) -> int:
    """Bytes of the largest block."""
    n = np.dtype(dtype).itemsize
    for c in chunks:
        n *= max(c) if c else 0
    return n


def broadcast_layout(layouts: list[tuple[tuple[int, ...], Chunks]], opname: str) -> tuple[tuple[int, ...], Chunks]:
    """(shape, chunks) of numpy-broadcasting arrays with these (shape, chunks); chunks must agree."""
    ndim = max(len(shape) for shape, _ in layouts)
    shape, chunks = [], []
    for d in range(ndim):
        size, ch = 1, None
        for a_shape, a_chunks in layouts:
            k = d - (ndim - len(a_shape))
            if k < 0:
                continue
            s = a_shape[k]
            if s != 1:
                if size != 1 and s != size:
                    shapes = " and ".join(str(x) for x, _ in layouts)
                    raise ArrayError(f"{opname}: operands could not be broadcast together with shapes {shapes}")
                size = s
                if ch is None:
                    ch = a_chunks[k]
                elif a_chunks[k] != ch:
                    raise ArrayError(f"{opname}: operands have different chunks {ch} and {a_chunks[k]} "
                                     f"along dimension {d}; rechunk one of them")
        shape.append(size)
        chunks.append((1,) if ch is None else ch)
    return tuple(shape), tuple(chunks)


def split_per_axis(split_every, axes) -> tuple[int, ...]:
    """Blocks one reduction task folds along each reduced axis (``split_every`` spread over the axes)."""
    if isinstance(split_every, dict):
        return tuple(max(2, int(split_every.get(a, 16))) for a in axes)
    n = 16 if split_every is None else int(split_every)
    if n < 2:
        raise ArrayError(f"split_every must be >= 2, got {split_every}")
    per = max(2, int(round(n ** (1 / max(1, len(axes))))))
    return tuple(per for _ in axes)


def getitem_plan(shape: tuple[int, ...], chunks: Chunks, index) -> tuple[tuple, str] | None:
    """Which input blocks basic indexing reads: (plan, index text), None when it selects everything.

    Slices may have any step; a negative one reads the blocks in reverse order.

    ``plan`` entries, one per position of the normalized index: ``("s", table)`` for a
    slice (table[j] = (input block, start, stop, step) of output block j), ``("i", block,
    local)`` for an integer, ``("n",)`` for ``None``.
    """
    ndim = len(shape)
    if not isinstance(index, tuple):
        index = (index,)
    if any(isinstance(i, (list, np.ndarray)) or hasattr(i, "dtype") and not np.isscalar(i) for i in index):
        raise NotImplementedError("graphwren arrays support basic indexing only (ints, slices, None, ...); "
                                  "fancy and boolean indexing are not supported")
    n_ell = sum(i is Ellipsis for i in index)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(i is not None and i is not Ellipsis for i in index)
    if n_real > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {n_real} were indexed")
    if n_ell:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (ndim - n_real) + index[k + 1:]
    else:
        index = index + (slice(None),) * (ndim - n_real)
    plan, dim, trivial = [], 0, True
    for i in index:
        if i is None:
            plan.append(("n",))
            trivial = False
            continue
        size, dim_chunks = shape[dim], chunks[dim]
        offs = chunk_offsets(dim_chunks)
        if isinstance(i, slice):
            start, stop, step = i.indices(size)
            table = []
            if step > 0:
                for b in range(len(dim_chunks)):
                    lo, hi = offs[b], offs[b + 1]
                    first = start if start >= lo else start + -(-(lo - start) // step) * step
                    last = min(hi, stop)
                    if first < last:
                        table.append((b, first - lo, last - lo, step))
            else:   # negative step: blocks in reverse, each read from its highest selected item down
                for b in reversed(range(len(dim_chunks))):
                    lo, hi = offs[b], offs[b + 1]
                    first = start if start < hi else start - -(-(start - (hi - 1)) // -step) * -step
                    last = max(lo - 1, stop)
                    if first > last and first >= lo:
                        # the local stop -1 means "through item 0" (the kernel turns it into None)
                        table.append((b, first - lo, last - lo, step))
            if not table:
                table = [(0, 0, 0, 1)]
            if not (start == 0 and stop == size and step == 1):
                trivial = False
            plan.append(("s", tuple(table)))
        elif isinstance(i, numbers.Integral):
            j = int(i) + size if i < 0 else int(i)
            if not 0 <= j < size:
                raise IndexError(f"index {i} is out of bounds for axis {dim} with size {size}")
            b = int(np.searchsorted(offs, j, side="right")) - 1
            plan.append(("i", b, j - offs[b]))
            trivial = False
        else:
            raise NotImplementedError(f"graphwren arrays cannot be indexed by {i!r}")
        dim += 1
    if trivial:
        return None
    return tuple(plan), ", ".join(_index_str(i) for i in index)


def _index_str(i) -> str:
    if isinstance(i, slice):
        return f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}" + \
            ("" if i.step in (None, 1) else f":{i.step}")
    return repr(i)

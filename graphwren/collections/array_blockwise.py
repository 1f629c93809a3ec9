"""dask's blockwise family on graphwren arrays: blockwise, map_blocks, einsum, n-d tensordot, batched matmul.

All of them build one ``Blockwise`` node: a function over aligned blocks.
Letters shared by arguments get one chunking (the first array's; others are
rechunked); letters an output drops (contractions) are rechunked to one
block first (dask's ``concatenate=True``), so a task sees whole contracted
dimensions. That is a correct but simple plan: the memory bound is checked
on those blocks, and a plan whose contracted blocks do not fit is refused
at plan time with advice, never run out of memory.
"""
from __future__ import annotations

import inspect
import numbers

import numpy as np

from ..logical.array import check_numeric
from ..logical.array_blockwise import Blockwise
from .array_base import Array, ArrayError, from_numpy
from .array_shape import squeeze


def _as_operand(a):
    if isinstance(a, Array):
        return a
    if isinstance(a, np.ndarray):
        return from_numpy(a)
    return a


def _wants_block_id(func) -> bool:
    try:
        return "block_id" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _infer_dtype(func, values, kwargs, what):
    dummies = [np.ones((1,) * v.ndim, dtype=v.dtype) if isinstance(v, Array) else v for v in values]
    try:
        with np.errstate(all="ignore"):
            out = func(*dummies, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure means: ask the user for dtype=
        raise ArrayError(f"{what}: could not infer the output dtype by calling the function on one-element "
                         f"blocks ({type(exc).__name__}: {exc}); pass dtype=") from None
    return np.asarray(out).dtype


def reads_only(func):
    """Mark one of graphwren's own block functions as one that never writes its blocks: it gets them as
    read (often zero-copy views of immutable bytes) where a user's function gets writable copies."""
    func.gw_reads_only = True
    return func


def _blockwise(func, out_ind, pairs, *, dtype=None, new_axes=None, concatenate=None, adjust_chunks=None,
               out_chunks=None, kwargs=None, what="blockwise", writable=None) -> Array:
    if writable is None:
        writable = not getattr(func, "gw_reads_only", False)
    kwargs = dict(kwargs or {})
    new_axes = dict(new_axes or {})
    out_ind = tuple(out_ind)
    if len(set(out_ind)) != len(out_ind):
        raise ValueError(f"{what}: repeated index in the output indices {out_ind}")
    values, inds = [], []
    for value, ind in pairs:
        value = _as_operand(value)
        if isinstance(value, Array):
            if ind is None:
                raise ValueError(f"{what}: an array argument needs its index (got None)")
            ind = tuple(ind)
            if len(ind) != value.ndim:
                raise ValueError(f"{what}: index {ind} has {len(ind)} letters for a {value.ndim}-d array")
        else:
            ind = None
        values.append(value)
        inds.append(ind)
    sizes, chunks = {}, {}
    for v, ind in zip(values, inds):
        if ind is None:
            continue
        for d, c in enumerate(ind):
            s = v.shape[d]
            if s == 1 and c in sizes:
                continue
            if c in sizes and sizes[c] != 1 and s != sizes[c]:
                raise ValueError(f"{what}: index {c!r} has sizes {sizes[c]} and {s} in different arguments")
            if c not in sizes or sizes[c] == 1:
                sizes[c], chunks[c] = s, v.chunks[d]
    contracted = {c for c in sizes if c not in out_ind}
    for c in contracted:
        if concatenate is not True and any(ind and c in ind and v.numblocks[ind.index(c)] > 1
                                           for v, ind in zip(values, inds)):
            raise NotImplementedError(f"{what}: index {c!r} is not in the output and has several blocks; pass "
                                      "concatenate=True (each task then sees it whole)")
        chunks[c] = (sizes[c],)
    for k, (v, ind) in enumerate(zip(values, inds)):
        if ind is None:
            continue
        want = tuple(chunks[c] if v.shape[d] == sizes[c] and (v.shape[d] != 1 or sizes[c] == 1) else v.chunks[d]
                     for d, c in enumerate(ind))
        values[k] = v.rechunk(want)
    out = []
    for c in out_ind:
        if c in new_axes:
            n = new_axes[c]
            out.append(tuple(n) if isinstance(n, tuple) else (int(n),))
        elif c in chunks:
            out.append(chunks[c])
        else:
            raise ValueError(f"{what}: output index {c!r} is in no argument and not in new_axes")
    for c, adj in (adjust_chunks or {}).items():
        if c not in out_ind:
            continue
        d = out_ind.index(c)
        if callable(adj):
            out[d] = tuple(int(adj(n)) for n in out[d])
        elif isinstance(adj, numbers.Integral):
            out[d] = (int(adj),) * len(out[d])
        else:
            out[d] = tuple(adj)
            if len(out[d]) != len(chunks.get(c, out[d])):
                raise ValueError(f"{what}: adjust_chunks[{c!r}] has {len(out[d])} blocks, the index has "
                                 f"{len(chunks[c])}")
    if out_chunks is not None:
        out = [tuple(c) for c in out_chunks]
    if dtype is None:
        dtype = _infer_dtype(func, values, kwargs, what)
    dtype = check_numeric(dtype, what)
    shape = tuple(sum(c) for c in out)
    exprs = tuple(v.expr if isinstance(v, Array) else v for v in values)
    return Array(Blockwise(func, out_ind, exprs, tuple(inds), shape, tuple(out), dtype,
                           tuple(sorted(kwargs.items())), _wants_block_id(func), writable))


def blockwise(func, out_ind, *args, name=None, token=None, dtype=None, adjust_chunks=None, new_axes=None,
              align_arrays=True, concatenate=None, meta=None, **kwargs) -> Array:
    """dask.array.blockwise: ``func`` over blocks named by index letters (``args`` alternate array, index)."""
    if len(args) % 2:
        raise TypeError("blockwise: arguments must alternate value, index (use None as a scalar's index)")
    pairs = list(zip(args[::2], args[1::2]))
    return _blockwise(func, out_ind, pairs, dtype=dtype, new_axes=new_axes, concatenate=concatenate,
                      adjust_chunks=adjust_chunks, kwargs=kwargs, what=f"blockwise({getattr(func, '__name__', func)})")


def map_blocks(func, *args, name=None, token=None, dtype=None, chunks=None, drop_axis=None, new_axis=None,
               enforce_ndim=False, meta=None, **kwargs) -> Array:
    """dask.array.map_blocks: ``func`` on every block of the (broadcast, aligned) array arguments.

    ``chunks`` gives the output's block lengths (per-dimension tuples, or one
    length per dimension for every block); ``drop_axis`` axes are handed to
    ``func`` whole; ``new_axis`` inserts output dimensions; ``func`` receives
    ``block_id=`` when it takes that argument.
    """
    what = f"map_blocks({getattr(func, '__name__', func)})"
    ops = [_as_operand(a) for a in args]
    arrays = [a for a in ops if isinstance(a, Array)]
    if not arrays:
        raise ArrayError(f"{what}: no graphwren array among the arguments")
    ndim = max(a.ndim for a in arrays)
    pairs = [(a, tuple(range(ndim - a.ndim, ndim)) if isinstance(a, Array) else None) for a in ops]
    out_ind = list(range(ndim))
    drop = [] if drop_axis is None else [d % ndim for d in (drop_axis if isinstance(drop_axis, (list, tuple))
                                                             else [drop_axis])]
    out_ind = [c for c in out_ind if c not in drop]
    new_axes = {}
    if new_axis is not None:
        positions = new_axis if isinstance(new_axis, (list, tuple)) else [new_axis]
        nd_out = len(out_ind) + len(positions)
        for k, pos in enumerate(sorted(p % nd_out for p in positions)):
            letter = ndim + k
            out_ind.insert(pos, letter)
            new_axes[letter] = 1
    out_chunks = None
    if chunks is not None:
        if len(chunks) != len(out_ind):
            raise ValueError(f"{what}: chunks has {len(chunks)} entries for a {len(out_ind)}-d output")
        base = _blockwise(func, out_ind, pairs, dtype=dtype or np.float64, new_axes=new_axes,
                          concatenate=True, kwargs=kwargs, what=what)
        out_chunks = []
        for d, c in enumerate(chunks):
            n = len(base.chunks[d])
            out_chunks.append(tuple(c) if isinstance(c, (tuple, list)) else (int(c),) * n)
            if len(out_chunks[-1]) != n:
                raise ValueError(f"{what}: chunks[{d}] has {len(out_chunks[-1])} blocks, the output has {n}")
        for letter, c in zip(out_ind, out_chunks):
            if letter in new_axes:
                new_axes[letter] = c
    return _blockwise(func, out_ind, pairs, dtype=dtype, new_axes=new_axes, concatenate=True,
                      out_chunks=out_chunks, kwargs=kwargs, what=what)


# ----------------------------------------------------------------------------- contractions

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _Einsum:
    """A picklable np.einsum with fixed subscripts."""

    gw_reads_only = True

    def __init__(self, subscripts, kwargs=()):
        self.subscripts, self.kwargs = subscripts, tuple(kwargs)
        self.__qualname__ = f"einsum({subscripts})"

    def __call__(self, *blocks):
        return np.einsum(self.subscripts, *blocks, **dict(self.kwargs))

    def __reduce__(self):
        return (_Einsum, (self.subscripts, self.kwargs))


def einsum(*operands, dtype=None, optimize=False, split_every=None, **kwargs) -> Array:
    """numpy.einsum with explicit letters (no '...'); contracted letters are whole in each task."""
    if not operands or not isinstance(operands[0], str):
        raise TypeError("einsum: the first argument must be the subscripts string")
    subscripts, arrays = operands[0].replace(" ", ""), [_as_operand(a) for a in operands[1:]]
    if "..." in subscripts:
        raise NotImplementedError("einsum: '...' in the subscripts is not supported; name every dimension")
    lhs, _, rhs = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(arrays):
        raise ValueError(f"einsum: {len(ins)} operands in {subscripts!r}, {len(arrays)} given")
    if "->" not in subscripts:
        counts = {}
        for t in ins:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        rhs = "".join(sorted(c for c, n in counts.items() if n == 1))
    for t, a in zip(ins, arrays):
        if not isinstance(a, Array):
            raise TypeError(f"einsum: operand {a!r} is not an array")
        if len(t) != a.ndim:
            raise ValueError(f"einsum: {t!r} names {len(t)} dimensions of a {a.ndim}-d operand")
    if dtype is None:
        dtype = np.result_type(*[a.dtype for a in arrays])
    func = _Einsum(f"{','.join(ins)}->{rhs}", sorted(kwargs.items()))
    return _blockwise(func, tuple(rhs), [(a, tuple(t)) for a, t in zip(arrays, ins)], dtype=dtype,
                      concatenate=True, what="einsum")


def tensordot_nd(a, b, axes=2) -> Array:
    """numpy.tensordot for any dimensions, as an einsum over the paired axes."""
    a, b = _as_operand(a), _as_operand(b)
    if isinstance(axes, numbers.Integral):
        if axes < 0 or axes > min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: axes={axes} for operands of {a.ndim} and {b.ndim} dimensions")
        ax_a, ax_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, numbers.Integral) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, numbers.Integral) else list(ax_b)
    if len(ax_a) != len(ax_b):
        raise ValueError(f"tensordot: axes {axes} pair up unequal numbers of dimensions")
    ax_a, ax_b = [x % a.ndim for x in ax_a], [x % b.ndim for x in ax_b]
    for i, j in zip(ax_a, ax_b):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: shape mismatch for sum: axis {i} of {a.shape} and axis {j} of {b.shape}")
    if a.ndim + b.ndim > len(_LETTERS):
        raise ValueError("tensordot: too many dimensions")
    la = list(_LETTERS[:a.ndim])
    lb = list(_LETTERS[a.ndim:a.ndim + b.ndim])
    for i, j in zip(ax_a, ax_b):
        lb[j] = la[i]
    out = [c for d, c in enumerate(la) if d not in ax_a] + [c for d, c in enumerate(lb) if d not in ax_b]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", a, b)


def batched_matmul(a: Array, b: Array) -> Array:
    """numpy.matmul with batch dimensions (broadcast as numpy's): one task per output block, k whole."""
    squeeze_axes = []
    if a.ndim == 1:
        a = a[None, :]
        squeeze_axes.append(-2)
    if b.ndim == 1:
        b = b[:, None]
        squeeze_axes.append(-1)
    if a.shape[-1] != b.shape[-2]:
        raise ArrayError(f"matmul: shape mismatch, {a.shape} @ {b.shape}: the left operand has {a.shape[-1]} "
                         f"columns, the right {b.shape[-2]} rows")
    nb = max(a.ndim, b.ndim) - 2
    batch = [f"b{d}" for d in range(nb)]
    ia = tuple(batch[nb - (a.ndim - 2):]) + ("m", "k")
    ib = tuple(batch[nb - (b.ndim - 2):]) + ("k", "n")
    out = _blockwise(np.matmul, tuple(batch) + ("m", "n"), [(a, ia), (b, ib)],
                     dtype=np.result_type(a.dtype, b.dtype), concatenate=True, what="matmul", writable=False)
    if squeeze_axes:
        out = squeeze(out, tuple(d % out.ndim for d in squeeze_axes))
    return out


__all__ = ["blockwise", "map_blocks", "einsum", "tensordot_nd", "batched_matmul"]

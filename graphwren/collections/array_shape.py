"""Shape functions of ``gw.array``: reshape, squeeze, expand_dims, concatenate, stack, take and numpy indexing.

Each builds logical nodes from ``logical.array_shape`` (or basic indexing's
``GetItem``); reshape first rechunks the dimensions that merge or split so
that every output block is one input block (see ``reshape_plan``).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..logical.array import Held, make_getitem
from ..logical.array_shape import (BlockReshape, Concatenate, Take, normalize_index_array, reshape_plan,
                                   take_chunks)
from .array_base import Array, ArrayError, from_numpy, full


def asarray_like(a) -> Array:
    return a if isinstance(a, Array) else from_numpy(np.asarray(a))


def _norm_axis(axis, ndim: int, what: str) -> int:
    if not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"{what}: axis {axis} is out of bounds for array of dimension {ndim}")
    return int(axis) % ndim


# ----------------------------------------------------------------------------- reshape


def _new_shape(shape, size: int) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    unknown = [d for d, s in enumerate(shape) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"reshape: can only specify one unknown dimension (-1), got {shape}")
    if unknown:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


def reshape(x, shape, order="C", merge_chunks=True, limit=None) -> Array:
    """numpy's reshape in C order, as rechunk + blockwise reshape (size-1 dimensions added/removed by indexing)."""
    x = asarray_like(x)
    if order != "C":
        raise NotImplementedError(f"reshape: order={order!r} is not supported; graphwren reshapes in C order")
    shape = _new_shape(shape, x.size)
    if shape == x.shape:
        return x
    if x.size == 0:
        return full(shape, 0, dtype=x.dtype)
    core = x[tuple(0 if s == 1 else slice(None) for s in x.shape)]
    core_shape = tuple(s for s in shape if s != 1)
    if core.ndim and core_shape != core.shape:
        in_chunks, out_chunks, groups = reshape_plan(core.shape, core.chunks, core_shape)
        core = core.rechunk(in_chunks)
        core = Array(BlockReshape(core.expr, core_shape, out_chunks, groups))
    return core[tuple(None if s == 1 else slice(None) for s in shape)]


def ravel(x) -> Array:
    return reshape(x, (-1,))


def squeeze(a, axis=None) -> Array:
    a = asarray_like(a)
    if axis is None:
        axes = [d for d, s in enumerate(a.shape) if s == 1]
    else:
        axes = [_norm_axis(ax, a.ndim, "squeeze") for ax in (axis if isinstance(axis, (tuple, list)) else (axis,))]
        for d in axes:
            if a.shape[d] != 1:
                raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size not equal to one "
                                 f"(axis {d} of shape {a.shape})")
    return a[tuple(0 if d in axes else slice(None) for d in range(a.ndim))] if axes else a


def expand_dims(a, axis) -> Array:
    a = asarray_like(a)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = a.ndim + len(axes)
    axes = sorted(_norm_axis(ax, ndim, "expand_dims") for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis}")
    return a[tuple(None if d in axes else slice(None) for d in range(ndim))]


def atleast_1d(a) -> Array:
    a = asarray_like(a)
    return a[None] if a.ndim == 0 else a


def atleast_2d(a) -> Array:
    a = atleast_1d(a)
    return a[None, :] if a.ndim == 1 else a


def swapaxes(a, axis1, axis2) -> Array:
    a = asarray_like(a)
    axes = list(range(a.ndim))
    i, j = _norm_axis(axis1, a.ndim, "swapaxes"), _norm_axis(axis2, a.ndim, "swapaxes")
    axes[i], axes[j] = axes[j], axes[i]
    return a.transpose(axes)


def moveaxis(a, source, destination) -> Array:
    a = asarray_like(a)
    src = source if isinstance(source, (tuple, list)) else (source,)
    dst = destination if isinstance(destination, (tuple, list)) else (destination,)
    src = [_norm_axis(s, a.ndim, "moveaxis") for s in src]
    dst = [_norm_axis(d, a.ndim, "moveaxis") for d in dst]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of elements")
    order = [d for d in range(a.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return a.transpose(order)


def transpose(a, axes=None) -> Array:
    a = asarray_like(a)
    return a.transpose() if axes is None else a.transpose(axes)


def flip(m, axis=None) -> Array:
    """numpy.flip: negative-step slices along ``axis`` (all axes when None)."""
    m = asarray_like(m)
    axes = range(m.ndim) if axis is None else [
        _norm_axis(a, m.ndim, "flip") for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    return m[tuple(slice(None, None, -1) if d in axes else slice(None) for d in range(m.ndim))]


def fliplr(m) -> Array:
    return flip(m, 1)


def flipud(m) -> Array:
    return flip(m, 0)


def broadcast_to(x, shape, chunks=None) -> Array:
    """numpy.broadcast_to, as an elementwise op with an all-zeros array of ``shape`` (made in the tasks)."""
    x = asarray_like(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    try:
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast an array of shape {x.shape} to {shape}") from None
    if x.shape == shape:
        return x
    from .array_base import elemwise
    like = full(shape, 0, chunks="auto" if chunks is None else chunks, dtype=x.dtype)
    return elemwise(np.add, x, like, name="broadcast_to") if x.dtype != bool else elemwise(np.logical_or, x, like)


# ----------------------------------------------------------------------------- joining


def concatenate(seq, axis=0, allow_unknown_chunksizes=False) -> Array:
    """Arrays joined along ``axis``; other dimensions take the first array's chunks; dtypes promote as numpy."""
    arrays = [asarray_like(a) for a in seq]
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    ndim = arrays[0].ndim
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    for k, a in enumerate(arrays):
        if a.ndim != ndim:
            raise ValueError(f"concatenate: all the input arrays must have same number of dimensions, but array 0 "
                             f"has {ndim} and array {k} has {a.ndim}")
    axis = _norm_axis(axis, ndim, "concatenate")
    for k, a in enumerate(arrays):
        for d in range(ndim):
            if d != axis and a.shape[d] != arrays[0].shape[d]:
                raise ValueError(f"concatenate: all the input array dimensions except for the concatenation axis "
                                 f"must match exactly, but along dimension {d}, array 0 has size "
                                 f"{arrays[0].shape[d]} and array {k} has size {a.shape[d]}")
    dtype = np.result_type(*[a.dtype for a in arrays])
    arrays = [a.astype(dtype) for a in arrays]
    nonempty = [a for a in arrays if a.shape[axis] > 0]
    if not nonempty:
        return arrays[0]
    first = nonempty[0]
    arrays = [a.rechunk(tuple(a.chunks[d] if d == axis else first.chunks[d] for d in range(ndim)))
              for a in nonempty]
    if len(arrays) == 1:
        return arrays[0]
    return Array(Concatenate(tuple(a.expr for a in arrays), axis))


def stack(seq, axis=0, allow_unknown_chunksizes=False) -> Array:
    arrays = [asarray_like(a) for a in seq]
    if not arrays:
        raise ValueError("need at least one array to stack")
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"stack: all input arrays must have the same shape, got {[a.shape for a in arrays]}")
    axis = _norm_axis(axis, arrays[0].ndim + 1, "stack")
    return concatenate([expand_dims(a, axis) for a in arrays], axis)


def hstack(seq) -> Array:
    arrays = [atleast_1d(a) for a in seq]
    return concatenate(arrays, 0 if arrays and arrays[0].ndim == 1 else 1)


def vstack(seq) -> Array:
    return concatenate([atleast_2d(a) for a in seq], 0)


# ----------------------------------------------------------------------------- indexing


def take(a, indices, axis=None) -> Array:
    """numpy.take along one axis (None: of the flattened array); 1-d integer indices."""
    a = asarray_like(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = _norm_axis(axis, a.ndim, "take")
    if isinstance(indices, Array):
        raise NotImplementedError("take: indices must be a numpy array or list (known before running), "
                                  "not a lazy graphwren array; compute() them first")
    if np.ndim(indices) == 0:
        return a[(slice(None),) * axis + (int(indices),)]
    idx = normalize_index_array(indices, a.shape[axis], axis)
    if idx.size == a.shape[axis] and np.array_equal(idx, np.arange(a.shape[axis])):
        return a
    return Array(Take(a.expr, Held(idx), axis, take_chunks(len(idx), a.chunks[axis])))


def _is_array_index(i) -> bool:
    return isinstance(i, (np.ndarray, list)) and np.ndim(i) > 0 or isinstance(i, np.ndarray) and i.dtype == bool


def getitem(x: Array, index) -> Array:
    """numpy indexing: basic (ints, slices with any step, None, ...) and one integer or boolean array index."""
    if not isinstance(index, tuple):
        index = (index,)
    if any(isinstance(i, Array) for i in index):
        raise NotImplementedError("graphwren arrays cannot be indexed by a lazy graphwren array (the result's "
                                  "shape would depend on its values); compute() the index first, or use "
                                  "gw.array.where")
    index = tuple(i.item() if isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype != bool else i for i in index)
    advanced = [k for k, i in enumerate(index) if _is_array_index(i)]
    if not advanced:
        return Array(make_getitem(x.expr, index))
    if len(advanced) > 1:
        raise NotImplementedError("indexing with more than one array (numpy's pointwise indexing) is not "
                                  "supported; index one axis at a time")
    p = advanced[0]
    arr = np.asarray(index[p])
    width = arr.ndim if arr.dtype == bool else 1
    if sum(i is Ellipsis for i in index) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = sum(1 for i in index if i is not None and i is not Ellipsis) - 1 + width
    if real > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, but {real} were indexed")
    if any(i is Ellipsis for i in index):
        e = next(k for k, i in enumerate(index) if i is Ellipsis)
        index = index[:e] + (slice(None),) * (x.ndim - real) + index[e + 1:]
        p = next(k for k, i in enumerate(index) if _is_array_index(i))
    basic = index[:p] + (slice(None),) * width + index[p + 1:]
    y = Array(make_getitem(x.expr, basic))
    q = sum(1 for i in index[:p] if i is None or isinstance(i, slice))   # where the indexed axis is in y
    dim = sum(1 for i in index[:p] if i is not None)                     # ... and in x
    if arr.dtype == bool:
        want = x.shape[dim:dim + width]
        if arr.shape != want:
            raise IndexError(f"boolean index of shape {arr.shape} does not match the indexed dimensions "
                             f"{want} of array shape {x.shape}")
        if width > 1:
            y = reshape(y, y.shape[:q] + (-1,) + y.shape[q + width:])
        arr = arr.reshape(-1)
    out = take(y, arr, axis=q)
    ints = [k for k, i in enumerate(index) if isinstance(i, numbers.Integral) and not isinstance(i, bool)]
    adv = sorted(ints + [p])
    if ints and adv != list(range(adv[0], adv[-1] + 1)):
        out = moveaxis(out, q, 0)   # numpy: advanced indices split apart put their dimension first
    return out


__all__ = ["reshape", "ravel", "squeeze", "expand_dims", "atleast_1d", "atleast_2d", "swapaxes", "moveaxis",
           "transpose", "flip", "fliplr", "flipud", "broadcast_to", "concatenate", "atleast_3d", "dstack", "append",
           "roll", "diff", "compress", "rechunk", "stack", "hstack", "vstack", "take", "ArrayError"]


# ----------------------------------------------------------------------------- more of numpy's shape functions


def atleast_3d(a) -> Array:
    a = atleast_2d(a)
    return a[:, :, None] if a.ndim == 2 else a


def dstack(seq) -> Array:
    return concatenate([atleast_3d(a) for a in seq], 2)


def append(arr, values, axis=None) -> Array:
    arr, values = asarray_like(arr), asarray_like(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


def roll(a, shift, axis=None) -> Array:
    """numpy.roll as slices joined end to front (no data moves through the driver)."""
    a = asarray_like(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    shifts = shift if isinstance(shift, (tuple, list)) else (shift,)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,) * len(shifts)
    if len(shifts) != len(axes):
        raise ValueError("roll: shift and axis must have the same length")
    for s, ax in zip(shifts, axes):
        ax = _norm_axis(ax, a.ndim, "roll")
        n = a.shape[ax]
        if n == 0 or int(s) % n == 0:
            continue
        s = int(s) % n
        head = tuple(slice(n - s, None) if d == ax else slice(None) for d in range(a.ndim))
        tail = tuple(slice(0, n - s) if d == ax else slice(None) for d in range(a.ndim))
        a = concatenate([a[head], a[tail]], ax)
    return a


def diff(a, n=1, axis=-1) -> Array:
    a = asarray_like(a)
    ax = _norm_axis(axis, a.ndim, "diff")
    for _ in range(n):
        hi = tuple(slice(1, None) if d == ax else slice(None) for d in range(a.ndim))
        lo = tuple(slice(None, -1) if d == ax else slice(None) for d in range(a.ndim))
        a = a[hi] - a[lo] if a.dtype != bool else a[hi] != a[lo]
    return a


def compress(condition, a, axis=None) -> Array:
    """numpy.compress with a numpy (known) condition: a take of its true positions."""
    if isinstance(condition, Array):
        raise NotImplementedError("compress: the condition must be known before running (a numpy array)")
    a = asarray_like(a)
    cond = np.asarray(condition, dtype=bool)
    if axis is None:
        a, axis = ravel(a), 0
    n = a.shape[_norm_axis(axis, a.ndim, "compress")]
    if cond.size > n:
        raise IndexError(f"compress: condition of length {cond.size} is longer than axis {axis} ({n})")
    return take(a, np.flatnonzero(cond), axis)


def rechunk(x, chunks="auto", threshold=None, block_size_limit=None, balance=False, method=None) -> Array:
    return asarray_like(x).rechunk(chunks)

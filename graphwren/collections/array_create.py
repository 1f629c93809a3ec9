"""Array constructors with dask.array's names: from_array, asarray, linspace, eye, identity, the *_like family."""
from __future__ import annotations

import numbers

import numpy as np

from ..logical.array import Eye, Linspace, check_numeric
from ..logical.chunks import normalize_chunks
from .array_base import Array, ArrayError, from_numpy, full


def from_array(x, chunks="auto", name=None, lock=False, asarray=None, fancy=True, getitem=None, meta=None,
               inline_array=False) -> Array:
    """dask.array.from_array: a blocked array over a numpy-like ``x`` (it ships to the tasks once)."""
    if isinstance(x, Array):
        return x if chunks == "auto" else x.rechunk(chunks)
    return from_numpy(np.asarray(x), chunks=chunks)


def asarray(a, allow_unknown_chunksizes=False, dtype=None, order=None, *, like=None, chunks="auto", **kwargs) -> Array:
    """dask.array.asarray: a graphwren array as is, anything numpy can read shipped as one."""
    out = a if isinstance(a, Array) else from_numpy(np.asarray(a, dtype=dtype), chunks=chunks)
    return out.astype(dtype) if dtype is not None else out


def array(a, dtype=None, copy=None, order="K", subok=False, ndmin=0, like=None, chunks="auto") -> Array:
    out = asarray(a, dtype=dtype, chunks=chunks)
    while out.ndim < ndmin:
        out = out[None]
    return out


def linspace(start, stop, num=50, endpoint=True, retstep=False, chunks="auto", dtype=None):
    """dask.array.linspace: ``num`` values from start to stop, each block made by its task."""
    if not isinstance(num, numbers.Integral) or num < 0:
        raise ValueError(f"linspace: number of samples, {num}, must be a non-negative int")
    num = int(num)
    if np.ndim(start) or np.ndim(stop):
        raise NotImplementedError("linspace: start and stop must be scalars")
    dtype = check_numeric(np.result_type(start, stop, float) if dtype is None else dtype, "linspace")
    out = Array(Linspace(start, stop, num, bool(endpoint), normalize_chunks(chunks, (num,), dtype), dtype))
    if retstep:
        div = num - 1 if endpoint else num
        return out, ((stop - start) / div if div > 0 else np.nan)
    return out


def eye(N, chunks="auto", M=None, k=0, dtype=float) -> Array:
    """dask.array.eye: ones on the k-th diagonal of an N x M array."""
    M = N if M is None else M
    for v, what in ((N, "N"), (M, "M"), (k, "k")):
        if not isinstance(v, numbers.Integral):
            raise TypeError(f"eye: {what} must be an int, got {v!r}")
    if N < 0 or M < 0:
        raise ValueError(f"eye: negative dimensions are not allowed: {N} x {M}")
    dtype = check_numeric(dtype, "eye")
    return Array(Eye(int(N), int(M), int(k), normalize_chunks(chunks, (N, M), dtype), dtype))


def identity(n, dtype=float, chunks="auto") -> Array:
    return eye(n, chunks=chunks, dtype=dtype)


def _like(a, shape, dtype, chunks):
    shape = np.shape(a) if shape is None else ((shape,) if isinstance(shape, numbers.Integral) else tuple(shape))
    dtype = np.dtype(dtype) if dtype is not None else (a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype)
    if chunks is None:
        chunks = a.chunks if isinstance(a, Array) and tuple(shape) == a.shape else "auto"
    return tuple(shape), dtype, chunks


def full_like(a, fill_value, order="C", dtype=None, chunks=None, name=None, shape=None) -> Array:
    shape, dtype, chunks = _like(a, shape, dtype, chunks)
    return full(shape, fill_value, chunks=chunks, dtype=dtype)


def zeros_like(a, dtype=None, order="C", chunks=None, name=None, shape=None) -> Array:
    return full_like(a, 0, order, dtype, chunks, name, shape)


def ones_like(a, dtype=None, order="C", chunks=None, name=None, shape=None) -> Array:
    return full_like(a, 1, order, dtype, chunks, name, shape)


def empty_like(a, dtype=None, order="C", chunks=None, name=None, shape=None) -> Array:
    """As numpy's, but the blocks are zeros (tasks never hand out uninitialised memory)."""
    return full_like(a, 0, order, dtype, chunks, name, shape)


__all__ = ["from_array", "asarray", "array", "linspace", "eye", "identity", "full_like", "zeros_like",
           "ones_like", "empty_like", "ArrayError"]

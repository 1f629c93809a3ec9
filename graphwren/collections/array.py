"""Blocked arrays: lazy numpy-like arrays cut into blocks, run as stateless tasks.

>>> import numpy as np, graphwren as gw
>>> A = gw.array.random((4096, 4096), chunks=1024, seed=0)
>>> C = (A @ A.T + 1.0) * 2
>>> print(C.explain())      # stages, tasks, projected peak memory per task, bytes moved
>>> c = C.compute()         # numpy.ndarray
>>> C.to_zarr("s3://bucket/C"); D = gw.array.from_zarr("s3://bucket/C")

This module assembles the API: the ``Array`` class and its core
(``array_base``), and the modules built on it, one job each: numpy's
protocols and numpy-named functions (``array_numpy``), shapes and indexing
(``array_shape``), constructors (``array_create``), ``random``
(``array_random``), blockwise/map_blocks/einsum (``array_blockwise``) and
products (``array_linalg``). Array methods that need those are attached
here, so no module imports one that imports it back.
"""
from __future__ import annotations

import builtins

import numpy as np

from . import (array_blockwise, array_create, array_decomp, array_matrix, array_numpy, array_overlap, array_shape,
               array_zarr)
from .array_base import (Array, ArrayError, arange, compute, divmod_, elemwise, empty, from_numpy, full, ones,
                         persist, zeros)
from .array_linalg import dot, matmul, tensordot
from .array_random import random


# ----------------------------------------------------------------------------- methods built on the other modules


def _getitem(self, index):
    return array_shape.getitem(self, index)


def _reshape(self, *shape, order="C", merge_chunks=True, limit=None):
    """numpy's reshape (C order): made blockwise by rechunking the dimensions that merge or split."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return array_shape.reshape(self, shape, order=order)


def _ravel(self, order="C"):
    return array_shape.reshape(self, (-1,), order=order)


def _map_blocks(self, func, *args, **kwargs):
    """func applied to every block (dask's Array.map_blocks)."""
    return array_blockwise.map_blocks(func, self, *args, **kwargs)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    return array_numpy.array_ufunc(ufunc, method, inputs, kwargs)


def _array_function(self, func, types, args, kwargs):
    return array_numpy.array_function(func, types, args, kwargs)


Array.__getitem__ = _getitem
Array.__array_ufunc__ = _array_ufunc
Array.__array_function__ = _array_function
Array.reshape = _reshape
Array.ravel = Array.flatten = _ravel
Array.squeeze = lambda self, axis=None: array_shape.squeeze(self, axis)
Array.swapaxes = lambda self, axis1, axis2: array_shape.swapaxes(self, axis1, axis2)
Array.map_blocks = _map_blocks
Array.map_overlap = lambda self, func, depth, boundary=None, trim=True, **kwargs: array_overlap.map_overlap(
    func, self, depth=depth, boundary=boundary, trim=trim, **kwargs)
Array.clip = lambda self, min=None, max=None: array_numpy.clip(self, min, max)
Array.round = lambda self, decimals=0: array_numpy.round_(self, decimals)
Array.__matmul__ = lambda self, other: matmul(self, other)
Array.__rmatmul__ = lambda self, other: matmul(other, self)
Array.dot = lambda self, other: dot(self, other)
Array.trace = lambda self, offset=0, axis1=0, axis2=1, dtype=None, out=None: array_numpy.trace(
    self, offset, axis1, axis2, dtype, out)


class _Blocks:
    """``x.blocks[i, j]``: the array made of the blocks at those block indices (ints and slices of blocks)."""

    def __init__(self, x):
        self.x = x

    def __getitem__(self, index):
        from ..tasks.blocks import chunk_offsets
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > self.x.ndim:
            raise IndexError(f"blocks: too many indices for {self.x.ndim}-d array")
        sel = []
        for d, i in enumerate(index + (slice(None),) * (self.x.ndim - len(index))):
            offs = chunk_offsets(self.x.chunks[d])
            nb = len(self.x.chunks[d])
            if isinstance(i, int):
                if not -nb <= i < nb:
                    raise IndexError(f"blocks: block {i} is out of range for axis {d} with {nb} blocks")
                i %= nb
                sel.append(slice(offs[i], offs[i + 1]))
            elif isinstance(i, slice) and i.step in (None, 1):
                lo, hi, _ = i.indices(nb)
                sel.append(slice(offs[lo], offs[max(lo, hi)]))
            else:
                raise NotImplementedError("blocks: index with ints and step-1 slices of block numbers")
        return self.x[tuple(sel)]


Array.blocks = property(lambda self: _Blocks(self))
Array.partitions = Array.blocks
Array.chunksize = property(lambda self: tuple(max(c) if c else 0 for c in self.chunks))
Array.itemsize = property(lambda self: self.dtype.itemsize)
Array.npartitions = property(lambda self: int(np.prod(self.numblocks, dtype=np.int64)))


def _to_zarr(self, url, component=None, storage_options=None, overwrite=False, region=None, compute=True,
             return_stored=False, compressors="auto", **settings):
    """Write to a zarr v3 array at ``url`` (file://, s3://, redis://), one chunk per block, from the tasks."""
    return array_zarr.to_zarr(self, url, component, storage_options, overwrite, region, compute, return_stored,
                              compressors, **settings)


def _store(self, url, **settings):
    """The old name of ``to_zarr(url, overwrite=True)``."""
    return array_zarr.store(self, url, **settings)


Array.to_zarr = _to_zarr
Array.store = _store


# ----------------------------------------------------------------------------- the public names
EXPORTS = {"Array": Array, "ArrayError": ArrayError, "from_numpy": from_numpy, "random": random, "zeros": zeros,
           "ones": ones, "empty": empty, "full": full, "arange": arange, "compute": compute,
           "persist": persist, "elemwise": elemwise, "matmul": matmul, "dot": dot, "tensordot": tensordot}
for _mod in (array_create, array_shape, array_blockwise, array_zarr, array_overlap, array_matrix):
    EXPORTS.update({n: getattr(_mod, n) for n in _mod.__all__ if n != "ArrayError"})
EXPORTS.update(array_numpy.ELEMWISE)
EXPORTS.update(array_numpy.REDUCTIONS)
EXPORTS.update(array_numpy.NON_UFUNC_ELEMWISE)
EXPORTS.update({n: getattr(array_numpy, n) for n in (
    "where", "clip", "isclose", "allclose", "nan_to_num", "vecdot", "matvec", "vecmat", "argmin", "argmax",
    "cumsum", "cumprod", "nancumsum", "nancumprod", "ptp", "count_nonzero", "trace", "isnull", "notnull",
    "average", "vdot", "outer", "result_type", "shape", "ndim")})
EXPORTS.update({n: getattr(np, n) for n in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                            "uint64", "float32", "float64", "complex64", "complex128")})
EXPORTS.update({"round": array_numpy.round_, "around": array_numpy.round_, "divmod": divmod_})
EXPORTS["linalg"] = array_decomp      # gw.array.linalg.qr, .svd, .cholesky, ...
EXPORTS.pop("tensordot_nd", None)
EXPORTS.pop("batched_matmul", None)

# Importable from here too (tests and old code use graphwren.collections.array); the names that would
# shadow builtins (sum, min, round...) stay in EXPORTS only: graphwren/array.py publishes them.
globals().update({n: f for n, f in EXPORTS.items() if not hasattr(builtins, n) and n not in globals()})
__all__ = sorted(n for n in EXPORTS if not hasattr(builtins, n)) + ["EXPORTS"]


def _np_svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """numpy.linalg.svd: the reduced SVD only (a full U of a tall array would be m x m)."""
    if full_matrices and a.shape[0] != a.shape[1]:
        raise NotImplementedError("numpy.linalg.svd: graphwren computes the reduced SVD; pass full_matrices=False")
    u, s, vt = array_decomp.svd(a)
    return (u, s, vt) if compute_uv else s


def _np_func(name):
    return getattr(np, name, None)


#: numpy function -> graphwren implementation: what __array_function__ dispatches (everything else: TypeError).
array_numpy.HANDLED.update({f: impl for f, impl in [
    *[(_np_func(n), array_numpy.REDUCTIONS[n]) for n in array_numpy.REDUCTIONS],
    *[(_np_func(n), EXPORTS[n]) for n in (
        "argmin", "argmax", "cumsum", "cumprod", "nancumsum", "nancumprod", "ptp", "where", "clip", "isclose",
        "allclose", "nan_to_num", "reshape", "ravel", "squeeze", "expand_dims", "atleast_1d", "atleast_2d",
        "swapaxes", "moveaxis", "transpose", "concatenate", "stack", "hstack", "vstack", "take", "einsum",
        "full_like", "zeros_like", "ones_like", "empty_like", "vecdot", "matvec", "vecmat", "flip", "fliplr",
        "flipud", "broadcast_to", "count_nonzero", "trace", "atleast_3d", "dstack", "append", "roll", "diff",
        "compress", "tril", "triu", "diagonal", "diag", "average", "vdot", "outer", *array_numpy.NON_UFUNC_ELEMWISE)],
    (_np_func("astype"), lambda x, dtype, /, *, copy=True, device=None: x.astype(dtype)),
    (np.iscomplexobj, lambda x: x.dtype.kind == "c"), (np.isrealobj, lambda x: x.dtype.kind != "c"),
    (np.round, array_numpy.round_), (np.around, array_numpy.round_), (np.matmul, matmul), (np.dot, dot),
    (np.tensordot, tensordot),
    (np.shape, lambda a: a.shape), (np.ndim, lambda a: a.ndim),
    (np.size, lambda a, axis=None: a.size if axis is None else a.shape[axis]),
    (np.copy, lambda a, order="K", subok=False: a),
    (np.real, lambda val: val.real), (np.imag, lambda val: val.imag),
    (np.result_type, lambda *a: np.result_type(*[x.dtype if isinstance(x, Array) else x for x in a])),
    (np.linalg.qr, lambda a, mode="reduced": array_decomp.qr(a, mode)),
    (np.linalg.svd, _np_svd), (np.linalg.cholesky, lambda a, /, *, upper=False: array_decomp.cholesky(a, not upper)),
    (np.linalg.solve, array_decomp.solve), (np.linalg.inv, array_decomp.inv),
    (np.linalg.lstsq, array_decomp.lstsq), (np.linalg.norm, array_decomp.norm),
    (np.outer, lambda a, b, out=None: array_numpy.array_ufunc(
        np.multiply, "outer", (array_shape.ravel(a), array_shape.ravel(b)), {})),
] if f is not None})

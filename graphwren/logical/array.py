"""Blocked-array expressions (dask-expr style): each node knows its shape, dtype and chunks.

An array expression knows its ``shape``, ``dtype`` and ``chunks`` (one tuple
of block lengths per dimension, as in dask.array; the arithmetic is in
``logical.chunks``) without running anything. Nodes are

* **sources** (``FromNumpy``, ``Random``, ``Full``, ``Arange``, ``Load``): a
  block is made or read by whichever task needs it;
* **narrow** (``Elemwise``, ``Transpose``, ``GetItem``): output block ``b``
  needs one block of each input; lowering fuses chains of them into the
  task that consumes them;
* **wide** (``AxisReduction`` -> ``ReduceLevel`` tree, ``MatMul``,
  ``MatMulSplit``, ``Rechunk``): an output block reads many input blocks.

``graphwren.logical.optimize`` rewrites reductions into ``ReduceLevel`` trees
(rule ``array_reduction_tree``); a ``MatMul``'s physical strategy is chosen
later, by the planner (``planner.matmul``), since it depends on the workers
and the memory bound.
"""
from __future__ import annotations

import functools
import math
import uuid

import numpy as np

from ..errors import ArrayError
from ..tasks.blocks import block_shape
from .chunks import broadcast_layout, getitem_plan, max_block_nbytes
from .expr import Expr, funcname, tokenize


def check_numeric(dtype, what: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc":
        raise ArrayError(f"{what}: dtype {dtype} is not numeric; graphwren arrays hold bool, "
                         "integer, float or complex values")
    return dtype


# ----------------------------------------------------------------------------- base


class ArrayExpr(Expr):
    """An array-valued node. Subclasses compute ``_meta() -> (shape, dtype, chunks)``."""

    kind = "narrow"   # "source" | "narrow" | "wide"

    @functools.cached_property
    def _info(self):
        shape, dtype, chunks = self._meta()
        return tuple(shape), np.dtype(dtype), tuple(tuple(c) for c in chunks)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._info[0]

    @property
    def dtype(self) -> np.dtype:
        return self._info[1]

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        return self._info[2]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numblocks(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.chunks)

    @property
    def nblocks(self) -> int:
        return math.prod(self.numblocks)

    def block_nbytes(self, idx=None) -> int:
        """Bytes of one block (the largest when idx is None) as the tasks hold it."""
        if idx is None:
            return max_block_nbytes(self.chunks, self.dtype)
        return math.prod(block_shape(self.chunks, idx)) * self.dtype.itemsize

    def identity_operands(self) -> list:
        """Operands whose block ``b`` is exactly what output block ``b`` reads (fusion-safe)."""
        return []

    def _describe(self) -> str:
        args = [f"{p}={funcname(v) if callable(v) else v}" for p, v in zip(self._parameters, self.operands)
                if not isinstance(v, Expr) and not p.endswith("_") and not (
                    isinstance(v, tuple) and (len(v) > 4 or any(isinstance(i, (tuple, Expr)) for i in v)))]
        return f"{type(self).__name__}({', '.join(args)}) -> {_shape_str(self)}"


def _shape_str(e) -> str:
    try:
        blocks = "x".join(str(max(c) if c else 0) for c in e.chunks)
        return (f"{e.dtype}{list(e.shape)} in {'x'.join(map(str, e.numblocks)) or '1'} blocks"
                + (f" of {blocks}" if e.chunks else ""))
    except Exception:  # noqa: BLE001 - explain must never fail on a description
        return "?"


class Held(str):
    """A token string carrying a numpy array: tokenizes as the string, never pickled into stages."""

    array: np.ndarray

    def __new__(cls, array: np.ndarray):
        if array.nbytes <= 16 * 1024**2:
            token = "np-" + tokenize(array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes())
        else:
            token = f"np-{id(array):x}-{uuid.uuid4().hex[:12]}"
        self = super().__new__(cls, token)
        self.array = array
        return self

    def __reduce__(self):
        return (str, (str(self),))


# ----------------------------------------------------------------------------- sources


class FromNumpy(ArrayExpr):
    """A numpy array the driver holds, cut into blocks (its bytes ship in the plan's data)."""

    _parameters = ("data", "chunks_")
    kind = "source"

    def _meta(self):
        a = self.data.array
        return a.shape, a.dtype, self.chunks_

    def _describe(self):
        return f"FromNumpy({self.data[:20]}) -> {_shape_str(self)}"


class Random(ArrayExpr):
    """Random numbers from numpy's Generator method ``dist`` (params), each block seeded from ``seed`` and its index."""

    _parameters = ("seed", "shape_", "chunks_", "dtype_", "dist", "params")
    _defaults = {"dist": "random", "params": ()}
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_


class Full(ArrayExpr):
    """An array of one value (zeros, ones, full)."""

    _parameters = ("value", "shape_", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_


class Arange(ArrayExpr):
    """Evenly spaced values ``start + step * i`` for i < size (arange)."""

    _parameters = ("start", "step", "size", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return (self.size,), self.dtype_, self.chunks_


class Linspace(ArrayExpr):
    """``num`` evenly spaced values from start to stop (linspace): block values made in the task."""

    _parameters = ("start", "stop", "num", "endpoint", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return (self.num,), self.dtype_, self.chunks_


class Eye(ArrayExpr):
    """An N x M array with ones on the k-th diagonal (eye)."""

    _parameters = ("n", "m", "k", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return (self.n, self.m), self.dtype_, self.chunks_


class Load(ArrayExpr):
    """An array whose blocks sit in storage (written by ``store``)."""

    _parameters = ("url", "token", "shape_", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_

    def _describe(self):
        return f"Load({self.url}) -> {_shape_str(self)}"


class ZarrSource(ArrayExpr):
    """An array stored in zarr at ``url``; ``zchunks`` is zarr's chunk shape, ``token`` its metadata's hash."""

    _parameters = ("url", "token", "shape_", "chunks_", "dtype_", "zchunks")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_

    def _describe(self):
        return f"ZarrSource({self.url}) -> {_shape_str(self)}"


class PersistedArray(ArrayExpr):
    """Blocks an earlier job committed and kept (persist()): read through an edge to that job's stage."""

    _parameters = ("store", "job", "stage", "shape_", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_

    def _describe(self):
        return f"Persisted({self.job}/{self.stage}) -> {_shape_str(self)}"


# ----------------------------------------------------------------------------- narrow


class AsType:
    """A picklable elementwise cast."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, x):
        return x.astype(self.dtype, copy=False)

    def __reduce__(self):
        return (AsType, (self.dtype.str,))

    __qualname__ = "astype"


class Elemwise(ArrayExpr):
    """``op(*args)`` block by block; args are arrays (broadcast as numpy does) or scalars."""

    _parameters = ("op", "args", "dtype_")

    def _meta(self):
        layouts = [(a.shape, a.chunks) for a in self.args if isinstance(a, ArrayExpr)]
        shape, chunks = broadcast_layout(layouts, funcname(self.op))
        return shape, self.dtype_, chunks

    def identity_operands(self):
        return [a for a in self.args if isinstance(a, ArrayExpr) and a.shape == self.shape
                and a.chunks == self.chunks]

    def _describe(self):
        parts = []
        for a in self.args:
            parts.append("<array>" if isinstance(a, ArrayExpr) else repr(a))
        return f"Elemwise({funcname(self.op)}, {', '.join(parts)}) -> {_shape_str(self)}"


def infer_dtype(op, args, opname: str) -> np.dtype:
    dummies = []
    for a in args:
        if isinstance(a, ArrayExpr):
            dummies.append(np.ones((1,) * a.ndim, dtype=a.dtype))
        else:
            dummies.append(a)
    try:
        with np.errstate(all="ignore"):
            out = op(*dummies)
    except Exception as exc:
        raise ArrayError(f"{opname} cannot run on operands of dtype "
                         f"{[getattr(a, 'dtype', type(a).__name__) for a in args]}: {exc}") from exc
    return check_numeric(np.asarray(out).dtype, opname)


class Transpose(ArrayExpr):
    """The axes permuted (``x.T``, transpose): block (i, j) is input block (j, i) transposed."""

    _parameters = ("x", "axes")

    def _meta(self):
        x = self.x
        return (tuple(x.shape[a] for a in self.axes), x.dtype, tuple(x.chunks[a] for a in self.axes))


class GetItem(ArrayExpr):
    """Basic indexing (ints, positive-step slices, None). ``plan`` maps output to input blocks.

    ``plan`` entries, one per position of the normalized index: ``("s", table)`` for a
    slice (table[j] = (input block, start, stop, step) of output block j), ``("i", block,
    local)`` for an integer, ``("n",)`` for ``None``.
    """

    _parameters = ("x", "plan", "index_repr")
    _defaults = {"index_repr": "..."}

    def _meta(self):
        chunks = []
        for entry in self.plan:
            if entry[0] == "s":
                chunks.append(tuple(len(range(s, e, st)) for _, s, e, st in entry[1]) or (0,))
            elif entry[0] == "n":
                chunks.append((1,))
        return tuple(sum(c) for c in chunks), self.x.dtype, tuple(chunks)

    def _describe(self):
        return f"GetItem({self.index_repr}) -> {_shape_str(self)}"


def make_getitem(x: ArrayExpr, index) -> ArrayExpr:
    """``x[index]`` for basic indexing: a GetItem node, or ``x`` itself when the index selects all of it."""
    planned = getitem_plan(x.shape, x.chunks, index)
    if planned is None:
        return x
    return GetItem(x, *planned)


# ----------------------------------------------------------------------------- wide


class Rechunk(ArrayExpr):
    """The same values cut into other blocks: an output block reads every input block it overlaps."""

    _parameters = ("x", "chunks_")
    kind = "wide"

    def _meta(self):
        return self.x.shape, self.x.dtype, self.chunks_


REDUCTIONS = ("sum", "prod", "min", "max", "mean", "var", "std", "any", "all", "argmin", "argmax",
              "nansum", "nanprod", "nanmin", "nanmax", "nanmean", "nanvar", "nanstd")
MOMENTS = {"sum": 1, "prod": 1, "min": 1, "max": 1, "mean": 2, "var": 3, "std": 3, "any": 1, "all": 1,
           "argmin": 2, "argmax": 2, "nansum": 1, "nanprod": 1, "nanmin": 1, "nanmax": 1, "nanmean": 2,
           "nanvar": 3, "nanstd": 3}
#: Reductions whose partials are already the result's values (no moments, no finalizing).
PLAIN = ("sum", "prod", "min", "max", "any", "all", "nansum", "nanprod", "nanmin", "nanmax")
#: Reductions that take a dtype= argument (numpy's signatures).
TAKES_DTYPE = ("sum", "prod", "mean", "var", "std", "nansum", "nanprod", "nanmean", "nanvar", "nanstd")


def reduction_dtype(kind: str, dtype, requested=None) -> np.dtype:
    if requested is not None:
        return np.dtype(requested)
    one = np.ones(2, dtype=dtype)
    with np.errstate(all="ignore"):
        return np.asarray(getattr(np, kind)(one)).dtype


def arg_value_dtype(dtype) -> np.dtype:
    """dtype holding (value, index) pairs of argmin/argmax partials exactly."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return np.dtype(np.complex128)
    if dtype.kind == "f":
        return np.dtype(np.float64)     # float16/32 values and indices below 2**53 are exact
    if dtype == np.uint64:
        return np.dtype(np.uint64)
    return np.dtype(np.int64)


def partial_dtype(kind: str, dtype, in_dtype=None) -> np.dtype:
    """dtype of the partial blocks between reduction levels (``in_dtype``: the reduced array's, for arg*)."""
    if kind in ("argmin", "argmax"):
        return arg_value_dtype(in_dtype)
    if kind in ("mean", "var", "std", "nanmean", "nanvar", "nanstd"):
        return np.dtype(np.complex128) if np.dtype(dtype).kind == "c" else np.dtype(np.float64)
    return reduction_dtype(kind, dtype)


def _reduced_layout(x, axes, groups, keepdims: bool):
    """(shape, chunks) of ``x`` reduced along ``axes``: ``groups(d)`` blocks of 1 left on axis d, or
    (when it is None) the axis dropped, or kept as length 1 with ``keepdims``."""
    shape, chunks = [], []
    for d in range(x.ndim):
        if d not in axes:
            shape.append(x.shape[d])
            chunks.append(x.chunks[d])
            continue
        n = groups(d)
        if n is not None:
            shape.append(n)
            chunks.append((1,) * n)
        elif keepdims:
            shape.append(1)
            chunks.append((1,))
    return shape, chunks


class AxisReduction(ArrayExpr):
    """sum/mean/var... along some axes; rule ``array_reduction_tree`` turns it into ``ReduceLevel`` stages."""

    _parameters = ("x", "how", "axes", "keepdims", "split_every", "ddof", "dtype_")
    _defaults = {"keepdims": False, "split_every": None, "ddof": 0, "dtype_": None}
    kind = "wide"

    def _meta(self):
        shape, chunks = _reduced_layout(self.x, self.axes, lambda d: None, self.keepdims)
        return shape, reduction_dtype(self.how, self.x.dtype, self.dtype_), chunks


class ReduceLevel(ArrayExpr):
    """One level of a reduction tree: each task folds ``split[a]`` blocks along each reduced axis.

    ``first``: its input is the array itself (else the partials of a previous level);
    ``last``: it finalizes (mean = sum/count, ...) and drops the axes unless ``keepdims``.
    Partials of mean/var/std carry a hidden leading axis of moments.
    """

    _parameters = ("x", "how", "axes", "split", "first", "last", "keepdims", "ddof", "dtype_", "in_dtype")
    _defaults = {"in_dtype": None}
    kind = "wide"

    def _meta(self):
        x = self.x

        def groups(d):  # a partial level keeps one block per group of ``split`` input blocks
            return None if self.last else -(-x.numblocks[d] // self.split[self.axes.index(d)])

        shape, chunks = _reduced_layout(x, self.axes, groups, self.keepdims)
        keep = self.last or self.how in PLAIN
        in_dtype = self.in_dtype if self.in_dtype is not None else x.dtype
        return shape, (self.dtype_ if keep else partial_dtype(self.how, self.dtype_, in_dtype)), chunks

    @property
    def moments(self) -> int:
        return 1 if self.last else MOMENTS[self.how]

    def block_nbytes(self, idx=None):
        return super().block_nbytes(idx) * self.moments

    def _describe(self):
        step = "first+final" if self.first and self.last else "first" if self.first else "final" if self.last else "combine"
        return (f"ReduceLevel({self.how}, axes={self.axes}, split_every={self.split}, {step}) "
                f"-> {_shape_str(self)}")


class Cumulative(ArrayExpr):
    """cumsum/cumprod along one axis; rule ``array_scan`` turns it into block totals and a ``Scan``."""

    _parameters = ("x", "how", "axis", "dtype_")
    kind = "wide"

    def _meta(self):
        return self.x.shape, self.dtype_, self.x.chunks


class Scan(ArrayExpr):
    """Block b of a cumulative op: the block's own scan, offset by the ``totals`` of the blocks before it."""

    _parameters = ("x", "totals", "how", "axis", "dtype_")
    kind = "wide"

    def _meta(self):
        return self.x.shape, self.dtype_, self.x.chunks

    def identity_operands(self):
        return [self.x]


class MatMul(ArrayExpr):
    """C = A @ B for 2-d A, B. ``strategy`` is None (logical) or 'stream' (one task per C block)."""

    _parameters = ("a", "b", "strategy")
    _defaults = {"strategy": None}
    kind = "wide"

    def _meta(self):
        a, b = self.a, self.b
        return (a.shape[0], b.shape[1]), np.result_type(a.dtype, b.dtype), (a.chunks[0], b.chunks[1])


class MatMulSplit(ArrayExpr):
    """Partial products: block (s, i, j) = sum over k in ``ranges[s]`` of A[i,k] @ B[k,j]."""

    _parameters = ("a", "b", "ranges")
    kind = "wide"

    def _meta(self):
        a, b = self.a, self.b
        n = len(self.ranges)
        return ((n, a.shape[0], b.shape[1]), np.result_type(a.dtype, b.dtype),
                ((1,) * n, a.chunks[0], b.chunks[1]))

    def _describe(self):
        return f"MatMulSplit(k-splits={[list(r) for r in self.ranges]}) -> {_shape_str(self)}"

"""Blocked-array expressions and their rewrite rules (dask-expr style).

An array expression knows its ``shape``, ``dtype`` and ``chunks`` (one tuple
of block lengths per dimension, as in dask.array) without running anything.
Nodes are

* **sources** (``FromNumpy``, ``Random``, ``Full``, ``Arange``, ``Load``): a
  block is made or read by whichever task needs it;
* **narrow** (``Elemwise``, ``Transpose``, ``GetItem``): output block ``b``
  needs one block of each input; lowering fuses chains of them into the
  task that consumes them;
* **wide** (``Reduction`` -> ``ReduceLevel`` tree, ``MatMul``,
  ``MatMulSplit``, ``Rechunk``): an output block reads many input blocks.

``optimize(expr, settings)`` folds the rules over the plan: reductions become
a tree of ``ReduceLevel`` nodes (``split_every`` blocks per task per axis) and
``MatMul`` gets its physical strategy from ``array_matmul.plan_matmul``.
"""
from __future__ import annotations

import functools
import math
import numbers
import uuid

import numpy as np

from ..errors import ArrayError
from ..tasks.blocks import block_shape, chunk_offsets
from .expr import Expr, funcname, tokenize


# ----------------------------------------------------------------------------- chunks


def _dim_chunks(size: int, c) -> tuple[int, ...]:
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
                     target_bytes: int = 128 * 1024**2) -> tuple[tuple[int, ...], ...]:
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


def max_block_nbytes(chunks, dtype) -> int:
    n = np.dtype(dtype).itemsize
    for c in chunks:
        n *= max(c) if c else 0
    return n


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

    def map_operands(self, fn) -> "ArrayExpr":
        """A copy whose expression operands (also inside tuples) went through ``fn``."""
        changed = False
        values = []
        for op in self.operands:
            if isinstance(op, Expr):
                new = fn(op)
                changed |= new is not op
                values.append(new)
            elif isinstance(op, tuple) and any(isinstance(o, Expr) for o in op):
                new = tuple(fn(o) if isinstance(o, Expr) else o for o in op)
                changed |= any(a is not b for a, b in zip(new, op))
                values.append(new)
            else:
                values.append(op)
        if not changed:
            return self
        return type(self)(*values)

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
    _parameters = ("data", "chunks_")
    kind = "source"

    def _meta(self):
        a = self.data.array
        return a.shape, a.dtype, self.chunks_

    def _describe(self):
        return f"FromNumpy({self.data[:20]}) -> {_shape_str(self)}"


class Random(ArrayExpr):
    _parameters = ("seed", "shape_", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_


class Full(ArrayExpr):
    _parameters = ("value", "shape_", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_


class Arange(ArrayExpr):
    _parameters = ("start", "step", "size", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return (self.size,), self.dtype_, self.chunks_


class Load(ArrayExpr):
    """An array whose blocks sit in storage (written by ``store``)."""

    _parameters = ("url", "token", "shape_", "chunks_", "dtype_")
    kind = "source"

    def _meta(self):
        return self.shape_, self.dtype_, self.chunks_

    def _describe(self):
        return f"Load({self.url}) -> {_shape_str(self)}"


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


def _broadcast_layout(args, opname):
    """(out shape, out chunks, per array arg: tuple of bool 'broadcast' flags per its dims)."""
    arrays = [a for a in args if isinstance(a, ArrayExpr)]
    ndim = max(a.ndim for a in arrays)
    shape, chunks = [], []
    for d in range(ndim):
        size, ch = 1, None
        for a in arrays:
            k = d - (ndim - a.ndim)
            if k < 0:
                continue
            s = a.shape[k]
            if s != 1:
                if size != 1 and s != size:
                    shapes = " and ".join(str(x.shape) for x in arrays)
                    raise ArrayError(f"{opname}: operands could not be broadcast together with shapes {shapes}")
                size = s
                if ch is None:
                    ch = a.chunks[k]
                elif a.chunks[k] != ch:
                    raise ArrayError(f"{opname}: operands have different chunks {ch} and {a.chunks[k]} "
                                     f"along dimension {d}; rechunk one of them")
        if ch is None:
            ch = (1,)
        shape.append(size)
        chunks.append(ch)
    return tuple(shape), tuple(chunks), ndim


class Elemwise(ArrayExpr):
    """``op(*args)`` block by block; args are arrays (broadcast as numpy does) or scalars."""

    _parameters = ("op", "args", "dtype_")

    def _meta(self):
        shape, chunks, _ = _broadcast_layout(self.args, funcname(self.op))
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
    if not isinstance(index, tuple):
        index = (index,)
    if any(isinstance(i, (list, np.ndarray)) or hasattr(i, "dtype") and not np.isscalar(i) for i in index):
        raise NotImplementedError("graphwren arrays support basic indexing only (ints, slices, None, ...); "
                                  "fancy and boolean indexing are not supported")
    n_ell = sum(i is Ellipsis for i in index)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(i is not None and i is not Ellipsis for i in index)
    if n_real > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, but {n_real} were indexed")
    if n_ell:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (x.ndim - n_real) + index[k + 1:]
    else:
        index = index + (slice(None),) * (x.ndim - n_real)
    plan, dim, trivial = [], 0, True
    for i in index:
        if i is None:
            plan.append(("n",))
            trivial = False
            continue
        size, chunks = x.shape[dim], x.chunks[dim]
        offs = chunk_offsets(chunks)
        if isinstance(i, slice):
            start, stop, step = i.indices(size)
            if step <= 0:
                raise NotImplementedError("graphwren arrays support slices with a positive step only")
            table = []
            for b in range(len(chunks)):
                lo, hi = offs[b], offs[b + 1]
                first = start if start >= lo else start + -(-(lo - start) // step) * step
                last = min(hi, stop)
                if first < last:
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
        return x
    return GetItem(x, tuple(plan), ", ".join(_index_str(i) for i in index))


def _index_str(i):
    if isinstance(i, slice):
        return f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}" + \
            ("" if i.step in (None, 1) else f":{i.step}")
    return repr(i)


# ----------------------------------------------------------------------------- wide


class Rechunk(ArrayExpr):
    _parameters = ("x", "chunks_")
    kind = "wide"

    def _meta(self):
        return self.x.shape, self.x.dtype, self.chunks_


REDUCTIONS = ("sum", "prod", "min", "max", "mean", "var", "std")
MOMENTS = {"sum": 1, "prod": 1, "min": 1, "max": 1, "mean": 2, "var": 3, "std": 3}


def reduction_dtype(kind: str, dtype, requested=None) -> np.dtype:
    if requested is not None:
        return np.dtype(requested)
    one = np.ones(2, dtype=dtype)
    fn = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max, "mean": np.mean,
          "var": np.var, "std": np.std}[kind]
    return np.asarray(fn(one)).dtype


def partial_dtype(kind: str, dtype) -> np.dtype:
    """dtype of the partial blocks between reduction levels."""
    if kind in ("mean", "var", "std"):
        return np.dtype(np.complex128) if np.dtype(dtype).kind == "c" else np.dtype(np.float64)
    return reduction_dtype(kind, dtype)


class Reduction(ArrayExpr):
    """The logical reduction; ``lower_reductions`` turns it into a tree of ``ReduceLevel``."""

    _parameters = ("x", "how", "axes", "keepdims", "split_every", "ddof", "dtype_")
    _defaults = {"keepdims": False, "split_every": None, "ddof": 0, "dtype_": None}
    kind = "wide"

    def _meta(self):
        x = self.x
        shape, chunks = [], []
        for d in range(x.ndim):
            if d in self.axes:
                if self.keepdims:
                    shape.append(1)
                    chunks.append((1,))
            else:
                shape.append(x.shape[d])
                chunks.append(x.chunks[d])
        return shape, reduction_dtype(self.how, x.dtype, self.dtype_), chunks


class ReduceLevel(ArrayExpr):
    """One level of a reduction tree: each task folds ``split[a]`` blocks along each reduced axis.

    ``first``: its input is the array itself (else the partials of a previous level);
    ``last``: it finalizes (mean = sum/count, ...) and drops the axes unless ``keepdims``.
    Partials of mean/var/std carry a hidden leading axis of moments.
    """

    _parameters = ("x", "how", "axes", "split", "first", "last", "keepdims", "ddof", "dtype_")
    kind = "wide"

    def _meta(self):
        x = self.x
        shape, chunks = [], []
        for d in range(x.ndim):
            if d in self.axes:
                ngroups = -(-x.numblocks[d] // self.split[self.axes.index(d)])
                if self.last:
                    if self.keepdims:
                        shape.append(1)
                        chunks.append((1,))
                else:
                    shape.append(ngroups)
                    chunks.append((1,) * ngroups)
            else:
                shape.append(x.shape[d])
                chunks.append(x.chunks[d])
        keep = self.last or self.how in ("sum", "prod", "min", "max")
        return shape, (self.dtype_ if keep else partial_dtype(self.how, self.dtype_)), chunks

    @property
    def moments(self) -> int:
        return 1 if self.last else MOMENTS[self.how]

    def block_nbytes(self, idx=None):
        return super().block_nbytes(idx) * self.moments

    def _describe(self):
        step = "first+final" if self.first and self.last else "first" if self.first else "final" if self.last else "combine"
        return (f"ReduceLevel({self.how}, axes={self.axes}, split_every={self.split}, {step}) "
                f"-> {_shape_str(self)}")


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


# ----------------------------------------------------------------------------- rules


def rewrite(expr: ArrayExpr, rule) -> ArrayExpr:
    """Apply ``rule(node) -> node`` bottom-up, once per distinct node."""
    memo: dict[str, ArrayExpr] = {}
    for node in expr.walk():
        new = node.map_operands(lambda op: memo.get(op.name, op))
        memo[node.name] = rule(new)
    return memo[expr.name]


def split_per_axis(split_every, axes, numblocks) -> tuple[int, ...]:
    if isinstance(split_every, dict):
        return tuple(max(2, int(split_every.get(a, 16))) for a in axes)
    n = 16 if split_every is None else int(split_every)
    if n < 2:
        raise ArrayError(f"split_every must be >= 2, got {split_every}")
    per = max(2, int(round(n ** (1 / max(1, len(axes))))))
    return tuple(per for _ in axes)


def lower_reduction(node: ArrayExpr) -> ArrayExpr:
    """Rule: Reduction -> ReduceLevel(first) -> ReduceLevel(combine)* -> ReduceLevel(last)."""
    if not isinstance(node, Reduction):
        return node
    x, axes = node.x, node.axes
    split = split_per_axis(node.split_every, axes, x.numblocks)
    out_dtype = node.dtype
    cur, first = x, True
    while True:
        ngroups = [-(-cur.numblocks[a] // s) for a, s in zip(axes, split)]
        last = all(g == 1 for g in ngroups)
        cur = ReduceLevel(cur, node.how, axes, split, first, last, node.keepdims if last else True,
                          node.ddof, out_dtype)
        first = False
        if last:
            return cur


RULES = [lower_reduction]


def optimize(expr: ArrayExpr, settings: dict) -> ArrayExpr:
    from ..planner.matmul import plan_matmul_rule
    out = expr
    for rule in RULES:
        out = rewrite(out, rule)
    return rewrite(out, lambda n: plan_matmul_rule(n, settings))

"""The blocked Array class and what everything else builds on: elementwise ops, reductions, constructors.

``collections.array`` assembles the whole API from this module and the
others (array_shape, array_numpy, array_blockwise, array_linalg...), which
import this one; methods that need them are attached there.


>>> import numpy as np, graphwren as gw
>>> A = gw.array.random((4096, 4096), chunks=1024, seed=0)
>>> C = (A @ A.T + 1.0) * 2
>>> print(C.explain())      # stages, tasks, projected peak memory per task, bytes moved
>>> c = C.compute()         # numpy.ndarray
>>> C.to_zarr("s3://bucket/C"); D = gw.array.from_zarr("s3://bucket/C")

Every method returns a new lazy ``Array``; nothing runs until ``compute()``
or ``to_zarr()``. Blocks are generated or read by the tasks, never by the
driver (``from_numpy`` ships its array once, through the job's data object).
"""
from __future__ import annotations

import json
import numbers
import operator

import numpy as np

from .. import config
from ..errors import MissingKey
from .. import planner
from ..logical.array import (Arange, ArrayError, ArrayExpr, AsType, AxisReduction, Cumulative, Elemwise, FromNumpy,
                             Full, Held, Load, PersistedArray, Rechunk, Transpose, check_numeric,
                             infer_dtype)
from ..logical.chunks import normalize_chunks
from ..planner.outputs import Blocks
from ..tasks.blocks import HEADER_KEY, block_key, unravel
from ..logical.expr import funcname

__all__ = ["Array", "from_numpy", "zeros", "ones", "empty", "full", "arange", "ArrayError", "compute", "load_legacy",
           "persist", "elemwise", "reduce", "cumulative", "divmod_", "scheduler_settings"]

FORMAT = "graphwren.array"


class Array:
    """A lazy blocked array. ``chunks`` are per-dimension block lengths, as in dask.array."""

    __array_priority__ = 20

    def __init__(self, expr: ArrayExpr):
        self.expr = expr

    # -- metadata --------------------------------------------------------------
    shape = property(lambda self: self.expr.shape)
    dtype = property(lambda self: self.expr.dtype)
    chunks = property(lambda self: self.expr.chunks)
    ndim = property(lambda self: self.expr.ndim)
    numblocks = property(lambda self: self.expr.numblocks)
    name = property(lambda self: self.expr.name)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self):
        return (f"graphwren.Array<{self.expr.name}, shape={self.shape}, dtype={self.dtype}, "
                f"chunks={tuple(max(c) if c else 0 for c in self.chunks)}, blocks={self.numblocks}>")

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))   # lazy rows, as numpy iterates the first axis

    def __bool__(self):
        raise TypeError("the truth value of a lazy graphwren array is unknown until compute()")

    # -- running ---------------------------------------------------------------
    def compute(self, scheduler=None, **settings) -> np.ndarray:
        """Run the plan and return a numpy array (a numpy scalar for 0-d results).

        ``scheduler`` takes dask's names: 'threads', 'processes' and None run on the
        configured backend; 'sync', 'synchronous' and 'single-threaded' on one local
        worker; 'local' and 'lambda' choose the backend (see ``scheduler_settings``).
        """
        settings = config.resolve(scheduler_settings(scheduler, settings))
        planned = planner.plan(self.expr, settings)
        output = Blocks(self.shape, self.dtype, self.chunks)
        planner.execute(planned, settings, output, description=f"array {planned.plan.stage(planned.output).label}")
        return output.value()

    def persist(self, scheduler=None, **settings) -> "Array":
        """Compute once and keep the blocks in storage; the new array reads them back (as Bag.persist)."""
        settings = config.resolve(scheduler_settings(scheduler, settings))
        planned = planner.plan(self.expr, settings)
        job = planner.execute(planned, settings, _Discard(), keep=True, description=f"persist array {self.name}")
        out = planned.plan.stage(planned.output)
        return Array(PersistedArray(out.storage or settings["storage"], job, out.name, self.shape, self.chunks,
                                    self.dtype))

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a graphwren array cannot be viewed as numpy without a copy (copy=False)")
        out = np.asarray(self.compute())
        return out.astype(dtype, copy=False) if dtype is not None else out

    def _scalar(self, kind):
        if self.size != 1:
            raise TypeError(f"only 0-d (size-1) arrays can be converted to Python scalars; {self.name} has "
                            f"shape {self.shape}")
        return kind(np.asarray(self.compute()).reshape(()))

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __complex__(self):
        return self._scalar(complex)

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError(f"only integer arrays can be used as an index, {self.name} is {self.dtype}")
        return self._scalar(operator.index)

    def item(self):
        """The value of a size-1 array as a Python scalar (computes it)."""
        return self._scalar(lambda v: v.item())

    def __setitem__(self, key, value):
        raise TypeError("graphwren arrays are immutable: build a new one (e.g. with gw.array.where)")

    def explain(self, cost: bool = False, **settings) -> str:
        """Logical plan, optimized plan, stages (tasks, edges, storage, reads/writes, peak memory/task);
        with ``cost``, the projected GB-seconds, requests and dollars per stage."""
        return planner.explain(self.expr, config.resolve(settings), cost=cost)

    # -- structure ---------------------------------------------------------------
    def rechunk(self, chunks) -> "Array":
        """New block lengths: an int, a tuple (-1 = whole dim), per-dim tuples, or {axis: chunks}."""
        if isinstance(chunks, dict):
            chunks = tuple(chunks.get(d, self.chunks[d]) for d in range(self.ndim))
        new = normalize_chunks(chunks, self.shape, self.dtype)
        if new == self.chunks:
            return self
        return Array(Rechunk(self.expr, new))

    def transpose(self, *axes) -> "Array":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        axes = tuple(a % self.ndim if self.ndim else a for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ArrayError(f"transpose: axes {axes} are not a permutation of the {self.ndim} dimensions")
        if axes == tuple(range(self.ndim)):
            return self
        if isinstance(self.expr, Transpose):  # rule: transpose of transpose is one transpose
            inner = self.expr.axes
            combined = tuple(inner[a] for a in axes)
            base = Array(self.expr.x)
            return base if combined == tuple(range(self.ndim)) else Array(Transpose(self.expr.x, combined))
        return Array(Transpose(self.expr, axes))

    @property
    def T(self) -> "Array":
        return self.transpose()

    def astype(self, dtype) -> "Array":
        dtype = check_numeric(dtype, "astype")
        if dtype == self.dtype:
            return self
        return Array(Elemwise(AsType(dtype), (self.expr,), dtype))

    # -- elementwise -------------------------------------------------------------
    def _elemwise(self, op, *args, name=None):
        return elemwise(op, self, *args, name=name)

    # -- reductions ---------------------------------------------------------------
    def _reduce(self, how, axis=None, keepdims=False, split_every=None, dtype=None, ddof=0, out=None):
        return reduce(self, how, axis, keepdims, split_every, dtype, ddof, out)

    # numpy's argument order (ndarray.sum(axis, dtype, out, keepdims)); split_every is dask's, by keyword
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("sum", axis, keepdims, split_every, dtype, out=out)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("prod", axis, keepdims, split_every, dtype, out=out)

    def min(self, axis=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("min", axis, keepdims, split_every, out=out)

    def max(self, axis=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("max", axis, keepdims, split_every, out=out)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("mean", axis, keepdims, split_every, dtype, out=out)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, split_every=None):
        return self._reduce("var", axis, keepdims, split_every, dtype, ddof, out=out)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, split_every=None):
        return self._reduce("std", axis, keepdims, split_every, dtype, ddof, out=out)

    def any(self, axis=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("any", axis, keepdims, split_every, out=out)

    def all(self, axis=None, out=None, keepdims=False, *, split_every=None):
        return self._reduce("all", axis, keepdims, split_every, out=out)

    def argmin(self, axis=None, out=None, *, keepdims=False, split_every=None):
        return self._reduce("argmin", axis, keepdims, split_every, out=out)

    def argmax(self, axis=None, out=None, *, keepdims=False, split_every=None):
        return self._reduce("argmax", axis, keepdims, split_every, out=out)

    def cumsum(self, axis=None, dtype=None, out=None):
        return cumulative(self, "cumsum", axis, dtype, out)

    def cumprod(self, axis=None, dtype=None, out=None):
        return cumulative(self, "cumprod", axis, dtype, out)

    # -- elementwise helpers ----------------------------------------------------------
    def conj(self):
        return elemwise(np.conjugate, self, name="conjugate")

    conjugate = conj

    @property
    def real(self):
        return elemwise(np.real, self, name="real")

    @property
    def imag(self):
        return elemwise(np.imag, self, name="imag")

    def copy(self):
        """Arrays are immutable: a copy is the same lazy array."""
        return self

    def nonzero(self):
        raise NotImplementedError("nonzero() has a data-dependent shape; graphwren arrays know their shape "
                                  "before running: compute() the array first")

    def __rdivmod__(self, other):
        return divmod_(other, self)

    def __divmod__(self, other):
        return divmod_(self, other)


def _binop(op, name, reflected=False):
    def method(self, other):
        if isinstance(other, (Array, numbers.Number, np.generic)) or (
                isinstance(other, np.ndarray) and other.ndim == 0):
            return elemwise(op, other, self, name=name) if reflected else elemwise(op, self, other, name=name)
        if isinstance(other, np.ndarray):
            other = from_numpy(other, chunks=_matching_chunks(self, other))
            return elemwise(op, other, self, name=name) if reflected else elemwise(op, self, other, name=name)
        if isinstance(other, (str, bytes)):
            raise ArrayError(f"{name}: cannot combine array {self.name} with {other!r}: not a number")
        return NotImplemented
    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _matching_chunks(a: Array, x: np.ndarray):
    chunks = []
    for d in range(x.ndim):
        ad = a.ndim - x.ndim + d
        chunks.append(a.chunks[ad] if 0 <= ad < a.ndim and a.shape[ad] == x.shape[d] else -1)
    return tuple(chunks)


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv), ("mod", operator.mod),
                   ("pow", operator.pow), ("and", operator.and_), ("or", operator.or_), ("xor", operator.xor),
                   ("lshift", operator.lshift), ("rshift", operator.rshift)]:
    setattr(Array, f"__{_name}__", _binop(_op, _name))
    setattr(Array, f"__r{_name}__", _binop(_op, _name, reflected=True))
for _name, _op in [("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
                   ("eq", operator.eq), ("ne", operator.ne)]:
    setattr(Array, f"__{_name}__", _binop(_op, _name))
for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs), ("invert", operator.invert)]:
    setattr(Array, f"__{_name}__", (lambda op, nm: lambda self: elemwise(op, self, name=nm))(_op, _name))
Array.__hash__ = object.__hash__


def elemwise(op, *args, name=None) -> Array:
    """``op`` applied block by block; arrays broadcast as numpy's; mixed chunkings are rechunked."""
    opname = name or funcname(op)
    exprs = []
    for a in args:
        if isinstance(a, Array):
            exprs.append(a)
        elif isinstance(a, np.ndarray) and a.ndim > 0:
            exprs.append(None)
        elif isinstance(a, (numbers.Number, np.generic, np.ndarray)):
            v = a.item() if isinstance(a, (np.generic, np.ndarray)) else a
            if isinstance(v, (str, bytes)) or not isinstance(v, numbers.Number):
                raise ArrayError(f"{opname}: {a!r} is not a number")
            exprs.append(a if isinstance(a, np.generic) else v)
        else:
            raise ArrayError(f"{opname}: cannot combine a graphwren array with {type(a).__name__}")
    arrays = [a for a in exprs if isinstance(a, Array)]
    if not arrays:
        raise ArrayError(f"{opname}: no graphwren array among the operands")
    ref = max(arrays, key=lambda a: a.ndim)
    for k, a in enumerate(args):
        if exprs[k] is None:
            exprs[k] = from_numpy(a, chunks=_matching_chunks(ref, a))
    arrays = [a for a in exprs if isinstance(a, Array)]
    unified = _unify(arrays, opname)
    it = iter(unified)
    operands = tuple(next(it).expr if isinstance(a, Array) else a for a in exprs)
    dtype = infer_dtype(op, operands, opname)
    return Array(Elemwise(op, operands, dtype))


def _unify(arrays: list[Array], opname: str) -> list[Array]:
    """Rechunk operands so every broadcast dimension has one chunking (the first array's)."""
    ndim = max(a.ndim for a in arrays)
    target = [None] * ndim
    for d in range(ndim):
        sizes = set()
        for a in arrays:
            k = d - (ndim - a.ndim)
            if k >= 0 and a.shape[k] != 1:
                sizes.add(a.shape[k])
                if target[d] is None:
                    target[d] = a.chunks[k]
        if len(sizes) > 1:
            shapes = " and ".join(str(a.shape) for a in arrays)
            raise ArrayError(f"{opname}: shape mismatch, operands could not be broadcast together with "
                             f"shapes {shapes} (dimension {d}: {sorted(sizes)})")
    out = []
    for a in arrays:
        off = ndim - a.ndim
        want = tuple(target[off + k] if a.shape[k] != 1 else a.chunks[k] for k in range(a.ndim))
        out.append(a if want == a.chunks else Array(Rechunk(a.expr, want)))
    return out


# ----------------------------------------------------------------------------- reductions and scans

#: Reductions over an empty axis that numpy refuses (no identity).
NO_IDENTITY = ("min", "max", "argmin", "argmax", "nanmin", "nanmax")


def _axes(x: Array, axis, what: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    norm = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -max(x.ndim, 1) <= a < max(x.ndim, 1) or x.ndim == 0:
            raise ArrayError(f"{what}: axis {a} is out of bounds for a {x.ndim}-d array")
        norm.append(int(a) % x.ndim)
    if len(set(norm)) != len(norm):
        raise ArrayError(f"{what}: repeated axis in {axis}")
    return tuple(sorted(norm))


def _no_out(out, what: str):
    if out is not None:
        raise TypeError(f"{what}: out= is not supported for graphwren arrays (they are immutable); "
                        "use the returned array")


def reduce(x: Array, how: str, axis=None, keepdims=False, split_every=None, dtype=None, ddof=0, out=None) -> Array:
    """The reduction ``how`` of ``x`` along ``axis``, planned as a tree of ReduceLevel stages."""
    _no_out(out, how)
    if x.dtype.kind == "c" and how in NO_IDENTITY:
        raise ArrayError(f"{how} of complex array {x.expr.name} is not supported")
    if how in ("argmin", "argmax") and axis is not None and isinstance(axis, (tuple, list)):
        raise TypeError(f"{how}: axis must be an int or None, got {axis!r}")
    axes = _axes(x, axis, how)
    if how in NO_IDENTITY and any(x.shape[a] == 0 for a in axes):
        raise ArrayError(f"zero-size array to reduction operation {how} which has no identity "
                         f"(axis {axis} of shape {x.shape})")
    if how in ("argmin", "argmax") and x.ndim == 0:
        return full((), 0, dtype=np.intp)
    return Array(AxisReduction(x.expr, how, axes, bool(keepdims), split_every, ddof,
                               None if dtype is None else np.dtype(dtype)))


def cumulative(x: Array, how: str, axis=None, dtype=None, out=None) -> Array:
    """cumsum/cumprod along ``axis`` (None: of the flattened array, as numpy)."""
    _no_out(out, how)
    if axis is None:
        x, axis = x.ravel(), 0
    (axis,) = _axes(x, axis, how)
    dtype = np.dtype(dtype) if dtype is not None else getattr(np, how)(np.ones(1, dtype=x.dtype)).dtype
    return Array(Cumulative(x.expr, how, axis, dtype))


def divmod_(a, b):
    """numpy's divmod: the pair (a // b, a % b)."""
    return elemwise(operator.floordiv, a, b, name="floor_divide"), elemwise(operator.mod, a, b, name="remainder")


# ----------------------------------------------------------------------------- running

#: dask's scheduler names -> graphwren settings. Stages always run as tasks on the backend:
#: 'threads' and 'processes' both mean the configured local (or lambda) workers.
SCHEDULERS = {None: {}, "threads": {}, "threading": {}, "processes": {}, "multiprocessing": {},
              "sync": {"backend": "local", "workers": 1}, "synchronous": {"backend": "local", "workers": 1},
              "single-threaded": {"backend": "local", "workers": 1}, "local": {"backend": "local"},
              "lambda": {"backend": "lambda"}}


def scheduler_settings(scheduler, settings: dict) -> dict:
    """``settings`` with dask's ``scheduler=`` name mapped onto graphwren's backends (see SCHEDULERS)."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler={scheduler!r} is not known; graphwren accepts "
                         f"{', '.join(repr(k) for k in SCHEDULERS if k)} (or None)")
    return {**SCHEDULERS[scheduler], **settings}


class _Discard:
    """An output receiver that keeps nothing (persist: the blocks stay in storage)."""

    def receive(self, _stage, _task, _part) -> None:
        pass


def compute(*arrays, scheduler=None, **settings) -> tuple:
    """dask.compute: a tuple of results; non-arrays pass through unchanged."""
    return tuple(a.compute(scheduler=scheduler, **settings) if isinstance(a, Array) else a for a in arrays)


def persist(*arrays, scheduler=None, **settings) -> tuple:
    """dask.persist: each array computed once and kept in storage."""
    return tuple(a.persist(scheduler=scheduler, **settings) if isinstance(a, Array) else a for a in arrays)


# ----------------------------------------------------------------------------- constructors


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ArrayError(f"negative dimensions are not allowed: {shape}")
    return shape


def from_numpy(x, chunks="auto") -> Array:
    """A blocked array over ``x``; it travels to the tasks once, through the job's data object."""
    x = np.asarray(x)
    check_numeric(x.dtype, "from_numpy")
    if type(x) is not np.ndarray:
        x = np.array(x)
    return Array(FromNumpy(Held(x), normalize_chunks(chunks, x.shape, x.dtype)))


def full(shape, fill_value, chunks="auto", dtype=None) -> Array:
    shape = _shape(shape)
    dtype = check_numeric(np.asarray(fill_value).dtype if dtype is None else dtype, "full")
    value = np.asarray(fill_value, dtype=dtype).item()
    return Array(Full(value, shape, normalize_chunks(chunks, shape, dtype), dtype))


def zeros(shape, chunks="auto", dtype=np.float64) -> Array:
    return full(shape, 0, chunks, dtype)


def ones(shape, chunks="auto", dtype=np.float64) -> Array:
    return full(shape, 1, chunks, dtype)


def empty(shape, chunks="auto", dtype=np.float64) -> Array:
    """numpy's empty; graphwren's blocks are made by tasks, so they are zeros (never uninitialised memory)."""
    return full(shape, 0, chunks, dtype)


def arange(start, stop=None, step=1, chunks="auto", dtype=None) -> Array:
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ArrayError("arange: step must not be zero")
    size = max(0, int(np.ceil((stop - start) / step)))
    dtype = check_numeric(np.arange(start, start + step, step).dtype if dtype is None else dtype, "arange")
    return Array(Arange(start, step, size, normalize_chunks(chunks, (size,), dtype), dtype))


def load_legacy(url: str) -> Array:
    """An array in graphwren's first format (``_array.json`` + codec blocks), lazily; new arrays are zarr."""
    from ..runtime.storage import open_store
    store = open_store(url)
    try:
        header = json.loads(store.get(HEADER_KEY))
    except MissingKey:
        raise ArrayError(f"load({url!r}): no graphwren array there (no header {HEADER_KEY!r}); "
                         "was it written by Array.store()?") from None
    except ValueError as exc:
        raise ArrayError(f"load({url!r}): the header {HEADER_KEY!r} is not valid JSON: {exc}") from None
    if header.get("format") != FORMAT:
        raise ArrayError(f"load({url!r}): {HEADER_KEY!r} is not a graphwren array header")
    shape = tuple(header["shape"])
    chunks = tuple(tuple(c) for c in header["chunks"])
    dtype = np.dtype(header["dtype"])
    present = set(store.list("block/"))
    nb = tuple(len(c) for c in chunks)
    n = int(np.prod(nb, dtype=np.int64))
    for t in range(n):
        idx = unravel(t, nb)
        if block_key(idx) not in present:
            raise ArrayError(f"load({url!r}): block {idx} ({block_key(idx)}) of the array is missing "
                             f"({len(present)} of {n} blocks present)")
    return Array(Load(store.url, header.get("token", ""), shape, chunks, dtype))
